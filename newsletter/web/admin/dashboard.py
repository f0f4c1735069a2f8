"""The console's dashboard: what runs next, how the last editions went, the list, and alerts.

The last editions show their readers who clicked and the click-through rate
(per message sent) whenever click tracking is on. With several newsletters, the
list's size is also shown per newsletter (the growth chart stays the total).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.content.editions import list_editions
from newsletter.content.models import Edition, EditionStatus
from newsletter.core.db import utcnow
from newsletter.core.schema import deliveries
from newsletter.delivery import outbox
from newsletter.delivery.outcomes import DeliveryStatus
from newsletter.scheduling.store import ScheduleRecord, ScheduleStatus, list_schedules
from newsletter.web.admin.charts import LineChart, line_chart
from newsletter.web.admin.context import Visit, admin_of, render, view
from newsletter.web.admin.lists import names, several
from newsletter.web.admin.reports import ClickSummary, click_summary
from newsletter.web.admin.roles import Role
from subscribers.schema import subscriber_events, subscribers
from subscribers.states import SubscriberStatus
from subscribers.store import count_by_status
from subscribers.subscriptions import counts as subscription_counts

__all__ = [
    "EditionLine",
    "NewsletterSize",
    "NextRun",
    "dashboard",
    "edition_line",
    "edition_lines",
    "growth",
    "next_runs",
    "per_newsletter",
    "quarantined",
]

_D = deliveries.c


@dataclass(frozen=True)
class NextRun:
    """A schedule's next occurrence."""

    at: datetime
    schedule: ScheduleRecord


@dataclass(frozen=True)
class EditionLine:
    """One edition's results: sent, bounced, complaints and unsubscribes after it."""

    edition: Edition
    total: int
    sent: int
    bounced: int
    failed: int
    complaints: int
    unsubscribes: int


def next_runs(conn: Connection, now: datetime, limit: int = 5) -> list[NextRun]:
    """The next occurrence of each active schedule, soonest first."""
    runs = []
    for schedule in list_schedules(conn, (ScheduleStatus.ACTIVE,)):
        at = schedule.timing.first_after(max(now, schedule.handled_until or now))
        if at is not None:
            runs.append(NextRun(at, schedule))
    return sorted(runs, key=lambda r: r.at)[:limit]


def _after(conn: Connection, edition_id: str, kind: str) -> int:
    # people who had this edition and then did `kind` (unsubscribed, complained)
    query = (
        sa.select(sa.func.count(sa.distinct(subscriber_events.c.subscriber_id)))
        .select_from(
            subscriber_events.join(
                deliveries, _D.subscriber_id == subscriber_events.c.subscriber_id
            )
        )
        .where(
            _D.edition_id == edition_id,
            _D.status == DeliveryStatus.SENT.value,
            subscriber_events.c.kind == kind,
            subscriber_events.c.at >= _D.sent_at,
        )
    )
    return int(conn.execute(query).scalar_one())


def edition_line(conn: Connection, edition: Edition) -> EditionLine:
    """One edition's delivery results (its report)."""
    counts = outbox.counts(conn, edition.id)
    bounced = conn.execute(
        sa.select(sa.func.count()).where(
            _D.edition_id == edition.id,
            _D.status == DeliveryStatus.FAILED.value,
            _D.last_code >= 500,
        )
    ).scalar_one()
    return EditionLine(
        edition=edition,
        total=sum(counts.values()),
        sent=counts[DeliveryStatus.SENT],
        bounced=int(bounced),
        failed=counts[DeliveryStatus.FAILED],
        complaints=_after(conn, edition.id, SubscriberStatus.COMPLAINED.value),
        unsubscribes=_after(conn, edition.id, SubscriberStatus.UNSUBSCRIBED.value),
    )


def edition_lines(conn: Connection, limit: int = 8) -> list[EditionLine]:
    """The newest editions with their delivery results."""
    editions = sorted(list_editions(conn), key=lambda e: e.created_at, reverse=True)[:limit]
    return [edition_line(conn, edition) for edition in editions]


