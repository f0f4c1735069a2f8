"""A small server-rendered SVG line chart (no script), for the list's growth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

__all__ = ["LineChart", "line_chart"]


@dataclass(frozen=True)
class LineChart:
    """What the template draws: the polyline, the axis labels and a text summary."""

    width: int
    height: int
    points: str
    y_labels: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    summary: str


def line_chart(series: list[tuple[date, int]], *, width: int = 640, height: int = 200) -> LineChart:
    """Plot ``series`` (day, value) into a ``width`` x ``height`` box with margins for labels."""
    left, right, top, bottom = 56, 12, 12, 28
    values = [v for _, v in series] or [0]
    low, high = min(values), max(values)
    if high == low:
        low, high = max(0, low - 1), high + 1
    span_x = max(1, len(series) - 1)
    inner_w, inner_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return round(left + inner_w * i / span_x, 1)

    def y(v: float) -> float:
        return round(top + inner_h * (1 - (v - low) / (high - low)), 1)

    points = " ".join(f"{x(i)},{y(v)}" for i, (_, v) in enumerate(series))
    y_labels = [(y(v), f"{v:,.0f}") for v in (low, (low + high) / 2, high)]
    ticks = sorted({0, len(series) // 2, len(series) - 1}) if series else []
    x_labels = [(x(i), f"{series[i][0]:%d %b}") for i in ticks]
    if series:
        first, last = series[0][1], series[-1][1]
        change = last - first
        summary = (
            f"{last:,} subscribers on {series[-1][0]:%d %b %Y}, "
            f"{'+' if change >= 0 else ''}{change:,} since {series[0][0]:%d %b}"
        )
    else:
        summary = "no data"
    return LineChart(width, height, points, y_labels, x_labels, summary)
