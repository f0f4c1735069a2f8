"""One page of the stored articles, by keyset (never OFFSET), searched and filtered in SQL.

The order is newest first (``published_at`` descending, then ``id``), which the
``published_at`` index walks; the cursor is the last row's ``published_at|id``,
so a late page costs what the first does. The search matches a headline
containing the words (case-insensitive); the filters are a section, a topic (the
stored topic list holds the section too) and a published date range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.schema import articles
from newsletter.core.topics import normalise_topic

__all__ = ["ArticlePage", "ArticleQuery", "ArticleRow", "article_page", "sections"]

_A = articles.c


@dataclass(frozen=True)
class ArticleQuery:
    """What the list shows: headline words, a section, a topic, a date range and a cursor.

    ``since`` and ``until`` are aware instants (``until`` exclusive).
    """

    q: str = ""
    section: str = ""
    topic: str = ""
    since: datetime | None = None
    until: datetime | None = None
    after: str = ""
    size: int = 50


@dataclass(frozen=True)
class ArticleRow:
    """One line of the list."""

    id: str
    headline: str
    section: str
    topics: list[str]
    published_at: datetime
    breaking: bool


@dataclass(frozen=True)
class ArticlePage:
    """A page of rows and the cursor of the next page (None on the last)."""

    rows: list[ArticleRow]
    next_after: str | None


def _after(cursor: str) -> sa.ColumnElement[bool] | None:
    when, sep, last_id = cursor.partition("|")
    try:
        at = datetime.fromisoformat(when)
    except ValueError:
        return None
    if not sep or at.tzinfo is None:
        return None
    # the first term is what the published_at index seeks to; the second breaks ties by id
    return sa.and_(
        _A.published_at <= at,
        sa.or_(_A.published_at < at, sa.and_(_A.published_at == at, _A.id > last_id)),
    )


def _filtered(query: ArticleQuery) -> sa.Select[Any]:
    stmt = sa.select(_A.id, _A.headline, _A.section, _A.topics, _A.published_at, _A.breaking)
    words = query.q.strip().lower()
    if words:
        stmt = stmt.where(sa.func.lower(_A.headline).contains(words, autoescape=True))
    if query.section.strip():
        stmt = stmt.where(_A.section == query.section.strip())
    slug = normalise_topic(query.topic) if query.topic.strip() else ""
    if slug:
        # the topics are stored as a JSON list of slugs: match one whole, quoted
        stmt = stmt.where(sa.cast(_A.topics, sa.Text).contains(f'"{slug}"', autoescape=True))
    if query.since is not None:
        stmt = stmt.where(_A.published_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(_A.published_at < query.until)
    return stmt


def article_page(conn: Connection, query: ArticleQuery) -> ArticlePage:
    """The page ``query`` asks for (``size`` rows at most) and the cursor of the one after it."""
    stmt = _filtered(query)
    if query.after:
        condition = _after(query.after)
        if condition is not None:
            stmt = stmt.where(condition)
    stmt = stmt.order_by(_A.published_at.desc(), _A.id).limit(query.size + 1)
    found = conn.execute(stmt).all()
    rows = [
        ArticleRow(r.id, r.headline, r.section, list(r.topics or []), r.published_at, r.breaking)
        for r in found[: query.size]
    ]
    more = len(found) > query.size
    last = rows[-1] if rows else None
    cursor = f"{last.published_at.isoformat()}|{last.id}" if more and last else None
    return ArticlePage(rows, cursor)


def sections(conn: Connection) -> list[str]:
    """Every section of the stored articles, sorted."""
    found = conn.execute(sa.select(_A.section).distinct()).scalars()
    return sorted(found, key=str.casefold)
