"""RSS 2.0 and Atom feeds to :class:`~newsletter.content.models.Article` models, via feedparser.

Each entry becomes one article: a stable id from its guid (or link), the link
(which must be https), the title, the summary as plain text, times in UTC, the
first category (or the feed's title) as section, the categories as topics, the
author, and a picture from ``media:content``, ``media:thumbnail`` or an image
enclosure. A feed that cannot be read, or an entry without a link, title or
date, is an :class:`~newsletter.core.errors.ArticleError` naming the feed and entry.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import feedparser
from pydantic import ValidationError

from newsletter.content.models import Article
from newsletter.core.errors import ArticleError
from newsletter.core.topics import normalise_topic

__all__ = ["DEFAULT_IMAGE_WIDTH", "html_to_paragraphs", "parse_feed", "stable_id"]

DEFAULT_IMAGE_WIDTH = 600  # the email's column: a feed that gives no width gets this one
_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_BLOCKS = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr"}
)
# the names an entry's problems are reported under: the feed's own words
_FEED_FIELD = {"url": "link", "headline": "title", "standfirst": "summary", "section": "category"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._current: list[str] = []
        self._skip = 0

    def _flush(self) -> None:
        text = " ".join("".join(self._current).split())
        if text:
            self.paragraphs.append(text)
        self._current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self._skip += 1
        elif tag in _BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"}:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._current.append(data)


def html_to_paragraphs(markup: str) -> list[str]:
    """The visible text of an HTML fragment, one string per block, white space collapsed."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    parser._flush()
    return parser.paragraphs


def stable_id(key: str) -> str:
    """An article id for a guid: kept as-is when it is a plain short id, else slug + hash."""
    if _PLAIN_ID.fullmatch(key):
        return key
    parts = urlsplit(key)
    tail = parts.path.rstrip("/").rsplit("/", 1)[-1] if parts.scheme else key
    slug = normalise_topic(tail.rsplit(".", 1)[0])[:60].strip("-")
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
    return f"{slug}-{digest}" if slug else digest


def _when(parsed: time.struct_time | None) -> datetime | None:
    # feedparser has already converted every date it could read to UTC
    return datetime(*parsed[:6], tzinfo=UTC) if parsed else None


def _size(value: Any) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 < number <= 4000 else None


def _image(entry: Any, headline: str) -> dict[str, Any] | None:
    candidates: list[dict[str, Any]] = []
    for media in [*entry.get("media_content", []), *entry.get("media_thumbnail", [])]:
        kind = str(media.get("medium") or media.get("type") or "image")
        if kind.startswith("image"):
            candidates.append(dict(media))
    for link in entry.get("links", []):
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            candidates.append({"url": link.get("href")})
    for media in candidates:
        url = str(media.get("url") or "")
        # a picture is optional: one served in the clear is dropped, not fatal
        if not url.startswith("https://"):
            continue
        width = _size(media.get("width"))
        height = _size(media.get("height")) if width else None
        # feedparser folds media:description into the entry's summary, so the
        # headline is the best description of the picture a feed gives us
        return {
            "url": url,
            "alt": headline,
            "width": width or DEFAULT_IMAGE_WIDTH,
            "height": height,
        }
    return None


def _plain(detail: Any, fallback: str) -> str:
    value = str(fallback or "")
    if detail and "html" in str(detail.get("type", "")):
        return " ".join(html_to_paragraphs(value))
    return " ".join(value.split())


def _fail(source: str, label: str, reason: str, field: str | None = None) -> ArticleError:
    return ArticleError(f"{label}: {reason}", source=source, field=field)


def _entry_fields(entry: Any, feed_title: str, label: str, source: str) -> dict[str, Any]:
    link = str(entry.get("link") or "").strip()
    title = _plain(entry.get("title_detail"), entry.get("title", ""))
    published = _when(entry.get("published_parsed")) or _when(entry.get("updated_parsed"))
    if not link:
        raise _fail(source, label, "has no link", "link")
    if not title:
        raise _fail(source, label, "has no title", "title")
    if published is None:
        reason = (
            "has no date"
            if not entry.get("published") and not entry.get("updated")
            else ("has a date that cannot be read")
        )
        raise _fail(source, label, reason, "published")
    updated = _when(entry.get("updated_parsed"))
    terms = [str(t.get("term") or "").strip() for t in entry.get("tags", [])]
    terms = [t for t in terms if normalise_topic(t)]
    breaking = any(normalise_topic(t) == "breaking" for t in terms)
    terms = [t for t in terms if normalise_topic(t) != "breaking"]
    summary = html_to_paragraphs(str(entry.get("summary", "")))
    content = entry.get("content") or []
    body = html_to_paragraphs(str(content[0].get("value", ""))) if content else []
    return {
        "id": stable_id(str(entry.get("id") or link)),
        "url": link,
        "headline": title,
        "standfirst": summary[0] if summary else "",
        "body": body,
        "section": (terms[0] if terms else feed_title or "News")[:100],
        "topics": terms,
        "author": " ".join(str(entry.get("author", "")).split()) or None,
        "published_at": published,
        "updated_at": updated if updated and updated != published else None,
        "image": _image(entry, title),
        "breaking": breaking,
    }


def parse_feed(content: bytes, source: str) -> list[Article]:
    """Every entry of an RSS 2.0 or Atom document as an Article, or :class:`ArticleError`."""
    # A file-like object: given bytes or str, feedparser may try them as a path or a URL.
    parsed = feedparser.parse(io.BytesIO(content))
    entries = parsed.get("entries", [])
    if parsed.get("bozo") and not entries:
        problem = parsed.get("bozo_exception")
        reason = str(problem).splitlines()[0] if problem else "unreadable"
        raise ArticleError(f"not a readable RSS or Atom feed ({reason})", source=source)
    if not parsed.get("version") and not entries:
        raise ArticleError("not an RSS or Atom feed", source=source)
    feed_title = " ".join(str(parsed.get("feed", {}).get("title", "")).split())
    articles: list[Article] = []
    for index, entry in enumerate(entries, 1):
        handle = entry.get("id") or entry.get("link") or entry.get("title")
        label = f"entry {index}" + (f" ({str(handle)[:80]!r})" if handle else "")
        fields = _entry_fields(entry, feed_title, label, source)
        try:
            articles.append(Article.model_validate(fields))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = [str(p) for p in first["loc"]]
            name = ".".join([_FEED_FIELD.get(loc[0], loc[0]), *loc[1:]]) if loc else None
            reason = " ".join(str(first["msg"]).split()).removeprefix("Value error, ")
            raise _fail(source, label, reason, name) from None
    return articles
