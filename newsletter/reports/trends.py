"""Trends over a span: list growth per day, each edition's results, clicks per section.

Growth counts, per local day, the people who became confirmed subscribers (a
``confirmed`` event, or ``created`` already confirmed) against those who left a
confirmed subscription (``unsubscribed``, ``bounced``, ``complained``). Each
edition first sent within the span gets one line from
:func:`~newsletter.reports.editions.edition_report` (same attribution rules).
Clicks per section count the readers' (``human``) clicks made within the span,
by the section of the article clicked.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from newsletter.core.schema import articles, clicks, deliveries
from newsletter.reports.editions import clicker, edition_report
from subscribers.schema import subscriber_events

__all__ = ["DayGrowth", "EditionLine", "SectionClicks", "Trends", "trends"]

_LEFT = ("unsubscribed", "bounced", "complained")


class DayGrowth(BaseModel):
    """One local day of the list: people who joined and people who left."""

    day: date
    joined: int = 0
    left: int = 0


class EditionLine(BaseModel):
    """One edition sent within the span, in short."""

    edition_id: str
    subject: str
    first_sent_at: datetime | None
    delivered: int
    unsubscribes: int
    complaints: int
    unique_clickers: int
    click_through_rate: float | None


class SectionClicks(BaseModel):
    """Readers' clicks on the stories of one section."""

    section: str
    clicks: int
    unique_clicks: int


class Trends(BaseModel):
    """What :func:`trends` found between ``since`` and ``until``."""

    since: datetime
    until: datetime
    joined: int
    left: int
    growth: list[DayGrowth]
    editions: list[EditionLine]
    sections: list[SectionClicks]


def _growth(conn: Connection, since: datetime, now: datetime, zone: tzinfo) -> list[DayGrowth]:
    first, last = since.astimezone(zone).date(), now.astimezone(zone).date()
    days = {first + timedelta(days=n): DayGrowth(day=first + timedelta(days=n))
            for n in range((last - first).days + 1)}  # fmt: skip
    e = subscriber_events.c
    query = sa.select(e.at, e.kind, e.detail).where(
        e.at >= since, e.at <= now, e.kind.in_(("created", "confirmed", *_LEFT))
    )
    for at, kind, detail in conn.execute(query):
        found = days.get(at.astimezone(zone).date())
        info = detail if isinstance(detail, dict) else {}
        if found is None:
            continue
        if kind == "confirmed" or (kind == "created" and info.get("status") == "confirmed"):
            found.joined += 1
        elif kind in _LEFT and info.get("previous", "confirmed") == "confirmed":
            found.left += 1
    return list(days.values())


def _sections(conn: Connection, since: datetime, now: datetime) -> list[SectionClicks]:
    c = clicks.c
    section = sa.func.coalesce(articles.c.section, "(unknown)")
    query = (
        sa.select(section, sa.func.count(), sa.func.count(sa.distinct(clicker())))
        .select_from(clicks.outerjoin(articles, articles.c.id == c.article_id))
        .where(c.kind == "human", c.at >= since, c.at <= now)
        .group_by(section)
    )
    found = [
        SectionClicks(section=s, clicks=int(n), unique_clicks=int(u))
        for s, n, u in conn.execute(query)
    ]
    return sorted(found, key=lambda s: (-s.clicks, s.section))


def trends(conn: Connection, *, since: datetime, now: datetime, zone: tzinfo = UTC) -> Trends:
    """List growth, each edition's results and clicks per section from ``since`` to ``now``.

    Days are ``zone``'s local days.
    """
    d = deliveries.c
    first = sa.func.min(d.sent_at)
    sent = conn.execute(
        sa.select(d.edition_id, first)
        .where(d.sent_at.is_not(None))
        .group_by(d.edition_id)
        .having(first >= since, first <= now)
        .order_by(first)
    ).all()
    lines = []
    for edition_id, _ in sent:
        report = edition_report(conn, edition_id)
        lines.append(EditionLine(**report.model_dump(include=set(EditionLine.model_fields))))
    growth = _growth(conn, since, now, zone)
    return Trends(
        since=since,
        until=now,
        joined=sum(g.joined for g in growth),
        left=sum(g.left for g in growth),
        growth=growth,
        editions=lines,
        sections=_sections(conn, since, now),
    )
