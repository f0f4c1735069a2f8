"""``newsletter report``: what an edition did, or trends over a span, as text, JSON or a page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from newsletter.cli.common import get_engine, get_settings, out, plural
from newsletter.cli.tables import Column, print_list
from newsletter.core.errors import InputError

if TYPE_CHECKING:
    from newsletter.reports import EditionReport, Trends

__all__ = ["register", "report"]


def _rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def _print_edition(found: EditionReport) -> None:
    out.print(f"{found.edition_id}: {found.subject} ({found.status})", markup=False)
    names = ("recipients", "sent", "delivered", "deferred", "failed", "unknown", "skipped",
             "bounced", "complaints", "unsubscribes", "clicks", "unique_clickers",
             "scanner_clicks")  # fmt: skip
    rows = [[name.replace("_", " "), f"{getattr(found, name):,}"] for name in names]
    rows.append(["click-through rate", _rate(found.click_through_rate)])
    print_list(
        [Column("measure"), Column("count", right=True)],
        rows,
        plural(found.recipients, "recipient"),
    )
    stories = [
        [a.id, a.section, f"{a.clicks:,}", f"{a.unique_clicks:,}", f"{a.scanner_clicks:,}"]
        for a in found.articles
    ]
    columns = [Column("story", key=True), Column("section")]
    columns += [Column(name, right=True) for name in ("clicks", "unique", "scanners")]
    print_list(columns, stories, plural(len(stories), "story", "stories"))
    test = found.subject_test
    if test is not None:
        if test.winner is not None and test.decided_at is not None:
            when = f"{test.winner} won, decided {test.decided_at:%Y-%m-%d %H:%M} UTC"
        else:
            when = f"to be decided {test.decide_at:%Y-%m-%d %H:%M} UTC"
        out.print(f"subject-line test on {test.share}% of the recipients: {when}", markup=False)
        arms = [
            [a.arm + (" (won)" if a.won else ""), f"{a.recipients:,}", f"{a.sent:,}",
             f"{a.unique_clicks:,}", _rate(a.rate), a.subject]
            for a in test.arms
        ]  # fmt: skip
        columns = [Column("arm", key=True)]
        columns += [Column(n, right=True) for n in ("recipients", "sent", "unique", "rate")]
        print_list([*columns, Column("subject", flex=True)], arms, f"{test.rest:,} in the rest")


def _print_trends(found: Trends) -> None:
    out.print(
        f"{found.since:%Y-%m-%d %H:%M} to {found.until:%Y-%m-%d %H:%M} UTC: "
        f"{found.joined:,} joined, {found.left:,} left",
        markup=False,
    )
    growth = [
        [g.day.isoformat(), f"{g.joined:,}", f"{g.left:,}"]
        for g in found.growth
        if g.joined or g.left
    ]
    print_list(
        [Column("day"), Column("joined", right=True), Column("left", right=True)],
        growth,
        plural(len(growth), "day") + " with joiners or leavers",
    )
    editions = [
        [
            e.edition_id,
            f"{e.delivered:,}",
            f"{e.unsubscribes:,}",
            f"{e.complaints:,}",
            _rate(e.click_through_rate),
        ]
        for e in found.editions
    ]
    columns = [Column("edition", key=True)]
    columns += [
        Column(name, right=True)
        for name in ("delivered", "unsubscribes", "complaints", "click-through")
    ]
    print_list(columns, editions, plural(len(editions), "edition"))
    sections = [[s.section, f"{s.clicks:,}", f"{s.unique_clicks:,}"] for s in found.sections]
    print_list(
        [Column("section"), Column("clicks", right=True), Column("unique", right=True)],
        sections,
        plural(len(sections), "section"),
    )


def report(
    edition: Annotated[
        str | None, typer.Argument(metavar="EDITION", help="The edition id.", show_default=False)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(metavar="SPAN|DATE", help="Trends since: 30d, 12h, or an ISO date/time."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", metavar="FILE", help="Also write a self-contained page with SVG charts."
        ),
    ] = None,
) -> None:
    """Report on an edition (delivery, bounces, complaints, unsubscribes, clicks per
    article) or, with --since, trends (list growth, unsubscribes per edition, clicks
    per section). Complaints and unsubscribes count for the last edition a reader was
    sent within the 7 days before; scanner clicks are counted apart.

    Example:

        newsletter report 2026-11-26-daily --json
        newsletter report --since 30d --html trends.html
    """
    if (edition is None) == (since is None):
        raise InputError("give either an EDITION or --since SPAN (one of them)", field="--since")
    from newsletter.core.db import utcnow
    from newsletter.core.times import parse_since, zone_info
    from newsletter.reports import edition_report, report_page, trends

    settings = get_settings()
    with get_engine().connect() as conn:
        if edition is not None:
            found: EditionReport | Trends = edition_report(conn, edition)
        else:
            now = utcnow()
            start = parse_since(str(since), now, settings.timezone)
            found = trends(conn, since=start, now=now, zone=zone_info(settings.timezone))
    if html is not None:
        html.write_text(report_page(found), encoding="utf-8")
    if as_json:
        out.print_json(json.dumps(found.model_dump(mode="json")))
    elif edition is not None:
        _print_edition(found)  # type: ignore[arg-type]
    else:
        _print_trends(found)  # type: ignore[arg-type]
    if html is not None and not as_json:
        out.print(f"wrote {html}", markup=False)


def register(root: typer.Typer) -> None:
    """Add ``report`` to ``root``."""
    root.command("report")(report)
