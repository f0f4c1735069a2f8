"""Reports: what an edition did, trends over a span, and both as a page with SVG charts.

:func:`edition_report` (delivery, bounces, complaints, unsubscribes and clicks of
one edition), :func:`trends` (list growth, unsubscribes per edition, clicks per
section) and :func:`report_page` (either, as one self-contained HTML page). They
read the outbox, the subscribers' history and the ``clicks`` table; they never
write. Their vocabulary is delivery's (:class:`~newsletter.delivery.outcomes.DeliveryStatus`).
"""

from __future__ import annotations

from newsletter.reports.editions import (
    ATTRIBUTION_WINDOW,
    ArticleClicks,
    EditionReport,
    edition_report,
)
from newsletter.reports.page import report_page
from newsletter.reports.trends import DayGrowth, EditionLine, SectionClicks, Trends, trends

__all__ = [
    "ATTRIBUTION_WINDOW",
    "ArticleClicks",
    "DayGrowth",
    "EditionLine",
    "EditionReport",
    "SectionClicks",
    "Trends",
    "edition_report",
    "report_page",
    "trends",
]
