"""Subject-line tests the scheduler finishes: decide each due one and send the rest.

A ``send EDITION --subject-test ...`` run (from the CLI or the console) sends the
test share and leaves the rest waiting for the decision
(:mod:`newsletter.delivery.subjects`). On every pass the scheduler
(:meth:`newsletter.scheduling.scheduler.Scheduler.run_once`) calls
:func:`finish_subject_tests`, which picks the editions still ``sending`` whose test

* is undecided and due (``decide_at`` at or before the scheduler's clock), or
* left rows to send that are due (``queued``, ``sending``, or ``deferred`` and due),
  as a crashed run does,

and runs the delivery engine's send of each, as ``newsletter send EDITION`` would,
with the scheduler's clock: the decision is taken by that clock and recorded once
(an update only an undecided test matches), and the rest goes out with the winner's
subject. A paused edition waits for a person, and an edition another live worker is
sending (its outbox rows are claimed by a worker whose lease is held, or a
schedule's run holds it) is left to that worker. Two schedulers, or a scheduler and
a ``send``, that still start the same edition at once are safe: each reader's row is
claimed by one worker only, so everyone gets exactly one message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.content.states import EditionStatus
from newsletter.core.config import Settings
from newsletter.core.errors import DeliveryError, NewsletterError, SendPausedError
from newsletter.core.schema import deliveries, editions, schedule_runs, subject_tests
from newsletter.delivery.lease import take_lease
from newsletter.delivery.outcomes import OPEN_STATES, DeliveryStatus
from newsletter.scheduling.claims import RunOutcome
from newsletter.scheduling.results import RunResult, SendFn, SendResult, delivery_sender

__all__ = ["DueTest", "due_tests", "finish_subject_tests", "next_decision"]

_D = deliveries.c
_T = subject_tests.c


@dataclass(frozen=True)
class DueTest:
    """An edition whose subject-line test the scheduler should finish, and its decision time."""

    edition_id: str
    decide_at: datetime


def due_tests(conn: Connection, now: datetime) -> list[DueTest]:
    """The ``sending`` editions whose test is undecided and due at ``now``, or that have
    rows to send due at ``now`` (not those waiting for a decision still ahead)."""
    open_now = sa.exists().where(
        _D.edition_id == _T.edition_id,
        sa.or_(
            _D.status.in_([DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value]),
            sa.and_(
                _D.status == DeliveryStatus.DEFERRED.value,
                _D.next_attempt_at.is_not(None),  # a waiting row has none
                _D.next_attempt_at <= now,
            ),
        ),
    )
    query = (
        sa.select(_T.edition_id, _T.decide_at)
        .join(editions, editions.c.id == _T.edition_id)
        .where(
            editions.c.status == EditionStatus.SENDING.value,
            sa.or_(sa.and_(_T.winner.is_(None), _T.decide_at <= now), open_now),
        )
        .order_by(_T.decide_at, _T.edition_id)
    )
    return [DueTest(edition_id, decide_at) for edition_id, decide_at in conn.execute(query)]


def next_decision(conn: Connection, now: datetime) -> datetime | None:
    """The earliest undecided subject-line test's decision time after ``now`` (of a
    ``sending`` edition): the scheduler wakes for it rather than at its next poll."""
    query = (
        sa.select(sa.func.min(_T.decide_at))
        .join(editions, editions.c.id == _T.edition_id)
        .where(
            editions.c.status == EditionStatus.SENDING.value,
            _T.winner.is_(None),
            _T.decide_at > now,
        )
    )
    found: datetime | None = conn.execute(query).scalar()
    return found


def _owners(conn: Connection, edition_id: str, now: datetime) -> tuple[list[str], bool]:
    """The workers holding the edition's outbox rows, and whether a schedule's run holds it."""
    owners = conn.execute(
        sa.select(_D.claimed_by)
        .where(
            _D.edition_id == edition_id,
            _D.claimed_by.is_not(None),
            _D.status.in_([s.value for s in OPEN_STATES]),
        )
        .distinct()
    ).scalars()
    run = conn.execute(
        sa.select(schedule_runs.c.id).where(
            schedule_runs.c.edition_id == edition_id,
            schedule_runs.c.outcome == RunOutcome.RUNNING.value,
            schedule_runs.c.lease_until > now,
        )
    ).first()
    return [o for o in owners if o is not None], run is not None


def _free(engine: Engine, tests: list[DueTest], now: datetime) -> list[DueTest]:
    """``tests`` without the editions another live worker (or a schedule's run) is sending."""
    free: list[DueTest] = []
    lease = None
    try:
        for test in tests:
            with engine.connect() as conn:
                owners, held = _owners(conn, test.edition_id, now)
            if held:
                continue
            if owners and lease is None:
                lease = take_lease(engine)  # only a lease holder may ask who else holds one
            if lease is not None and any(lease.is_alive(o) for o in owners):
                continue
            free.append(test)
    finally:
        if lease is not None:
            lease.close()
    return free


async def finish_subject_tests(
    settings: Settings,
    engine: Engine,
    clock: Callable[[], datetime],
    stop: asyncio.Event,
    *,
    send: SendFn | None = None,
) -> list[RunResult]:
    """Send each due, free edition of :func:`due_tests` (decided by ``clock``) until
    ``stop`` is set; one result per edition. ``send`` defaults to the delivery engine's."""
    send = send or delivery_sender(settings, engine, clock=clock)
    now = clock()
    with engine.connect() as conn:
        tests = due_tests(conn, now)
    results: list[RunResult] = []
    for test in _free(engine, tests, now) if tests else []:
        if stop.is_set():
            break
        result = await _send(send, test.edition_id, stop)
        label, reason = _read(engine, test, result, clock())
        with engine.connect() as conn:
            winner = conn.execute(
                sa.select(_T.winner).where(_T.edition_id == test.edition_id)
            ).scalar_one_or_none()
        if winner is not None:
            reason = f"{reason}; {winner} won: the rest gets subject {winner}"
        results.append(RunResult(None, test.decide_at, label, reason, test.edition_id))
    return results


def _read(
    engine: Engine, test: DueTest, result: SendResult, now: datetime
) -> tuple[str, str | None]:
    """The result's label; rows left that another live worker holds are not a failure
    (``sending``: that worker finishes them), nor rows it has finished meanwhile."""
    if result.interrupted:
        return "deferred" if result.retry else "interrupted", result.reason
    if result.outcome is not RunOutcome.FAILED:
        return result.outcome.value, result.reason
    with engine.connect() as conn:
        left = conn.execute(
            sa.select(sa.func.count()).where(
                _D.edition_id == test.edition_id, _D.status.in_([s.value for s in OPEN_STATES])
            )
        ).scalar_one()
    if not left:
        return RunOutcome.SENT.value, f"{result.reason}; another worker sent the rest"
    if not _free(engine, [test], now):
        return "sending", f"{result.reason}; another worker is sending the rest"
    return RunOutcome.FAILED.value, result.reason


async def _send(send: SendFn, edition_id: str, stop: asyncio.Event) -> SendResult:
    """The send, its failures read as the scheduler's runs read them."""
    try:
        return await send(edition_id, stop)
    except SendPausedError as exc:  # too many failures in a row: a person must look
        return SendResult(RunOutcome.FAILED, str(exc))
    except DeliveryError as exc:  # the relay is down: rows stay queued, the next pass retries
        return SendResult(RunOutcome.RUNNING, f"{exc}; will retry", interrupted=True, retry=True)
    except NewsletterError as exc:
        return SendResult(RunOutcome.FAILED, str(exc))
