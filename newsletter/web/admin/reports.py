"""An edition's report in the console: delivery, complaints, unsubscribes and clicks.

The numbers are :func:`newsletter.reports.edition_report`'s, the same as
``newsletter report EDITION``; the charts are :mod:`newsletter.reports.charts`'
server-drawn SVG: readers per story, and clicks hour by hour over the two days
after the first message went out (readers' clicks up, link scanners' down).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from markupsafe import Markup
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.content.editions import get_edition
from newsletter.core.schema import clicks
from newsletter.reports.charts import bar_chart, diverging_columns
from newsletter.reports.editions import EditionReport, clicker, edition_report
from newsletter.web.admin.context import Visit, admin_of, render, view
from newsletter.web.admin.roles import Role

__all__ = ["HOURS", "ClickSummary", "click_summary", "hourly_clicks", "report_page", "routes"]

#: how many hours after the first send the clicks-over-time chart covers
HOURS = 48


@dataclass(frozen=True)
class ClickSummary:
    """An edition's readers who clicked, and the share of the messages sent that it makes."""

    unique: int
    rate: float | None


def click_summary(conn: Connection, edition_id: str, sent: int) -> ClickSummary:
    """Unique readers' (human) clicks of an edition, and their rate per message sent."""
    unique = conn.execute(
        sa.select(sa.func.count(sa.distinct(clicker()))).where(
            clicks.c.edition_id == edition_id, clicks.c.kind == "human"
        )
    ).scalar_one()
    return ClickSummary(int(unique), round(unique / sent, 4) if sent else None)


def hourly_clicks(
    conn: Connection, edition_id: str, start: datetime, hours: int = HOURS
) -> tuple[list[str], list[int], list[int]]:
    """Readers' and scanners' clicks per hour from ``start``: (labels, human, scanner)."""
    human, scanner = [0] * hours, [0] * hours
    query = sa.select(clicks.c.at, clicks.c.kind).where(
        clicks.c.edition_id == edition_id,
        clicks.c.at >= start,
        clicks.c.at < start + timedelta(hours=hours),
    )
    for at, kind in conn.execute(query):
        slot = int((at - start).total_seconds() // 3600)
        (human if kind == "human" else scanner)[slot] += 1
    labels = [f"{start + timedelta(hours=h):%d %b %H:00} UTC" for h in range(hours)]
    return labels, human, scanner


@dataclass(frozen=True)
class _Page:
    report: EditionReport
    headlines: dict[str, str]
    readers: Markup
    over_time: Markup | None


@view(Role.VIEWER)
async def report_page(request: Request, visit: Visit) -> Response:
    """GET /admin/editions/{id}/report: the numbers, clicks per story, and clicks over time."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])

    def load() -> _Page:
        with ctx.engine.connect() as conn:
            edition = get_edition(conn, edition_id)
            found = edition_report(conn, edition.id)
            headlines = {a.id: a.headline for a in edition.articles()}
            readers = bar_chart(
                "Readers per story (unique clicks)",
                [(headlines.get(a.id, a.id), a.unique_clicks) for a in found.articles],
            )
            over_time: str | None = None
            if found.first_sent_at is not None:
                start = found.first_sent_at.replace(minute=0, second=0, microsecond=0)
                labels, human, scanner = hourly_clicks(conn, edition.id, start)
                over_time = diverging_columns(
                    f"Clicks per hour over the first {HOURS} hours",
                    labels,
                    human,
                    scanner,
                    names=("readers", "scanners"),
                )
            conn.rollback()
        # the charts escape every label they draw (newsletter.reports.charts)
        drawn = Markup(readers)  # noqa: S704
        return _Page(found, headlines, drawn, Markup(over_time) if over_time else None)  # noqa: S704

    page = await run_in_threadpool(load)
    rate: Any = page.report.click_through_rate
    return render(
        request,
        "report.html",
        visit.user,
        title=f"Report: {page.report.subject}",
        nav="editions",
        r=page.report,
        headlines=page.headlines,
        readers=page.readers,
        over_time=page.over_time,
        rate="n/a" if rate is None else f"{rate * 100:.1f}%",
        tracking=ctx.settings.track_clicks,
    )


def routes() -> list[Route]:
    """The report route (relative to ``/admin``)."""
    return [Route("/editions/{edition_id}/report", report_page, methods=["GET"])]
