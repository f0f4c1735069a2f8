"""Questions before what cannot be undone: asked on a terminal, skipped with ``--yes``.

Off a terminal (cron, the scheduler, a pipe) nobody can answer, so the command
proceeds as it always has; scripts that want the question skipped on a
terminal too pass ``--yes``.
"""

from __future__ import annotations

import sys

import typer

__all__ = ["YES_HELP", "confirm_or_stop", "on_terminal"]

YES_HELP = "Do not ask for confirmation on a terminal."


def on_terminal() -> bool:
    """True when a person is at the keyboard (stdin and stdout are terminals)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def confirm_or_stop(question: str, *, yes: bool) -> None:
    """Ask ``question`` [y/N] on a terminal unless ``yes``; a "no" exits with status 1."""
    if yes or not on_terminal():
        return
    if not typer.confirm(question, default=False):
        typer.echo("nothing done", err=True)
        raise typer.Exit(1)
