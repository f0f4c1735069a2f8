"""The outbox: one row per (edition, recipient), the truth about who got what.

States::

    queued --claim--> reserved (queued, claimed_by set) --begin--> sending
    sending --250--> sent
    sending --4xx or a drop before DATA--> deferred --when due--> claimed again
    sending --5xx--> failed
    sending --lost after the message was handed over--> unknown

A worker first *reserves* a batch of due rows (``claimed_by`` = its id, status
unchanged, ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL so several
workers share an edition; SQLite's ``BEGIN IMMEDIATE`` serialises the claim).
Only when a message is about to go out does its row become ``sending``, and it
becomes ``sent`` only after the relay's 250. So after a crash, the only rows
whose fate is unknown are those in ``sending``: at most one per open connection.
A reservation left by a dead worker is simply released; its rows were never sent.

Functions take a connection inside the caller's transaction and an aware ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from newsletter.core.db import is_postgres
from newsletter.core.schema import deliveries
from newsletter.delivery.outcomes import OPEN_STATES, DeliveryStatus
from newsletter.delivery.statements import (
    MARK_SENDING,
    MARK_SENDING_SQLITE,
    RECORD,
    RECORD_SQLITE,
    driver,
    sqlite_time,
)
from subscribers.schema import subscribers, subscriptions

__all__ = [
    "OPEN_STATES",
    "Claimed",
    "DeliveryStatus",
    "Mark",
    "NewDelivery",
    "OutboxError",
    "OutboxStatus",
    "claim",
    "confirmed",
    "counts",
    "enqueue",
    "exists",
    "mark_sending",
    "next_retry_at",
    "record",
    "release",
    "status",
]

_D = deliveries.c
_BATCH = 500  # rows per executemany / IN list: well under SQLite's variable limit


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A recipient to add to an edition's outbox."""

    subscriber_id: int
    email: str
    name: str | None
    variant: str
    # SKIPPED (with the reason) records a reader who is not sent the edition
    status: DeliveryStatus = DeliveryStatus.QUEUED
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row reserved by this worker, with what is needed to build its message."""

    subscriber_id: int
    email: str
    name: str | None
    variant: str
    attempts: int
    message_id: str | None
    # the subscriber's ``first_name`` attribute (a CSV's First Name), for the greeting
    first_name: str | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """The result to write for one row after an attempt."""

    subscriber_id: int
    status: DeliveryStatus
    code: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


class OutboxError(BaseModel):
    """One recent error, for ``newsletter status``."""

    model_config = ConfigDict(frozen=True)

    email: str
    status: DeliveryStatus
    code: int | None
    error: str
    at: datetime


class OutboxStatus(BaseModel):
    """An edition's delivery at a glance: counts per state, the rate, the last errors."""

    model_config = ConfigDict(frozen=True)

    edition_id: str
    total: int
    counts: dict[DeliveryStatus, int]
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    rate: float | None  # messages per second between the first and last 250
    last_errors: list[OutboxError]

    @property
    def open(self) -> int:
        """Rows still queued, deferred or sending."""
        return sum(self.counts[s] for s in OPEN_STATES)


def _chunks(items: Iterable[Any], size: int = _BATCH) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _insert_ignoring_existing(conn: Connection) -> Any:
    dialect = postgresql if is_postgres(conn) else sqlite
    return (
        dialect.insert(deliveries)
        .on_conflict_do_nothing(index_elements=["edition_id", "subscriber_id"])
        .returning(deliveries.c.subscriber_id)
    )


def enqueue(
    conn: Connection, edition_id: str, recipients: Iterable[NewDelivery], now: datetime
) -> int:
    """Add a ``queued`` row per recipient not yet in the edition's outbox; return how many.

    Streams: the recipients are consumed in batches, never held all at once.
    A recipient already in the outbox (a resumed send) keeps their row as it is.
    """
    statement = _insert_ignoring_existing(conn)
    added = 0
    for chunk in _chunks(recipients):
        rows = [
            {
                "edition_id": edition_id,
                "subscriber_id": r.subscriber_id,
                "email": r.email,
                "name": r.name,
                "variant": r.variant,
                "status": r.status.value,
                "last_error": r.reason,
                "attempts": 0,
                "updated_at": now,
            }
            for r in chunk
        ]
        # RETURNING counts the rows really inserted, on both databases
        # (an executemany's rowcount is not reliable on PostgreSQL).
        added += len(conn.execute(statement, rows).all())
    return added


