"""The outbox state machine and the worker leases, on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from newsletter.delivery import outbox, recovery
from newsletter.delivery.lease import FileLease, PostgresLease, take_lease
from newsletter.delivery.outbox import Mark, NewDelivery
from newsletter.delivery.outcomes import DeliveryStatus as S
from subscribers import store

SECRET = b"outbox-test-secret"
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
ED = "2026-11-26-daily"


def readers(engine: Engine, n: int) -> list[int]:
    with engine.begin() as conn:
        return [
            store.add(conn, f"r{i}@example.org", secret=SECRET, confirmed=True, now=NOW).id
            for i in range(n)
        ]


def enqueue(engine: Engine, ids: list[int]) -> int:
    with engine.begin() as conn:
        return outbox.enqueue(
            conn, ED, (NewDelivery(i, f"sub{i}@example.org", None, "all") for i in ids), NOW
        )


def counts(engine: Engine) -> dict[S, int]:
    with engine.begin() as conn:
        return {k: v for k, v in outbox.counts(conn, ED).items() if v}


def claim(engine: Engine, worker: str, limit: int, now: datetime = NOW) -> list[outbox.Claimed]:
    with engine.begin() as conn:
        return outbox.claim(conn, ED, worker, limit, now)


def test_enqueue_is_idempotent_and_streams(engine: Engine) -> None:
    ids = readers(engine, 7)
    assert enqueue(engine, ids[:5]) == 5
    assert enqueue(engine, ids) == 2  # a resumed send adds only the newcomers
    assert counts(engine) == {S.QUEUED: 7}


def test_claims_are_disjoint_reservations(engine: Engine) -> None:
    enqueue(engine, readers(engine, 10))
    a = claim(engine, "worker-a", 4)
    b = claim(engine, "worker-b", 100)
    assert len(a) == 4
    assert len(b) == 6
    assert not {r.subscriber_id for r in a} & {r.subscriber_id for r in b}
    assert claim(engine, "worker-c", 10) == []
    # A reservation is not a state change: nothing is `sending` yet.
    assert counts(engine) == {S.QUEUED: 10}


def test_a_claim_carries_the_first_name_attribute(engine: Engine) -> None:
    with engine.begin() as conn:
        ids = [
            store.add(
                conn, f"f{i}@example.org", secret=SECRET, confirmed=True, now=NOW, attributes=a
            ).id
            for i, a in enumerate(({"first_name": "Zoë"}, {"city": "Leeds"}, None))
        ]
    enqueue(engine, ids)
    found = {r.subscriber_id: r.first_name for r in claim(engine, "w", 10)}
    assert found == {ids[0]: "Zoë", ids[1]: None, ids[2]: None}


def test_only_reserved_confirmed_rows_become_sending(engine: Engine) -> None:
    ids = readers(engine, 3)
    enqueue(engine, ids)
    rows = claim(engine, "w", 3)
    with engine.begin() as conn:
        store.unsubscribe(conn, ids[1], now=NOW)
    with engine.begin() as conn:
        moved = outbox.mark_sending(
            conn, ED, "w", [(r.subscriber_id, f"<m{r.subscriber_id}@x>") for r in rows], NOW
        )
        other = outbox.mark_sending(conn, ED, "intruder", [(ids[0], "<x@x>")], NOW)
    assert moved == {ids[0], ids[2]}
    assert other == set()
    assert counts(engine) == {S.SENDING: 2, S.FAILED: 1}
    with engine.begin() as conn:
        last = outbox.status(conn, ED).last_errors
    assert [(e.email, e.error) for e in last] == [
        (f"sub{ids[1]}@example.org", "no longer subscribed")
    ]


def test_results_and_deferred_rows_come_back_when_due(engine: Engine) -> None:
    ids = readers(engine, 4)
    enqueue(engine, ids)
    rows = claim(engine, "w", 4)
    later = NOW + timedelta(minutes=5)
    with engine.begin() as conn:
        outbox.mark_sending(conn, ED, "w", [(r.subscriber_id, "<m@x>") for r in rows], NOW)
        outbox.record(
            conn,
            ED,
            [
                Mark(ids[0], S.SENT, 250),
                Mark(ids[1], S.DEFERRED, 450, "rcpt: busy", later),
                Mark(ids[2], S.FAILED, 550, "rcpt: no such user"),
                Mark(ids[3], S.UNKNOWN, None, "lost after the message was sent"),
            ],
            NOW,
        )
    assert counts(engine) == {S.SENT: 1, S.DEFERRED: 1, S.FAILED: 1, S.UNKNOWN: 1}
    assert claim(engine, "w2", 10) == []  # not due yet; sent/failed/unknown never again
    with engine.begin() as conn:
        assert outbox.next_retry_at(conn, ED) == later
    [again] = claim(engine, "w2", 10, now=later)
    assert again.subscriber_id == ids[1]
    assert again.attempts == 1
    assert again.message_id == "<m@x>"


def test_recovery_settles_dead_workers_and_spares_live_ones(engine: Engine) -> None:
    ids = readers(engine, 6)
    enqueue(engine, ids)
    dead = claim(engine, "dead", 3)
    live = claim(engine, "live", 3)
    with engine.begin() as conn:
        outbox.mark_sending(conn, ED, "dead", [(dead[0].subscriber_id, "<a@x>")], NOW)
        outbox.mark_sending(conn, ED, "live", [(live[0].subscriber_id, "<b@x>")], NOW)
        found = recovery.recover(conn, ED, me="me", is_alive=lambda w: w == "live", now=NOW)
    assert (found.unknown, found.released) == (1, 2)
    assert counts(engine) == {S.UNKNOWN: 1, S.SENDING: 1, S.QUEUED: 4}
    # The dead worker's two untouched rows are free again; the live worker's are not.
    assert {r.subscriber_id for r in claim(engine, "me", 10)} == {r.subscriber_id for r in dead[1:]}
    with engine.begin() as conn:
        assert recovery.requeue_unknown(conn, ED, NOW) == 1
    assert counts(engine)[S.QUEUED] == 5


def test_release_and_drop_unsubscribed(engine: Engine) -> None:
    ids = readers(engine, 4)
    enqueue(engine, ids)
    claim(engine, "w", 4)
    with engine.begin() as conn:
        assert outbox.release(conn, ED, "w") == 4
        store.unsubscribe(conn, ids[3], now=NOW)
        assert recovery.drop_unsubscribed(conn, ED, NOW) == 1
    assert len(claim(engine, "other", 10)) == 3
    assert counts(engine) == {S.QUEUED: 3, S.FAILED: 1}


def test_status_reports_counts_rate_and_last_errors(engine: Engine) -> None:
    ids = readers(engine, 5)
    enqueue(engine, ids)
    rows = claim(engine, "w", 5)
    with engine.begin() as conn:
        outbox.mark_sending(conn, ED, "w", [(r.subscriber_id, "<m@x>") for r in rows], NOW)
        outbox.record(conn, ED, [Mark(ids[0], S.SENT, 250)], NOW)
        outbox.record(conn, ED, [Mark(ids[1], S.SENT, 250)], NOW + timedelta(seconds=2))
        outbox.record(
            conn, ED, [Mark(ids[2], S.FAILED, 550, "rcpt: gone")], NOW + timedelta(seconds=3)
        )
        outbox.record(
            conn, ED, [Mark(ids[3], S.FAILED, 554, "data: spam")], NOW + timedelta(seconds=4)
        )
        report = outbox.status(conn, ED)
    assert report.total == 5
    assert report.counts[S.SENT] == 2
    assert report.open == 1
    assert report.rate == pytest.approx(0.5)
    assert [e.error for e in report.last_errors] == ["data: spam", "rcpt: gone"]
    assert report.model_dump(mode="json")["counts"]["sent"] == 2


def test_file_lease_is_held_until_closed(tmp_path: Path) -> None:
    first = FileLease(tmp_path, "host:1:aaaa")
    second = FileLease(tmp_path, "host:2:bbbb")
    assert second.is_alive("host:1:aaaa")
    assert first.is_alive(first.worker)
    assert not second.is_alive("host:3:never")
    first.close()
    assert not second.is_alive("host:1:aaaa")
    second.close()


def test_file_lease_dies_with_a_killed_process(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path;"
        "from newsletter.delivery.lease import FileLease;"
        f"FileLease(Path({str(tmp_path)!r}), 'host:9:cccc');"
        "print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        watcher = FileLease(tmp_path, "host:1:watch")
        assert watcher.is_alive("host:9:cccc")
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert not watcher.is_alive("host:9:cccc")
    watcher.close()


def test_take_lease_fits_the_database(engine: Engine) -> None:
    lease = take_lease(engine)
    try:
        if engine.dialect.name == "postgresql":
            assert isinstance(lease, PostgresLease)
            other = take_lease(engine)
            assert other.is_alive(lease.worker)
            lease.close()
            assert not other.is_alive(lease.worker)
            other.close()
        else:
            assert isinstance(lease, FileLease)
            result: list[bool] = []
            thread = threading.Thread(
                target=lambda: result.append(take_lease(engine).is_alive(lease.worker))
            )
            thread.start()
            thread.join()
            assert result == [True]
    finally:
        lease.close()
