"""The scheduler: what runs, what is built, what is recorded, takeovers and stops.

These tests use an in-memory sender (like anymail's test backend) to pin the
scheduler's own decisions; tests/scheduling/test_processes.py runs real
scheduler processes against the real delivery engine and an aiosmtpd server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.engine import Engine

from newsletter.content.editions import build_edition, get_edition
from newsletter.core.config import Settings
from newsletter.core.errors import SendPausedError, SMTPUnavailableError
from newsletter.core.schema import schedules
from newsletter.delivery.engine import SendReport
from newsletter.scheduling.claims import (
    RunOutcome,
    RunRecord,
    list_runs,
)
from newsletter.scheduling.scheduler import (
    RunResult,
    Scheduler,
    SendResult,
    describe_result,
    result_of,
)
from newsletter.scheduling.store import (
    BuildOptions,
    ScheduleStatus,
    get_schedule,
    set_schedule_status,
)
from newsletter.scheduling.timing import Timing
from tests.support.scheduling import (
    CREATED,
    FIRST,
    SECOND,
    Clock,
    MemorySender,
    article,
    memory_scheduler,
    new_schedule,
)


def only_run(db: Engine, schedule_id: int) -> RunRecord:
    """The schedule's one recorded run (the unpacking fails if there are none or several)."""
    with db.connect() as conn:
        [run] = list_runs(conn, schedule_id)
    return run


async def stopped_mid_send(
    settings: Settings, db: Engine, clock: Clock
) -> tuple[MemorySender, RunResult]:
    """A pass stopped while its sender is mid-send: that sender and the pass's one result."""
    sender = MemorySender()
    sender.wait_for_stop = True
    stop = asyncio.Event()
    task = asyncio.create_task(memory_scheduler(settings, db, clock, sender).run_once(stop))
    await sender.started.wait()
    stop.set()
    [result] = await task
    return sender, result


