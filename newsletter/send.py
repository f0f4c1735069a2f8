"""Sending an edition: outbox first, then a pool of connections draining it.

:func:`send_edition` is the whole delivery engine behind ``newsletter send``:

1. settle what a dead run left (``sending`` -> ``unknown``), write one ``queued``
   outbox row per recipient not yet in it, render each variant once;
2. open the first SMTP connection (a relay that is down fails fast here, with
   every row left ``queued``);
3. a claimer reserves due rows in batches; K workers, one connection each,
   take them one by one: personalise the variant's bytes, ``MAIL``/``RCPT``
   while the journal makes the row ``sending``, then ``DATA``;
4. results go back through the journal in group commits; 4xx and drops are
   retried later with backoff, 5xx fail (and bounce), a 421 halves the rate,
   and a run of failures pauses the edition;
5. on a stop request nothing new is taken, in-flight messages finish, and the
   untouched reservations are released, so the next run resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, Protocol

from sqlalchemy.engine import Connection, Engine

from newsletter import outbox
from newsletter.config import Settings
from newsletter.db import utcnow
from newsletter.dkim import DKIMSigner
from newsletter.editions import get_edition, set_status
from newsletter.errors import (
    DeliveryError,
    InputError,
    SendPausedError,
    StateError,
)
from newsletter.journal import DatabaseRunner, Journal, Result
from newsletter.lease import take_lease
from newsletter.message import MessageTemplate, Personal, new_message_id
from newsletter.models import Edition, EditionStatus
from newsletter.ratelimit import RateLimiter, backoff_delay
from newsletter.render import Renderer, variant_key
from newsletter.smtp import Attempt, Outcome, SMTPConnection, SMTPPool
from subscribers import store
from subscribers.links import preferences_url, unsubscribe_mailto, unsubscribe_url

__all__ = ["MessageBuilder", "SendOptions", "SendProgress", "SendReport", "send_edition"]


@dataclass(frozen=True)
class SendOptions:
    """How to run one send; ``None`` means "as the settings say"."""

    concurrency: int | None = None
    rate: float | None = None
    dry_run: bool = False
    test_to: str | None = None
    resend_unknown: bool = False
    max_attempts: int | None = None
    failure_threshold: int | None = None
    retry_base: float = 2.0  # seconds before the first retry; doubles each time
    retry_cap: float = 300.0
    claim_batch: int = 200
    flush_interval: float = 0.2


class SendProgress(Protocol):
    """Receives progress as the send goes (the CLI draws a bar from it)."""

    def start(self, total: int) -> None:
        """``total`` messages are to be attempted in this run."""

    def advance(self, outcome: Outcome) -> None:
        """One more attempt finished with ``outcome``."""


@dataclass
class SendReport:
    """What one run did, for the summary line and for the scheduler."""

    edition_id: str
    mode: Literal["send", "dry-run", "test"] = "send"
    enqueued: int = 0
    recovered_unknown: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    unknown: int = 0
    built: int = 0
    built_bytes: int = 0
    variants: int = 0
    elapsed: float = 0.0
    stopped: bool = False
    paused_reason: str | None = None
    slowed_to: float | None = None  # the rate after the relay's last 421
    remaining: int = 0
    edition_status: EditionStatus | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Messages sent per second in this run."""
        done = self.built if self.mode == "dry-run" else self.sent
        return done / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        if self.mode == "dry-run":
            return (
                f"dry run of {self.edition_id}: built {self.built} messages "
                f"({self.variants} variants, {self.built_bytes / 1e6:.1f} MB), sent none"
            )
        if self.mode == "test":
            return f"test message of {self.edition_id} sent"
        text = (
            f"{self.edition_id}: sent {self.sent}, deferred {self.deferred}, "
            f"failed {self.failed} ({self.bounced} bounced), unknown {self.unknown} "
            f"in {self.elapsed:.1f}s ({self.rate:.0f}/s)"
        )
        if self.slowed_to:
            text += f"; the relay asked to slow down (421): now {self.slowed_to:.1f}/s"
        if self.remaining:
            text += f"; {self.remaining} still to send"
        return text


def _topics_of(key: str) -> frozenset[str] | None:
    # The inverse of render.variant_key: "all" or "topics:a,b".
    return None if key == "all" else frozenset(key.removeprefix("topics:").split(","))


