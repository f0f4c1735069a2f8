"""The Article and Edition models: what they accept, what they refuse, and how they fold topics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from newsletter.content.models import Article, Edition, Image, Section
from newsletter.core.topics import normalise_topic
from tests.support.sample_editions import article_data

WHEN = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def test_minimal_article_has_defaults() -> None:
    article = Article.model_validate(article_data())
    assert article.published_at == WHEN
    assert article.key_points == []
    assert article.body == []
    assert article.image is None
    assert article.breaking is False


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": "/uk/a1"}, "url"),
        ({"url": "http://news.example.com/uk/a1"}, "url"),
        ({"url": "https://news.example.com/a b"}, "url"),
        ({"published_at": "2026-11-26T07:00:00"}, "published_at"),
        ({"updated_at": "2026-11-26T08:00:00"}, "updated_at"),
        ({"headline": ""}, "headline"),
        ({"headline": "   "}, "headline"),
        ({"headline": 42}, "headline"),
        ({"topics": "crime"}, "topics"),
        ({"topics": ["!!!"]}, "topics"),
        ({"surprise": "yes"}, "surprise"),
        ({"image": {"url": "images/a.jpg", "alt": "x", "width": 600}}, "image"),
        ({"image": {"url": "https://i.example.com/a.jpg", "alt": "x", "width": 0}}, "image"),
        ({"image": {"url": "https://i.example.com/a.jpg", "alt": "x"}}, "image"),
        ({"section": ""}, "section"),
    ],
)
def test_invalid_article_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Article.model_validate(article_data(**changes))
    assert info.value.errors()[0]["loc"][0] == field


def test_missing_required_field() -> None:
    data = article_data()
    del data["headline"]
    with pytest.raises(ValidationError) as info:
        Article.model_validate(data)
    assert info.value.errors()[0]["type"] == "missing"


def test_topics_fold_and_deduplicate_and_topic_set_adds_section() -> None:
    article = Article.model_validate(
        article_data(topics=["UK Politics ", "uk-politics", "Cost of Living"], section="Money")
    )
    assert article.topics == ["uk-politics", "cost-of-living"]
    assert article.topic_set == frozenset({"uk-politics", "cost-of-living", "money"})
    assert normalise_topic("  Rugby Union!! ") == "rugby-union"


def test_article_is_frozen() -> None:
    article = Article.model_validate(article_data())
    with pytest.raises(ValidationError):
        article.headline = "changed"  # type: ignore[misc]


def test_image_width_bounds_and_https() -> None:
    image = Image(url="https://i.example.com/a.jpg", alt="A picture", width=600, height=400)
    assert image.width == 600
    with pytest.raises(ValidationError):
        Image(url="https://i.example.com/a.jpg", alt="x", width=5000)


def test_edition_articles_reading_order_and_json_round_trip() -> None:
    top = Article.model_validate(article_data(id="top"))
    others = [Article.model_validate(article_data(id=f"n{i}")) for i in range(3)]
    edition = Edition(
        id="2026-11-26-daily",
        title="The Morning Briefing",
        subject="s",
        preheader="p",
        top_story=top,
        sections=[
            Section(name="UK", articles=others[:2]),
            Section(name="Crime", articles=others[2:]),
        ],
        created_at=WHEN,
    )
    assert [a.id for a in edition.articles()] == ["top", "n0", "n1", "n2"]
    again = Edition.model_validate(edition.model_dump(mode="json"))
    assert again == edition
