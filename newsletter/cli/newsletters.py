"""``newsletter newsletters``: the configured newsletters with their subscriber counts.

Also the ``--newsletter ID`` option the other command groups share, so its help
reads the same everywhere; an unknown id is one line suggesting a close one.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from newsletter.cli.common import err, get_engine, get_settings, plural
from newsletter.cli.tables import Column, print_list

__all__ = ["NewsletterOption", "newsletters_command", "register"]

# `edition build --newsletter ID`, `subscribers list --newsletter ID`, ...
NewsletterOption = Annotated[
    str | None,
    typer.Option(
        "--newsletter",
        metavar="ID",
        help="The newsletter (an id from `newsletter newsletters`); default: the default one.",
    ),
]


def newsletters_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List the newsletters readers can choose, with how many receive each.

    "receiving" counts confirmed subscribers an edition would reach now; "pending"
    those subscribed who have not confirmed yet; "left" those who unsubscribed from
    it. Data under an id newsletter.toml does not configure is listed as such.

    Example:

        newsletter newsletters
    """
    from subscribers import subscriptions

    settings = get_settings()
    configured = settings.newsletter_list
    with get_engine().connect() as conn:
        counts = subscriptions.counts(conn)
    rows: list[dict[str, object]] = []
    for entry in configured:
        held = counts.get(entry.id, {})
        rows.append(
            {
                "id": entry.id,
                "name": entry.name,
                "description": entry.description,
                "default": entry.id == configured.default.id,
                "list_id": settings.newsletter_list_id(entry.id),
                "cron": entry.cron,
                "receiving": held.get("confirmed", 0),
                "pending": held.get("subscribed", 0) - held.get("confirmed", 0),
                "left": held.get("unsubscribed", 0),
            }
        )
    orphans = sorted(set(counts) - set(configured.ids))
    if as_json:
        typer.echo(json.dumps({"newsletters": rows, "not_configured": orphans}, indent=2))
        return
    columns = [
        Column("id", key=True),
        Column("receiving", right=True),
        Column("pending", right=True),
        Column("left", right=True),
        Column("name", flex=True),
    ]
    lines = [
        [
            f"{row['id']}*" if row["default"] else str(row["id"]),
            str(row["receiving"]),
            str(row["pending"]),
            str(row["left"]),
            str(row["name"]),
        ]
        for row in rows
    ]
    print_list(columns, lines, f"{plural(len(lines), 'newsletter')} (* the default)")
    for orphan in orphans:
        held = counts[orphan]
        err.print(
            f"warning: {held['subscribed']} subscriptions to {orphan!r}, which newsletter.toml "
            "does not configure (add it to [[newsletters]] to send to them)",
            markup=False,
        )


def register(app: typer.Typer) -> None:
    """Add ``newsletters`` to the root command."""
    app.command("newsletters")(newsletters_command)
