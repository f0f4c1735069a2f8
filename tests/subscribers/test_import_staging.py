"""The import's staging: values reach the right people whatever the order and the batch sizes,
erased people never reach the list, and the connection is left as it was found."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from subscribers import store, suppressions
from subscribers.importer import ImportReport, import_csv
from subscribers.schema import subscriber_events, subscribers, subscriptions

# every test here runs with rows parsed in a thread and in a child process
pytestmark = pytest.mark.usefixtures("import_parser")

SECRET = b"test-secret-key-of-a-usual-length-0123456789"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ZONES = ["Europe/London", "Europe/Dublin", "America/New_York", "Asia/Kolkata", ""]


def _import(engine: Engine, data: bytes, **options: object) -> ImportReport:
    options.setdefault("now", T0)
    options.setdefault("secret", SECRET)
    return import_csv(engine, io.BytesIO(data), source="list.csv", **options)  # type: ignore[arg-type]


def _person(i: int) -> tuple[str, str, str, str, str]:
    """One person's cells (email, name, topics, zone, plan), each unlike the next person's."""
    topics = ";".join(["uk", "world", "sport", "science"][: i % 4])
    return f"reader{i:05d}@example.com", f"Reader {i}", topics, ZONES[i % 5], f"plan-{i % 7}"


def _csv(numbers: list[int]) -> bytes:
    lines = ["email,name,topics,timezone,plan"] + [",".join(_person(i)) for i in numbers]
    return ("\n".join(lines) + "\n").encode()


def _held(conn: Connection) -> dict[str, tuple[object, ...]]:
    return {
        s.email: (s.name, sorted(s.topics), s.timezone or "", s.attributes.get("plan"))
        for s in store.list_subscribers(conn)
    }


def test_every_value_reaches_its_own_person_across_batches_and_out_of_order(
    engine: Engine,
) -> None:
    # one chunk of 4,501 addresses in descending order: staged sorted by key, in
    # several statements of at most 2,000 rows on SQLite and one COPY on PostgreSQL
    numbers = list(range(4500, -1, -1))
    report = _import(engine, _csv(numbers), batch_size=10_000)
    assert (report.imported, report.rejected) == (4501, 0)
    with engine.connect() as conn:
        held = _held(conn)
        created = conn.execute(
            sa.select(sa.func.count())
            .select_from(subscriber_events)
            .where(subscriber_events.c.kind == "created")
        ).scalar_one()
    assert created == 4501
    expected = {}
    for i in numbers:
        email, name, topics, zone, plan = _person(i)
        expected[email] = (name, sorted(filter(None, topics.split(";"))), zone, plan)
    assert held == expected


def test_many_erased_people_in_one_chunk_are_all_skipped(engine: Engine) -> None:
    erased = [i for i in range(0, 600, 3)]  # 200 of the chunk's 600 addresses
    with engine.begin() as conn:
        for i in erased:  # what an erasure keeps: the keyed hash of the address
            suppressions.suppress(conn, SECRET, _person(i)[0], "erased", T0)
        # one of them is held again, waiting for a web confirmation: still suppressed
        store.add(conn, _person(3)[0], secret=SECRET, keep_suppression=True, now=T0)
    report = _import(engine, _csv(list(range(600))), batch_size=1000, confirmed=True)
    assert (report.imported, report.skipped) == (400, 200)
    assert sorted(p.line - 2 for p in report.problems) == erased
    with engine.connect() as conn:
        emails = set(conn.execute(sa.select(subscribers.c.email)).scalars())
        assert emails == {_person(i)[0] for i in range(600) if i % 3} | {_person(3)[0]}
        waiting = store.get_by_email(conn, _person(3)[0])
    assert (waiting.status.value, waiting.name) == ("pending", None)


def _connections(engine: Engine) -> Iterator[Connection]:
    """Every connection the pool holds, checked out at once."""
    with ExitStack() as stack:
        yield from [stack.enter_context(engine.connect()) for _ in range(engine.pool.checkedin())]  # type: ignore[attr-defined]


def _leftovers(conn: Connection) -> list[str]:
    if conn.dialect.name == "postgresql":
        query = (
            "SELECT relname FROM pg_class WHERE relpersistence = 't' "
            "AND relname IN ('import_stage', 'import_hashes') AND pg_table_is_visible(oid)"
        )
    else:
        query = "SELECT name FROM sqlite_temp_master WHERE name LIKE 'import%'"
    found = [str(name) for name in conn.exec_driver_sql(query).scalars()]
    conn.rollback()
    return found


def _settings(conn: Connection) -> list[int]:
    driver = conn.connection.driver_connection
    assert driver is not None
    names = ("cache_size", "wal_autocheckpoint", "temp_store")
    return [int(driver.execute(f"PRAGMA {name}").fetchone()[0]) for name in names]


def test_no_staging_table_is_left_on_any_connection(engine: Engine) -> None:
    with engine.connect() as conn:
        before = _settings(conn) if engine.dialect.name == "sqlite" else []
        conn.rollback()
    _import(engine, _csv(list(range(300))), batch_size=100)

    def stop_after_a_chunk(report: ImportReport) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a failed import leaves none either
        _import(engine, _csv(list(range(300, 600))), batch_size=100, on_commit=stop_after_a_chunk)
    checked = 0
    for conn in _connections(engine):
        assert _leftovers(conn) == []
        if engine.dialect.name == "sqlite":  # the import's cache and checkpoint sizes are gone
            assert _settings(conn) == before
        checked += 1
    assert checked >= 1


def test_a_chunk_of_new_and_held_people_counts_and_records_each_once(engine: Engine) -> None:
    # one chunk: 3 people held (one gets a new name), 3 new; the people the merge adds
    # must not come back as held ones (counted again, or given an event to no purpose)
    _import(engine, _csv([0, 1, 2]))
    renamed = _csv([0]).replace(b"Reader 0", b"Reader Zero").splitlines()[1]
    data = b"\n".join([*_csv([1, 2, 3, 4, 5]).splitlines(), renamed]) + b"\n"
    report = _import(engine, data, batch_size=100)
    assert (report.imported, report.updated, report.unchanged) == (3, 1, 2)
    with engine.connect() as conn:
        kinds = conn.execute(
            sa.select(subscribers.c.email, subscriber_events.c.kind)
            .join(subscribers, subscribers.c.id == subscriber_events.c.subscriber_id)
            .order_by(subscribers.c.email, subscriber_events.c.id)
        ).all()
        chosen = conn.execute(
            sa.select(subscribers.c.email, subscriptions.c.newsletter_id)
            .join(subscribers, subscribers.c.id == subscriptions.c.subscriber_id)
            .order_by(subscribers.c.email)
        ).all()
    emails = [_person(i)[0] for i in range(6)]
    assert [tuple(row) for row in kinds] == [
        (emails[0], "created"),
        (emails[0], "updated"),
        *((email, "created") for email in emails[1:]),
    ]
    assert [tuple(row) for row in chosen] == [(email, "daily") for email in emails]
