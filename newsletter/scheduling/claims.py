"""Occurrences of schedules in the database: the claim, leases, takeovers and outcomes.

The claim is what keeps two schedulers from running one occurrence twice: an
occurrence runs only in the process whose insert of the ``(schedule_id,
occurrence_at)`` row in ``schedule_runs`` succeeded (a UNIQUE constraint,
``INSERT ... ON CONFLICT DO NOTHING``), in one transaction with the schedule's
watermark. A running claim carries a lease; a scheduler that dies leaves a
``running`` row that another scheduler takes over (compare-and-set) once the
lease lapses, or at once when the owner was a process on this host that no
longer exists, and resumes the send where the outbox says it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from newsletter.core.schema import schedule_runs, schedules
from newsletter.scheduling.store import ScheduleStatus, get_schedule
from newsletter.scheduling.timing import DuePlan, Skip

__all__ = [
    "Claim",
    "RunOutcome",
    "RunRecord",
    "finish_run",
    "list_runs",
    "previous_sent_run",
    "record_plan",
    "release_run",
    "renew_lease",
    "set_run_edition",
    "take_over_runs",
]


class RunOutcome(StrEnum):
    """An occurrence's outcome: ``running`` until it is ``sent``, ``skipped`` or ``failed``."""

    RUNNING = "running"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


class RunRecord(BaseModel):
    """One occurrence of a schedule and what became of it."""

    model_config = ConfigDict(frozen=True)

    id: int
    schedule_id: int
    occurrence_at: AwareDatetime
    claimed_at: AwareDatetime
    claimed_by: str
    lease_until: AwareDatetime | None
    outcome: RunOutcome
    reason: str | None
    edition_id: str | None
    articles_until: AwareDatetime | None
    finished_at: AwareDatetime | None


def _run(row: sa.Row[Any]) -> RunRecord:
    return RunRecord.model_validate(dict(row._mapping))