class MessageBuilder:
    """Renders each variant once and personalises its bytes per recipient."""

    def __init__(self, settings: Settings, edition: Edition) -> None:
        self.settings = settings
        self.edition = edition
        self.signer = DKIMSigner.from_settings(settings)
        self._renderer = Renderer(settings)
        self._templates: dict[str, MessageTemplate] = {}

    @property
    def variants(self) -> int:
        """How many variants were rendered."""
        return len(self._templates)

    def template(self, key: str) -> MessageTemplate:
        """The message template of variant ``key`` (rendered on first use)."""
        found = self._templates.get(key)
        if found is None:
            variant = self._renderer.render(self.edition, _topics_of(key))
            found = MessageTemplate.from_variant(variant, self.settings, self.edition)
            self._templates[key] = found
        return found

    def build(
        self, key: str, subscriber_id: int, email: str, name: str | None, message_id: str
    ) -> bytes:
        """The finished (and, with a key configured, DKIM-signed) bytes for one recipient."""
        settings = self.settings
        personal = Personal(
            email=email,
            name=name or "",
            unsubscribe_url=unsubscribe_url(settings, subscriber_id),
            preferences_url=preferences_url(settings, subscriber_id),
            message_id=message_id,
            unsubscribe_mailto=unsubscribe_mailto(settings, subscriber_id),
        )
        data = self.template(key).personalise(personal)
        return self.signer.sign(data) if self.signer else data


def _recipients(conn: Connection, edition: Edition) -> Iterator[outbox.NewDelivery]:
    keys: dict[frozenset[str], str] = {}
    for r in store.iter_recipients(conn, topics=edition.topics):
        key = keys.get(r.topics)
        if key is None:
            key = keys[r.topics] = variant_key(edition, r.topics)
        if key != "none":  # no article for their topics: they get nothing
            yield outbox.NewDelivery(r.subscriber_id, r.email, r.name, key)


async def send_edition(
    settings: Settings,
    engine: Engine,
    edition_id: str,
    *,
    options: SendOptions | None = None,
    progress: SendProgress | None = None,
    stop: asyncio.Event | None = None,
    pool: SMTPPool | None = None,
) -> SendReport:
    """Deliver ``edition_id`` to every recipient exactly once, resuming any earlier run.

    Returns the run's report (``stopped`` when ``stop`` was set). Raises
    :class:`SMTPUnavailableError` when the relay is down at the start (every
    row stays ``queued``) and :class:`SendPausedError` when too many failures
    in a row paused the edition. ``pool`` replaces the one built from the settings.
    """
    options = options or SendOptions()
    if options.dry_run:
        return _dry_run(settings, engine, edition_id)
    if options.test_to:
        return await _test_send(settings, engine, edition_id, options.test_to, pool)
    return await _Run(settings, engine, edition_id, options, progress, stop, pool).execute()


def _dry_run(settings: Settings, engine: Engine, edition_id: str) -> SendReport:
    """Build every message as a real send would, send none and write nothing."""
    started = time.perf_counter()
    report = SendReport(edition_id, mode="dry-run")
    with engine.connect() as conn:
        edition = get_edition(conn, edition_id)
        builder = MessageBuilder(settings, edition)
        domain = settings.sender_domain
        for row in _recipients(conn, edition):
            data = builder.build(
                row.variant, row.subscriber_id, row.email, row.name, new_message_id(domain)
            )
            report.built += 1
            report.built_bytes += len(data)
        conn.rollback()
    report.variants = builder.variants
    report.elapsed = time.perf_counter() - started
    return report


async def _test_send(
    settings: Settings, engine: Engine, edition_id: str, address: str, pool: SMTPPool | None
) -> SendReport:
    """One message of the edition to ``address``; the outbox is not touched."""
    with engine.connect() as conn:
        edition = get_edition(conn, edition_id)
        known = store.find_by_email(conn, address)
        conn.rollback()
    builder = MessageBuilder(settings, edition)
    key = variant_key(edition, known.topics) if known else "all"
    data = builder.build(
        "all" if key == "none" else key,
        known.id if known else 0,
        address,
        known.name if known else None,
        new_message_id(settings.sender_domain),
    )
    pool = pool or _pool(settings, 1)
    async with pool:
        connection = await pool.acquire()
        attempt = await connection.deliver(settings.sender_address, address, data)
        await pool.release(connection, reusable=attempt.reusable)
    if attempt.outcome is not Outcome.SENT:
        raise DeliveryError(f"the test message to {address} was not accepted: {attempt.error}")
    return SendReport(edition_id, mode="test", sent=1, built=1, built_bytes=len(data))


