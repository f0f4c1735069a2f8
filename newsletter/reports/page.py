"""A report as one self-contained HTML page: tables and inline SVG charts, no script.

Everything the page shows is escaped; it loads nothing (no stylesheet, font or
image from elsewhere), so it can be mailed, archived or opened offline.
"""

from __future__ import annotations

from html import escape

from newsletter.reports.charts import bar_chart, diverging_columns
from newsletter.reports.editions import EditionReport
from newsletter.reports.trends import Trends

__all__ = ["report_page"]

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1d2433; max-width: 720px; margin: 2em auto;
  padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { text-align: left; padding: 4px 12px 4px 0; border-bottom: 1px solid #e3e6eb; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
svg { max-width: 100%; height: auto; display: block; margin: 1.5em 0; }
"""


def _table(head: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{v}</td>'
            if isinstance(v, int | float)
            else f"<td>{escape(str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def _edition(report: EditionReport) -> tuple[str, str]:
    numbers = [
        (name, getattr(report, name))
        for name in ("recipients", "sent", "delivered", "deferred", "failed", "skipped",
                     "bounced", "complaints", "unsubscribes", "clicks", "unique_clickers",
                     "scanner_clicks")
    ]  # fmt: skip
    numbers.append(("click-through rate", _rate(report.click_through_rate)))
    body = (
        f"<h1>{escape(report.subject)}</h1>"
        f"<p>Edition {escape(report.edition_id)}, {escape(report.status)}.</p>"
        + _table(("", "count"), [(k.replace("_", " "), v) for k, v in numbers])
        + bar_chart("Readers per story (unique clicks)",
                    [(a.id, a.unique_clicks) for a in report.articles])
        + _table(("story", "section", "clicks", "unique", "scanners"),
                 [(a.id, a.section, a.clicks, a.unique_clicks, a.scanner_clicks)
                  for a in report.articles])
    )  # fmt: skip
    return f"Report: {report.edition_id}", body


def _trends(found: Trends) -> tuple[str, str]:
    span = f"{found.since:%Y-%m-%d} to {found.until:%Y-%m-%d}"
    days = [g.day.isoformat() for g in found.growth]
    body = (
        f"<h1>Trends, {escape(span)}</h1>"
        f"<p>{found.joined} joined, {found.left} left.</p>"
        + diverging_columns("List growth per day", days,
                            [g.joined for g in found.growth], [g.left for g in found.growth])
        + bar_chart("Unsubscribes per edition",
                    [(e.edition_id, e.unsubscribes) for e in found.editions])
        + _table(("edition", "delivered", "unsubscribes", "complaints", "click-through"),
                 [(e.edition_id, e.delivered, e.unsubscribes, e.complaints,
                   _rate(e.click_through_rate)) for e in found.editions])
        + bar_chart("Clicks per section", [(s.section, s.clicks) for s in found.sections])
    )  # fmt: skip
    return f"Trends {span}", body


def report_page(report: EditionReport | Trends) -> str:
    """The whole page for an edition's report or for trends."""
    title, body = _edition(report) if isinstance(report, EditionReport) else _trends(report)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
