"""The product's database: every table's migration, in order, and the migrated engine.

This is the one module that knows every owner's tables (the newsletter's own in
:mod:`newsletter.core.schema`, the subscriber list's in :mod:`subscribers.schema`),
so the core stays a leaf. Each step creates or alters tables inside the
migration transaction. Never edit a step that has shipped: add a new one at the end.

It also holds the database's key record: the fingerprint of the secret key the
database is used with (:func:`newsletter.core.keys.fingerprint`, never the key).
A command that opens the database with another key is refused, since its links
would not verify and its suppression hashes would miss every erased address.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.core import db, schema
from newsletter.core.db import Migration, UTCDateTime, is_postgres, utcnow
from newsletter.core.dbapi import MIGRATION_NAMES
from newsletter.core.keys import fingerprint, key_standing
from newsletter.core.newsletters import DEFAULT_NEWSLETTER_ID
from subscribers import schema as subscriber_schema

__all__ = [
    "MIGRATIONS",
    "check_database_key",
    "database_keys",
    "holds_signed_data",
    "migrate",
    "open_database",
    "recorded_fingerprint",
]

# One row (id 1): the fingerprint of the key this database is used with.
database_keys = sa.Table(
    "database_keys",
    db.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)


def _create(*tables: sa.Table) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return step


def _copy_columns(table: sa.Table) -> str:
    return ", ".join(column.name for column in table.columns)


def _subscriber_ids_never_reused(conn: Connection) -> None:
    """0005: rebuild SQLite's ``subscribers`` with AUTOINCREMENT, so ids are never reused.

    PostgreSQL's sequences never hand out an id twice already. On SQLite the
    table is rebuilt inside the migration transaction, where PRAGMA foreign_keys
    cannot be turned off: renaming a parent rewrites its children's references,
    and dropping it would cascade to them. So its one child, ``subscriber_events``,
    is moved aside first and rebuilt too; the old tables are dropped child first.
    The sequence then starts past every id the outbox and the history ever saw,
    so an id erased before this migration is not handed out either.
    """
    if is_postgres(conn):
        return
    ddl = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'subscribers'"
    ).scalar_one()
    if "AUTOINCREMENT" not in ddl.upper():
        people, history = subscriber_schema.subscribers, subscriber_schema.subscriber_events
        for table in (history, people):  # the child first, so it follows its parent's rename
            conn.exec_driver_sql(f"ALTER TABLE {table.name} RENAME TO {table.name}_0004")
            for index in table.indexes:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index.name}")
        for table in (people, history):
            table.create(conn)
            columns = _copy_columns(table)
            conn.exec_driver_sql(
                # names from the schema, not from input
                f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM {table.name}_0004"  # noqa: S608
            )
        for table in (history, people):
            conn.exec_driver_sql(f"DROP TABLE {table.name}_0004")
    highest = conn.exec_driver_sql(
        "SELECT max(coalesce((SELECT max(id) FROM subscribers), 0),"
        " coalesce((SELECT max(subscriber_id) FROM deliveries), 0),"
        " coalesce((SELECT max(subscriber_id) FROM subscriber_events), 0))"
    ).scalar_one()
    conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = 'subscribers'")
    conn.exec_driver_sql(
        "INSERT INTO sqlite_sequence (name, seq) VALUES ('subscribers', ?)", (highest,)
    )


def _console(conn: Connection) -> None:
    """0009: the console's accounts and audit log, and an index for its name search."""
    _create(schema.console_users, schema.audit_log)(conn)
    # the subscriber list's search by name prefix walks this index (never a scan)
    conn.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS ix_subscribers_name_lower ON subscribers (lower(name), id)"
    )


def _newsletters(conn: Connection) -> None:
    """0011: several newsletters. Existing data moves to the one newsletter there was,
    ``daily``: every edition and schedule belongs to it, and every subscriber holds a
    subscription to it, ``unsubscribed`` for those who had unsubscribed (bounced and
    complained people keep theirs: their status already stops every send).
    """
    subscriber_schema.subscriptions.create(conn, checkfirst=True)
    for table in (schema.editions, schema.schedules):
        present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
        if "newsletter_id" not in present:  # a fresh database has it from 0001/0004
            # names and the default are constants of the schema, not input
            conn.exec_driver_sql(
                f"ALTER TABLE {table.name} ADD COLUMN newsletter_id VARCHAR(40) "
                f"NOT NULL DEFAULT '{DEFAULT_NEWSLETTER_ID}'"
            )
    people, chosen = subscriber_schema.subscribers.c, subscriber_schema.subscriptions
    left = people.status == "unsubscribed"
    rows = sa.select(
        people.id,
        sa.literal(DEFAULT_NEWSLETTER_ID),
        sa.case((left, "unsubscribed"), else_="subscribed"),
        sa.func.coalesce(people.confirmed_at, people.created_at),
        sa.case((left, sa.func.coalesce(people.unsubscribed_at, people.updated_at)), else_=None),
        sa.literal("migration"),
    ).where(~sa.exists().where(chosen.c.subscriber_id == people.id))
    names = ["subscriber_id", "newsletter_id", "status", "subscribed_at", "unsubscribed_at"]
    conn.execute(chosen.insert().from_select([*names, "source"], rows))


