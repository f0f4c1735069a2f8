"""Database access: engines, the aware-UTC column type, and versioned migrations.

SQLite (the embedded default) and PostgreSQL run the same SQLAlchemy Core code
(the subscriber listing alone runs plain SQL on the driver: :mod:`newsletter.core.dbapi`).
Migrations are named steps recorded in the ``schema_migrations`` table and
applied in order on first use; applying them twice, or from two processes at
once, is safe.

An SQLite file is created mode 0600 (its WAL and shared-memory files inherit
that mode): it holds addresses and names. ``secure_delete`` is on, so a deleted
row's bytes are overwritten rather than left in free pages (erasure relies on it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from newsletter.core.dbapi import as_utc, sqlite_pragmas
from newsletter.core.errors import ConfigError

__all__ = [
    "STATEMENT_VALUES",
    "Migration",
    "UTCDateTime",
    "checkpoint",
    "is_postgres",
    "make_engine",
    "metadata",
    "migrate",
    "migrations_table",
    "open_migrated",
    "rows_in_batches",
    "utcnow",
]

metadata = sa.MetaData()

_migrated: set[str] = set()
_lock = threading.Lock()


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware in UTC.

    A naive datetime is a programming error here and is refused.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return as_utc(value)


#: the most values one statement names: an SQLite built with its old default takes
#: at most 999 (32,766 since 3.32), and a list of keys may be longer than either
STATEMENT_VALUES = 500


def rows_in_batches(
    conn: Connection, query: sa.Executable, name: str, values: Collection[Any]
) -> Iterator[sa.Row[Any]]:
    """Every row of ``query`` run over ``values``, at most :data:`STATEMENT_VALUES` at a time.

    ``query`` takes ``values`` as the expanding bind parameter ``name``
    (``column.in_(sa.bindparam(name, expanding=True))``).
    """
    listed = list(values)
    for start in range(0, len(listed), STATEMENT_VALUES):
        yield from conn.execute(query, {name: listed[start : start + STATEMENT_VALUES]})


def is_postgres(engine: Engine | Connection) -> bool:
    """True when the engine or connection talks to PostgreSQL."""
    return engine.dialect.name == "postgresql"


def _create_private(path: str | None) -> None:
    """Create the SQLite file mode 0600 before SQLite does (it would use the umask)."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise ConfigError(
            f"NEWSLETTER_DATABASE_URL: cannot create {path} ({exc.strerror})"
        ) from None
    os.close(fd)


def _sqlite_begin(conn: Connection) -> None:
    # pysqlite's own transaction handling is off (isolation_level=None above);
    # IMMEDIATE takes the write lock up front so two writers never deadlock.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, durable: bool = False) -> Engine:
    """An engine for ``url`` (``sqlite:///file.db`` or ``postgresql://...``), not yet migrated.

    A new SQLite file is created mode 0600; ``durable`` commits SQLite with
    ``synchronous=FULL`` (survives a power loss) instead of ``NORMAL``.
    """
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"NEWSLETTER_DATABASE_URL: {scheme or 'that'} databases are not supported; "
            "use sqlite:///FILE.db or postgresql://USER@HOST/NAME"
        )
    try:
        engine = sa.create_engine(url, future=True)
    except (ArgumentError, SQLAlchemyError, ImportError) as exc:
        raise ConfigError(f"NEWSLETTER_DATABASE_URL is not usable ({type(exc).__name__})") from None
    if engine.dialect.name == "sqlite":
        _create_private(engine.url.database)

        def set_up(dbapi_connection: Any, _record: Any) -> None:
            sqlite_pragmas(dbapi_connection, durable=durable)

        sa.event.listen(engine, "connect", set_up)
        sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def checkpoint(engine: Engine) -> None:
    """Fold SQLite's WAL into the database file and empty it (no-op on PostgreSQL).

    After an erasure, so that the erased bytes do not linger in old WAL frames.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        # on the raw connection: a checkpoint cannot run inside BEGIN IMMEDIATE
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.fetchall()
        finally:
            cursor.close()


Migration = tuple[str, Callable[[Connection], None]]

migrations_table = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at", UTCDateTime(), nullable=False),
)


def migrate(engine: Engine, migrations: Sequence[Migration]) -> list[str]:
    """Apply each of ``migrations`` not yet recorded, in order; return the names applied."""
    applied: list[str] = []
    with engine.begin() as conn:
        if is_postgres(conn):
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7265321)"))
        migrations_table.create(conn, checkfirst=True)
        done = set(conn.execute(sa.select(migrations_table.c.name)).scalars())
        for name, step in migrations:
            if name in done:
                continue
            step(conn)
            conn.execute(migrations_table.insert().values(name=name, applied_at=utcnow()))
            applied.append(name)
    return applied


def open_migrated(url: str, migrations: Sequence[Migration], *, durable: bool = False) -> Engine:
    """An engine for ``url`` with ``migrations`` applied (once per process and URL)."""
    engine = make_engine(url, durable=durable)
    with _lock:
        if url not in _migrated:
            try:
                migrate(engine, migrations)
            except OperationalError as exc:
                raise ConfigError(
                    f"cannot open the database ({str(exc.orig).splitlines()[0]})"
                ) from None
            _migrated.add(url)
    return engine
