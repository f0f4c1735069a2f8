"""A large import commits in chunks: others write in between, erased people stay out, re-runs
change nothing."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from newsletter import privacy
from newsletter.core.errors import SubscriberInputError
from newsletter.core.keys import SigningSecret
from subscribers import store, suppressions
from subscribers.importer import ImportReport, import_csv
from subscribers.model import SubscriberStatus
from subscribers.schema import subscriber_events, subscribers
from subscribers.schema import suppressions as suppression_list
from tests.support.db import cap_statement_values

# every test here runs with rows parsed in a thread and in a child process
pytestmark = pytest.mark.usefixtures("import_parser")

SECRET = b"test-secret-key-of-a-usual-length-0123456789"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WAIT = 60  # seconds: only reached when something is broken, never a measure of speed


def _csv(count: int, *, extra: tuple[str, ...] = ()) -> bytes:
    lines = ["email,name,topics,plan"]
    lines += [
        f"person{i}@example.com,Person {i},uk;world,{'premium' if i % 3 else ''}"
        for i in range(count)
    ]
    lines += list(extra)
    return ("\n".join(lines) + "\n").encode()


def _import(engine: Engine, data: bytes, **options: object) -> ImportReport:
    options.setdefault("now", T0)
    options.setdefault("secret", SECRET)
    return import_csv(engine, io.BytesIO(data), source="big.csv", **options)  # type: ignore[arg-type]


def _count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _write_while_paused(engine: Engine) -> tuple[int, int]:
    """What another writer sees and does while the import waits between two chunks."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # a row lock still held by the import would fail this, not hang the test
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{WAIT}s'")
        visible = int(
            conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar_one()
        )
        # a person of the committed chunk leaves, and a web signup arrives
        person = store.get_by_email(conn, "person3@example.com")
        store.unsubscribe(conn, person.id, now=T0)
        added = store.add(conn, "signup@example.com", secret=SECRET, now=T0)
    return visible, added.id


def test_another_writer_gets_in_between_chunks(engine: Engine) -> None:
    committed, written = threading.Event(), threading.Event()
    seen: list[int] = []

    def pause_after_the_first_chunk(report: ImportReport) -> None:
        seen.append(report.imported)
        if len(seen) == 1:
            committed.set()
            assert written.wait(WAIT), "the other writer never finished"

    result: list[ImportReport] = []
    worker = threading.Thread(
        target=lambda: result.append(
            _import(engine, _csv(1000), batch_size=100, on_commit=pause_after_the_first_chunk)
        )
    )
    worker.start()
    try:
        assert committed.wait(WAIT), "the first chunk was never committed"
        visible, signup_id = _write_while_paused(engine)
        assert worker.is_alive()  # the import is not over: nine chunks to go
    finally:
        written.set()
        worker.join(WAIT)
    assert visible == 100  # the first chunk, committed, and nothing of the rest
    assert seen == [100 * n for n in range(1, 11)]
    (report,) = result
    assert (report.imported, report.updated, report.rejected) == (1000, 0, 0)
    with engine.connect() as conn:
        assert (
            store.get_by_email(conn, "person3@example.com").status is SubscriberStatus.UNSUBSCRIBED
        )
        assert store.get_by_email(conn, "signup@example.com").id == signup_id
        assert store.get_by_email(conn, "person999@example.com").topics == {"uk", "world"}
    assert _count(engine, subscribers) == 1001


def test_erased_addresses_are_skipped_in_every_chunk(engine: Engine) -> None:
    erased = ["person5@example.com", "person250@example.com", "Person777@EXAMPLE.com"]
    with engine.begin() as conn:
        for email in erased:
            store.add(conn, email, secret=SECRET, confirmed=True, now=T0)
            privacy.erase(conn, email, secret=SECRET, now=T0)
        # an erased person who signed up again on the web stays suppressed until confirmed
        store.add(conn, "person250@example.com", secret=SECRET, keep_suppression=True, now=T0)
        # erased before ever being held: "forget me and never add me"
        privacy.erase(conn, "person900@example.com", secret=SECRET, now=T0)
    data = _csv(1000, extra=("PERSON5@example.com,Again,,",))
    report = _import(engine, data, batch_size=100, confirmed=True)
    assert report.skipped == 5
    assert [p.line for p in report.problems] == [7, 252, 779, 902, 1002]
    assert all("erased at their request" in p.reason for p in report.problems)
    assert (report.imported, report.duplicates) == (996, 0)
    with engine.connect() as conn:
        for email in ("person5@example.com", "person777@example.com", "person900@example.com"):
            assert store.find_by_email(conn, email) is None
        waiting = store.get_by_email(conn, "person250@example.com")
        assert waiting.status is SubscriberStatus.PENDING
        assert waiting.name is None  # the file's row did not touch them
        assert suppressions.is_suppressed(conn, SECRET, "person250@example.com")