def growth(conn: Connection, today: date, days: int = 30) -> list[tuple[date, int]]:
    """Confirmed subscribers at the end of each of the last ``days`` days (today last)."""
    start = today - timedelta(days=days - 1)
    since = datetime.combine(start, time.min, tzinfo=UTC)
    current = count_by_status(conn)[SubscriberStatus.CONFIRMED]
    change: dict[date, int] = {}
    s = subscribers.c
    for column, sign, still in (
        (s.confirmed_at, 1, None),
        (s.unsubscribed_at, -1, s.confirmed_at),
        (s.bounced_at, -1, s.confirmed_at),
        (s.complained_at, -1, s.confirmed_at),
    ):
        query = sa.select(column).where(column >= since)
        if still is not None:
            query = query.where(still.is_not(None))
        for (at,) in conn.execute(query):
            day = at.astimezone(UTC).date()
            change[day] = change.get(day, 0) + sign
    series = []
    size = current
    for offset in range(days):
        day = today - timedelta(days=offset)
        series.append((day, size))
        size -= change.get(day, 0)
    return list(reversed(series))


@dataclass(frozen=True)
class NewsletterSize:
    """One newsletter's list: receiving (confirmed and subscribed), subscribed, left."""

    confirmed: int
    subscribed: int
    unsubscribed: int


def per_newsletter(
    conn: Connection, configured: dict[str, str]
) -> list[tuple[str, NewsletterSize]]:
    """(name, size) of each configured newsletter (``configured``: name by id), in order."""
    found = subscription_counts(conn)
    empty = {"confirmed": 0, "subscribed": 0, "unsubscribed": 0}
    return [(name, NewsletterSize(**found.get(i, empty))) for i, name in configured.items()]


def quarantined(maildir: Path | None) -> int | None:
    """How many inbound messages were set aside as not understood (None: no Maildir set)."""
    if maildir is None:
        return None
    folder = maildir / ".Quarantine"
    return sum(
        1 for sub in ("new", "cur") if (folder / sub).is_dir() for p in (folder / sub).iterdir()
    )


@dataclass(frozen=True)
class _Board:
    runs: list[NextRun]
    lines: list[EditionLine]
    size: int
    by_status: dict[SubscriberStatus, int]
    chart: LineChart
    paused: list[Edition]
    quarantined: int | None
    clicks: dict[str, ClickSummary] | None  # by edition id; None when tracking is off
    per_newsletter: list[tuple[str, NewsletterSize]]  # empty with one newsletter


@view(Role.VIEWER)
async def dashboard(request: Request, visit: Visit) -> Response:
    """GET /admin/: the next runs, the last editions, the list's growth, what needs attention."""
    ctx = admin_of(request)

    def load() -> _Board:
        now = utcnow()
        with ctx.engine.connect() as conn:
            by_status = count_by_status(conn)
            editions = list_editions(conn)
            lines = edition_lines(conn)
            clicks = None
            if ctx.settings.track_clicks != "off":
                clicks = {
                    line.edition.id: click_summary(conn, line.edition.id, line.sent)
                    for line in lines
                }
            board = _Board(
                runs=next_runs(conn, now),
                lines=lines,
                size=by_status[SubscriberStatus.CONFIRMED],
                by_status=by_status,
                chart=line_chart(growth(conn, now.astimezone(UTC).date())),
                paused=[e for e in editions if e.status is EditionStatus.PAUSED],
                quarantined=quarantined(ctx.settings.inbound_maildir),
                clicks=clicks,
                per_newsletter=per_newsletter(conn, names(ctx.settings))
                if several(ctx.settings)
                else [],
            )
            conn.rollback()
        return board

    board = await run_in_threadpool(load)
    return render(
        request, "dashboard.html", visit.user, title="Dashboard", nav="dashboard", b=board
    )
