"""``newsletter inbound``: act on bounces, complaints and mailed unsubscribes in a Maildir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import get_engine, get_settings, out
from newsletter.inbound.process import InboundReport, Kind, process_maildir
from subscribers.addresses import mask_address

__all__ = [
    "inbound",
    "register",
]

_LABELS: dict[Kind, str] = {
    "bounced": "bounced",
    "deferred": "deferred",
    "complaint": "complaints",
    "unsubscribed": "unsubscribed",
    "ignored": "ignored",
    "forged": "forged tokens",
    "malformed": "malformed",
    "not_understood": "not understood",
}


def _masked(address: str | None) -> str | None:
    # the output may be pasted into a ticket: enough to recognise, not to harvest
    return mask_address(address) if address else None


def _print(report: InboundReport) -> None:
    for action in report.actions:
        who = _masked(action.address)
        person = f" {who}" if who else ""
        out.print(f"{action.kind}: {action.file}{person}: {action.detail}", markup=False)
    counts = report.counts()
    summary = ", ".join(f"{counts[kind]} {label}" for kind, label in _LABELS.items())
    prefix = "dry run, nothing changed: " if report.dry_run else ""
    out.print(
        f"{prefix}{report.messages} new messages: {summary}; {report.moved} moved to cur/",
        markup=False,
    )


def inbound(
    maildir: Annotated[
        Path, typer.Argument(metavar="MAILDIR", help="The Maildir the MTA delivers returns to.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be done; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Read a Maildir's new mail: mark hard bounces and complaints, honour mailed unsubscribes.

    DSN bounces with a 5.x.x status mark the person bounced (4.x.x is only
    recorded); ARF abuse reports mark them complained; "unsubscribe TOKEN" mail
    (the List-Unsubscribe mailto) unsubscribes them. Handled messages move to
    cur/ flagged Seen, so a second run changes nothing; anything else stays in new/.

    Example:

        newsletter inbound /var/mail/bounces --dry-run
    """
    report = process_maildir(get_engine(), get_settings().secret(), maildir, dry_run=dry_run)
    if as_json:
        data = report.as_json()
        for action in data["actions"]:
            action["address"] = _masked(action["address"])
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        _print(report)


def register(root: typer.Typer) -> None:
    """Add ``inbound`` to ``root``."""
    root.command("inbound")(inbound)