def _first_name() -> Any:
    """SQL: the claimed row's subscriber's ``first_name`` attribute (NULL when none).

    Read with the claim, one primary-key lookup per row in the same statement, so
    the greeting costs nothing more per message (and an erased reader has none).
    """
    return (
        sa.select(subscribers.c.attributes["first_name"].as_string())
        .where(subscribers.c.id == _D.subscriber_id)
        .scalar_subquery()
    )


def confirmed(subscriber_id: Any, newsletter: str | None = None) -> Any:
    """SQL: the subscriber with this id is still confirmed (and, given ``newsletter``,
    still subscribed to it)."""
    person = sa.exists().where(
        subscribers.c.id == subscriber_id, subscribers.c.status == "confirmed"
    )
    if newsletter is None:
        return person
    chosen = sa.exists().where(
        subscriptions.c.subscriber_id == subscriber_id,
        subscriptions.c.status == "subscribed",
        subscriptions.c.newsletter_id == newsletter,
    )
    return sa.and_(person, chosen)


def claim(
    conn: Connection, edition_id: str, worker: str, limit: int, now: datetime
) -> list[Claimed]:
    """Reserve up to ``limit`` due rows (queued, or deferred and due) for ``worker``.

    The rows keep their state; they only become ``sending`` in :func:`mark_sending`.
    Each comes with its subscriber's ``first_name`` attribute, if any (the greeting's).
    """
    columns = (
        *(_D.subscriber_id, _D.email, _D.name, _D.variant, _D.attempts, _D.message_id),
        _first_name(),
    )
    free = (_D.edition_id == edition_id, _D.claimed_by.is_(None))
    queries = [
        sa.select(*columns).where(
            *free,
            _D.status == DeliveryStatus.DEFERRED.value,
            _D.next_attempt_at <= now,
        ),
        # No ORDER BY: the (edition, status) index hands rows out in insertion
        # order without sorting the whole queue on every claim.
        sa.select(*columns).where(*free, _D.status == DeliveryStatus.QUEUED.value),
    ]
    rows: list[Claimed] = []
    for query in queries:
        if len(rows) >= limit:
            break
        query = query.limit(limit - len(rows))
        if is_postgres(conn):
            query = query.with_for_update(skip_locked=True)
        rows.extend(Claimed(*row) for row in conn.execute(query))
    for chunk in _chunks([r.subscriber_id for r in rows]):
        conn.execute(
            deliveries.update()
            .where(_D.edition_id == edition_id, _D.subscriber_id.in_(chunk))
            .values(claimed_by=worker)
        )
    return rows


def mark_sending(
    conn: Connection,
    edition_id: str,
    worker: str,
    rows: list[tuple[int, str]],
    now: datetime,
) -> set[int]:
    """Move reserved rows ``(subscriber_id, message_id)`` to ``sending``; return those moved.

    A row is moved only if this worker still holds it and its subscriber is still
    confirmed (an unsubscribe or erasure during the send wins): the caller must not
    send the others, which are marked failed here.
    """
    if not rows:
        return set()
    if is_postgres(conn):
        params = [
            {"e": edition_id, "w": worker, "sid": sid, "mid": mid, "now": now} for sid, mid in rows
        ]
        result = conn.execute(MARK_SENDING, params)
    else:
        at = sqlite_time(now)
        result = driver(conn).executemany(
            MARK_SENDING_SQLITE, [(mid, at, edition_id, sid, worker) for sid, mid in rows]
        )
    wanted = {sid for sid, _ in rows}
    if result.rowcount == len(rows):
        return wanted
    moved = set(
        conn.execute(
            sa.select(_D.subscriber_id).where(
                _D.edition_id == edition_id,
                _D.subscriber_id.in_(wanted),
                _D.status == DeliveryStatus.SENDING.value,
                _D.claimed_by == worker,
            )
        ).scalars()
    )
    conn.execute(
        deliveries.update()
        .where(
            _D.edition_id == edition_id,
            _D.subscriber_id.in_(wanted - moved),
            _D.claimed_by == worker,
            _D.status.in_([DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value]),
        )
        .values(
            status=DeliveryStatus.FAILED.value,
            last_error="no longer subscribed",
            claimed_by=None,
            updated_at=now,
        )
    )
    return moved


