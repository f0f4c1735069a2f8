"""``newsletter articles ...``: (being built)."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="newsletter articles commands.", no_args_is_help=True)