def _pool(settings: Settings, size: int) -> SMTPPool:
    return SMTPPool(
        settings.smtp(),
        size=size,
        timeout=settings.smtp_timeout,
        allow_insecure=settings.smtp_allow_insecure,
    )


class _Run:
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
        self.sender = settings.sender_address
        self.domain = settings.sender_domain
        self.engine = engine
        self.edition_id = edition_id
        self.options = options
        self.progress = progress
        self.stop = stop or asyncio.Event()
        self.concurrency = options.concurrency or settings.send_concurrency
        self.max_attempts = options.max_attempts or settings.send_max_attempts
        self.threshold = options.failure_threshold or settings.send_failure_threshold
        self.pool = pool or _pool(settings, self.concurrency)
        self.limiter = RateLimiter(options.rate or settings.send_rate)
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

    # -- setup and teardown (blocking, run through the DatabaseRunner) ---------

    def _prepare(self, conn: Connection, worker: str, is_alive: Callable[[str], bool]) -> Edition:
        now = utcnow()
        edition = get_edition(conn, self.edition_id)
        if edition.status is EditionStatus.CANCELLED:
            raise StateError(f"edition {self.edition_id} was cancelled; it cannot be sent")
        recovered = outbox.recover(
            conn,
            self.edition_id,
            me=worker,
            is_alive=is_alive,
            now=now,
        )
        self.report.recovered_unknown = recovered.unknown
        if self.options.resend_unknown:
            outbox.requeue_unknown(conn, self.edition_id, now)
        if edition.status is not EditionStatus.SENT:
            self.report.enqueued = outbox.enqueue(
                conn, self.edition_id, _recipients(conn, edition), now
            )
        outbox.drop_unsubscribed(conn, self.edition_id, now)
        return edition

    def _variants(self, conn: Connection) -> list[str]:
        from sqlalchemy import select

        from newsletter.schema import deliveries

        query = (
            select(deliveries.c.variant)
            .where(
                deliveries.c.edition_id == self.edition_id,
                deliveries.c.status.in_([s.value for s in outbox.OPEN_STATES]),
            )
            .distinct()
        )
        return list(conn.execute(query).scalars())

    def _finish(self, conn: Connection) -> None:
        now = utcnow()
        counts = outbox.counts(conn, self.edition_id)
        remaining = sum(counts[s] for s in outbox.OPEN_STATES)
        others = counts[outbox.DeliveryStatus.SENDING]  # rows other live workers hold
        self.report.counts = {s.value: n for s, n in counts.items()}
        self.report.remaining = remaining
        if self.report.paused_reason:
            status, reason = EditionStatus.PAUSED, self.report.paused_reason
        elif remaining == 0:
            status, reason = EditionStatus.SENT, None
        elif self.report.stopped and not others:
            status = EditionStatus.PAUSED
            reason = f"stopped; resume with: newsletter send {self.edition_id}"
        else:
            return  # other workers are still at it
        self.report.edition_status = set_status(
            conn, self.edition_id, status, reason, now=now
        ).status

    # -- the run ------------------------------------------------------------------

    async def execute(self) -> SendReport:
        started = time.perf_counter()
        db = DatabaseRunner(self.engine)
        lease = await db.run(take_lease, self.engine)
        try:
            edition = await db.transaction(self._prepare, lease.worker, lease.is_alive)
            builder = MessageBuilder(self.settings, edition)
            for key in await db.transaction(self._variants):
                builder.template(key)  # render every variant before the first message
            self.builder = builder
            await self.pool.open()  # a relay that is down fails here, rows still queued
            await db.transaction(
                lambda conn: set_status(conn, self.edition_id, EditionStatus.SENDING, now=utcnow())
            )
            total = await db.transaction(
                lambda conn: sum(
                    n
                    for s, n in outbox.counts(conn, self.edition_id).items()
                    if s in (outbox.DeliveryStatus.QUEUED, outbox.DeliveryStatus.DEFERRED)
                )
            )
            if self.progress is not None:
                self.progress.start(total)
            journal = Journal(
                db, self.edition_id, lease.worker, flush_interval=self.options.flush_interval
            )
            journal.start()
            try:
                await self._drain(db, journal, lease.worker)
            finally:
                await journal.close()
                await self.pool.close()
                await db.transaction(
                    lambda conn: outbox.release(conn, self.edition_id, lease.worker)
                )
            self.report.stopped = self.stop.is_set() and not self.report.paused_reason
            await db.transaction(self._finish)
        finally:
            self.report.elapsed = time.perf_counter() - started
            await db.run(lease.close)
            db.close()
        if self.report.paused_reason:
            raise SendPausedError(
                f"edition {self.edition_id} paused: {self.report.paused_reason}; "
                f"fix the cause and resume with: newsletter send {self.edition_id}",
                self.report,
            )
        return self.report

    async def _drain(self, db: DatabaseRunner, journal: Journal, worker: str) -> None:
        workers = [
            asyncio.create_task(self._worker(journal), name=f"smtp-worker-{n}")
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
            wait = max(0.0, (due - utcnow()).total_seconds())
            await _wait(self.stop, min(wait, 1.0) + 0.01)

    def _halted(self) -> bool:
        return self.halt or self.stop.is_set()

    async def _worker(self, journal: Journal) -> None:
        connection: SMTPConnection | None = None
        try:
            while True:
                row = await self.queue.get()
                if row is None:
                    return
                if self._halted():
                    self._done(row)  # left reserved: released at the end, still queued
                    continue
                await self.limiter.acquire()
                connection = await self._send_one(journal, row, connection)
        finally:
            if connection is not None:
                await self.pool.release(connection, reusable=False)

    async def _send_one(
        self, journal: Journal, row: outbox.Claimed, connection: SMTPConnection | None
    ) -> SMTPConnection | None:
        message_id = row.message_id or new_message_id(self.domain)
        try:
            data = self.builder.build(
                row.variant, row.subscriber_id, row.email, row.name, message_id
            )
        except (InputError, StateError) as exc:
            # This recipient's message cannot be built (a bad address, a header
            # with a line break): fail the row, never the whole send.
            self._result(journal, row, Attempt(Outcome.FAILED, None, str(exc)))
            return connection
        if connection is None:
            try:
                connection = await self.pool.acquire()
            except DeliveryError as exc:
                self._result(journal, row, Attempt(Outcome.DEFERRED, None, str(exc)), begun=False)
                return None
        begun = journal.begin(row.subscriber_id, message_id)
        # MessageTemplate and dkimpy emit CRLF line ends only (the tests check it).
        attempt = await connection.deliver(self.sender, row.email, data, ready=begun, crlf=True)
        if not await begun:
            # Unsubscribed or erased since the claim: the journal failed the row and
            # deliver() stopped before DATA.
            self._done(row)
        else:
            self._result(journal, row, attempt)
        if attempt.reusable:
            return connection
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
        status = outbox.DeliveryStatus(outcome.value)
        next_at = None
        error = attempt.error
        attempts = row.attempts + (1 if begun else 0)
        if outcome is Outcome.DEFERRED:
            if attempts >= self.max_attempts:
                status = outbox.DeliveryStatus.FAILED
                error = f"gave up after {attempts} attempts: {error}"
                outcome = Outcome.FAILED
            else:
                delay = backoff_delay(
                    max(attempts, 1), base=self.options.retry_base, cap=self.options.retry_cap
                )
                next_at = utcnow() + timedelta(seconds=delay)
        if attempt.slow_down:
            self.report.slowed_to = self.limiter.slow_down()
        bounce = error if attempt.bounce and outcome is Outcome.FAILED else None
        mark = outbox.Mark(row.subscriber_id, status, attempt.code, error, next_at)
        journal.finish(Result(mark, bounce))
        self._count(outcome, bounce is not None, error)
        if self.progress is not None:
            self.progress.advance(outcome)
        self._done(row)

    def _count(self, outcome: Outcome, bounced: bool, error: str | None) -> None:
        report = self.report
        if outcome is Outcome.SENT:
            report.sent += 1
            self.failures_in_a_row = 0
            return
        if outcome is Outcome.DEFERRED:
            report.deferred += 1
        elif outcome is Outcome.FAILED:
            report.failed += 1
            report.bounced += bounced
        else:
            report.unknown += 1
        self.failures_in_a_row += 1
        if self.failures_in_a_row >= self.threshold and not report.paused_reason:
            report.paused_reason = f"{self.failures_in_a_row} failures in a row (last: {error})"
            self.halt = True


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` have passed, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
