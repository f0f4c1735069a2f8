"""Schedules in the database: add, get, list, pause, resume and cancel; attach an edition.

A schedule's ``handled_until`` is its watermark: every occurrence at or before
it has been claimed or skipped (see :mod:`newsletter.scheduling.claims`).

A one-off schedule's ``edition_id`` is the edition it sends. On a recurring
schedule, ``edition_id`` is an edition *attached* for its next run only: that
run sends it instead of building one, and the scheduler clears it as it takes
it (:func:`take_attached`); later runs build as before.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from newsletter.content.editions import get_edition, set_status
from newsletter.content.models import EditionKind, EditionStatus
from newsletter.core.errors import NotFoundError, ScheduleError, StateError
from newsletter.core.newsletters import DEFAULT_NEWSLETTER_ID
from newsletter.core.schema import schedules
from newsletter.scheduling.timing import Timing, describe_local

__all__ = [
    "BuildOptions",
    "ScheduleRecord",
    "ScheduleStatus",
    "add_schedule",
    "attach_edition",
    "attached_to",
    "detach_edition",
    "get_schedule",
    "list_schedules",
    "set_schedule_status",
    "take_attached",
]


class ScheduleStatus(StrEnum):
    """``active`` runs; ``paused`` waits; ``cancelled`` and ``done`` (one-off ran) are final."""

    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


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
    # at the cron's local time in each subscriber's own zone (else the schedule's), in waves
    subscriber_zone: bool = False


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
    newsletter_id: str = DEFAULT_NEWSLETTER_ID  # whose editions it builds (or sends)

    @property
    def timing(self) -> Timing:
        """When it fires, for :mod:`newsletter.scheduling.timing`."""
        return Timing(
            kind=self.kind,
            tz=self.timezone,
            run_at=self.run_at,
            cron=self.cron,
            subscriber_zone=self.build.subscriber_zone,
        )

    def describe(self) -> str:
        """``cron '0 7 * * *' Europe/London`` or ``once 2026-03-29 07:00 BST``."""
        if self.kind == "cron" and self.build.subscriber_zone:
            return f"cron {self.cron!r} in each subscriber's zone (else {self.timezone})"
        if self.kind == "cron":
            return f"cron {self.cron!r} {self.timezone}"
        assert self.run_at is not None
        return f"once {describe_local(self.run_at, self.timezone)}"

    def describe_what(self) -> str:
        """``edition 2026-03-29-daily`` or ``build daily, topics uk, politics``.

        Recurring with an attached edition: ``edition X at the next run, then build ...``.
        """
        topics = ", ".join(self.build.topics) or "all topics"
        built = f"build {self.build.kind.value} ({topics})"
        if self.edition_id and self.kind == "cron":
            return f"edition {self.edition_id} at the next run, then {built}"
        if self.edition_id:
            return f"edition {self.edition_id}"
        return built


def _schedule(row: sa.Row[Any]) -> ScheduleRecord:
    return ScheduleRecord.model_validate(
        {**row._mapping, "build": BuildOptions.model_validate(row.build)}
    )


def add_schedule(
    conn: Connection,
    *,
    timing: Timing,
    now: datetime,
    edition_id: str | None = None,
    build: BuildOptions | None = None,
    newsletter: str = DEFAULT_NEWSLETTER_ID,
) -> ScheduleRecord:
    """Store a new active schedule and return it.

    A fixed ``edition_id`` (a draft, or already scheduled) goes with a one-off
    ``timing`` and is marked scheduled for that time. Raises
    :class:`ScheduleError` for an edition with a recurring timing and
    :class:`StateError` for an edition that is sending, sent or cancelled. Its editions
    belong to ``newsletter`` (an id checked by the caller), a fixed edition's to its own.
    """
    build = build or BuildOptions()
    if build.subscriber_zone and timing.kind != "cron":
        raise ScheduleError(
            "sending in each subscriber's zone needs a recurring time (--cron)",
            field="subscriber-zone",
        )
    if edition_id is not None:
        if timing.kind != "once":
            raise ScheduleError(
                "an edition is sent once: it needs a one-off time, not a cron expression",
                field="edition",
            )
        found = get_edition(conn, edition_id)
        if found.status not in {EditionStatus.DRAFT, EditionStatus.SCHEDULED}:
            raise StateError(f"edition {found.id} is {found.status.value}; it cannot be scheduled")
        holder = attached_to(conn, found.id)
        if holder is not None:
            raise StateError(
                f"edition {found.id} is attached to schedule {holder.id}; detach it first"
            )
        set_status(conn, found.id, EditionStatus.SCHEDULED, now=now, scheduled_at=timing.run_at)
        newsletter = found.newsletter
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
            newsletter_id=newsletter,
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
    schedule was paused are not run afterwards. Cancelling a schedule of a fixed
    edition that has not gone out puts that edition back to being a draft.
    """
    current = get_schedule(conn, schedule_id)
    allowed, target = _TRANSITIONS[action]
    if current.status not in allowed:
        raise StateError(f"schedule {schedule_id} is {current.status.value}; cannot {action} it")
    values: dict[str, object] = {"status": target.value, "updated_at": now}
    if action == "resume" and current.kind == "cron":
        values["handled_until"] = max(filter(None, [current.handled_until, now]))
    conn.execute(sa.update(schedules).where(schedules.c.id == schedule_id).values(**values))
    if action == "cancel" and current.edition_id is not None:
        edition = get_edition(conn, current.edition_id)
        if edition.status is EditionStatus.SCHEDULED:
            set_status(conn, edition.id, EditionStatus.DRAFT, now=now)
    return get_schedule(conn, schedule_id)


