"""``newsletter inbound``: act on bounces, complaints and mailed unsubscribes in a Maildir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from newsletter.cli.common import get_engine, get_settings, out

if TYPE_CHECKING:
    from newsletter.inbound.process import InboundReport, Kind

__all__ = [
    "inbound",
    "register",
]

_LABELS: dict[Kind, str] = {
    "bounced": "bounced",
    "soft_bounce": "soft bounces",
    "deferred": "deferred",
    "complaint": "complaints",
    "unsubscribed": "unsubscribed",
    "unverified": "unverified (recorded only)",
    "ignored": "ignored",
    "forged": "forged tokens",
    "malformed": "malformed",
    "not_understood": "not understood",
    "quarantined": "quarantined",
    "skipped": "skipped",
}


def _masked(address: str | None) -> str | None:
    # the output may be pasted into a ticket: enough to recognise, not to harvest
    from subscribers.addresses import mask_address

    return mask_address(address) if address else None


def _print(report: InboundReport) -> None:
    from newsletter.inbound.process import QUARANTINE

    for action in report.actions:
        who = _masked(action.address)
        person = f" {who}" if who else ""
        out.print(f"{action.kind}: {action.file}{person}: {action.detail}", markup=False)
    counts = report.counts()
    summary = ", ".join(f"{counts[kind]} {label}" for kind, label in _LABELS.items())
    prefix = "dry run, nothing changed: " if report.dry_run else ""
    moves = f"{report.moved} moved to cur/, {report.quarantined} to {QUARANTINE}/"
    partly = f"; {report.partly_read} read only in part (too big)" if report.partly_read else ""
    out.print(
        f"{prefix}{report.messages} new messages: {summary}; {moves}{partly}",
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
    """Read a Maildir's new mail: act on bounces, complaints and mailed unsubscribes.

    Only on evidence tied to the person: the report came to their VERP return
    path (bounces+TAG@domain) or returns their own signed token. A 5.1.x bounce
    marks them bounced; other failures are soft (bounced at the third within 30
    days); ARF abuse reports mark them complained; "unsubscribe TOKEN" mail (the
    List-Unsubscribe mailto) unsubscribes them. A report without evidence is only
    recorded in the person's history. Handled messages move to cur/ flagged Seen;
    hostile ones (too deep, too many parts) to .Quarantine/; special files are
    skipped unopened; anything else stays in new/.

    Example:

        newsletter inbound /var/mail/bounces --dry-run
    """
    from newsletter.inbound.process import process_maildir

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
