"""Helpers that read rendered email HTML the way a checker would: parse, then measure."""

from __future__ import annotations

import re

import lxml.html
from lxml.html import HtmlElement

__all__ = [
    "background_of",
    "color_of",
    "contrast",
    "font_size_of",
    "is_hidden",
    "parse",
    "style_of",
    "text_elements",
]

_NAMED = {"white": "#ffffff", "black": "#000000", "#fff": "#ffffff", "#000": "#000000"}


def parse(html: str) -> HtmlElement:
    """The document's root element."""
    return lxml.html.document_fromstring(html)


def style_of(element: HtmlElement) -> dict[str, str]:
    """The inline style as a dict (last declaration wins, as in a browser)."""
    result: dict[str, str] = {}
    for declaration in (element.get("style") or "").split(";"):
        name, _, value = declaration.partition(":")
        if name.strip() and value.strip():
            result[name.strip().lower()] = value.strip().lower()
    return result


def _lineage(element: HtmlElement) -> list[HtmlElement]:
    chain = [element]
    chain.extend(element.iterancestors())
    return chain


def is_hidden(element: HtmlElement) -> bool:
    """True when the element or an ancestor is ``display: none``."""
    return any(style_of(e).get("display", "").startswith("none") for e in _lineage(element))


def _hex(value: str) -> str | None:
    value = _NAMED.get(value.strip(), value.strip())
    value = value.replace("!important", "").strip()
    if re.fullmatch(r"#[0-9a-f]{3}", value):
        value = "#" + "".join(c * 2 for c in value[1:])
    return value if re.fullmatch(r"#[0-9a-f]{6}", value) else None


def color_of(element: HtmlElement) -> str:
    """The text colour the element inherits from its own or its ancestors' inline styles."""
    for e in _lineage(element):
        value = style_of(e).get("color")
        if value and value != "inherit":
            found = _hex(value)
            assert found, f"unparseable colour {value!r} on <{e.tag}>"
            return found
    return "#000000"


def background_of(element: HtmlElement) -> str:
    """The nearest background colour (inline style or bgcolor) behind the element."""
    for e in _lineage(element):
        value = style_of(e).get("background-color") or e.get("bgcolor")
        if value:
            found = _hex(value.lower())
            assert found, f"unparseable background {value!r} on <{e.tag}>"
            return found
    return "#ffffff"


def font_size_of(element: HtmlElement) -> float:
    """The font size in px from the nearest inline ``font-size`` (browsers default to 16)."""
    for e in _lineage(element):
        value = style_of(e).get("font-size")
        if value:
            assert value.endswith("px"), f"font-size {value!r} is not in px"
            return float(value.removesuffix("px").replace("!important", "").strip())
    return 16.0


def _luminance(color: str) -> float:
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    """The WCAG contrast ratio of two ``#rrggbb`` colours."""
    a, b = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def text_elements(root: HtmlElement) -> list[HtmlElement]:
    """Visible elements of the body that hold text directly."""
    body = root.find("body")
    assert body is not None
    found = []
    for element in body.iter():
        if not isinstance(element.tag, str):  # comments
            continue
        direct = (element.text or "") + "".join((child.tail or "") for child in element)
        if direct.strip() and not is_hidden(element):
            found.append(element)
    return found
