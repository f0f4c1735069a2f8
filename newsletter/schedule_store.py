"""Schedules and their runs in the database: add, list, pause, and the claim.

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
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from newsletter.errors import NotFoundError, StateError
from newsletter.models import EditionKind
from newsletter.schedule import DuePlan, Skip, Timing
from newsletter.schema import schedule_runs, schedules

__all__ = [
    "BuildOptions",
    "Claim",
    "RunOutcome",
    "RunRecord",
    "ScheduleRecord",
    "ScheduleStatus",
    "add_schedule",
    "finish_run",
    "get_schedule",
    "list_runs",
    "list_schedules",
    "previous_sent_run",
    "record_plan",
    "release_run",
    "renew_lease",
    "set_run_edition",
    "set_schedule_status",
    "take_over_runs",
]


class ScheduleStatus(StrEnum):
    """``active`` runs; ``paused`` waits; ``cancelled`` and ``done`` (one-off ran) are final."""

    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


class RunOutcome(StrEnum):
    """An occurrence's outcome: ``running`` until it is ``sent``, ``skipped`` or ``failed``."""

    RUNNING = "running"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


class BuildOptions(BaseModel):
    """How a schedule builds its edition when it has no fixed one.

    ``since`` is the article window of the first run and the longest window of
    any run; later runs take the articles published since the previous send.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: timedelta = timedelta(hours=24)
    topics: list[str] = Field(default_factory=list)
    kind: EditionKind = EditionKind.DAILY
    title: str | None = None


class ScheduleRecord(BaseModel):
    """One stored schedule."""

    model_config = ConfigDict(frozen=True)

    id: int
    kind: Literal["once", "cron"]
    run_at: AwareDatetime | None
    cron: str | None
    timezone: str
    edition_id: str | None
    build: BuildOptions
    status: ScheduleStatus
    created_at: AwareDatetime
    updated_at: AwareDatetime
    handled_until: AwareDatetime | None

    @property
    def timing(self) -> Timing:
        """When it fires, for :mod:`newsletter.schedule`."""
        return Timing(kind=self.kind, tz=self.timezone, run_at=self.run_at, cron=self.cron)

    def describe(self) -> str:
        """``cron '0 7 * * *' Europe/London`` or ``once 2026-03-29 07:00 BST``."""
        if self.kind == "cron":
            return f"cron {self.cron!r} {self.timezone}"
        from newsletter.schedule import describe_local

        assert self.run_at is not None
        return f"once {describe_local(self.run_at, self.timezone)}"

    def describe_what(self) -> str:
        """``edition 2026-03-29-daily`` or ``build daily, topics uk, politics``."""
        if self.edition_id:
            return f"edition {self.edition_id}"
        topics = ", ".join(self.build.topics) or "all topics"
        return f"build {self.build.kind.value} ({topics})"


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


def _schedule(row: sa.Row[Any]) -> ScheduleRecord:
    return ScheduleRecord.model_validate(
        {**row._mapping, "build": BuildOptions.model_validate(row.build)}
    )


def _run(row: sa.Row[Any]) -> RunRecord:
    return RunRecord.model_validate(dict(row._mapping))


def add_schedule(
    conn: Connection,
    *,
    timing: Timing,
    now: datetime,
    edition_id: str | None = None,
    build: BuildOptions | None = None,
) -> ScheduleRecord:
    """Store a new active schedule and return it."""
    build = build or BuildOptions()
    result = conn.execute(
        schedules.insert().values(
            kind=timing.kind,
            run_at=timing.run_at,
            cron=timing.cron,
            timezone=timing.tz,
            edition_id=edition_id,
            build=build.model_dump(mode="json"),
            status=ScheduleStatus.ACTIVE.value,
            created_at=now,
            updated_at=now,
            handled_until=None,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return get_schedule(conn, int(key[0]))


def get_schedule(conn: Connection, schedule_id: int) -> ScheduleRecord:
    """The schedule ``schedule_id``; :class:`NotFoundError` when there is none."""
    row = conn.execute(sa.select(schedules).where(schedules.c.id == schedule_id)).first()
    if row is None:
        raise NotFoundError(f"no schedule {schedule_id}")
    return _schedule(row)


def list_schedules(
    conn: Connection, statuses: tuple[ScheduleStatus, ...] | None = None
) -> list[ScheduleRecord]:
    """Schedules in id order, optionally only those with one of ``statuses``."""
    query = sa.select(schedules).order_by(schedules.c.id)
    if statuses is not None:
        query = query.where(schedules.c.status.in_([s.value for s in statuses]))
    return [_schedule(row) for row in conn.execute(query)]


_TRANSITIONS: dict[str, tuple[set[ScheduleStatus], ScheduleStatus]] = {
    "pause": ({ScheduleStatus.ACTIVE}, ScheduleStatus.PAUSED),
    "resume": ({ScheduleStatus.PAUSED}, ScheduleStatus.ACTIVE),
    "cancel": ({ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED}, ScheduleStatus.CANCELLED),
}


def set_schedule_status(
    conn: Connection, schedule_id: int, action: Literal["pause", "resume", "cancel"], now: datetime
) -> ScheduleRecord:
    """Pause, resume or cancel a schedule; :class:`StateError` when its status forbids it.

    Resuming moves the watermark to ``now``: occurrences that fell while the
    schedule was paused are not run afterwards.
    """
    current = get_schedule(conn, schedule_id)
    allowed, target = _TRANSITIONS[action]
    if current.status not in allowed:
        raise StateError(f"schedule {schedule_id} is {current.status.value}; cannot {action} it")
    values: dict[str, object] = {"status": target.value, "updated_at": now}
    if action == "resume" and current.kind == "cron":
        values["handled_until"] = max(filter(None, [current.handled_until, now]))
    conn.execute(sa.update(schedules).where(schedules.c.id == schedule_id).values(**values))
    return get_schedule(conn, schedule_id)


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
