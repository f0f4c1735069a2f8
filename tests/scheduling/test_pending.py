"""Which subject-line tests a scheduler pass finishes: due ones, on editions no other live
worker holds (a real SQLite file, real leases, a real send to aiosmtpd to start the test)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from newsletter.core.config import Settings
from newsletter.core.schema import deliveries, editions
from newsletter.delivery.engine import SendOptions, send_edition
from newsletter.delivery.lease import take_lease
from newsletter.delivery.subjects import SubjectTestSpec
from newsletter.scheduling.claims import RunOutcome
from newsletter.scheduling.pending import due_tests, finish_subject_tests, next_decision
from newsletter.scheduling.results import RunResult, SendResult
from tests.plugins.smtp import SMTPServer
from tests.support.scheduling import MemorySender, memory_scheduler
from tests.support.sendkit import populate, with_smtp

START = datetime(2026, 3, 28, 12, tzinfo=UTC)
DUE = START + timedelta(hours=1)


class Recorder:
    """A sender that only records which editions it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def __call__(self, edition_id: str, stop: asyncio.Event) -> SendResult:
        self.sent.append(edition_id)
        return SendResult(RunOutcome.SENT, "recorded")


async def _started(settings: Settings, db: Engine, smtp_server: SMTPServer) -> str:
    edition_id = populate(db, settings, 20)
    spec = SubjectTestSpec.parse("Subject B", "20%", "1h")
    options = SendOptions(subject_test=spec, clock=lambda: START)
    await send_edition(with_smtp(settings, smtp_server.url), db, edition_id, options=options)
    return edition_id


async def test_a_due_test_is_finished_unless_a_live_worker_holds_its_rows(
    settings: Settings, db: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = await _started(settings, db, smtp_server)
    with db.connect() as conn:
        assert due_tests(conn, DUE - timedelta(seconds=1)) == []
        [due] = due_tests(conn, DUE)
    assert (due.edition_id, due.decide_at) == (edition_id, DUE)

    lease = take_lease(db)  # a live `send` holding some of the edition's rows
    with db.begin() as conn:
        conn.execute(
            deliveries.update()
            .where(deliveries.c.status == "deferred")
            .values(claimed_by=lease.worker)
        )
    sender = Recorder()
    assert await finish_subject_tests(settings, db, lambda: DUE, asyncio.Event(), send=sender) == []
    assert sender.sent == []

    lease.close()  # that worker is gone: its rows are free again
    [result] = await finish_subject_tests(settings, db, lambda: DUE, asyncio.Event(), send=sender)
    assert sender.sent == [edition_id]
    assert (result.schedule_id, result.outcome, result.edition_id) == (None, "sent", edition_id)


async def test_a_paused_edition_waits_for_a_person(
    settings: Settings, db: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = await _started(settings, db, smtp_server)
    with db.begin() as conn:
        conn.execute(editions.update().where(editions.c.id == edition_id).values(status="paused"))
    with db.connect() as conn:
        assert due_tests(conn, DUE + timedelta(days=1)) == []
    sender = Recorder()
    late = DUE + timedelta(days=1)
    assert (
        await finish_subject_tests(settings, db, lambda: late, asyncio.Event(), send=sender) == []
    )
    assert sender.sent == []
    with db.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one()
    assert count == 20


async def test_a_running_scheduler_wakes_for_a_decision_before_its_next_poll(
    settings: Settings, db: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = await _started(settings, db, smtp_server)
    with db.connect() as conn:
        assert next_decision(conn, START) == DUE
        assert next_decision(conn, DUE) is None  # due now: due_tests has it, not ahead
    # the scheduler's clock reaches the decision 1.5 s after it starts; it polls every minute
    offset = DUE - timedelta(seconds=1.5) - datetime.now(UTC)
    scheduler = memory_scheduler(
        with_smtp(settings, smtp_server.url), db, lambda: datetime.now(UTC) + offset, MemorySender()
    )
    finished: list[str] = []
    done, stop = asyncio.Event(), asyncio.Event()

    def on_result(result: RunResult) -> None:
        finished.append(f"{result.edition_id} {result.outcome}")
        done.set()

    running = asyncio.create_task(
        scheduler.run_forever(stop, poll=timedelta(minutes=1), on_result=on_result)
    )
    try:
        await asyncio.wait_for(done.wait(), timeout=15)  # not the minute's poll
    finally:
        stop.set()
        await running
    assert finished == [f"{edition_id} sent"]
