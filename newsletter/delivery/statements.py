"""The outbox's two hot statements, run for every message in group commits.

Plain SQL text (valid on SQLite and PostgreSQL), and SQLite's own spelling run
on the driver's cursor: on the hot path of a send, SQLAlchemy's per-execution
work costs more than the database's own. :mod:`newsletter.delivery.outbox` uses them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.db import UTCDateTime

__all__ = [
    "MARK_SENDING",
    "MARK_SENDING_SQLITE",
    "RECORD",
    "RECORD_SQLITE",
    "driver",
    "sqlite_time",
]


# A row is sent only while its reader is confirmed and still subscribed to the
# edition's newsletter (an unsubscribe during the send wins): two key lookups.
_STILL_WANTED = (
    " AND EXISTS (SELECT 1 FROM subscribers"
    " WHERE subscribers.id = deliveries.subscriber_id AND subscribers.status = 'confirmed')"
    " AND NOT EXISTS (SELECT 1 FROM editions WHERE editions.id = deliveries.edition_id"
    " AND NOT EXISTS (SELECT 1 FROM subscriptions"
    " WHERE subscriptions.subscriber_id = deliveries.subscriber_id"
    " AND subscriptions.newsletter_id = editions.newsletter_id"
    " AND subscriptions.status = 'subscribed'))"
)

# The two statements run for every message, in group commits. Plain SQL text
# (valid on SQLite and PostgreSQL) costs a third of the equivalent Core
# construct per execution: these are the hot path of a send.
MARK_SENDING = sa.text(
    "UPDATE deliveries SET status = 'sending', message_id = :mid,"  # noqa: S608 - constants
    " attempts = attempts + 1, updated_at = :now"
    " WHERE edition_id = :e AND subscriber_id = :sid AND claimed_by = :w"
    " AND status IN ('queued', 'deferred')" + _STILL_WANTED
).bindparams(sa.bindparam("now", type_=UTCDateTime()))

RECORD = sa.text(
    "UPDATE deliveries SET status = :status, last_code = :code, last_error = :error,"
    " next_attempt_at = :next, sent_at = :sent, updated_at = :now,"
    " claimed_by = CASE WHEN :release = 1 THEN NULL ELSE claimed_by END"
    " WHERE edition_id = :e AND subscriber_id = :sid"
).bindparams(
    sa.bindparam("now", type_=UTCDateTime()),
    sa.bindparam("next", type_=UTCDateTime()),
    sa.bindparam("sent", type_=UTCDateTime()),
    sa.bindparam("code", type_=sa.Integer()),
    sa.bindparam("error", type_=sa.Text()),
    sa.bindparam("release", type_=sa.Integer()),
)


# SQLite's own spelling of the two statements, run on the driver's cursor inside
# the caller's transaction: an executemany of plain tuples, with the datetimes
# formatted as SQLAlchemy's SQLite DATETIME stores them (UTC, naive).
# SQLAlchemy's per-execution work (an execution context, parameter processing)
# cost more than SQLite's own.
MARK_SENDING_SQLITE = (
    "UPDATE deliveries SET status = 'sending', message_id = ?,"  # noqa: S608 - constants
    " attempts = attempts + 1, updated_at = ?"
    " WHERE edition_id = ? AND subscriber_id = ? AND claimed_by = ?"
    " AND status IN ('queued', 'deferred')" + _STILL_WANTED
)
RECORD_SQLITE = (
    "UPDATE deliveries SET status = ?, last_code = ?, last_error = ?,"
    " next_attempt_at = ?, sent_at = ?, updated_at = ?,"
    " claimed_by = CASE WHEN ? = 1 THEN NULL ELSE claimed_by END"
    " WHERE edition_id = ? AND subscriber_id = ?"
)


def driver(conn: Connection) -> Any:
    """The DBAPI connection under ``conn`` (in its transaction), for the hot statements."""
    return conn.connection.driver_connection


def sqlite_time(value: datetime | None) -> str | None:
    """``value`` as SQLAlchemy's DateTime stores it on SQLite (UTC, without the zone)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
