"""``newsletter schedule ...``: (being built)."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="newsletter schedule commands.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add the top-level ``scheduler`` command to ``root``."""
