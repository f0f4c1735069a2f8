"""What a run does in the database before and after sending (blocking; run through
the :class:`~newsletter.delivery.journal.DatabaseRunner`, each in one transaction).

Before: settle what a dead run left, write the outbox (the recipients' snapshot)
and honour unsubscribes; list the variants still to send. After: count the
outbox and move the edition to what it now is (sent, paused, still sending).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.content.editions import get_edition, set_status
from newsletter.content.message import list_id_header
from newsletter.content.models import Edition, EditionStatus
from newsletter.core.config import Settings
from newsletter.core.db import utcnow
from newsletter.core.errors import StateError
from newsletter.core.schema import deliveries
from newsletter.delivery import outbox, recovery, subjects
from newsletter.delivery.compose import outbox_rows
from newsletter.delivery.report import SendOptions, SendReport

__all__ = ["open_variants", "prepare", "settle"]


def prepare(
    conn: Connection,
    settings: Settings,
    edition_id: str,
    options: SendOptions,
    report: SendReport,
    worker: str,
    is_alive: Callable[[str], bool],
) -> Edition:
    """Make the edition's outbox ready for ``worker`` to send; return the edition."""
    now = utcnow()
    edition = get_edition(conn, edition_id)
    list_id_header(settings, edition.newsletter)  # its newsletter must still be configured
    if edition.status is EditionStatus.CANCELLED:
        raise StateError(f"edition {edition_id} was cancelled; it cannot be sent")
    recovered = recovery.recover(
        conn,
        edition_id,
        me=worker,
        is_alive=is_alive,
        now=now,
    )
    report.recovered_unknown = recovered.unknown
    if options.resend_unknown:
        recovery.requeue_unknown(conn, edition_id, now)
    # The recipients are a snapshot taken when the send first starts (in one
    # transaction: all rows or none); a resumed or second worker finds them.
    fresh = edition.status is not EditionStatus.SENT and not outbox.exists(conn, edition_id)
    if fresh:
        report.enqueued = outbox.enqueue(
            conn,
            edition_id,
            outbox_rows(conn, edition, repeat_window=settings.repeat_window, now=now),
            now,
        )
    recovery.drop_unsubscribed(conn, edition_id, now, edition.newsletter)
    # a subject-line test splits the new outbox into its arms, or is decided when due
    test = subjects.prepare(
        conn,
        settings,
        edition,
        options.subject_test,
        fresh=fresh,
        now=options.clock() if options.clock else now,
    )
    if test is not None:
        report.arms, report.winner = test.sizes, test.winner
        report.decision_at = test.decide_at if test.winner is None else None
    return edition


def open_variants(conn: Connection, edition_id: str) -> list[str]:
    """The variant keys of the edition's rows still to send (not those waiting for a
    subject-line test's decision: they are not sent as they are)."""
    query = (
        sa.select(deliveries.c.variant)
        .where(
            deliveries.c.edition_id == edition_id,
            deliveries.c.status.in_([s.value for s in outbox.OPEN_STATES]),
        )
        .distinct()
    )
    return [key for key in conn.execute(query).scalars() if not subjects.is_waiting(key)]


def settle(conn: Connection, edition_id: str, report: SendReport) -> None:
    """Count the outbox into ``report`` and move the edition to the status the run left."""
    now = utcnow()
    counts = outbox.counts(conn, edition_id)
    remaining = sum(counts[s] for s in outbox.OPEN_STATES)
    others = counts[outbox.DeliveryStatus.SENDING]  # rows other live workers hold
    report.counts = {s.value: n for s, n in counts.items()}
    report.remaining = remaining
    if report.decision_at is not None:
        report.waiting = subjects.waiting(conn, edition_id)
        if report.waiting:  # like rows deferred far ahead: `send` exits 75, schedulers retry
            report.deferred_until = min(filter(None, (report.deferred_until, report.decision_at)))
    if report.paused_reason:
        status, reason = EditionStatus.PAUSED, report.paused_reason
    elif remaining == 0:
        if get_edition(conn, edition_id).status is EditionStatus.SENT:
            report.edition_status = EditionStatus.SENT
            return  # a re-run with nothing to do: keep the first sent_at
        status, reason = EditionStatus.SENT, None
    elif report.stopped and not others:
        status = EditionStatus.PAUSED
        reason = f"stopped; resume with: newsletter send {edition_id}"
    elif report.decision_at is not None and report.waiting and not others:
        status = EditionStatus.SENDING
        reason = (
            f"subject-line test: {report.waiting} wait for the decision at "
            f"{report.decision_at:%Y-%m-%d %H:%M:%S} UTC"
        )
    elif report.deferred_until is not None and not others:
        status = EditionStatus.SENDING
        reason = (
            f"waiting to retry {counts[outbox.DeliveryStatus.DEFERRED]} deferred "
            f"until {report.deferred_until:%Y-%m-%d %H:%M:%S} UTC"
        )
    else:
        return  # other workers are still at it
    report.edition_status = set_status(conn, edition_id, status, reason, now=now).status
