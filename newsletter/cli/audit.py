"""``newsletter audit``: who changed what, and when (the console's audit log)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from newsletter.cli.common import get_engine, out, plural
from newsletter.cli.tables import Column, print_list

__all__ = ["audit", "register"]


def register(root: typer.Typer) -> None:
    """Add this module's command to ``root``."""
    root.command("audit")(audit)


def audit(
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=100_000, help="How many entries, newest first.")
    ] = 100,
    actor: Annotated[
        str | None, typer.Option("--actor", metavar="EMAIL", help="Only this account's changes.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the audit log: every change made in the console or to accounts, newest first.

    Example:

        newsletter audit --limit 20 --json
    """
    from newsletter.web.admin.audit import list_entries

    with get_engine().connect() as conn:
        entries = list_entries(conn, limit=limit, actor=actor)
    if as_json:
        typer.echo(json.dumps([e.as_json() for e in entries], indent=2))
        return
    if not entries:
        out.print("the audit log is empty", markup=False)
        return
    rows = [
        [
            f"{e.at:%Y-%m-%d %H:%M:%S} UTC",
            e.actor,
            e.action,
            e.target or "-",
            e.detail or "",
        ]
        for e in entries
    ]
    columns = [Column("at"), Column("actor", key=True), Column("action"), Column("target")]
    columns.append(Column("detail", flex=True))
    print_list(columns, rows, plural(len(rows), "entry", "entries"))
