"""``newsletter edition ...``: (being built)."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="newsletter edition commands.", no_args_is_help=True)