def record(conn: Connection, edition_id: str, marks: list[Mark], now: datetime) -> None:
    """Write the results of attempts: sent, deferred (with its next time), failed, unknown."""
    if not marks:
        return
    if not is_postgres(conn):
        at = sqlite_time(now)
        driver(conn).executemany(
            RECORD_SQLITE,
            [
                (
                    m.status.value,
                    m.code,
                    m.error,
                    sqlite_time(m.next_attempt_at),
                    at if m.status is DeliveryStatus.SENT else None,
                    at,
                    1 if m.status is DeliveryStatus.DEFERRED else 0,
                    edition_id,
                    m.subscriber_id,
                )
                for m in marks
            ],
        )
        return
    conn.execute(
        RECORD,
        [
            {
                "e": edition_id,
                "sid": m.subscriber_id,
                "status": m.status.value,
                "code": m.code,
                "error": m.error,
                "next": m.next_attempt_at,
                "sent": now if m.status is DeliveryStatus.SENT else None,
                # A deferred row goes back to the pool for any worker to retry.
                "release": 1 if m.status is DeliveryStatus.DEFERRED else 0,
                "now": now,
            }
            for m in marks
        ],
    )


def release(conn: Connection, edition_id: str, worker: str) -> int:
    """Give back this worker's reservations that were never started (a clean stop)."""
    return conn.execute(
        deliveries.update()
        .where(
            _D.edition_id == edition_id,
            _D.claimed_by == worker,
            _D.status.in_([DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value]),
        )
        .values(claimed_by=None)
    ).rowcount


def exists(conn: Connection, edition_id: str) -> bool:
    """True once the edition has an outbox (its recipients were written)."""
    query = sa.select(_D.subscriber_id).where(_D.edition_id == edition_id).limit(1)
    return conn.execute(query).first() is not None


def counts(conn: Connection, edition_id: str) -> dict[DeliveryStatus, int]:
    """How many rows of the edition are in each state (every state present)."""
    found = dict.fromkeys(DeliveryStatus, 0)
    query = (
        sa.select(_D.status, sa.func.count()).where(_D.edition_id == edition_id).group_by(_D.status)
    )
    for state, number in conn.execute(query):
        found[DeliveryStatus(state)] = number
    return found


def next_retry_at(conn: Connection, edition_id: str) -> datetime | None:
    """When the earliest deferred row of the edition is due, or ``None`` if none is deferred."""
    # min() keeps the column's type, so the value comes back aware, in UTC.
    value: datetime | None = conn.execute(
        sa.select(sa.func.min(_D.next_attempt_at)).where(
            _D.edition_id == edition_id, _D.status == DeliveryStatus.DEFERRED.value
        )
    ).scalar_one_or_none()
    return value


def status(conn: Connection, edition_id: str, errors: int = 5) -> OutboxStatus:
    """Counts per state, the sending rate and the last ``errors`` errors of an edition."""
    found = counts(conn, edition_id)
    first, last = conn.execute(
        sa.select(sa.func.min(_D.sent_at), sa.func.max(_D.sent_at)).where(
            _D.edition_id == edition_id, _D.status == DeliveryStatus.SENT.value
        )
    ).one()
    sent = found[DeliveryStatus.SENT]
    rate = None
    if first is not None and last is not None and sent > 1 and last > first:
        rate = (sent - 1) / (last - first).total_seconds()
    recent = conn.execute(
        sa.select(_D.email, _D.status, _D.last_code, _D.last_error, _D.updated_at)
        .where(
            _D.edition_id == edition_id,
            _D.last_error.is_not(None),
            _D.status != DeliveryStatus.SKIPPED.value,
        )
        .order_by(_D.updated_at.desc())
        .limit(errors)
    )
    return OutboxStatus(
        edition_id=edition_id,
        total=sum(found.values()),
        counts=found,
        first_sent_at=first,
        last_sent_at=last,
        rate=rate,
        last_errors=[
            OutboxError(
                email=r.email,
                status=r.status,
                code=r.last_code,
                error=r.last_error,
                at=r.updated_at,
            )
            for r in recent
        ],
    )
