"""The email templates' filters: cleaning values, wrapping text, an editor's paragraphs.

Used by :class:`newsletter.content.render.Renderer`'s Jinja2 environment.
"""

from __future__ import annotations

import html
import re
import textwrap
from typing import Any

from markupsafe import Markup

from newsletter.core.text import one_line

__all__ = ["clean", "paragraphs_html", "paragraphs_text", "wrap"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(value: Any) -> Any:
    """Every value a template prints: control characters out, slot tokens defused."""
    # Control characters (NUL, CR, form feed...) make lxml fail and break text lines;
    # CR/LF become spaces, the rest are dropped. A slot token inside content is
    # defused with a word joiner so it can never be filled. Markup (our slots) passes.
    if isinstance(value, str) and not isinstance(value, Markup):
        value = _CONTROL.sub(lambda m: " " if m.group() in "\r\n" else "", value)
        return value.replace("NLPH7", "NLPH\u20607")
    return value


_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")


def paragraphs_html(value: str) -> Markup:
    """An editor's note as escaped ``<p>`` paragraphs, plain URLs made links."""
    # An editor's note: each blank-line paragraph a <p>; plain URLs become links.
    # Everything else is escaped: a note can never inject markup.
    out = []
    for paragraph in str(value).split("\n\n"):
        pieces, last = [], 0
        for found in _URL.finditer(paragraph):
            pieces.append(html.escape(paragraph[last : found.start()]))
            url = html.escape(found.group(), quote=True)
            pieces.append(f'<a href="{url}">{url}</a>')
            last = found.end()
        pieces.append(html.escape(paragraph[last:]))
        out.append(f"<p>{''.join(pieces)}</p>")
    return Markup("\n".join(out))  # noqa: S704 - every piece above is escaped


def paragraphs_text(value: str) -> str:
    """An editor's note as wrapped text paragraphs."""
    return "\n\n".join(wrap(p) for p in str(value).split("\n\n"))


def wrap(value: str, indent: str = "", first: int = 0) -> str:
    """``value`` on one line, wrapped at 76 columns; URLs and long words kept whole."""
    # Wrap prose at 76 columns for the text part; never break a URL or long word.
    # ``first`` counts the characters already on the first line ("* ", "- ").
    return textwrap.fill(
        one_line(str(value)),
        width=76,
        break_long_words=False,
        break_on_hyphens=False,
        initial_indent=" " * first,
        subsequent_indent=indent,
    )[first:]