def _insert_unless_claimed(conn: Connection, values: dict[str, object]) -> int | None:
    """Insert one run row; its id, or None when that occurrence already has a row."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(schedule_runs).values(**values).on_conflict_do_nothing()
    # RETURNING, not rowcount: drivers report -1 for an INSERT that returns rows
    row = conn.execute(stmt.returning(schedule_runs.c.id)).first()
    return None if row is None else int(row[0])


@dataclass(frozen=True)
class Claim:
    """What :func:`record_plan` won: the run to execute (or None) and the skips it recorded."""

    run: RunRecord | None = None
    skipped: list[Skip] = field(default_factory=list)


def record_plan(
    engine: Engine,
    schedule_id: int,
    plan: DuePlan,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
) -> Claim:
    """Record a plan's skips and claim its run, in one transaction.

    Only rows this call inserted count: an occurrence another scheduler already
    recorded or claimed is left to it. Nothing happens when the schedule is no
    longer active. The watermark only moves forward; a one-off schedule whose
    occurrence is handled becomes ``done``.
    """
    with engine.begin() as conn:
        current = get_schedule(conn, schedule_id)
        if current.status is not ScheduleStatus.ACTIVE or plan.handled_until is None:
            return Claim()
        base = {"schedule_id": schedule_id, "claimed_at": now, "claimed_by": worker}
        skipped = [
            skip
            for skip in plan.skipped
            if _insert_unless_claimed(
                conn,
                {
                    **base,
                    "occurrence_at": skip.occurrence_at,
                    "outcome": RunOutcome.SKIPPED.value,
                    "reason": skip.reason,
                    "finished_at": now,
                },
            )
            is not None
        ]
        run_id = None
        if plan.run is not None:
            run_id = _insert_unless_claimed(
                conn,
                {
                    **base,
                    "occurrence_at": plan.run,
                    "outcome": RunOutcome.RUNNING.value,
                    "lease_until": now + lease,
                },
            )
        mark = max(filter(None, [current.handled_until, plan.handled_until]))
        values: dict[str, object] = {"handled_until": mark, "updated_at": now}
        if current.kind == "once":
            values["status"] = ScheduleStatus.DONE.value
        conn.execute(sa.update(schedules).where(schedules.c.id == schedule_id).values(**values))
        if run_id is None:
            return Claim(skipped=skipped)
        row = conn.execute(sa.select(schedule_runs).where(schedule_runs.c.id == run_id)).one()
        return Claim(_run(row), skipped)


def take_over_runs(
    engine: Engine,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    owner_is_gone: Callable[[str], bool],
) -> list[RunRecord]:
    """Claim the ``running`` runs whose owner is gone or whose lease lapsed; return them.

    Each takeover is a compare-and-set on the previous owner and lease, so two
    schedulers never both take over one run.
    """
    taken: list[RunRecord] = []
    with engine.connect() as conn:
        stale = conn.execute(
            sa.select(schedule_runs).where(schedule_runs.c.outcome == RunOutcome.RUNNING.value)
        ).all()
    for row in stale:
        run = _run(row)
        lapsed = run.lease_until is None or run.lease_until <= now
        # our own run counts only once released (its lease lapsed): a live one is in hand
        mine = run.claimed_by == worker
        if not lapsed and (mine or not owner_is_gone(run.claimed_by)):
            continue
        with engine.begin() as conn:
            updated = conn.execute(
                sa.update(schedule_runs)
                .where(
                    schedule_runs.c.id == run.id,
                    schedule_runs.c.outcome == RunOutcome.RUNNING.value,
                    schedule_runs.c.claimed_by == run.claimed_by,
                    _same_lease(run.lease_until),
                )
                .values(claimed_by=worker, lease_until=now + lease)
            ).rowcount
            if updated:
                row = conn.execute(
                    sa.select(schedule_runs).where(schedule_runs.c.id == run.id)
                ).one()
                taken.append(_run(row))
    return taken


def _same_lease(lease_until: datetime | None) -> sa.ColumnElement[bool]:
    if lease_until is None:
        return schedule_runs.c.lease_until.is_(None)
    return schedule_runs.c.lease_until == lease_until


def _update_own_run(conn: Connection, run_id: int, worker: str, **values: object) -> bool:
    return bool(
        conn.execute(
            sa.update(schedule_runs)
            .where(
                schedule_runs.c.id == run_id,
                schedule_runs.c.claimed_by == worker,
                schedule_runs.c.outcome == RunOutcome.RUNNING.value,
            )
            .values(**values)
        ).rowcount
    )


def _update_own_run_now(engine: Engine, run_id: int, worker: str, **values: object) -> bool:
    with engine.begin() as conn:
        return _update_own_run(conn, run_id, worker, **values)


def renew_lease(
    engine: Engine, run_id: int, *, worker: str, now: datetime, lease: timedelta
) -> bool:
    """Extend the lease on a run this worker holds; False when it is no longer ours."""
    return _update_own_run_now(engine, run_id, worker, lease_until=now + lease)


def release_run(
    engine: Engine, run_id: int, *, worker: str, now: datetime, reason: str | None = None
) -> bool:
    """Give up a run left unfinished (a stop, a relay that is down) for the next pass to resume.

    ``reason`` (shown by ``schedule show`` while the run is still ``running``) says why.
    """
    return _update_own_run_now(engine, run_id, worker, lease_until=now, reason=reason)


def set_run_edition(
    conn: Connection,
    run_id: int,
    *,
    worker: str,
    edition_id: str,
    articles_until: datetime | None,
) -> bool:
    """Record the edition a run sends (before sending it), so a takeover resumes that one.

    Call it in the transaction that built the edition: a crash leaves both or neither.
    """
    return _update_own_run(
        conn, run_id, worker, edition_id=edition_id, articles_until=articles_until
    )


def finish_run(
    engine: Engine,
    run_id: int,
    *,
    worker: str,
    outcome: RunOutcome,
    reason: str | None,
    now: datetime,
) -> bool:
    """Record a run's final outcome; False when another scheduler has taken it over."""
    return _update_own_run_now(
        engine, run_id, worker, outcome=outcome.value, reason=reason, finished_at=now
    )


def list_runs(conn: Connection, schedule_id: int, limit: int | None = None) -> list[RunRecord]:
    """A schedule's runs, newest occurrence first (at most ``limit``)."""
    query = (
        sa.select(schedule_runs)
        .where(schedule_runs.c.schedule_id == schedule_id)
        .order_by(schedule_runs.c.occurrence_at.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return [_run(row) for row in conn.execute(query)]


def previous_sent_run(conn: Connection, schedule_id: int, before: datetime) -> RunRecord | None:
    """The latest run of the schedule before ``before`` that sent an edition, if any."""
    row = conn.execute(
        sa.select(schedule_runs)
        .where(
            schedule_runs.c.schedule_id == schedule_id,
            schedule_runs.c.outcome == RunOutcome.SENT.value,
            schedule_runs.c.occurrence_at < before,
        )
        .order_by(schedule_runs.c.occurrence_at.desc())
        .limit(1)
    ).first()
    return None if row is None else _run(row)
