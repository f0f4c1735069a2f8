"""The import's set-based path: a staging table, one merge, events written by the database.

A chunk of parsed rows, in key order, is loaded into a per-connection temporary
table (``import_stage``: on PostgreSQL one ``COPY`` of CSV text that the reading
thread wrote with the csv module; on SQLite a few statements of 2,000 rows
each), then a few statements do the rest inside the database, whatever the
chunk's size:

- the suppression check is a join of the rows' keyed hashes (computed in
  Python, under every accepted key) with ``suppressions``;
- one ``INSERT ... SELECT ... ON CONFLICT (email_key) DO NOTHING`` adds the
  people not yet held, and their ``created`` events and their newsletters'
  subscriptions are written from the inserted rows (PostgreSQL: ``RETURNING``
  CTEs of that same statement, the subscriptions by a hash join of the inserted
  rows with the stage; SQLite, which holds the write lock for the whole
  transaction: the ids above the highest one held before the insert); a row
  another writer inserted meanwhile is simply not inserted again. On SQLite,
  when not everyone was added, the added rows then leave the stage;
- the people already held come back from a join of the stage with
  ``subscribers`` (on PostgreSQL locked, leaving out the rows this transaction
  inserted, known by their ``xmin``, and with hash and merge joins off for that
  query, so that it probes the unique index instead of reading the whole table
  per chunk) and are updated in Python, which holds the rules for a status change.

:func:`session` wraps a whole import: on SQLite it sizes the page cache and
the checkpoints for it, and on both stores it drops the staging tables at the end.

Values are pre-encoded by the real column types (:class:`Encoder`), once per
distinct value where values repeat; no user input is ever part of the SQL text.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.db import UTCDateTime, rows_in_batches
from subscribers.model import SubscriberStatus
from subscribers.schema import subscriber_events, subscribers

__all__ = ["STAGE_COLUMNS", "Encoder", "Stage", "copy_text", "session"]

#: the staged values of one row, in this order
STAGE_COLUMNS = (
    "email", "email_key", "address_hash", "name", "status", "topics", "timezone",
    "attributes", "consent_source", "consent_at", "consent_ip", "newsletters", "line", "wanted",
)  # fmt: skip
# status: the one a new person arrives in; wanted: the row's own status cell (NULL: blank).
# topics and newsletters are NULL for a blank cell; line is the row's line in the file

_TYPES = {
    "sqlite": dict.fromkeys(STAGE_COLUMNS, "TEXT") | {"line": "INTEGER"},
    "postgresql": dict.fromkeys(STAGE_COLUMNS, "text")
    | {"email_key": "varchar(320)", "topics": "json", "attributes": "json", "newsletters": "json"}
    | {"consent_at": "timestamptz", "line": "integer"},
}
# the stage read back, typed, for the few rows the writer needs whole (importrows.row_from_stage)
_STAGE = sa.table(
    "import_stage",
    sa.column("email_key", sa.String()),
    sa.column("email", sa.String()),
    sa.column("name", sa.Text()),
    sa.column("topics", sa.JSON()),
    sa.column("timezone", sa.String()),
    sa.column("wanted", sa.String()),
    sa.column("attributes", sa.JSON()),
    sa.column("consent_source", sa.Text()),
    sa.column("consent_at", UTCDateTime()),
    sa.column("consent_ip", sa.String()),
    sa.column("newsletters", sa.JSON()),
    sa.column("line", sa.Integer()),
)
_STAGE_VALUES = [column.label(f"st_{column.name}") for column in _STAGE.c]
_CREATE_STAGE = "CREATE TEMP TABLE IF NOT EXISTS import_stage ({}){}"
_HASHES = "CREATE TEMP TABLE IF NOT EXISTS import_hashes (email_key {t}, address_hash {t}){tail}"

_STAMPS = {
    SubscriberStatus.CONFIRMED: "confirmed_at",
    SubscriberStatus.UNSUBSCRIBED: "unsubscribed_at",
    SubscriberStatus.BOUNCED: "bounced_at",
    SubscriberStatus.COMPLAINED: "complained_at",
}
# a new person's row, from the staged values and the import's time ({now}); the
# stamp of the status they arrive in is that time too
_NEW = {
    "email": "email",
    "email_key": "email_key",
    "name": "name",
    "status": "status",
    "topics": "coalesce(topics, '[]')",
    "timezone": "timezone",
    "attributes": "attributes",
    "consent_source": "coalesce(consent_source, 'import')",
    "consent_at": "coalesce(consent_at, {now})",
    "consent_ip": "consent_ip",
    "created_at": "{now}",
    "updated_at": "{now}",
} | {
    stamp: f"CASE status WHEN '{status.value}' THEN {{now}} END"
    for status, stamp in _STAMPS.items()
}
# every name below comes from this module, none from input; the stage is in
# email_key order (see importrows), so the email index's pages are added to in turn
_INSERT = (  # noqa: S608
    "INSERT INTO subscribers ({}) SELECT {} FROM import_stage WHERE true "
    "ON CONFLICT (email_key) DO NOTHING"
).format(", ".join(_NEW), ", ".join(_NEW.values()))
_DETAIL = "CASE status {} END".format(
    " ".join(f"WHEN '{s.value}' THEN {{detail_{s.value}}}" for s in SubscriberStatus)
)
_EVENTS_COLUMNS = "INSERT INTO subscriber_events (subscriber_id, at, kind, detail) "
# PostgreSQL: one statement per chunk adds the people, their events and their
# newsletters. Every part reads the rows the insert returned, so nothing probes an
# index of subscribers or subscriptions row by row. A new person's subscriptions
# come from their staged row, found by a hash join of the two, when some row of
# the chunk names its newsletters; when none does (a file without that column),
# everyone added gets the default ones and the stage is not read again
_SUBSCRIBE_COLUMNS = (
    "INSERT INTO subscriptions (subscriber_id, newsletter_id, status, subscribed_at, source) "
)
_MERGE_PG = "".join(
    [
        "WITH added AS (",
        _INSERT,
        " RETURNING id, status, email_key), created AS (",
        _EVENTS_COLUMNS,
        "SELECT id, {now}, 'created', ",
        _DETAIL,
        " FROM added), joined AS (",
        _SUBSCRIBE_COLUMNS,
        "SELECT a.id, j.value, 'subscribed', {now}, 'import' FROM added a {newsletters_of}) ",
        "SELECT count(*) FROM added",
    ]
)
_NAMED_PG = (
    "JOIN import_stage st ON st.email_key = a.email_key "
    "CROSS JOIN LATERAL json_array_elements_text(coalesce(st.newsletters, {newsletters})) "
    "AS j(value)"
)
_DEFAULT_PG = "CROSS JOIN json_array_elements_text({newsletters}) AS j(value)"
# for that statement's transaction: the function scan's guess (100 newsletters a
# row) prices it high enough for JIT, whose compiling costs more than it saves
# here; and the planner, which has no statistics for the stage, would sort both
# sides of the join on email_key where hashing one of them costs a fraction
_MERGE_SETTINGS = (
    "SELECT set_config('jit', 'off', true), set_config('enable_mergejoin', 'off', true)"
)
# the rows this transaction inserted are the ones whose xmin is its own id
_NOT_ADDED_PG = sa.text("subscribers.xmin <> pg_current_xact_id()::xid")
# SQLite: BEGIN IMMEDIATE holds the write lock, and AUTOINCREMENT ids only grow,
# so the ids above the highest one held before the insert are exactly its rows
_EVENTS_SQLITE = "".join(
    [
        _EVENTS_COLUMNS,
        "SELECT id, {now}, 'created', ",
        _DETAIL,
        " FROM subscribers WHERE id > {before}",
    ]
)
_UNSTAGE_SQLITE = (
    "DELETE FROM import_stage WHERE email_key IN "
    "(SELECT email_key FROM subscribers WHERE id > {before})"
)
# the newsletters of the people just added (their ids, as for the events): from the
# stage's JSON lists when some row names them, else the default ones for everyone
_SUBSCRIBE_SQLITE = (
    _SUBSCRIBE_COLUMNS + "SELECT s.id, j.value, 'subscribed', {now}, 'import' "
    "FROM import_stage st JOIN subscribers s ON s.email_key = st.email_key, "
    "json_each(coalesce(st.newsletters, {newsletters})) j WHERE s.id > {before}"
)
_SUBSCRIBE_DEFAULT_SQLITE = (
    _SUBSCRIBE_COLUMNS + "SELECT s.id, j.value, 'subscribed', {now}, 'import' "
    "FROM subscribers s, json_each({newsletters}) j WHERE s.id > {before}"
)
_SUPPRESSED = (
    "SELECT st.email_key FROM import_stage st "
    "JOIN suppressions sp ON sp.address_hash = st.address_hash "
    "UNION SELECT h.email_key FROM import_hashes h "
    "JOIN suppressions sp ON sp.address_hash = h.address_hash"
)


def copy_text(rows: Iterable[tuple[Any, ...]]) -> str:
    """Rows as the CSV text ``COPY ... (FORMAT csv)`` reads: None is an unquoted empty field.

    Staged values are never empty strings (a blank cell is None), so no field
    that should be ``''`` is read back as NULL.
    """
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


class Encoder:
    """Values as the database driver wants them, made by the real column types.

    For PostgreSQL with psycopg the staged values become ``COPY`` text, so JSON
    values are JSON text (what psycopg's own JSON dumper would send).
    """

    def __init__(self, dialect: sa.Dialect, now: datetime) -> None:
        self.copies = dialect.name == "postgresql" and dialect.driver == "psycopg"
        self._json = (
            json.dumps if self.copies else self._processor(subscribers.c.topics.type, dialect)
        )
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


# SQLite settings for the import's own connection, and what they are put back to:
# a page cache that holds more of the indexes a chunk touches (2 MB by default,
# which a large list's indexes soon outgrow), a checkpoint every 40,000 pages (160 MB
# of WAL, some ten chunks) instead of every 1,000: a chunk of 20,000 people writes
# thousands of pages, and an index page changed by many chunks is copied into the
# database once per checkpoint (about a tenth less time at a million rows), and
# temporary tables in memory (the stage holds one chunk)
_SQLITE_TUNING = (("cache_size", -65536), ("wal_autocheckpoint", 40000), ("temp_store", 2))


@contextlib.contextmanager
def session(conn: Connection) -> Iterator[None]:
    """One import's use of a connection; afterwards nothing of it is left on the connection.

    SQLite: a larger page cache, fewer checkpoints and temporary tables in memory
    for the import, then the settings it had (outside any transaction, since
    ``temp_store`` cannot change inside one), after a ``PASSIVE`` checkpoint so
    that the next writer does not pay for the import's pages. On both stores the
    staging tables are dropped at the end, so a pooled connection keeps none.
    """
    sqlite = conn.dialect.name == "sqlite"
    driver = conn.connection.driver_connection
    assert driver is not None
    before = []
    if sqlite:
        for name, value in _SQLITE_TUNING:
            before.append((name, int(driver.execute(f"PRAGMA {name}").fetchone()[0])))
            driver.execute(f"PRAGMA {name} = {int(value)}")

    def leave() -> None:
        if conn.in_transaction():  # a failure left one open: it goes before the tables do
            conn.rollback()
        with conn.begin():
            conn.exec_driver_sql("DROP TABLE IF EXISTS import_stage")
            conn.exec_driver_sql("DROP TABLE IF EXISTS import_hashes")
        if sqlite:
            driver.execute("PRAGMA wal_checkpoint(PASSIVE)")
            for name, value in before:
                driver.execute(f"PRAGMA {name} = {value}")

    try:
        yield
    except BaseException:
        # the import's own error is the one to report (the database may have gone away)
        with contextlib.suppress(sa.exc.SQLAlchemyError, sqlite3.Error):
            leave()
        raise
    leave()


class Stage:
    """The staging tables of one connection, and the set-based statements over them."""

    def __init__(
        self, conn: Connection, encoder: Encoder, newsletters: frozenset[str] = frozenset()
    ) -> None:
        """``newsletters``: what a new person whose newsletters cell is blank is subscribed to."""
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"
        self._copy = self._postgres and conn.dialect.driver == "psycopg"
        self._encoder = encoder
        self._left: int | None = None  # staged rows the merge did not add; None before it
        self._params: dict[str, Any] = {
            "now": encoder.now,
            "newsletters": encoder.topics(newsletters),  # a sorted JSON list
        } | {
            f"detail_{s.value}": encoder.detail({"status": s.value, "source": "import"})
            for s in SubscriberStatus
        }

    def _sql(self, template: str, **extra: str) -> str:
        """The driver's own named placeholders in place of ``{name}``."""
        if self._postgres:
            marks = {name: f"%({name})s" for name in self._params}
            marks |= {n: f"CAST({marks[n]} AS json)" for n in marks if n != "now"}
        else:
            marks = {name: f":{name}" for name in self._params}
        return template.format(**marks, **extra)

    def create(self) -> None:
        """Create the staging tables, unless this connection has them (once per import)."""
        types = _TYPES["postgresql" if self._postgres else "sqlite"]
        tail = " ON COMMIT DELETE ROWS" if self._postgres else ""
        columns = ", ".join(f"{name} {types[name]}" for name in STAGE_COLUMNS)
        self._conn.exec_driver_sql(_CREATE_STAGE.format(columns, tail))
        self._conn.exec_driver_sql(_HASHES.format(t=types["email_key"], tail=tail))
        if not self._postgres:  # PostgreSQL empties them at every commit and rollback
            self.clear()

    def clear(self) -> None:
        """Empty the staging tables (PostgreSQL also empties them at each commit)."""
        self._conn.exec_driver_sql("DELETE FROM import_stage")
        self._conn.exec_driver_sql("DELETE FROM import_hashes")

    def finish(self) -> None:
        """Leave no personal data staged: emptied now on SQLite, at the commit on PostgreSQL."""
        if not self._postgres:
            self.clear()

    def load(
        self, rows: Sequence[tuple[Any, ...]] | str, hashes: Sequence[tuple[str, str]]
    ) -> None:
        """Stage ``rows`` (values in :data:`STAGE_COLUMNS` order) and retired-key ``hashes``.

        With an encoder that :attr:`~Encoder.copies`, ``rows`` may instead be
        their :func:`copy_text`, made ahead.
        """
        self._write("import_stage", STAGE_COLUMNS, rows)
        if hashes:
            self._write("import_hashes", ("email_key", "address_hash"), hashes)

    def _write(
        self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]] | str
    ) -> None:
        names = ", ".join(columns)
        if self._copy:
            # COPY is PostgreSQL's bulk path: one stream instead of a statement per row
            driver = self._conn.connection.driver_connection
            assert driver is not None
            statement = f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv)"
            with driver.cursor() as cursor, cursor.copy(statement) as copy:
                copy.write(rows if isinstance(rows, str) else copy_text(rows))
            return
        assert not isinstance(rows, str), "COPY text needs PostgreSQL with psycopg"
        if self._postgres:
            marks = ", ".join(["%s"] * len(columns))
            statement = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 (no input)
            self._conn.exec_driver_sql(statement, list(rows))
            return
        # SQLite: many rows per statement. The driver lets go of the GIL for each
        # statement it runs; a statement per row would wait for the reading thread
        # to hand the GIL back once per row, and so for the whole next chunk's parsing
        driver = self._conn.connection.driver_connection
        assert driver is not None
        limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per = max(1, min(limit // len(columns), 2000))
        one = "(" + ", ".join(["?"] * len(columns)) + ")"
        for start in range(0, len(rows), per):
            part = rows[start : start + per]
            values = ", ".join([one] * len(part))  # the same text for every full batch: cached
            statement = f"INSERT INTO {table} ({names}) VALUES {values}"  # noqa: S608 (no input)
            driver.execute(statement, tuple(itertools.chain.from_iterable(part)))

    def suppressed(self) -> set[str]:
        """The staged keys whose hash, under any accepted key, is on the suppression list."""
        return {row[0] for row in self._conn.exec_driver_sql(_SUPPRESSED)}

    def drop(self, keys: Iterable[str]) -> None:
        """Unstage these keys (people the import must not add), in one statement.

        The stage has no index: a statement per key would read the whole stage once per key.
        """
        if self._postgres:
            statement = "DELETE FROM import_stage WHERE email_key = ANY(%s)"
            self._conn.exec_driver_sql(statement, (list(keys),))
        else:
            listed = "(SELECT value FROM json_each(?))"
            statement = f"DELETE FROM import_stage WHERE email_key IN {listed}"  # noqa: S608
            self._conn.exec_driver_sql(statement, (json.dumps(list(keys)),))

    def merge(self, staged: int, named: bool = True) -> int:
        """Add every staged person not yet held, with a ``created`` event and their
        newsletters' subscriptions each; return how many.

        ``staged`` is how many rows the stage holds; ``named`` says whether any
        of them names its newsletters (if not, all get the default ones). On
        PostgreSQL this is one statement, whatever the chunk's size; :meth:`held`
        then leaves out the people it added (on SQLite they leave the stage).
        """
        if self._postgres:
            self._conn.exec_driver_sql(_MERGE_SETTINGS)
            merge = _MERGE_PG.replace("{newsletters_of}", _NAMED_PG if named else _DEFAULT_PG)
            merged = self._conn.exec_driver_sql(self._sql(merge), self._params)
            added = int(merged.scalar_one())
        else:
            before = self._conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM subscribers")
            after = str(int(before.scalar() or 0))
            self._conn.exec_driver_sql(self._sql(_INSERT), self._params)
            events = self._sql(_EVENTS_SQLITE, before=after)
            added = int(self._conn.exec_driver_sql(events, self._params).rowcount)
            if added:
                subscribe = _SUBSCRIBE_SQLITE if named else _SUBSCRIBE_DEFAULT_SQLITE
                self._conn.exec_driver_sql(self._sql(subscribe, before=after), self._params)
            if 0 < added < staged:
                self._conn.exec_driver_sql(_UNSTAGE_SQLITE.format(before=after))
        self._left = staged - added
        return added

    def keys(self) -> list[str]:
        """Every staged key."""
        return [row[0] for row in self._conn.exec_driver_sql("SELECT email_key FROM import_stage")]

    def values(self, keys: Collection[str]) -> list[Any]:
        """The typed staged values (``st_`` + column) of these keys (in batches: SQLite
        caps a statement's values, and a chunk may name more)."""
        wanted = _STAGE.c.email_key.in_(sa.bindparam("keys", expanding=True))
        query = sa.select(*_STAGE_VALUES).where(wanted)
        return [row._mapping for row in rows_in_batches(self._conn, query, "keys", keys)]

    def held(self) -> list[Any]:
        """The staged people already held, in one statement: each one's full, typed row
        (locked on PostgreSQL) with its typed staged values (``st_`` + column)."""
        if self._left == 0:  # the merge added everyone staged
            return []
        joined = subscribers.join(_STAGE, _STAGE.c.email_key == subscribers.c.email_key)
        query = sa.select(subscribers, *_STAGE_VALUES).select_from(joined)
        if self._postgres:
            # the people this transaction added are still staged: left out here
            query = query.where(_NOT_ADDED_PG).with_for_update(of=subscribers)
        with self._index_probes():
            return [row._mapping for row in self._conn.execute(query)]

    @contextlib.contextmanager
    def _index_probes(self) -> Iterator[None]:
        """PostgreSQL joins the stage by probing the unique index, row by row.

        Left to itself, the planner (which has no statistics for the stage)
        may hash the whole ``subscribers`` table for each chunk, and a large
        import would slow down as the list grows. SQLite needs no telling.
        """
        if not self._postgres:
            yield
            return
        self._conn.exec_driver_sql("SET LOCAL enable_hashjoin = off")
        self._conn.exec_driver_sql("SET LOCAL enable_mergejoin = off")
        try:
            yield
        finally:
            self._conn.exec_driver_sql("SET LOCAL enable_hashjoin = on")
            self._conn.exec_driver_sql("SET LOCAL enable_mergejoin = on")
