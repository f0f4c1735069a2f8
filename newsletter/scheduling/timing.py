"""When schedules run: pure functions over aware datetimes, no database, no clock.

A schedule is either one-off (``--at``) or recurring (a cron expression read
in an IANA time zone). Cron fields match *local wall-clock* time, so a
``0 7 * * *`` digest in ``Europe/London`` goes at 07:00 GMT in winter and
07:00 BST in summer. Every instant this module returns is aware and in UTC.

Daylight-saving policy (the same for ``--at`` and for cron):

* **A wall time that does not exist** (the spring-forward gap, e.g. 01:30 on
  2026-03-29 in London) runs at the first valid instant after the gap, shifted
  forward by the gap: 01:30 becomes 02:30 BST. This is PEP 495's ``fold=0``
  reading (the offset in force before the change). If a shifted time lands on
  a time the schedule also matches, the two are one occurrence.
* **A wall time that happens twice** (the fall-back overlap, e.g. 01:30 on
  2026-10-25 in London) runs once, at its first occurrence (``fold=0``,
  01:30 BST = 00:30 UTC). The repeated hour is not run again, so an hourly
  schedule has one run fewer that night.

In each subscriber's own zone (``--subscriber-zone``): a run's cron wall time
(07:00 on a date) is reached first where the clock is furthest ahead, UTC+14;
the run's occurrence is that instant (:data:`EARLIEST_ZONE`), and each zone's
wave is the same wall time read in that zone by the rules above
(:func:`wave_instant`), so waves span :data:`WAVE_SPAN` at most.

What is due (see :func:`plan_due`): the latest occurrence not later than now
runs when it is less late than the lateness limit; every earlier unhandled
occurrence, and a latest one that is too late, is skipped with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from newsletter.core.errors import ScheduleError
from newsletter.core.times import parse_span, zone_info

__all__ = [
    "EARLIEST_ZONE",
    "WAVE_SPAN",
    "DuePlan",
    "Skip",
    "Timing",
    "describe_local",
    "format_delta",
    "get_zone",
    "is_ambiguous",
    "is_nonexistent",
    "next_run",
    "parse_at",
    "parse_cron",
    "parse_duration",
    "plan_due",
    "resolve_local",
    "wave_instant",
]

#: where a wall time comes first (UTC+14, no daylight saving): a wave run's occurrence
EARLIEST_ZONE = "Etc/GMT-14"
#: from the first zone's wall time to the last's (UTC+14 to UTC-12)
WAVE_SPAN = timedelta(hours=26)

_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def get_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Europe/London``); :class:`ScheduleError` when unknown."""
    return zone_info(name, field="--tz", error=ScheduleError)


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else get_zone(tz)


