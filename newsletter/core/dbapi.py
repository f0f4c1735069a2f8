"""Plain DB-API access, free of SQLAlchemy, for what must start at once (a listing).

The same SQL text runs on ``sqlite3`` and on ``psycopg``: statements are written
with ``?`` placeholders (and hold no other ``?`` nor any ``%``) and :func:`execute`
gives psycopg its ``%s``. Values come back as each driver returns them;
:func:`as_utc` and :func:`as_json` turn them into what the SQLAlchemy column types
of :mod:`newsletter.core.db` return (aware UTC datetimes, parsed JSON), so a row
read either way builds the same model.

:func:`sqlite_pragmas` is the one set-up of every SQLite connection, the engine's
included; :func:`open_sqlite` opens an existing SQLite file with it. The names of
the product's migrations live here too (:data:`MIGRATION_NAMES`, their steps in
:mod:`newsletter.database`), so :func:`migrated` can tell a current database
without loading SQLAlchemy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "MIGRATION_NAMES",
    "as_json",
    "as_utc",
    "execute",
    "is_sqlite",
    "migrated",
    "open_sqlite",
    "sqlite_pragmas",
]

#: the product's migrations, in order (their steps are in :mod:`newsletter.database`);
#: a database whose ``schema_migrations`` records them all is current
MIGRATION_NAMES = (
    "0001_articles_editions",
    "0002_subscribers",
    "0003_outbox",
    "0004_schedules",
    "0005_subscriber_ids",
    "0006_database_key",
    "0007_web_limits",
    "0009_console",
    "0010_personal",
    "0011_newsletters",
    "0012_subject_tests",
)


def sqlite_pragmas(dbapi_connection: Any, *, durable: bool) -> None:
    """Set up one SQLite connection: autocommit driver, WAL, foreign keys, waits, erasure.

    WAL lets readers (status, preview) run while a send writes; the busy timeout
    makes concurrent writers (two schedulers) wait instead of failing.
    synchronous=NORMAL survives a crash but may lose the last commits on a power
    loss; ``durable`` (NEWSLETTER_DURABLE=full) asks for FULL (a sync per commit).
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def open_sqlite(path: Path, *, durable: bool = False) -> Any:
    """A ``sqlite3`` connection to the existing file ``path`` (never created here), set up
    by :func:`sqlite_pragmas`. Raises ``sqlite3.Error`` when it cannot be opened."""
    import sqlite3

    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)
    try:
        sqlite_pragmas(conn, durable=durable)
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def is_sqlite(conn: Any) -> bool:
    """True for a ``sqlite3`` connection (else psycopg's)."""
    return type(conn).__module__.partition(".")[0] == "sqlite3"


def execute(conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run ``sql`` (``?`` placeholders) with ``params`` on ``conn``; the open cursor."""
    cursor = conn.cursor()
    cursor.execute(sql if is_sqlite(conn) else sql.replace("?", "%s"), tuple(params))
    return cursor


def migrated(conn: Any) -> bool:
    """True when the database records every one of :data:`MIGRATION_NAMES` as applied."""
    rows = execute(conn, "SELECT name FROM schema_migrations").fetchall()
    return set(MIGRATION_NAMES) <= {name for (name,) in rows}


def as_utc(value: datetime | str | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite keeps naive UTC text; None stays)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def as_json(value: Any) -> Any:
    """A stored JSON value, parsed (SQLite keeps the text; psycopg may have parsed it)."""
    return json.loads(value) if isinstance(value, str | bytes) else value
