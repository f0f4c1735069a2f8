"""Waves: one edition, built once, delivered as each reader's zone reaches the time.

A run of a ``--subscriber-zone`` schedule has one wave per zone its newsletter's
readers live in (confirmed and subscribed to the schedule's newsletter; their
``timezone``, else the schedule's): another newsletter's readers make no wave. A wave's instant is
the run's wall time in that zone (:func:`newsletter.scheduling.timing.wave_instant`).
When a wave is due, its readers' outbox rows are written and the wave marked
``sent`` in one transaction; the outbox's primary key (edition, reader) makes
a repeated or overlapping wave harmless, so each reader gets the edition once.
A wave as late as the lateness limit is ``skipped``, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from newsletter.content.models import Edition
from newsletter.core.db import is_postgres
from newsletter.core.schema import schedule_runs, schedule_waves, schedules
from newsletter.delivery import outbox
from newsletter.delivery.outcomes import DeliveryStatus
from newsletter.delivery.waves import in_zones, zone_counts
from newsletter.scheduling.timing import format_delta, get_zone, wave_instant

__all__ = [
    "Wave",
    "WaveStep",
    "plan_waves",
    "summarise",
    "to_send",
    "waves_of_edition",
    "waves_of_run",
    "write_due",
]

_W = schedule_waves.c


class Wave(BaseModel):
    """One zone's wave of a run: when, and whether it went out."""

    model_config = ConfigDict(frozen=True)

    run_id: int
    zone: str
    wave_at: AwareDatetime
    status: str  # pending | sent | skipped
    reason: str | None
    recipients: int

    def describe(self) -> str:
        """``07:00 Europe/London (06:00 UTC) sent to 2``: for ``schedule show`` and ``status``."""
        local = self.wave_at.astimezone(get_zone(self.zone))
        text = f"{local:%Y-%m-%d %H:%M} {self.zone} ({self.wave_at:%H:%M} UTC) {self.status}"
        if self.status == "sent":
            text += f" to {self.recipients}"
        return text + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class WaveStep:
    """What one pass did to a run's waves: rows written, waves sent or skipped, what is left."""

    written: int
    sent: list[Wave]
    skipped: list[Wave]
    next_at: datetime | None  # the next pending wave, None when every wave is handled


def plan_waves(conn: Connection, run_id: int, occurrence: datetime, default_zone: str) -> None:
    """Add a pending wave for every zone the run's newsletter's readers live in now that
    the run has none for (the newsletter: the run's schedule's)."""
    dialect = postgresql if is_postgres(conn) else sqlite
    now = occurrence  # a wave row's first update time: the run's occurrence
    newsletter = conn.execute(
        sa.select(schedules.c.newsletter_id)
        .select_from(schedule_runs.join(schedules, schedules.c.id == schedule_runs.c.schedule_id))
        .where(schedule_runs.c.id == run_id)
    ).scalar_one()
    for zone in sorted(zone_counts(conn, default_zone, newsletter)):
        conn.execute(
            dialect.insert(schedule_waves)
            .values(
                run_id=run_id,
                zone=zone,
                wave_at=wave_instant(occurrence, zone),
                status="pending",
                recipients=0,
                updated_at=now,
            )
            .on_conflict_do_nothing()
        )


def waves_of_run(conn: Connection, run_id: int) -> list[Wave]:
    """The run's waves, earliest first."""
    query = sa.select(schedule_waves).where(_W.run_id == run_id).order_by(_W.wave_at, _W.zone)
    return [Wave.model_validate(dict(row._mapping)) for row in conn.execute(query)]


def waves_of_edition(conn: Connection, edition_id: str) -> list[Wave]:
    """The waves of the run that sends ``edition_id`` (none for an edition sent at once)."""
    run_ids = conn.execute(
        sa.select(schedule_runs.c.id).where(schedule_runs.c.edition_id == edition_id)
    ).scalars()
    return [wave for run_id in run_ids for wave in waves_of_run(conn, run_id)]


def write_due(
    conn: Connection,
    run_id: int,
    edition: Edition | None,
    *,
    now: datetime,
    max_lateness: timedelta,
    default_zone: str,
    repeat_window: timedelta | None,
) -> WaveStep:
    """Skip the pending waves as late as ``max_lateness``, write the outbox rows of the
    other due ones and mark them sent (with no ``edition`` yet, they wait); call it in
    one transaction."""
    # here, not at the top: `status` and `schedule show` read waves without the renderer
    from newsletter.delivery.compose import outbox_rows

    pending = [w for w in waves_of_run(conn, run_id) if w.status == "pending"]
    late = [w for w in pending if w.wave_at <= now and now - w.wave_at >= max_lateness]
    ready = [w for w in pending if w.wave_at <= now and w not in late]
    if edition is None:
        ready = []
    due = late + ready
    for wave in late:
        late_by, limit = format_delta(now - wave.wave_at), format_delta(max_lateness)
        why = f"missed: {late_by} late (limit {limit})"
        _mark(conn, wave, "skipped", why, 0, now)
    written = 0
    sent: list[Wave] = []
    for wave in ready:
        assert edition is not None  # no edition: nothing is ready
        rows = outbox_rows(
            conn,
            edition,
            repeat_window=repeat_window,
            now=now,
            only=in_zones(conn, [wave.zone], default_zone, edition.newsletter),
        )
        added = outbox.enqueue(conn, edition.id, rows, now)
        written += added
        sent.append(_mark(conn, wave, "sent", None, added, now))
    left = [w.wave_at for w in pending if w not in due]
    skipped = [w.model_copy(update={"status": "skipped"}) for w in late]
    return WaveStep(written, sent, skipped, min(left, default=None))


def _mark(
    conn: Connection, wave: Wave, status: str, reason: str | None, recipients: int, now: datetime
) -> Wave:
    conn.execute(
        sa.update(schedule_waves)
        .where(_W.run_id == wave.run_id, _W.zone == wave.zone)
        .values(status=status, reason=reason, recipients=recipients, updated_at=now)
    )
    return wave.model_copy(update={"status": status, "reason": reason, "recipients": recipients})


def to_send(conn: Connection, edition_id: str | None) -> int:
    """Rows of the edition waiting to be sent (queued or deferred)."""
    if edition_id is None:
        return 0
    counts = outbox.counts(conn, edition_id)
    return counts[DeliveryStatus.QUEUED] + counts[DeliveryStatus.DEFERRED]


def summarise(waves: list[Wave], next_at: datetime | None) -> str:
    """``waves: 2 sent (3 readers), 1 skipped; next wave 2026-03-29 11:00 UTC``."""
    sent = [w for w in waves if w.status == "sent"]
    skipped = [w for w in waves if w.status == "skipped"]
    text = f"waves: {len(sent)} sent ({sum(w.recipients for w in sent)} readers)"
    if skipped:
        text += f", {len(skipped)} skipped"
    if next_at is not None:
        text += f"; next wave {next_at:%Y-%m-%d %H:%M} UTC"
    return text