def parse_cron(expr: str) -> str:
    """Check a five-field cron expression (or ``@daily`` and friends) and return it tidied."""
    text = " ".join(expr.split())
    if text.lower() in _ALIASES:
        return text.lower()
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        raise ScheduleError(
            f"{expr!r} is not a cron expression (five fields: minute hour day month weekday,"
            " e.g. '0 7 * * *')",
            field="--cron",
        )
    try:
        croniter(text, datetime(2026, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise ScheduleError(
            f"cron expression {expr!r} never matches a date", field="--cron"
        ) from None
    return text


def parse_duration(text: str) -> timedelta:
    """A span (``90m``, ``24h``, ``2d``, ``1d12h``) as a timedelta; :class:`ScheduleError` else."""
    span = parse_span(text)
    if span is None or span <= timedelta():
        raise ScheduleError(
            f"{text!r} is not a duration (a positive span: 90m, 24h, 2d, 1w)", field="--since"
        )
    return span


def is_nonexistent(wall: datetime, tz: str | ZoneInfo) -> bool:
    """True when the naive local time ``wall`` falls in a spring-forward gap in ``tz``."""
    zone = _zone(tz)
    aware = wall.replace(tzinfo=zone, fold=0)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall.replace(fold=0)


def is_ambiguous(wall: datetime, tz: str | ZoneInfo) -> bool:
    """True when the naive local time ``wall`` happens twice in ``tz`` (a fall-back overlap)."""
    zone = _zone(tz)
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    return first.utcoffset() != second.utcoffset() and not is_nonexistent(wall, zone)


def resolve_local(wall: datetime, tz: str | ZoneInfo) -> datetime:
    """The UTC instant at which the naive local time ``wall`` in ``tz`` runs.

    Gap times are shifted forward by the gap; ambiguous times take their first
    occurrence. Both are the PEP 495 ``fold=0`` reading, stated here as policy.
    """
    if wall.tzinfo is not None:
        raise ValueError("resolve_local takes a naive local wall time")
    return wall.replace(tzinfo=_zone(tz), fold=0).astimezone(UTC)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")


_GAP_LOOKBACK = timedelta(hours=3)  # longer than any clock change on record


def _recent_gap(after: datetime, zone: ZoneInfo) -> timedelta:
    """How far clocks jumped forward in the hours before ``after`` (zero if they did not)."""
    before = (after - _GAP_LOOKBACK).astimezone(zone).utcoffset()
    now = after.astimezone(zone).utcoffset()
    assert before is not None
    assert now is not None
    return max(now - before, timedelta())


def next_run(cron: str, tz: str | ZoneInfo, after: datetime) -> datetime:
    """The first occurrence of ``cron`` in zone ``tz`` strictly after ``after``, in UTC.

    ``after`` must be aware. Cron fields match local wall time; the DST policy
    of this module's docstring decides gap and repeated times.
    """
    _require_aware(after, "after")
    zone = _zone(tz)
    # Start from the local wall time of `after`; in a fall-back overlap's second
    # pass this wall time repeats, and fold=0 candidates are then already past.
    # Just after a spring-forward gap, a gap time shifted forward may still be
    # ahead although its wall time is behind, so start that much earlier.
    start = after.astimezone(zone).replace(tzinfo=None, fold=0) - _recent_gap(after, zone)
    try:
        walls = croniter(cron, start)
        best: datetime | None = None
        best_wall: datetime | None = None
        while True:
            wall = walls.get_next(datetime)
            # A gap time shifted forward can land later than a valid time that
            # follows it, so keep going until no later wall time could beat it.
            if best_wall is not None and wall >= best_wall:
                return best  # type: ignore[return-value]
            instant = resolve_local(wall, zone)
            if instant > after and (best is None or instant < best):
                best = instant
                best_wall = instant.astimezone(zone).replace(tzinfo=None)
    except (CroniterBadCronError, CroniterBadDateError, CroniterError):
        raise ScheduleError(f"cron expression {cron!r} has no next run", field="--cron") from None


def parse_at(text: str, tz: str | ZoneInfo) -> datetime:
    """Parse a one-off ``--at`` time into a UTC instant.

    Accepts ISO 8601 ``2026-03-29 07:00`` (or with ``T`` and seconds); a time
    without an offset is local to ``tz`` and follows the DST policy, one with
    an offset (``+01:00`` or ``Z``) means exactly that instant.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScheduleError(
            f"{text!r} is not a date and time (use e.g. '2026-03-29 07:00')", field="--at"
        ) from None
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    return resolve_local(value, tz)


def describe_local(instant: datetime, tz: str | ZoneInfo) -> str:
    """``2026-03-29 02:30 BST`` : an instant shown in the schedule's zone."""
    return f"{instant.astimezone(_zone(tz)):%Y-%m-%d %H:%M %Z}"


def format_delta(delta: timedelta) -> str:
    """A short human duration: ``2h05m``, ``45m``, ``3d4h``."""
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{int(delta.total_seconds())}s"


def wave_instant(occurrence: datetime, zone: str | ZoneInfo) -> datetime:
    """When a wave run's wall time (its occurrence read in :data:`EARLIEST_ZONE`) comes
    in ``zone``, in UTC, with this module's gap and fold rules."""
    wall = occurrence.astimezone(_zone(EARLIEST_ZONE)).replace(tzinfo=None)
    return resolve_local(wall, zone)


@dataclass(frozen=True)
class Timing:
    """When a schedule fires: once at ``run_at``, or on ``cron`` in zone ``tz``.

    ``subscriber_zone``: a cron run's occurrences are its wall times where they come
    first (:data:`EARLIEST_ZONE`); each reader's wave follows (:func:`wave_instant`).
    """

    kind: Literal["once", "cron"]
    tz: str
    run_at: datetime | None = None
    cron: str | None = None
    subscriber_zone: bool = False

    def first_after(self, after: datetime) -> datetime | None:
        """The first occurrence strictly after ``after``, or None when there is none."""
        if self.kind == "once":
            assert self.run_at is not None
            return self.run_at if self.run_at > after else None
        assert self.cron is not None
        return next_run(self.cron, EARLIEST_ZONE if self.subscriber_zone else self.tz, after)


@dataclass(frozen=True)
class Skip:
    """An occurrence that will not run, and why."""

    occurrence_at: datetime
    reason: str


@dataclass(frozen=True)
class DuePlan:
    """What to do now: at most one occurrence to run, the ones to skip, the new watermark.

    ``handled_until`` is the latest occurrence this plan deals with (None when
    nothing is due); ``complete`` is False when ``limit`` cut the plan short and
    another plan from ``handled_until`` is needed.
    """

    run: datetime | None = None
    skipped: list[Skip] = field(default_factory=list)
    handled_until: datetime | None = None
    complete: bool = True


def plan_due(
    timing: Timing,
    *,
    handled_until: datetime | None,
    created_at: datetime,
    now: datetime,
    max_lateness: timedelta,
    limit: int = 500,
) -> DuePlan:
    """Decide which unhandled occurrences up to ``now`` run and which are skipped.

    Occurrences strictly after ``handled_until`` are unhandled (for a recurring
    schedule never handled, those after ``created_at``; a one-off schedule's
    time is unhandled until handled). The latest one not after ``now`` runs if
    it is less late than ``max_lateness``; the others are skipped, as
    superseded by it or as too late. At most ``limit`` occurrences per plan.
    """
    _require_aware(now, "now")
    if handled_until is not None:
        after = handled_until
    elif timing.kind == "once":
        after = datetime.min.replace(tzinfo=UTC)
    else:
        after = created_at
    due: list[datetime] = []
    complete = True
    occurrence = timing.first_after(after)
    while occurrence is not None and occurrence <= now:
        due.append(occurrence)
        if len(due) >= limit:
            complete = False
            break
        occurrence = timing.first_after(occurrence)
    if not due:
        return DuePlan()
    latest = due[-1]
    run: datetime | None = None
    skipped: list[Skip] = []
    if complete and now - latest < max_lateness:
        run = latest
    for moment in due:
        if moment == run:
            continue
        late = now - moment
        if late >= max_lateness:
            reason = f"missed: {format_delta(late)} late (limit {format_delta(max_lateness)})"
        elif run is not None:
            reason = f"superseded by the occurrence at {describe_local(run, timing.tz)}"
        else:
            reason = "superseded by a later occurrence"
        skipped.append(Skip(moment, reason))
    return DuePlan(run=run, skipped=skipped, handled_until=latest, complete=complete)