def test_a_chunk_of_mostly_erased_addresses_skips_each_with_its_line(engine: Engine) -> None:
    # more erased people in one chunk than one statement may name (on an SQLite built
    # with the old default of 999 values): read back in parts
    cap_statement_values(engine, 999)
    with engine.begin() as conn:
        for i in range(0, 2600):
            suppressions.suppress(conn, SECRET, f"person{i}@example.com", "erased", T0)
    report = _import(engine, _csv(3000), batch_size=5000)
    assert report.skipped == 2600
    assert [p.line for p in report.problems[:3]] == [2, 3, 4]
    assert report.problems[999].line == 1001  # the first thousand shown, in line order
    assert report.imported == 400
    with engine.connect() as conn:
        assert store.find_by_email(conn, "person2599@example.com") is None
        assert store.find_by_email(conn, "person2600@example.com") is not None


def test_an_address_erased_under_a_retired_key_is_skipped_and_rehashed(engine: Engine) -> None:
    old, new = SECRET, b"the-next-secret-key-of-a-usual-length-0123"
    with engine.begin() as conn:
        privacy.erase(conn, "person42@example.com", secret=old, now=T0)
    rotated = SigningSecret(new, [old])
    report = _import(engine, _csv(300), batch_size=50, secret=rotated)
    assert (report.skipped, report.imported) == (1, 299)
    assert report.problems[0].line == 44
    with engine.connect() as conn:
        assert store.find_by_email(conn, "person42@example.com") is None
        hashes = set(conn.execute(sa.select(suppression_list.c.address_hash)).scalars())
    assert hashes == {suppressions.address_hash(new, "person42@example.com")}


def test_with_resubscribe_an_erased_address_is_added_and_its_suppression_lifted(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        privacy.erase(conn, "person8@example.com", secret=SECRET, now=T0)
    report = _import(engine, _csv(50), batch_size=20, resubscribe=True)
    assert (report.skipped, report.imported) == (0, 50)
    with engine.connect() as conn:
        assert not suppressions.is_suppressed(conn, SECRET, "person8@example.com")
        assert store.get_by_email(conn, "person8@example.com").name == "Person 8"


def test_running_a_chunked_import_again_changes_nothing(engine: Engine) -> None:
    # the same person again in a later chunk, spelt differently, adding a plan
    data = _csv(500, extra=("PERSON6@example.com,,uk|world,premium",))
    first = _import(engine, data, batch_size=60)
    with engine.connect() as conn:
        before = sorted(
            (s.email, s.name, s.status.value, sorted(s.topics), s.attributes, s.updated_at)
            for s in store.list_subscribers(conn)
        )
    events = _count(engine, subscriber_events)
    second = _import(engine, data, batch_size=60, now=T1)
    assert (first.imported, first.updated) == (500, 1)  # the duplicate gave person6 a plan
    assert (second.imported, second.updated, second.unchanged) == (0, 0, 501)
    with engine.connect() as conn:
        after = sorted(
            (s.email, s.name, s.status.value, sorted(s.topics), s.attributes, s.updated_at)
            for s in store.list_subscribers(conn)
        )
    assert after == before
    assert _count(engine, subscriber_events) == events == 501  # 500 created, 1 updated


def test_an_interrupted_import_is_finished_by_running_it_again(engine: Engine) -> None:
    data = _csv(400)

    def stop_after_two_chunks(report: ImportReport) -> None:
        if report.imported >= 200:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _import(engine, data, batch_size=100, on_commit=stop_after_two_chunks)
    assert _count(engine, subscribers) == 200  # the committed chunks stay
    again = _import(engine, data, batch_size=100, now=T1)
    assert (again.imported, again.unchanged) == (200, 200)
    with engine.connect() as conn:
        kinds = conn.execute(
            sa.select(subscriber_events.c.kind, sa.func.count()).group_by(subscriber_events.c.kind)
        ).all()
    assert dict(kinds) == {"created": 400}  # one event per person, never two


def test_a_bad_byte_late_in_a_big_file_imports_nothing(sqlite_engine: Engine) -> None:
    data = _csv(900) + "late@example.com,Zoë,,\n".encode("latin-1")
    with pytest.raises(SubscriberInputError, match=r"^big\.csv:902: is not UTF-8"):
        _import(sqlite_engine, data, batch_size=100)
    assert _count(sqlite_engine, subscribers) == 0
