"""The article store: upsert, list and fetch :class:`~newsletter.content.models.Article` rows.

Each row keeps the whole article as JSON next to the columns that are queried
(published time, section, topics). Importing the same article again updates
its row in place, keyed by the article's stable ``id``; it never duplicates it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.content.models import Article
from newsletter.core.errors import NotFoundError
from newsletter.core.schema import articles as articles_table
from newsletter.core.text import plural
from newsletter.core.topics import normalise_topic

__all__ = [
    "ImportResult",
    "get_article",
    "get_articles",
    "known_topics",
    "list_articles",
    "upsert_articles",
]

# SQLite allows 999 bound parameters in old builds; stay well below it.
_CHUNK = 500


@dataclass(frozen=True)
class ImportResult:
    """What an import did, by article id: new rows, changed rows, and rows left as they were."""

    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """How many distinct articles the import carried."""
        return len(self.inserted) + len(self.updated) + len(self.unchanged)

    def summary(self) -> str:
        """One line for a person: ``12 articles: 10 inserted, 1 updated, 1 unchanged``."""
        return (
            f"{plural(self.total, 'article')}: {len(self.inserted)} inserted, "
            f"{len(self.updated)} updated, {len(self.unchanged)} unchanged"
        )


def _row(article: Article, now: datetime) -> dict[str, Any]:
    return {
        "id": article.id,
        "url": article.url,
        "headline": article.headline,
        "section": article.section,
        "topics": sorted(article.topic_set),
        "breaking": article.breaking,
        "published_at": article.published_at,
        "updated_at": article.updated_at,
        "imported_at": now,
        "data": article.model_dump(mode="json"),
    }


def _existing(conn: Connection, ids: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = sa.select(articles_table.c.id, articles_table.c.data).where(
            articles_table.c.id.in_(chunk)
        )
        found.update({row.id: row.data for row in conn.execute(query)})
    return found


def upsert_articles(conn: Connection, articles: Iterable[Article], now: datetime) -> ImportResult:
    """Insert new articles and update changed ones, by id, on ``conn``'s transaction.

    The caller owns the transaction, so a failure leaves nothing half-imported.
    When the same id appears twice in ``articles`` the last one wins.
    """
    latest: dict[str, Article] = {}
    for article in articles:
        latest[article.id] = article
    existing = _existing(conn, list(latest))
    result = ImportResult()
    new_rows: list[dict[str, Any]] = []
    for article_id, article in latest.items():
        row = _row(article, now)
        if article_id not in existing:
            new_rows.append(row)
            result.inserted.append(article_id)
        elif existing[article_id] != row["data"]:
            conn.execute(
                articles_table.update().where(articles_table.c.id == article_id).values(**row)
            )
            result.updated.append(article_id)
        else:
            result.unchanged.append(article_id)
    if new_rows:
        conn.execute(articles_table.insert(), new_rows)
    return result


def _article(data: Any) -> Article:
    return Article.model_validate(data)


def list_articles(
    conn: Connection,
    since: datetime | None = None,
    topics: Collection[str] = (),
    *,
    until: datetime | None = None,
) -> list[Article]:
    """Stored articles published in ``[since, until]``, newest first (ties by id).

    ``topics`` keeps articles whose :attr:`Article.topic_set` shares at least one
    topic with it (topics are folded first); empty means every topic.
    """
    query = sa.select(articles_table.c.data).order_by(
        articles_table.c.published_at.desc(), articles_table.c.id
    )
    if since is not None:
        query = query.where(articles_table.c.published_at >= since)
    if until is not None:
        query = query.where(articles_table.c.published_at <= until)
    wanted = frozenset(normalise_topic(t) for t in topics)
    found = [_article(data) for data in conn.execute(query).scalars()]
    if wanted:
        found = [a for a in found if a.topic_set & wanted]
    return found


def get_article(conn: Connection, article_id: str) -> Article:
    """The stored article with this id; :class:`NotFoundError` when there is none."""
    data = conn.execute(
        sa.select(articles_table.c.data).where(articles_table.c.id == article_id)
    ).scalar_one_or_none()
    if data is None:
        raise NotFoundError(f"no article with id {article_id!r}")
    return _article(data)


def get_articles(conn: Connection, article_ids: Collection[str]) -> list[Article]:
    """The stored articles with these ids, in the order given; the first missing one raises."""
    ids = list(dict.fromkeys(article_ids))
    found = {k: _article(v) for k, v in _existing(conn, ids).items()}
    for article_id in ids:
        if article_id not in found:
            raise NotFoundError(f"no article with id {article_id!r}")
    return [found[article_id] for article_id in ids]


def known_topics(conn: Connection) -> dict[str, str]:
    """Every topic and section of the stored articles, slug to label, sorted by label."""
    labels: dict[str, str] = {}
    # PostgreSQL's json type has no equality, so DISTINCT compares the lists as text
    topics_text = sa.cast(articles_table.c.topics, sa.Text)
    query = sa.select(articles_table.c.section, topics_text).distinct()
    for section, topics_json in conn.execute(query):
        labels.setdefault(normalise_topic(section), section)
        for topic in json.loads(topics_json) if topics_json else ():
            slug = normalise_topic(str(topic))
            if slug:
                labels.setdefault(slug, slug.replace("-", " ").capitalize())
    return dict(sorted(labels.items(), key=lambda item: item[1].casefold()))
