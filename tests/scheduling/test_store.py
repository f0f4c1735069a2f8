"""The schedule store: schedules, their status changes, and the claim on occurrences.

Runs on SQLite and, when a server can be started, on PostgreSQL (the ``engine``
fixture); the racing test uses several threads with their own engines on one
SQLite file.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from newsletter.content.models import EditionKind
from newsletter.core.errors import NotFoundError, StateError
from newsletter.database import open_database
from newsletter.scheduling.claims import (
    Claim,
    RunOutcome,
    finish_run,
    list_runs,
    previous_sent_run,
    record_plan,
    release_run,
    renew_lease,
    set_run_edition,
    take_over_runs,
)
from newsletter.scheduling.store import (
    BuildOptions,
    ScheduleStatus,
    add_schedule,
    get_schedule,
    list_schedules,
    set_schedule_status,
)
from newsletter.scheduling.timing import DuePlan, Skip, Timing

NOW = datetime.fromisoformat("2026-03-28T12:00Z")
DAILY = Timing(kind="cron", tz="Europe/London", cron="0 7 * * *")
LEASE = timedelta(minutes=2)
OCCURRENCE = datetime.fromisoformat("2026-03-29T06:00Z")


def _add(engine: Engine, timing: Timing = DAILY, **kwargs: object) -> int:
    with engine.begin() as conn:
        return add_schedule(conn, timing=timing, now=NOW, **kwargs).id  # type: ignore[arg-type]


def _claim(engine: Engine, schedule_id: int, worker: str = "host:1") -> int:
    plan = DuePlan(run=OCCURRENCE, handled_until=OCCURRENCE)
    run = record_plan(engine, schedule_id, plan, worker=worker, now=OCCURRENCE, lease=LEASE).run
    assert run is not None
    return run.id


def test_add_get_list_round_trip(engine: Engine) -> None:
    build = BuildOptions(
        since=timedelta(hours=12), topics=["uk", "crime"], kind=EditionKind.BREAKING, title="Hi"
    )
    first = _add(engine, build=build)
    once = Timing(
        kind="once", tz="Asia/Kolkata", run_at=datetime.fromisoformat("2026-04-01T03:30Z")
    )
    second = _add(engine, once, edition_id=None)
    with engine.connect() as conn:
        stored = get_schedule(conn, first)
        assert stored.build == build
        assert stored.timing == DAILY
        assert stored.status is ScheduleStatus.ACTIVE
        assert stored.handled_until is None
        assert stored.created_at == NOW
        assert get_schedule(conn, second).timing == once
        assert [s.id for s in list_schedules(conn)] == [first, second]
        with pytest.raises(NotFoundError, match="no schedule 99"):
            get_schedule(conn, 99)
    assert get_schedule.__doc__


def test_pause_resume_cancel(engine: Engine) -> None:
    schedule_id = _add(engine)
    later = NOW + timedelta(days=3)
    with engine.begin() as conn:
        assert set_schedule_status(conn, schedule_id, "pause", NOW).status is ScheduleStatus.PAUSED
        with pytest.raises(StateError, match="is paused; cannot pause"):
            set_schedule_status(conn, schedule_id, "pause", NOW)
        assert list_schedules(conn, (ScheduleStatus.ACTIVE,)) == []
        resumed = set_schedule_status(conn, schedule_id, "resume", later)
        # occurrences that fell while paused are not run afterwards
        assert resumed.handled_until == later
        assert resumed.status is ScheduleStatus.ACTIVE
        cancelled = set_schedule_status(conn, schedule_id, "cancel", later)
        assert cancelled.status is ScheduleStatus.CANCELLED
        with pytest.raises(StateError, match="is cancelled; cannot resume"):
            set_schedule_status(conn, schedule_id, "resume", later)


def test_record_plan_claims_once_and_moves_the_watermark(engine: Engine) -> None:
    schedule_id = _add(engine)
    missed = OCCURRENCE - timedelta(days=1)
    plan = DuePlan(run=OCCURRENCE, skipped=[Skip(missed, "missed: late")], handled_until=OCCURRENCE)
    claim = record_plan(engine, schedule_id, plan, worker="a:1", now=OCCURRENCE, lease=LEASE)
    run = claim.run
    assert run is not None
    assert claim.skipped == plan.skipped
    assert run.outcome is RunOutcome.RUNNING
    assert run.occurrence_at == OCCURRENCE
    assert run.lease_until == OCCURRENCE + LEASE
    # the same plan again, from another scheduler: nothing to claim
    again = record_plan(engine, schedule_id, plan, worker="b:2", now=OCCURRENCE, lease=LEASE)
    assert again == Claim()  # neither the run nor the skip: both are a:1's
    with engine.connect() as conn:
        runs = list_runs(conn, schedule_id)
        assert [(r.occurrence_at, r.outcome, r.claimed_by) for r in runs] == [
            (OCCURRENCE, RunOutcome.RUNNING, "a:1"),
            (missed, RunOutcome.SKIPPED, "a:1"),
        ]
        assert runs[1].reason == "missed: late"
        assert get_schedule(conn, schedule_id).handled_until == OCCURRENCE


def test_watermark_never_moves_back(engine: Engine) -> None:
    schedule_id = _add(engine)
    _claim(engine, schedule_id)
    older = DuePlan(skipped=[Skip(NOW, "x")], handled_until=NOW)
    record_plan(engine, schedule_id, older, worker="b:2", now=NOW, lease=LEASE)
    with engine.connect() as conn:
        assert get_schedule(conn, schedule_id).handled_until == OCCURRENCE


def test_one_off_is_done_once_handled(engine: Engine) -> None:
    once = Timing(kind="once", tz="Europe/London", run_at=OCCURRENCE)
    schedule_id = _add(engine, once)
    _claim(engine, schedule_id)
    with engine.connect() as conn:
        assert get_schedule(conn, schedule_id).status is ScheduleStatus.DONE


def test_paused_schedule_claims_nothing(engine: Engine) -> None:
    schedule_id = _add(engine)
    with engine.begin() as conn:
        set_schedule_status(conn, schedule_id, "pause", NOW)
    plan = DuePlan(run=OCCURRENCE, handled_until=OCCURRENCE)
    assert record_plan(engine, schedule_id, plan, worker="a:1", now=NOW, lease=LEASE) == Claim()
    with engine.connect() as conn:
        assert list_runs(conn, schedule_id) == []


def test_racing_claims_on_one_sqlite_file_have_one_winner(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    schedule_id = _add(open_database(url))
    engines = [open_database(url) for _ in range(8)]
    barrier = threading.Barrier(len(engines))
    winners: list[str] = []

    def contend(engine: Engine, worker: str) -> None:
        barrier.wait()
        plan = DuePlan(run=OCCURRENCE, handled_until=OCCURRENCE)
        if record_plan(engine, schedule_id, plan, worker=worker, now=NOW, lease=LEASE).run:
            winners.append(worker)

    threads = [threading.Thread(target=contend, args=(e, f"w:{i}")) for i, e in enumerate(engines)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    with engines[0].connect() as conn:
        [run] = list_runs(conn, schedule_id)
    assert run.claimed_by == winners[0]


def test_racing_claims_have_one_winner_on_each_backend(engine: Engine) -> None:
    schedule_id = _add(engine)
    barrier = threading.Barrier(6)
    winners: list[str] = []

    def contend(worker: str) -> None:
        barrier.wait()
        plan = DuePlan(run=OCCURRENCE, skipped=[Skip(NOW, "missed")], handled_until=OCCURRENCE)
        claim = record_plan(engine, schedule_id, plan, worker=worker, now=NOW, lease=LEASE)
        if claim.run:
            winners.append(worker)
        if claim.skipped:
            winners.append(f"skip by {worker}")

    threads = [threading.Thread(target=contend, args=(f"w:{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = [w for w in winners if not w.startswith("skip")]
    skips = [w for w in winners if w.startswith("skip")]
    assert len(runs) == 1
    assert len(skips) == 1
    with engine.connect() as conn:
        assert len(list_runs(conn, schedule_id)) == 2


def test_take_over_a_dead_owners_run(engine: Engine) -> None:
    schedule_id = _add(engine)
    run_id = _claim(engine, schedule_id, worker="here:111")
    soon = OCCURRENCE + timedelta(seconds=10)

    def nobody_gone(_: str) -> bool:
        return False

    # lease still valid and owner alive: left alone
    assert (
        take_over_runs(engine, worker="here:222", now=soon, lease=LEASE, owner_is_gone=nobody_gone)
        == []
    )
    # owner gone: taken at once, lease renewed for the new owner
    [taken] = take_over_runs(
        engine, worker="here:222", now=soon, lease=LEASE, owner_is_gone=lambda w: w == "here:111"
    )
    assert taken.id == run_id
    assert taken.claimed_by == "here:222"
    assert taken.lease_until == soon + LEASE
    # a third scheduler sees a live owner with a fresh lease
    assert (
        take_over_runs(engine, worker="here:333", now=soon, lease=LEASE, owner_is_gone=nobody_gone)
        == []
    )
    # once that lease lapses, anyone may take it
    lapsed = soon + LEASE
    [again] = take_over_runs(
        engine, worker="there:9", now=lapsed, lease=LEASE, owner_is_gone=nobody_gone
    )
    assert again.claimed_by == "there:9"
    # the old owner can no longer touch it
    assert not renew_lease(engine, run_id, worker="here:222", now=lapsed, lease=LEASE)
    assert not finish_run(
        engine, run_id, worker="here:222", outcome=RunOutcome.SENT, reason=None, now=lapsed
    )


def test_finished_runs_are_never_taken_over(engine: Engine) -> None:
    schedule_id = _add(engine)
    run_id = _claim(engine, schedule_id, worker="a:1")
    assert finish_run(
        engine, run_id, worker="a:1", outcome=RunOutcome.SENT, reason="done", now=OCCURRENCE
    )
    later = OCCURRENCE + timedelta(days=1)
    assert (
        take_over_runs(engine, worker="b:2", now=later, lease=LEASE, owner_is_gone=lambda _: True)
        == []
    )


def test_release_lets_the_next_scheduler_resume_at_once(engine: Engine) -> None:
    schedule_id = _add(engine)
    run_id = _claim(engine, schedule_id, worker="a:1")
    assert release_run(engine, run_id, worker="a:1", now=OCCURRENCE)
    [taken] = take_over_runs(
        engine, worker="b:2", now=OCCURRENCE, lease=LEASE, owner_is_gone=lambda _: False
    )
    assert taken.id == run_id


def test_run_edition_and_previous_sent_run(engine: Engine) -> None:
    schedule_id = _add(engine)
    run_id = _claim(engine, schedule_id, worker="a:1")
    with engine.begin() as conn:
        assert not set_run_edition(
            conn, run_id, worker="someone-else", edition_id="x", articles_until=OCCURRENCE
        )
        assert set_run_edition(
            conn, run_id, worker="a:1", edition_id="2026-03-29-daily", articles_until=OCCURRENCE
        )
    assert finish_run(
        engine, run_id, worker="a:1", outcome=RunOutcome.SENT, reason=None, now=OCCURRENCE
    )
    with engine.connect() as conn:
        previous = previous_sent_run(conn, schedule_id, OCCURRENCE + timedelta(days=1))
        assert previous is not None
        assert previous.edition_id == "2026-03-29-daily"
        assert previous.articles_until == OCCURRENCE
        assert previous.finished_at == OCCURRENCE
        assert previous_sent_run(conn, schedule_id, OCCURRENCE) is None