def _subject_tests(conn: Connection) -> None:
    """0012: subject-line tests, and the arm of each click (``clicks.arm``)."""
    _create(schema.subject_tests)(conn)
    # a database made since has the column already (0010 creates clicks as it is now)
    if "arm" not in {c["name"] for c in sa.inspect(conn).get_columns("clicks")}:
        conn.exec_driver_sql("ALTER TABLE clicks ADD COLUMN arm VARCHAR(1)")


# one step per name of MIGRATION_NAMES, in the same order (a missing step fails at import)
MIGRATIONS: list[Migration] = list(
    zip(
        MIGRATION_NAMES,
        [
            _create(schema.articles, schema.editions),  # 0001_articles_editions
            _create(  # 0002_subscribers
                subscriber_schema.subscribers,
                subscriber_schema.subscriber_events,
                subscriber_schema.suppressions,
            ),
            _create(schema.deliveries),  # 0003_outbox
            _create(schema.schedules, schema.schedule_runs),  # 0004_schedules
            _subscriber_ids_never_reused,  # 0005_subscriber_ids
            _create(database_keys),  # 0006_database_key
            _create(schema.web_limits),  # 0007_web_limits
            _console,  # 0009_console
            _create(schema.schedule_waves, schema.clicks),  # 0010_personal
            _newsletters,  # 0011_newsletters
            _subject_tests,  # 0012_subject_tests
        ],
        strict=True,
    )
)


def migrate(engine: Engine) -> list[str]:
    """Apply every migration not yet recorded, in order; return the names applied."""
    return db.migrate(engine, MIGRATIONS)


def recorded_fingerprint(engine: Engine) -> str | None:
    """The key fingerprint the database recorded, or None before any key was used with it."""
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(database_keys.c.fingerprint).where(database_keys.c.id == 1)
        ).scalar_one_or_none()
        conn.rollback()
    return found


def holds_signed_data(engine: Engine) -> bool:
    """True when the database holds a subscriber or a suppression (made under some key)."""
    with engine.connect() as conn:
        held = any(
            conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first()
            for table in (subscriber_schema.subscribers, subscriber_schema.suppressions)
        )
        conn.rollback()
    return held


def check_database_key(engine: Engine, secret: bytes, *, record: bool = True) -> None:
    """Refuse a key the database was not used with; record the current key's fingerprint.

    Accepted: the recorded fingerprint is the current key's or, during a rotation,
    a retired key's (then the current key's is recorded in its place). Nothing
    recorded yet: the current key's is recorded (unless ``record`` is false).
    Raises :class:`ConfigError` naming the setting, never a key.
    """
    where = database_keys.c.id == 1
    with engine.begin() as conn:
        found = conn.execute(sa.select(database_keys.c.fingerprint).where(where)).scalar()
        if found is None and record:
            # here, not at the top: a command that only reads never loads PostgreSQL's dialect
            from sqlalchemy.dialects import postgresql, sqlite

            dialect = postgresql if is_postgres(conn) else sqlite
            conn.execute(
                dialect.insert(database_keys)
                .values(id=1, fingerprint=fingerprint(secret), recorded_at=utcnow())
                .on_conflict_do_nothing(index_elements=["id"])
            )
            found = conn.execute(sa.select(database_keys.c.fingerprint).where(where)).scalar()
        if key_standing(found, secret) == "retired" and record:
            conn.execute(
                database_keys.update()
                .where(where)
                .values(fingerprint=fingerprint(secret), recorded_at=utcnow())
            )


def open_database(url: str, *, secret: bytes | None = None, durable: bool = False) -> Engine:
    """An engine for ``url`` with every migration applied (once per process and URL).

    With ``secret``, the database's key record is checked (see :func:`check_database_key`);
    ``durable`` asks SQLite for ``synchronous=FULL``.
    """
    engine = db.open_migrated(url, MIGRATIONS, durable=durable)
    if secret is not None:
        check_database_key(engine, secret)
    return engine
