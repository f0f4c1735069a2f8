"""The scheduler: claims due occurrences in the database, builds their editions, sends them.

One pass (:meth:`Scheduler.run_once`, what ``newsletter scheduler --once``
does) first resumes runs that a dead scheduler left ``running``, then, for each
active schedule, asks :func:`newsletter.scheduling.timing.plan_due` what is due at the
clock's now, records the skips and claims the run in one transaction (see
:mod:`newsletter.scheduling.store`), and executes each run it won:

* a run whose occurrence is now as late as ``Settings.schedule_max_lateness``
  (taken over after downtime) is not sent: a stale morning digest never goes
  out at tea-time; the reason says how to finish a half-sent edition by hand;
* a fixed edition (or the one attached to a recurring schedule's next run) is
  sent; otherwise one is built from the articles published since the previous
  sent run (at most ``--since`` back), topic-filtered; nothing new: ``skipped``;
* the send is the delivery engine's, which resumes from the outbox, so a run
  taken over after a crash never sends anyone the edition twice.

The pass then finishes the subject-line tests that are due (decided by this
scheduler's clock, the rest sent): :mod:`newsletter.scheduling.pending`.

:meth:`Scheduler.run_forever` repeats passes, sleeping until the next
occurrence (or a poll interval) until its stop event is set. The clock and the
sender are injected; ``asyncio.run`` happens only in the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from newsletter.content.editions import build_edition, get_edition
from newsletter.core.config import Settings
from newsletter.core.db import utcnow
from newsletter.core.errors import DeliveryError, NewsletterError, SendPausedError, StateError
from newsletter.delivery.lease import new_worker_id, owner_is_gone
from newsletter.scheduling.claims import (
    RunOutcome,
    RunRecord,
    finish_run,
    previous_sent_run,
    record_plan,
    release_run,
    renew_lease,
    set_run_edition,
    take_over_runs,
)
from newsletter.scheduling.pending import finish_subject_tests, next_decision
from newsletter.scheduling.results import (
    RunResult,
    SendFn,
    SendResult,
    delivery_sender,
    describe_result,
    result_of,
)
from newsletter.scheduling.store import (
    ScheduleRecord,
    ScheduleStatus,
    get_schedule,
    list_schedules,
    take_attached,
)
from newsletter.scheduling.timing import WAVE_SPAN, format_delta, plan_due
from newsletter.scheduling.waves import plan_waves, summarise, to_send, waves_of_run, write_due

__all__ = [
    "DEFAULT_LEASE",
    "Clock",
    "RunResult",
    "Scheduler",
    "SendFn",
    "SendResult",
    "delivery_sender",
    "describe_result",
    "result_of",
]

Clock = Callable[[], datetime]
DEFAULT_LEASE = timedelta(minutes=2)


class _LostClaim(Exception):
    """Another scheduler took the run over while this one was preparing it."""


class Scheduler:
    """Runs due occurrences of the stored schedules; safe to run in several processes."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        send: SendFn,
        clock: Clock = utcnow,
        worker: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
        is_gone: Callable[[str], bool] = owner_is_gone,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.send = send
        self.clock = clock
        self.worker = worker or new_worker_id()
        self.lease = lease
        self.is_gone = is_gone

    async def run_once(self, stop: asyncio.Event | None = None) -> list[RunResult]:
        """Resume orphaned runs, run everything due now, then finish due subject-line tests
        (:mod:`newsletter.scheduling.pending`); return what happened."""
        stop = stop or asyncio.Event()
        results: list[RunResult] = []
        taken = take_over_runs(
            self.engine,
            worker=self.worker,
            now=self.clock(),
            lease=self.lease,
            owner_is_gone=self.is_gone,
        )
        for run in taken:
            if stop.is_set():
                release_run(self.engine, run.id, worker=self.worker, now=self.clock())
                continue
            results.append(await self._execute(run, stop))
        for schedule in self._active():
            while not stop.is_set():
                claimed, skipped, more = self._claim(schedule)
                results.extend(skipped)
                if claimed is not None:
                    results.append(await self._execute(claimed, stop))
                if not more:
                    break
        # editions whose subject-line test is due: decided by this clock, the rest sent
        results.extend(await finish_subject_tests(self.settings, self.engine, self.clock, stop))
        return results

    async def run_forever(
        self,
        stop: asyncio.Event,
        *,
        poll: timedelta = timedelta(seconds=30),
        on_result: Callable[[RunResult], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Run passes until ``stop`` is set, sleeping until the next occurrence or ``poll``.

        A database that is down or locked fails one pass, not the scheduler: it
        is reported through ``on_error`` and the next pass tries again.
        """
        while not stop.is_set():
            try:
                results = await self.run_once(stop)
                wait = self._sleep_for(poll)
            except OperationalError as exc:
                first_line = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
                if on_error is not None:
                    on_error(
                        f"database error ({first_line}); retrying in {poll.total_seconds():g}s"
                    )
                results, wait = [], poll.total_seconds()
            for result in results:
                if on_result is not None:
                    on_result(result)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)

    def next_occurrence(self) -> datetime | None:
        """The earliest future occurrence of any active schedule, for sleeping and display."""
        now = self.clock()
        upcoming = [
            s.timing.first_after(max(filter(None, [now, s.handled_until]))) for s in self._active()
        ]
        return min(filter(None, upcoming), default=None)

    def _sleep_for(self, poll: timedelta) -> float:
        now = self.clock()
        with self.engine.connect() as conn:  # a subject-line test decided on time
            decision = next_decision(conn, now)
        upcoming = min(filter(None, [self.next_occurrence(), decision]), default=None)
        wait = poll if upcoming is None else min(poll, upcoming - now)
        return max(wait.total_seconds(), 0.05)

    def _active(self) -> list[ScheduleRecord]:
        with self.engine.connect() as conn:
            return list_schedules(conn, (ScheduleStatus.ACTIVE,))

    def _claim(self, schedule: ScheduleRecord) -> tuple[RunRecord | None, list[RunResult], bool]:
        """Plan and record one batch of a schedule's due occurrences: (claimed run, skips, more)."""
        with self.engine.connect() as conn:
            schedule = get_schedule(conn, schedule.id)
        now = self.clock()
        limit = self.settings.schedule_max_lateness
        plan = plan_due(
            schedule.timing,
            handled_until=schedule.handled_until,
            created_at=schedule.created_at,
            now=now,
            # a wave run is due from its first zone's time to its last zone's (plus the limit)
            max_lateness=limit + WAVE_SPAN if schedule.build.subscriber_zone else limit,
        )
        if plan.handled_until is None:
            return None, [], False
        claim = record_plan(
            self.engine, schedule.id, plan, worker=self.worker, now=now, lease=self.lease
        )
        skipped = [
            RunResult(schedule.id, s.occurrence_at, RunOutcome.SKIPPED.value, s.reason)
            for s in claim.skipped
        ]
        return claim.run, skipped, not plan.complete

    def _finish(
        self, run: RunRecord, outcome: RunOutcome, reason: str | None, edition_id: str | None
    ) -> RunResult:
        finish_run(
            self.engine,
            run.id,
            worker=self.worker,
            outcome=outcome,
            reason=reason,
            now=self.clock(),
        )
        return RunResult(run.schedule_id, run.occurrence_at, outcome.value, reason, edition_id)

    async def _execute(self, run: RunRecord, stop: asyncio.Event) -> RunResult:
        """Build (or pick) the run's edition, send it, and record the outcome."""
        with self.engine.connect() as conn:
            schedule = get_schedule(conn, run.schedule_id)
        if schedule.build.subscriber_zone and schedule.status is not ScheduleStatus.CANCELLED:
            return await self._execute_waves(schedule, run, stop)
        late = self.clock() - run.occurrence_at
        limit = self.settings.schedule_max_lateness
        if late >= limit:
            # Only a taken-over run gets here: its scheduler died and it is now stale.
            why = f"missed: {format_delta(late)} late when resumed (limit {format_delta(limit)})"
            if run.edition_id is not None:
                why += f"; finish it by hand with: newsletter send {run.edition_id}"
            outcome = RunOutcome.FAILED if run.edition_id else RunOutcome.SKIPPED
            return self._finish(run, outcome, why, run.edition_id)
        if schedule.status is ScheduleStatus.CANCELLED:
            return self._finish(run, RunOutcome.SKIPPED, "schedule cancelled", run.edition_id)
        edition_id = run.edition_id
        if edition_id is None:
            try:
                edition_id = self._prepare(schedule, run)
            except _LostClaim:
                edition_id = None
            except StateError as exc:
                return self._finish(run, RunOutcome.SKIPPED, f"nothing new: {exc}", None)
            except NewsletterError as exc:
                return self._finish(run, RunOutcome.FAILED, str(exc), None)
            if edition_id is None:  # another scheduler took the run over meanwhile
                return RunResult(run.schedule_id, run.occurrence_at, "interrupted", "taken over")
        result = await self._send_with_lease(run, edition_id, stop)
        if result.interrupted:
            release_run(
                self.engine, run.id, worker=self.worker, now=self.clock(), reason=result.reason
            )
            label = "deferred" if result.retry else "interrupted"
            return RunResult(run.schedule_id, run.occurrence_at, label, result.reason, edition_id)
        return self._finish(run, result.outcome, result.reason, edition_id)

    async def _execute_waves(
        self, schedule: ScheduleRecord, run: RunRecord, stop: asyncio.Event
    ) -> RunResult:
        """A run in each reader's zone: build the edition at the first wave due, write each
        due wave's outbox rows (late ones skipped), send, and wait for the next wave."""
        now = self.clock()
        limit = self.settings.schedule_max_lateness
        with self.engine.begin() as conn:
            plan_waves(conn, run.id, run.occurrence_at, schedule.timezone)
            waves = waves_of_run(conn, run.id)
        edition_id = run.edition_id
        ready = [w for w in waves if w.status == "pending" and w.wave_at <= now < w.wave_at + limit]
        if edition_id is None and ready:
            try:
                edition_id = self._prepare(schedule, run)
            except _LostClaim:
                return RunResult(run.schedule_id, run.occurrence_at, "interrupted", "taken over")
            except StateError as exc:
                return self._finish(run, RunOutcome.SKIPPED, f"nothing new: {exc}", None)
            except NewsletterError as exc:
                return self._finish(run, RunOutcome.FAILED, str(exc), None)
        with self.engine.begin() as conn:
            edition = get_edition(conn, edition_id) if edition_id else None
            step = write_due(
                conn,
                run.id,
                edition,
                now=now,
                max_lateness=limit,
                default_zone=schedule.timezone,
                repeat_window=self.settings.repeat_window,
            )
            waiting = to_send(conn, edition_id)
        if edition_id is not None and waiting:
            result = await self._send_with_lease(run, edition_id, stop)
            if result.interrupted:
                release_run(
                    self.engine, run.id, worker=self.worker, now=self.clock(), reason=result.reason
                )
                label = "deferred" if result.retry else "interrupted"
                return RunResult(
                    run.schedule_id, run.occurrence_at, label, result.reason, edition_id
                )
            if result.outcome is RunOutcome.FAILED:
                return self._finish(run, RunOutcome.FAILED, result.reason, edition_id)
        with self.engine.connect() as conn:
            waves = waves_of_run(conn, run.id)
        summary = summarise(waves, step.next_at)
        if step.next_at is not None:
            release_run(self.engine, run.id, worker=self.worker, now=self.clock(), reason=summary)
            return RunResult(run.schedule_id, run.occurrence_at, "waiting", summary, edition_id)
        outcome = RunOutcome.SENT if any(w.status == "sent" for w in waves) else RunOutcome.SKIPPED
        return self._finish(run, outcome, summary, edition_id)

    def _prepare(self, schedule: ScheduleRecord, run: RunRecord) -> str:
        """Choose or build the run's edition and record it on the run, in one transaction."""
        now = self.clock()
        with self.engine.begin() as conn:
            # an edition attached to a recurring schedule: this run sends it (and only this one)
            attached = take_attached(conn, schedule.id, now) if schedule.kind == "cron" else None
            if attached is not None:
                edition_id, articles_until = attached, None
            elif schedule.edition_id is not None and schedule.kind == "once":
                edition_id, articles_until = get_edition(conn, schedule.edition_id).id, None
            else:
                since = run.occurrence_at - schedule.build.since
                previous = previous_sent_run(conn, schedule.id, run.occurrence_at)
                if previous is not None:
                    since = max(since, previous.articles_until or previous.occurrence_at)
                edition = build_edition(
                    conn,
                    now=now,
                    since=since,
                    topics=schedule.build.topics,
                    title=schedule.build.title,
                    kind=schedule.build.kind,
                    site_name=self.settings.site_name,
                    timezone=self.settings.timezone,
                    newsletter=schedule.newsletter_id,
                )
                edition_id, articles_until = edition.id, now
            recorded = set_run_edition(
                conn,
                run.id,
                worker=self.worker,
                edition_id=edition_id,
                articles_until=articles_until,
            )
            if not recorded:
                raise _LostClaim  # rolls back: the built edition goes with it
        return edition_id

    async def _send_with_lease(
        self, run: RunRecord, edition_id: str, stop: asyncio.Event
    ) -> SendResult:
        """Send, renewing the run's lease meanwhile; stop the send if the lease is lost."""
        send_stop = asyncio.Event()
        lost = asyncio.Event()

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(self.lease.total_seconds() / 4)
                if not renew_lease(
                    self.engine, run.id, worker=self.worker, now=self.clock(), lease=self.lease
                ):
                    lost.set()
                    send_stop.set()
                    return

        async def relay_stop() -> None:
            await stop.wait()
            send_stop.set()

        helpers = [asyncio.create_task(heartbeat()), asyncio.create_task(relay_stop())]
        try:
            result = await self.send(edition_id, send_stop)
        except SendPausedError as exc:  # too many failures in a row: a person must look
            result = SendResult(RunOutcome.FAILED, str(exc))
        except DeliveryError as exc:
            # The relay is down: nothing was lost (rows stay queued), so the next
            # pass retries while the occurrence is still less late than the limit.
            result = SendResult(
                RunOutcome.RUNNING, f"{exc}; will retry", interrupted=True, retry=True
            )
        except NewsletterError as exc:
            result = SendResult(RunOutcome.FAILED, str(exc))
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        if lost.is_set() and result.outcome is not RunOutcome.SENT:
            why = "taken over by another scheduler (this one's lease lapsed)"
            return SendResult(RunOutcome.RUNNING, why, interrupted=True)
        if send_stop.is_set() and result.outcome is not RunOutcome.SENT:
            return SendResult(RunOutcome.RUNNING, "stopped before the end", interrupted=True)
        return result