async def test_builds_from_new_articles_and_sends_at_0700_local(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(
        article("old", "2026-03-26T09:00Z"),
        article("a", "2026-03-27T20:00Z"),
        article("b", "2026-03-28T06:30Z", section="Crime"),
    )
    clock, sender = Clock(FIRST - timedelta(seconds=1)), MemorySender()
    scheduler = memory_scheduler(settings, db, clock, sender)
    schedule_id = new_schedule(db)
    assert await scheduler.run_once() == []
    assert scheduler.next_occurrence() == FIRST
    clock.now = FIRST + timedelta(seconds=30)
    [result] = await scheduler.run_once()
    assert result.outcome == "sent"
    assert result.reason == "3 sent"
    assert sender.sent == [result.edition_id]
    with db.connect() as conn:
        edition = get_edition(conn, sender.sent[0])
        [run] = list_runs(conn, schedule_id)
    # the first run takes --since (24h) back from the occurrence
    assert sorted(a.id for a in edition.articles()) == ["a", "b"]
    assert run.outcome is RunOutcome.SENT
    assert run.edition_id == edition.id
    assert run.articles_until == clock.now
    assert describe_result(result, "Europe/London").startswith(
        f"schedule {schedule_id} 2026-03-28 07:00 GMT: sent {edition.id}"
    )
    # nothing more is due until the next morning, which is 07:00 BST
    assert await scheduler.run_once() == []
    assert scheduler.next_occurrence() == SECOND


async def test_next_run_takes_articles_since_the_previous_send(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    clock, sender = Clock(FIRST), MemorySender()
    scheduler = memory_scheduler(settings, db, clock, sender)
    schedule_id = new_schedule(db)
    await scheduler.run_once()
    store(article("late", "2026-03-28T07:10Z"), article("c", "2026-03-29T05:00Z"))
    clock.now = SECOND + timedelta(minutes=1)
    [result] = await scheduler.run_once()
    assert result.outcome == "sent"
    with db.connect() as conn:
        edition = get_edition(conn, sender.sent[1])
        runs = list_runs(conn, schedule_id)
    assert sorted(a.id for a in edition.articles()) == ["c", "late"]
    assert [r.occurrence_at for r in runs] == [SECOND, FIRST]


async def test_nothing_new_is_skipped_with_the_reason(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("crime", "2026-03-28T06:00Z", section="Crime"))
    clock, sender = Clock(FIRST), MemorySender()
    schedule_id = new_schedule(db, build=BuildOptions(topics=["politics"]))
    [result] = await memory_scheduler(settings, db, clock, sender).run_once()
    assert result.outcome == "skipped"
    assert result.reason is not None
    assert result.reason.startswith("nothing new: no articles published since 2026-03-27 07:00 GMT")
    assert "politics" in result.reason
    assert sender.sent == []
    run = only_run(db, schedule_id)
    assert (run.outcome, run.reason) == (RunOutcome.SKIPPED, result.reason)


async def test_topic_filter_applies(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(
        article("crime", "2026-03-28T06:00Z", section="Crime"),
        article("vote", "2026-03-28T06:10Z", section="Politics"),
    )
    clock, sender = Clock(FIRST), MemorySender()
    new_schedule(db, build=BuildOptions(topics=["crime"], title="Crime desk"))
    [result] = await memory_scheduler(settings, db, clock, sender).run_once()
    with db.connect() as conn:
        edition = get_edition(conn, result.edition_id or "")
    assert [a.id for a in edition.articles()] == ["crime"]
    assert edition.title == "Crime desk"


async def test_fixed_edition_is_sent_as_is(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-27T10:00Z"))
    with db.begin() as conn:
        fixed = build_edition(conn, now=CREATED, site_name="News").id
    once = Timing(kind="once", tz="Asia/Kolkata", run_at=FIRST)
    schedule_id = new_schedule(db, once, edition_id=fixed)
    clock, sender = Clock(FIRST + timedelta(minutes=5)), MemorySender()
    [result] = await memory_scheduler(settings, db, clock, sender).run_once()
    assert (result.outcome, result.edition_id) == ("sent", fixed)
    assert sender.sent == [fixed]
    with db.connect() as conn:
        assert get_schedule(conn, schedule_id).status is ScheduleStatus.DONE


async def test_missing_fixed_edition_fails_with_why(settings: Settings, db: Engine) -> None:
    # the library refuses to schedule an unknown edition, so plant the row as if
    # its edition had gone away after it was scheduled
    with db.begin() as conn:
        schedule_id = conn.execute(
            schedules.insert().values(
                kind="once",
                run_at=FIRST,
                timezone="Europe/London",
                edition_id="no-such-edition",
                build={},
                status="active",
                created_at=CREATED,
                updated_at=CREATED,
            )
        ).inserted_primary_key
        assert schedule_id is not None
    [result] = await memory_scheduler(settings, db, Clock(FIRST), MemorySender()).run_once()
    assert result.outcome == "failed"
    assert result.reason is not None
    assert "no-such-edition" in result.reason
    with db.connect() as conn:
        assert list_runs(conn, int(schedule_id[0]))[0].outcome is RunOutcome.FAILED


async def test_a_failed_send_is_recorded(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    sender = MemorySender()
    sender.result = SendResult(RunOutcome.FAILED, "paused: 50 failures in a row")
    new_schedule(db)
    [result] = await memory_scheduler(settings, db, Clock(FIRST), sender).run_once()
    assert (result.outcome, result.reason) == ("failed", "paused: 50 failures in a row")


async def test_relay_down_defers_and_a_later_pass_sends_the_same_edition(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    schedule_id = new_schedule(db)
    clock = Clock(FIRST)

    class DownThenUp(MemorySender):
        async def __call__(self, edition_id: str, stop: asyncio.Event) -> SendResult:
            if not self.sent:
                self.sent.append(edition_id)
                raise SMTPUnavailableError("cannot reach the relay 127.0.0.1:1")
            return await super().__call__(edition_id, stop)

    sender = DownThenUp()
    scheduler = memory_scheduler(settings, db, clock, sender)
    [deferred] = await scheduler.run_once()
    assert deferred.outcome == "deferred"
    assert deferred.reason == "cannot reach the relay 127.0.0.1:1; will retry"
    run = only_run(db, schedule_id)
    assert (run.outcome, run.reason) == (RunOutcome.RUNNING, deferred.reason)
    clock.now = FIRST + timedelta(minutes=1)
    [sent] = await scheduler.run_once()
    assert sent.outcome == "sent"
    assert sender.sent[0] == sender.sent[1] == sent.edition_id


async def test_a_send_that_paused_itself_fails(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    new_schedule(db)

    class Pausing(MemorySender):
        async def __call__(self, edition_id: str, stop: asyncio.Event) -> SendResult:
            raise SendPausedError(f"edition {edition_id} paused: 50 failures in a row")

    [result] = await memory_scheduler(settings, db, Clock(FIRST), Pausing()).run_once()
    assert result.outcome == "failed"
    assert result.reason is not None
    assert "paused: 50 failures in a row" in result.reason


async def test_downtime_past_the_limit_skips_and_records(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    schedule_id = new_schedule(db)
    sender = MemorySender()
    teatime = FIRST + timedelta(hours=9)
    [result] = await memory_scheduler(settings, db, Clock(teatime), sender).run_once()
    assert result.outcome == "skipped"
    assert result.reason == "missed: 9h00m late (limit 2h00m)"
    assert sender.sent == []
    run = only_run(db, schedule_id)
    assert run.reason == result.reason


async def test_paused_schedules_do_not_run(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    schedule_id = new_schedule(db)
    with db.begin() as conn:
        set_schedule_status(conn, schedule_id, "pause", CREATED)
    assert await memory_scheduler(settings, db, Clock(FIRST), MemorySender()).run_once() == []


async def test_stop_mid_send_then_another_scheduler_resumes_the_same_edition(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    schedule_id = new_schedule(db)
    clock = Clock(FIRST)
    first_sender, interrupted = await stopped_mid_send(settings, db, clock)
    assert interrupted.outcome == "interrupted"
    run = only_run(db, schedule_id)
    assert run.outcome is RunOutcome.RUNNING  # not finished: resumable
    second_sender = MemorySender()
    clock.now = FIRST + timedelta(minutes=1)
    [resumed] = await memory_scheduler(settings, db, clock, second_sender, worker="w:2").run_once()
    assert resumed.outcome == "sent"
    # the same edition, not a second one: the delivery engine resumes it
    assert second_sender.sent == first_sender.sent
    run = only_run(db, schedule_id)
    assert (run.outcome, run.claimed_by) == (RunOutcome.SENT, "w:2")


async def test_a_scheduler_whose_lease_lapsed_gives_the_run_up(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    schedule_id = new_schedule(db)
    slow_sender = MemorySender()
    slow_sender.wait_for_stop = True
    stalled = Scheduler(
        settings,
        db,
        send=slow_sender,
        clock=Clock(FIRST),
        worker="stalled:1",
        lease=timedelta(seconds=0.2),
        is_gone=lambda _: False,
    )
    task = asyncio.create_task(stalled.run_once())
    await slow_sender.started.wait()
    # a minute later by its clock, another scheduler finds the lease lapsed and takes over
    rescuer_sender = MemorySender()
    rescuer = memory_scheduler(
        settings, db, Clock(FIRST + timedelta(minutes=1)), rescuer_sender, "r:2"
    )
    [rescued] = await rescuer.run_once()
    assert rescued.outcome == "sent"
    assert rescuer_sender.sent == slow_sender.sent  # the same edition, resumed
    [given_up] = await asyncio.wait_for(task, timeout=30)
    assert given_up.outcome == "interrupted"
    assert given_up.reason == "taken over by another scheduler (this one's lease lapsed)"
    run = only_run(db, schedule_id)
    assert (run.outcome, run.claimed_by) == (RunOutcome.SENT, "r:2")


async def test_a_stale_takeover_is_not_sent_at_teatime(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    schedule_id = new_schedule(db)
    clock = Clock(FIRST)
    first_sender, _ = await stopped_mid_send(settings, db, clock)
    clock.now = FIRST + timedelta(hours=8)
    second_sender = MemorySender()
    [result] = await memory_scheduler(settings, db, clock, second_sender, worker="w:2").run_once()
    assert second_sender.sent == []
    assert result.outcome == "failed"
    assert result.reason is not None
    assert f"newsletter send {first_sender.sent[0]}" in result.reason
    with db.connect() as conn:
        assert list_runs(conn, schedule_id)[0].outcome is RunOutcome.FAILED


async def test_run_forever_stops_when_asked(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    new_schedule(db)
    stop = asyncio.Event()
    seen: list[RunResult] = []

    def on_result(result: RunResult) -> None:
        seen.append(result)
        stop.set()

    scheduler = memory_scheduler(settings, db, Clock(FIRST), MemorySender())
    await asyncio.wait_for(scheduler.run_forever(stop, on_result=on_result), timeout=30)
    assert [r.outcome for r in seen] == ["sent"]


async def test_a_database_error_fails_one_pass_not_the_loop(settings: Settings, db: Engine) -> None:
    new_schedule(db)
    with db.begin() as conn:
        conn.exec_driver_sql("DROP TABLE schedule_runs")  # every pass now fails in the database
    stop = asyncio.Event()
    errors: list[str] = []

    def on_error(line: str) -> None:
        errors.append(line)
        if len(errors) == 2:
            stop.set()

    scheduler = memory_scheduler(settings, db, Clock(FIRST), MemorySender())
    await asyncio.wait_for(
        scheduler.run_forever(stop, poll=timedelta(seconds=0.01), on_error=on_error), timeout=30
    )
    assert errors == ["database error (no such table: schedule_runs); retrying in 0.01s"] * 2


def test_result_of_reads_the_delivery_report() -> None:
    sent = result_of(SendReport("e", sent=3, failed=1))
    assert (sent.outcome, sent.interrupted) == (RunOutcome.SENT, False)
    assert sent.reason is not None
    assert sent.reason.startswith("sent 3, deferred 0, failed 1")
    stopped = result_of(SendReport("e", sent=1, stopped=True, remaining=2))
    assert (stopped.outcome, stopped.interrupted) == (RunOutcome.RUNNING, True)
    left = result_of(SendReport("e", sent=1, remaining=2))
    assert left.outcome is RunOutcome.FAILED
    assert left.reason is not None
    assert left.reason.endswith("2 still to send")
