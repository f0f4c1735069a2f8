"""One run of a real send: claim, personalise, deliver, record, and stop or pause.

See :mod:`newsletter.delivery.engine` for the steps; this is the machinery behind them
(the database work before and after is :mod:`newsletter.delivery.runsetup`'s). One
claimer feeds K workers, one connection each; the :class:`~newsletter.delivery.pacing.Pacer`
sets how fast and over how many of them. Over PIPELINING with no rate limit, a worker
takes its next row early so that its envelope rides behind the current payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from newsletter.content.editions import set_status
from newsletter.content.message import new_message_id
from newsletter.content.models import EditionStatus
from newsletter.core.config import Settings
from newsletter.core.db import utcnow
from newsletter.core.errors import DeliveryError, InputError, SendPausedError, StateError
from newsletter.delivery import outbox, subjects
from newsletter.delivery.compose import MessageBuilder
from newsletter.delivery.journal import DatabaseRunner, Journal, Result
from newsletter.delivery.lease import take_lease
from newsletter.delivery.outcomes import DeliveryStatus
from newsletter.delivery.pacing import Pacer, backoff_delay
from newsletter.delivery.report import SendOptions, SendProgress, SendReport
from newsletter.delivery.runsetup import open_variants, prepare, settle
from newsletter.delivery.smtp import Attempt, SMTPConnection, SMTPPool, smtp_pool
from subscribers.bounces import return_paths

__all__ = ["SendRun"]


class SendRun:
    """One run of a real send; see the module docstring for the steps."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        edition_id: str,
        options: SendOptions,
        progress: SendProgress | None,
        stop: asyncio.Event | None,
        pool: SMTPPool | None,
    ) -> None:
        self.settings = settings
        # Settings parses the From address on every access: once is enough.
        # VERP: each message's MAIL FROM is its recipient's signed return path
        self.return_path = return_paths(settings)
        self.domain = settings.sender_domain
        self.engine = engine
        self.edition_id = edition_id
        self.options = options
        self.progress = progress
        self.stop = stop or asyncio.Event()
        self.concurrency = options.concurrency or settings.send_concurrency
        self.max_attempts = options.max_attempts or settings.send_max_attempts
        self.threshold = options.failure_threshold or settings.send_failure_threshold
        self.pool = pool or smtp_pool(settings, self.concurrency)
        self.pacer = Pacer(
            options.rate or settings.send_rate, self.concurrency, policy=options.pacing
        )
        # Set (and replaced) whenever the pacer lets more connections open.
        self.widened = asyncio.Event()
        self.report = SendReport(edition_id)
        self.queue: asyncio.Queue[outbox.Claimed | None] = asyncio.Queue()
        self.outstanding = 0  # claimed rows not yet finished by a worker
        # Woken by workers only when the claimer has something to do: the queue
        # ran low, or everything claimed is finished (never once per message).
        self.low_water = 0
        self.need_more = asyncio.Event()
        self.idle = asyncio.Event()
        self.failures_in_a_row = 0
        self.halt = False  # no new rows: stop requested, or paused
        self.draining = False  # the claimer is done: every worker must see its end
        self.senders: dict[int, str] = {}  # return paths of rows whose envelope went ahead

    # -- the run ------------------------------------------------------------------

    async def execute(self) -> SendReport:
        """Run the send to its end (or a stop, or a pause) and return its report."""
        started = time.perf_counter()
        db = DatabaseRunner(self.engine)
        lease = await db.run(take_lease, self.engine)
        try:
            edition = await db.transaction(
                prepare, self.settings, self.edition_id, self.options, self.report,
                lease.worker, lease.is_alive,
            )  # fmt: skip
            test = await db.transaction(subjects.get, self.edition_id)
            builder = MessageBuilder(self.settings, edition, test.subject_b if test else None)
            for key in await db.transaction(open_variants, self.edition_id):
                builder.template(key)  # render every variant before the first message
            self.builder = builder
            # rows waiting for a subject-line test's decision are not this run's
            total = await db.transaction(
                lambda conn: (
                    sum(
                        n
                        for s, n in outbox.counts(conn, self.edition_id).items()
                        if s in (outbox.DeliveryStatus.QUEUED, outbox.DeliveryStatus.DEFERRED)
                    )
                    - subjects.waiting(conn, self.edition_id)
                )
            )
            if total:
                await self._send(db, lease.worker, total)
            self.report.stopped = self.stop.is_set() and not self.report.paused_reason
            await db.transaction(settle, self.edition_id, self.report)
        finally:
            self.report.elapsed = time.perf_counter() - started
            self.report.pace = list(self.pacer.changes)
            await db.run(lease.close)
            db.close()
        if self.report.paused_reason:
            raise SendPausedError(
                f"edition {self.edition_id} paused: {self.report.paused_reason}; "
                f"fix the cause and resume with: newsletter send {self.edition_id}",
                self.report,
            )
        return self.report

    async def _send(self, db: DatabaseRunner, worker: str, total: int) -> None:
        await self.pool.open()  # a relay that is down fails here, rows still queued
        await db.transaction(
            lambda conn: set_status(conn, self.edition_id, EditionStatus.SENDING, now=utcnow())
        )
        if self.progress is not None:
            self.progress.start(total)
        journal = Journal(
            db,
            self.edition_id,
            worker,
            flush_interval=self.options.flush_interval,
            group=max(1, self.concurrency // 2),
        )
        journal.start()
        try:
            await self._drain(db, journal, worker)
        finally:
            try:
                await journal.close()  # the results of every message that went out
            finally:
                await self.pool.close()
                await db.transaction(lambda conn: outbox.release(conn, self.edition_id, worker))

    async def _drain(self, db: DatabaseRunner, journal: Journal, worker: str) -> None:
        workers = [
            asyncio.create_task(self._worker(journal, n), name=f"smtp-worker-{n}")
            for n in range(self.concurrency)
        ]
        claimer = asyncio.create_task(self._claimer(db, journal, worker), name="outbox-claimer")
        tasks = {claimer, *workers}
        try:
            # The claimer ends when nothing is left; any task that fails (a
            # database error, a bug) ends the whole run at once.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            self.draining = True
            self.widened.set()
            for _ in workers:
                self.queue.put_nowait(None)
            await asyncio.gather(*workers)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _claimer(self, db: DatabaseRunner, journal: Journal, worker: str) -> None:
        batch = max(self.options.claim_batch, 2 * self.concurrency)
        self.low_water = batch // 2
        synced = False
        while not self._halted():
            if self.outstanding > self.low_water:
                self.need_more.clear()
                await _wait(self.need_more, 0.2)
                continue
            rows = await db.transaction(outbox.claim, self.edition_id, worker, batch, utcnow())
            if rows:
                self.outstanding += len(rows)
                for row in rows:
                    self.queue.put_nowait(row)
                synced = False
                continue
            if self.outstanding:
                # The tail: wait for the last rows (a deferral may come back).
                self.idle.clear()
                await _wait(self.idle, 0.5)
                continue
            if not synced:
                # Results may still be on their way to the database: a deferral
                # written late would otherwise look like "nothing left to do".
                await journal.sync()
                synced = True
                continue
            due = await db.transaction(outbox.next_retry_at, self.edition_id)
            if due is None:
                return  # nothing left that this worker could send
            if self._defer(due):
                return
            wait = max(0.0, (due - utcnow()).total_seconds())
            await _wait(self.stop, min(wait, 1.0) + 0.01)

    def _defer(self, due: datetime) -> bool:
        """Only deferred rows are left: give up waiting if the first is due too far ahead."""
        if (due - utcnow()).total_seconds() <= self.options.linger:
            return False
        self.report.deferred_until = due  # the next send (or the scheduler) takes them
        return True

    def _halted(self) -> bool:
        return self.halt or self.stop.is_set()

    async def _worker(self, journal: Journal, number: int) -> None:
        connection: SMTPConnection | None = None
        ahead: outbox.Claimed | None = None  # the next row, its envelope sent ahead
        try:
            while True:
                if number >= self.pacer.concurrency and not (self._halted() or self.draining):
                    # Beyond the current number of connections: hand this one back
                    # and wait until the pacer lets more open.
                    if ahead is not None:
                        self.queue.put_nowait(ahead)
                        ahead = None
                    if connection is not None:
                        await self.pool.release(connection, reusable=False)
                        connection = None
                    self.widened.clear()
                    await _wait(self.widened, 0.5)
                    continue
                row, ahead = (ahead, None) if ahead is not None else (await self.queue.get(), None)
                if row is None:
                    return
                if self._halted():
                    self._done(row)  # left reserved: released at the end, still queued
                    continue
                await self.pacer.acquire()
                if connection is not None and not connection.is_connected:
                    # The relay closed an idle session: not a fault, just reconnect.
                    await self.pool.release(connection, reusable=False)
                    connection = None
                ahead = self._next_ahead(connection)
                connection = await self._send_one(journal, row, connection, ahead)
        finally:
            if connection is not None:
                await self.pool.release(connection, reusable=False)

    def _next_ahead(self, connection: SMTPConnection | None) -> outbox.Claimed | None:
        """The row to send next on ``connection``, taken now so that its envelope can
        ride behind this payload: only over PIPELINING and with no rate limit."""
        if connection is None or not connection.pipelining or self.pacer.rate is not None:
            return None
        if self.queue.empty():
            return None
        ahead = self.queue.get_nowait()
        if ahead is None:
            self.queue.put_nowait(None)  # the end: leave it for the loop to find
        return ahead

    def _sender(self, row: outbox.Claimed) -> str:
        """The row's MAIL FROM (its VERP return path), the same string for its envelope
        sent ahead and its message."""
        found = self.senders.pop(row.subscriber_id, None)
        return found or self.return_path(row.subscriber_id, row.email)

    async def _send_one(
        self,
        journal: Journal,
        row: outbox.Claimed,
        connection: SMTPConnection | None,
        ahead: outbox.Claimed | None = None,
    ) -> SMTPConnection | None:
        message_id = row.message_id or new_message_id(self.domain)
        try:
            data = self.builder.build(
                row.variant, row.subscriber_id, row.email, row.name, message_id, row.first_name
            )
        except (InputError, StateError) as exc:
            # This recipient's message cannot be built (a bad address, a header
            # with a line break): fail the row, never the whole send.
            self._result(journal, row, Attempt(DeliveryStatus.FAILED, None, str(exc)))
            return connection
        if connection is None:
            try:
                connection = await self.pool.acquire()
            except DeliveryError as exc:
                # A refused connect: retried later, and a slow-down signal.
                refused = Attempt(DeliveryStatus.DEFERRED, None, str(exc), slow_down=True)
                self._result(journal, row, refused, begun=False)
                return None
        begun = journal.begin(row.subscriber_id, message_id)
        # MessageTemplate and dkimpy emit CRLF line ends only, and no line starting
        # with a dot (the tests check both): the bytes need no pass before DATA.
        sender = self._sender(row)
        then = None
        if ahead is not None:
            ahead_sender = self.senders[ahead.subscriber_id] = self._sender(ahead)
            then = (ahead_sender, ahead.email)
        attempt = await connection.deliver(
            sender, row.email, data, ready=begun, clean=True, then=then
        )
        if _session_ended(attempt):
            # The session ended under this message after delivering others (a
            # per-session cap, an idle timeout): neither about this recipient nor
            # congestion. Once, at once, on a fresh session, with the same row
            # still `sending` and no attempt spent.
            await self.pool.release(connection, reusable=False)
            try:
                connection = await self.pool.acquire()
            except DeliveryError:
                connection = None
            else:
                attempt = await connection.deliver(
                    sender, row.email, data, ready=begun, clean=True, then=then
                )
        if not await begun:
            # Unsubscribed or erased since the claim: the journal failed the row and
            # deliver() stopped before DATA.
            self._done(row)
        else:
            self._result(journal, row, attempt)
        if connection is not None and attempt.reusable:
            return connection
        if connection is not None:
            await self.pool.release(connection, reusable=False)
        return None

    def _done(self, row: outbox.Claimed) -> None:
        self.outstanding -= 1
        if self.outstanding <= self.low_water:
            self.need_more.set()
        if self.outstanding == 0:
            self.idle.set()

    def _result(
        self, journal: Journal, row: outbox.Claimed, attempt: Attempt, *, begun: bool = True
    ) -> None:
        outcome = attempt.outcome
        status = outcome
        next_at = None
        error = attempt.error
        attempts = row.attempts + (1 if begun else 0)
        if outcome is DeliveryStatus.DEFERRED:
            if attempts >= self.max_attempts:
                status = outbox.DeliveryStatus.FAILED
                error = f"gave up after {attempts} attempts: {error}"
                outcome = DeliveryStatus.FAILED
            else:
                delay = backoff_delay(
                    max(attempts, 1), base=self.options.retry_base, cap=self.options.retry_cap
                )
                next_at = utcnow() + timedelta(seconds=delay)
        self._pace(attempt)
        bounce = error if attempt.bounce and outcome is DeliveryStatus.FAILED else None
        mark = outbox.Mark(row.subscriber_id, status, attempt.code, error, next_at)
        journal.finish(Result(mark, bounce))
        self._count(outcome, bounce is not None, error)
        if self.progress is not None and outcome is not DeliveryStatus.DEFERRED:
            self.progress.advance(outcome)  # a deferred row will be counted when it settles
        self._done(row)

    def _pace(self, attempt: Attempt) -> None:
        """Feed the pacer: success, a slow-down signal (421, drop, refused connect), or neither."""
        pacer = self.pacer
        before = pacer.concurrency
        if attempt.outcome is DeliveryStatus.SENT:
            pacer.success()
        elif attempt.slow_down:
            if pacer.slow_down_signal():
                self.report.slowdowns = pacer.decreases
                self.report.slowed_to = pacer.lowest_rate
        else:
            pacer.tempfail()
        if pacer.concurrency > before:
            self.widened.set()

    def _count(self, outcome: DeliveryStatus, bounced: bool, error: str | None) -> None:
        report = self.report
        if outcome is DeliveryStatus.SENT:
            report.sent += 1
            self.failures_in_a_row = 0
            return
        if outcome is DeliveryStatus.DEFERRED:
            report.deferred += 1
        elif outcome is DeliveryStatus.FAILED:
            report.failed += 1
            report.bounced += bounced
        else:
            report.unknown += 1
        self.failures_in_a_row += 1
        if self.failures_in_a_row >= self.threshold and not report.paused_reason:
            report.paused_reason = f"{self.failures_in_a_row} failures in a row (last: {error})"
            self.halt = True


def _session_ended(attempt: Attempt) -> bool:
    """A 421 or a drop before the payload on a session that had delivered (no slow-down)."""
    return (
        attempt.outcome is DeliveryStatus.DEFERRED
        and attempt.code in (None, 421)
        and not attempt.slow_down
    )


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` have passed, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
