"""The article store on SQLite and PostgreSQL: upsert by id, listing by window and topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from newsletter.content.articles import get_article, get_articles, list_articles, upsert_articles
from newsletter.content.models import Article
from newsletter.core.errors import NotFoundError
from newsletter.core.schema import articles as articles_table

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def make(article_id: str, hours_ago: float = 1, **changes: Any) -> Article:
    data: dict[str, Any] = {
        "id": article_id,
        "url": f"https://news.example.com/{article_id}",
        "headline": f"Headline {article_id}",
        "section": "UK",
        "published_at": NOW - timedelta(hours=hours_ago),
    }
    data.update(changes)
    return Article.model_validate(data)


def count_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(articles_table)).scalar_one()
        )


def test_reimport_updates_never_duplicates(engine: Engine) -> None:
    with engine.begin() as conn:
        first = upsert_articles(conn, [make("a"), make("b")], NOW)
    assert (first.inserted, first.updated, first.unchanged) == (["a", "b"], [], [])
    with engine.begin() as conn:
        second = upsert_articles(conn, [make("a"), make("b", headline="Corrected"), make("c")], NOW)
    assert (second.inserted, second.updated, second.unchanged) == (["c"], ["b"], ["a"])
    assert second.summary() == "3 articles: 1 inserted, 1 updated, 1 unchanged"
    assert count_rows(engine) == 3
    with engine.connect() as conn:
        assert get_article(conn, "b").headline == "Corrected"


def test_same_id_twice_in_one_batch_is_one_row(engine: Engine) -> None:
    with engine.begin() as conn:
        result = upsert_articles(conn, [make("a"), make("a", headline="Later")], NOW)
    assert result.total == 1
    assert count_rows(engine) == 1
    with engine.connect() as conn:
        assert get_article(conn, "a").headline == "Later"


def test_a_failed_transaction_leaves_nothing(engine: Engine) -> None:
    def import_then_fail() -> None:
        with engine.begin() as conn:
            upsert_articles(conn, [make("a"), make("b")], NOW)
            raise RuntimeError("the import failed after the upsert")

    with pytest.raises(RuntimeError):
        import_then_fail()
    assert count_rows(engine) == 0


def test_the_stored_article_round_trips_whole(engine: Engine) -> None:
    full = make(
        "full",
        standfirst="Standfirst.",
        key_points=["One", "Two"],
        body=["Para one.", "Para two."],
        why_it_matters="Because.",
        what_it_means_for_you="For you.",
        topics=["Policing", "London"],
        author="A. Writer",
        updated_at=NOW,
        image={"url": "https://i.example.com/a.jpg", "alt": "Alt", "width": 600, "height": 300},
        breaking=True,
    )
    with engine.begin() as conn:
        upsert_articles(conn, [full], NOW)
    with engine.connect() as conn:
        assert get_article(conn, "full") == full


def test_list_by_window_newest_first_and_by_topic(engine: Engine) -> None:
    stored = [
        make("old", hours_ago=30),
        make("crime", hours_ago=2, section="Crime"),
        make("tagged", hours_ago=3, topics=["crime"]),
        make("sport", hours_ago=1, section="Sport"),
        make("future", hours_ago=-2),
    ]
    with engine.begin() as conn:
        upsert_articles(conn, stored, NOW)
    with engine.connect() as conn:
        assert [a.id for a in list_articles(conn)] == ["future", "sport", "crime", "tagged", "old"]
        day = list_articles(conn, since=NOW - timedelta(hours=24), until=NOW)
        assert [a.id for a in day] == ["sport", "crime", "tagged"]
        assert [a.id for a in list_articles(conn, topics=["Crime"])] == ["crime", "tagged"]
        assert [a.id for a in list_articles(conn, topics=["sport", "crime"])] == [
            "sport",
            "crime",
            "tagged",
        ]


def test_get_missing_article_is_not_found(engine: Engine) -> None:
    with engine.begin() as conn:
        upsert_articles(conn, [make("a")], NOW)
    with engine.connect() as conn:
        with pytest.raises(NotFoundError, match="'nope'"):
            get_article(conn, "nope")
        with pytest.raises(NotFoundError, match="'nope'"):
            get_articles(conn, ["a", "nope"])
        assert [a.id for a in get_articles(conn, ["a"])] == ["a"]


def test_many_articles_in_one_upsert(engine: Engine) -> None:
    batch = [make(f"n{i:04d}", hours_ago=i / 100) for i in range(1200)]
    with engine.begin() as conn:
        assert len(upsert_articles(conn, batch, NOW).inserted) == 1200
    with engine.begin() as conn:
        assert len(upsert_articles(conn, batch, NOW).unchanged) == 1200