_HOLDING = (ScheduleStatus.ACTIVE.value, ScheduleStatus.PAUSED.value)


def attached_to(conn: Connection, edition_id: str) -> ScheduleRecord | None:
    """The active or paused recurring schedule whose next run sends ``edition_id``, if any."""
    row = conn.execute(
        sa.select(schedules).where(
            schedules.c.kind == "cron",
            schedules.c.edition_id == edition_id,
            schedules.c.status.in_(_HOLDING),
        )
    ).first()
    return None if row is None else _schedule(row)


def attach_edition(
    conn: Connection, schedule_id: int, edition_id: str, now: datetime
) -> ScheduleRecord:
    """Have the next run of recurring schedule ``schedule_id`` send ``edition_id`` (a draft).

    The edition becomes ``scheduled`` for that run; an edition attached before
    goes back to being a draft. Raises :class:`ScheduleError` for a one-off
    schedule and :class:`StateError` for a schedule that is not active, one of
    another newsletter, or an edition that is not a draft (scheduled elsewhere,
    sending, sent, cancelled).
    """
    schedule = get_schedule(conn, schedule_id)
    if schedule.kind != "cron":
        raise ScheduleError(
            f"schedule {schedule_id} runs once; attach to a recurring schedule", field="schedule"
        )
    if schedule.status is not ScheduleStatus.ACTIVE:
        raise StateError(f"schedule {schedule_id} is {schedule.status.value}; cannot attach to it")
    edition = get_edition(conn, edition_id)
    if schedule.edition_id == edition.id:
        return schedule
    if edition.newsletter != schedule.newsletter_id:
        raise StateError(
            f"edition {edition.id} is for newsletter {edition.newsletter!r} and schedule "
            f"{schedule_id} for {schedule.newsletter_id!r}; attach it to one of its own"
        )
    if edition.status is not EditionStatus.DRAFT:
        raise StateError(
            f"edition {edition.id} is {edition.status.value}; only a draft can be attached"
        )
    if schedule.edition_id is not None:
        _back_to_draft(conn, schedule.edition_id, now)
    after = max(filter(None, [now, schedule.handled_until]))
    set_status(
        conn,
        edition.id,
        EditionStatus.SCHEDULED,
        now=now,
        scheduled_at=schedule.timing.first_after(after),
    )
    conn.execute(
        sa.update(schedules)
        .where(schedules.c.id == schedule_id)
        .values(edition_id=edition.id, updated_at=now)
    )
    return get_schedule(conn, schedule_id)


def detach_edition(conn: Connection, schedule_id: int, now: datetime) -> str:
    """Take the attached edition off recurring schedule ``schedule_id``; it becomes a draft.

    Returns the edition's id; :class:`StateError` when nothing is attached.
    """
    schedule = get_schedule(conn, schedule_id)
    if schedule.kind != "cron" or schedule.edition_id is None:
        raise StateError(f"schedule {schedule_id} has no edition attached")
    conn.execute(
        sa.update(schedules)
        .where(schedules.c.id == schedule_id)
        .values(edition_id=None, updated_at=now)
    )
    _back_to_draft(conn, schedule.edition_id, now)
    return schedule.edition_id


def take_attached(conn: Connection, schedule_id: int, now: datetime) -> str | None:
    """The edition attached to a recurring schedule, cleared from it (for the run sending it).

    None when nothing is attached, or when the attached edition is no longer a
    draft or scheduled (sent by hand meanwhile): then the run builds as usual.
    """
    schedule = get_schedule(conn, schedule_id)
    if schedule.kind != "cron" or schedule.edition_id is None:
        return None
    conn.execute(
        sa.update(schedules)
        .where(schedules.c.id == schedule_id, schedules.c.edition_id == schedule.edition_id)
        .values(edition_id=None, updated_at=now)
    )
    edition = get_edition(conn, schedule.edition_id)
    if edition.status not in {EditionStatus.DRAFT, EditionStatus.SCHEDULED}:
        return None
    return edition.id


def _back_to_draft(conn: Connection, edition_id: str, now: datetime) -> None:
    try:
        edition = get_edition(conn, edition_id)
    except NotFoundError:
        return
    if edition.status is EditionStatus.SCHEDULED:
        set_status(conn, edition.id, EditionStatus.DRAFT, now=now)
