"""Charts drawn on the server as inline SVG: no script, no external service, no fonts.

Each function returns one ``<svg>`` element with a ``<title>`` and an
``aria-label`` (screen readers), every label escaped. Colours hold 4.5:1 against
white; the values are written next to the bars, so the chart reads in grey too.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["bar_chart", "diverging_columns"]

_INK, _BAR, _DOWN, _RULE = "#1d2433", "#1f5fbf", "#b3261e", "#c9ced6"
_FONT = 'font-family="system-ui, sans-serif" font-size="13"'


def _label(text: str, limit: int = 44) -> str:
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def bar_chart(title: str, items: Sequence[tuple[str, float]], *, width: int = 640) -> str:
    """Horizontal bars, one per (label, value), the value written at the end of its bar."""
    row, left, right = 26, 260, 60
    height = max(len(items), 1) * row + 36
    top = max((v for _, v in items), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img" aria-label="{escape(title)}" {_FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" fill="{_INK}" font-weight="bold">{escape(title)}</text>',
    ]
    if not items:
        parts.append(f'<text x="0" y="48" fill="{_INK}">nothing yet</text>')
    for n, (label, value) in enumerate(items):
        y = 30 + n * row
        length = (width - left - right) * value / top
        shown = f"{value:g}"
        parts += [
            f'<text x="{left - 8}" y="{y + 16}" fill="{_INK}" text-anchor="end">'
            f"{_label(label)}</text>",
            f'<rect x="{left}" y="{y + 4}" width="{length:.1f}" height="{row - 8}" fill="{_BAR}"/>',
            f'<text x="{left + length + 6:.1f}" y="{y + 16}" fill="{_INK}">{shown}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def diverging_columns(
    title: str,
    labels: Sequence[str],
    up: Sequence[int],
    down: Sequence[int],
    *,
    names: tuple[str, str] = ("joined", "left"),
    width: int = 640,
) -> str:
    """Columns above a baseline (``up``, e.g. joined) and below it (``down``, e.g. left),
    one pair per label (a day), with a legend and the first and last labels."""
    height, pad = 220, 28
    middle = pad + (height - 2 * pad) / 2
    scale = ((height - 2 * pad) / 2 - 4) / max(max(up, default=0), max(down, default=0), 1)
    step = (width - 20) / max(len(labels), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img" aria-label="{escape(title)}" {_FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" fill="{_INK}" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{width - 190}" y="6" width="10" height="10" fill="{_BAR}"/>',
        f'<text x="{width - 176}" y="16" fill="{_INK}">{escape(names[0])} ({sum(up)})</text>',
        f'<rect x="{width - 90}" y="6" width="10" height="10" fill="{_DOWN}"/>',
        f'<text x="{width - 76}" y="16" fill="{_INK}">{escape(names[1])} ({sum(down)})</text>',
        f'<line x1="10" x2="{width - 10}" y1="{middle}" y2="{middle}" stroke="{_RULE}"/>',
    ]
    bar = max(step * 0.7, 1)
    for n, (label, a, b) in enumerate(zip(labels, up, down, strict=True)):
        x = 10 + n * step + (step - bar) / 2
        tip = f"<title>{escape(label)}: {a} {escape(names[0])}, {b} {escape(names[1])}</title>"
        if a:
            h = a * scale
            parts.append(
                f'<rect x="{x:.1f}" y="{middle - h:.1f}" width="{bar:.1f}" height="{h:.1f}"'
                f' fill="{_BAR}">{tip}</rect>'
            )
        if b:
            parts.append(
                f'<rect x="{x:.1f}" y="{middle:.1f}" width="{bar:.1f}" height="{b * scale:.1f}"'
                f' fill="{_DOWN}">{tip}</rect>'
            )
    if labels:
        y = height - 6
        parts.append(f'<text x="10" y="{y}" fill="{_INK}">{escape(labels[0])}</text>')
        parts.append(
            f'<text x="{width - 10}" y="{y}" fill="{_INK}" text-anchor="end">'
            f"{escape(labels[-1])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
