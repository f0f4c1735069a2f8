"""The import's hot path: statements handed straight to the driver, values pre-encoded.

SQLAlchemy Core would run every column type's bind processor and build a
parameter dict per row, and expand an ``IN`` list of thousands of keys through
its compiler, per batch: together more than the database's own work. Here the
:class:`Encoder` runs the real column types' processors (so SQLite and
PostgreSQL get exactly what SQLAlchemy would send) once per distinct value
(``now`` is one value per import; topic lists repeat), and the statements are
fixed text with the driver's own placeholders. No user input is ever part of
the SQL text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from subscribers.schema import subscriber_events, subscribers

__all__ = ["INSERT_COLUMNS", "Encoder", "existing_keys", "insert_events", "insert_subscribers"]

INSERT_COLUMNS = (
    "email", "email_key", "name", "status", "topics", "timezone", "attributes",
    "consent_source", "consent_at", "consent_ip", "created_at", "updated_at",
    "confirmed_at", "unsubscribed_at", "bounced_at", "complained_at",
)  # fmt: skip

_INSERT = "INSERT INTO subscribers ({}) VALUES ({})".format(  # noqa: S608 (no input)
    ", ".join(INSERT_COLUMNS), ", ".join(["{mark}"] * len(INSERT_COLUMNS))
)
_COPY = "COPY subscribers ({}) FROM STDIN".format(", ".join(INSERT_COLUMNS))
_EXISTING = "SELECT email_key FROM subscribers WHERE email_key IN ({marks})"
_EVENTS = (
    "INSERT INTO subscriber_events (subscriber_id, at, kind, detail) "
    "SELECT id, {mark}, {mark}, {mark} FROM subscribers WHERE email_key IN ({marks})"
)
# SQLite holds the database's write lock for the whole transaction (BEGIN IMMEDIATE),
# so the rows above the highest id seen before an insert are exactly that insert's
_EVENTS_AFTER = (
    "INSERT INTO subscriber_events (subscriber_id, at, kind, detail) "
    "SELECT id, ?, ?, ? FROM subscribers WHERE id > ? AND status = ?"
)


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


class Encoder:
    """Values as the database driver wants them, made by the real column types."""

    def __init__(self, dialect: sa.Dialect, now: datetime) -> None:
        self._json = self._processor(subscribers.c.topics.type, dialect)
        self._event_json = self._processor(subscriber_events.c.detail.type, dialect)
        self.time = self._processor(subscribers.c.created_at.type, dialect)
        self.now = self.time(now)
        self._topics: dict[frozenset[str] | None, Any] = {}
        self._attributes: dict[tuple[tuple[str, str], ...], Any] = {}

    @staticmethod
    def _processor(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Callable[[Any], Any]:
        process = type_.dialect_impl(dialect).bind_processor(dialect)
        return process if process is not None else (lambda value: value)

    def topics(self, topics: frozenset[str] | None) -> Any:
        """A topic set as a sorted JSON list."""
        found = self._topics.get(topics)
        if found is None:
            if len(self._topics) > 4096:  # bounded, whatever the file holds
                self._topics.clear()
            found = self._topics[topics] = self._json(sorted(topics or ()))
        return found

    def attributes(self, attributes: dict[str, str]) -> Any:
        """Custom attributes as a JSON object."""
        key = tuple(attributes.items())
        found = self._attributes.get(key)
        if found is None:
            if len(self._attributes) > 4096:  # custom attributes may all differ
                self._attributes.clear()
            found = self._attributes[key] = self._json(attributes)
        return found

    def detail(self, detail: dict[str, Any]) -> Any:
        """An event's detail as JSON."""
        return self._event_json(detail)


def insert_subscribers(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int | None:
    """Insert pre-encoded rows (values in :data:`INSERT_COLUMNS` order) with one executemany.

    On SQLite, returns the highest id held before the insert (see :func:`insert_events`).
    """
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy(conn, rows)
        return None
    before = None
    if conn.dialect.name == "sqlite":
        before = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM subscribers").scalar()
    conn.exec_driver_sql(_INSERT.replace("{mark}", _mark(conn)), list(rows))
    return before


def _copy(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    # COPY is PostgreSQL's bulk path: one stream instead of a statement per row,
    # inside the same transaction as the rest of the import
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
        for row in rows:
            copy.write_row(row)


def existing_keys(conn: Connection, keys: Sequence[str]) -> list[str]:
    """Which of these address keys are already held."""
    if not keys:
        return []
    statement = _EXISTING.replace("{marks}", ", ".join([_mark(conn)] * len(keys)))
    return [row[0] for row in conn.exec_driver_sql(statement, tuple(keys))]


def insert_events(
    conn: Connection,
    keys: Sequence[str],
    kind: str,
    detail: dict[str, Any],
    encoder: Encoder,
    *,
    inserted_after: int | None = None,
    status: str | None = None,
) -> None:
    """One event of ``kind`` for each person with these keys, at the encoder's ``now``.

    On SQLite, ``inserted_after`` (from :func:`insert_subscribers`) and ``status``
    select the same people by id range, sparing an index lookup per key.
    """
    if not keys:
        return
    if inserted_after is not None and status is not None:
        values = (encoder.now, kind, encoder.detail(detail), inserted_after, status)
        conn.exec_driver_sql(_EVENTS_AFTER, values)
        return
    mark = _mark(conn)
    statement = _EVENTS.replace("{marks}", ", ".join([mark] * len(keys))).replace("{mark}", mark)
    conn.exec_driver_sql(statement, (encoder.now, kind, encoder.detail(detail), *keys))
