"""Sample input for the tests: raw article data, and editions built directly from models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from newsletter.content.models import Article, Edition, EditionKind, Image, Section

__all__ = [
    "HOSTILE_HEADLINE",
    "article",
    "article_data",
    "breaking_edition",
    "daily_edition",
    "hostile_edition",
]

NOW = datetime(2026, 11, 26, 6, 30, tzinfo=UTC)

LONG_WORD = "Supercalifragilistic" * 500  # 10,000 characters, no break opportunity
HOSTILE_HEADLINE = (
    '<script>alert("x")</script> Breaking\r\nnews 😀🔥 — خبر عاجل من لندن '
    + LONG_WORD
    + " </h1><iframe src=https://evil.example></iframe>"
)


def article(
    n: int,
    section: str = "UK",
    topics: tuple[str, ...] = (),
    *,
    image: bool = False,
    **fields: object,
) -> Article:
    """A realistic article numbered ``n``; ``fields`` override any field."""
    data: dict[str, object] = {
        "id": f"story-{n}",
        "url": f"https://news.example.com/{section.lower()}/story-{n}",
        "headline": f"Story {n}: council votes on the future of the high street",
        "standfirst": f"Standfirst of story {n}: what happened, and who it affects.",
        "key_points": [f"Point one of story {n}.", f"Point two of story {n}."],
        "body": [f"Paragraph of story {n}."],
        "why_it_matters": f"Why story {n} matters to readers across the country.",
        "what_it_means_for_you": f"What story {n} means for your bills and your commute.",
        "section": section,
        "topics": list(topics),
        "author": "A. Reporter",
        "published_at": NOW - timedelta(hours=n),
        "image": (
            Image(
                url=f"https://img.example.com/{n}.jpg",
                alt=f"Photo for story {n}",
                width=1200,
                height=675,
                caption="A caption",
            )
            if image
            else None
        ),
    }
    data.update(fields)
    return Article.model_validate(data)


def article_data(**changes: Any) -> dict[str, Any]:
    """The smallest valid article as raw input (what a JSON file holds); ``changes`` override."""
    data: dict[str, Any] = {
        "id": "a1",
        "url": "https://news.example.com/uk/a1",
        "headline": "A headline",
        "section": "UK",
        "published_at": "2026-11-26T07:00:00Z",
    }
    data.update(changes)
    return data


def daily_edition(articles: list[Article] | None = None, **fields: object) -> Edition:
    """A daily edition: the first article leads, the rest grouped by section in order."""
    if articles is None:
        articles = [
            article(1, "Crime", ("policing",), image=True),
            article(2, "UK", ("transport",)),
            article(3, "UK", ("housing",)),
            article(4, "Politics", ("elections",)),
            article(5, "Business", ("economy",)),
            article(6, "Business", ("economy", "housing")),
            article(7, "World", ("europe",)),
            article(8, "Crime", ("courts",)),
        ]
    top, rest = articles[0], articles[1:]
    sections: dict[str, list[Article]] = {}
    for a in rest:
        sections.setdefault(a.section, []).append(a)
    data: dict[str, object] = {
        "id": "2026-11-26-daily-1",
        "title": "The Morning Briefing — Thursday 26 November 2026",
        "subject": f"{top.headline} and {len(rest)} more stories",
        "preheader": top.standfirst,
        "intro": f"{len(articles)} stories from Britain's News Portal since Wednesday 06:30.",
        "top_story": top,
        "sections": [Section(name=k, articles=v) for k, v in sections.items()],
        "created_at": NOW,
        "window_start": NOW - timedelta(days=1),
    }
    # the lines this helper derived itself are "generated"; the ones a test gives are an editor's
    data["generated"] = [line for line in ("subject", "intro") if line not in fields]
    data.update(fields)
    return Edition.model_validate(data)


def breaking_edition() -> Edition:
    """A breaking-news edition of one article."""
    lead = article(9, "UK", ("policing",), image=True, breaking=True)
    return Edition(
        id="2026-11-26-breaking-1",
        kind=EditionKind.BREAKING,
        title="Breaking News — Thursday 26 November 2026",
        subject=f"Breaking: {lead.headline}",
        preheader=lead.standfirst,
        intro="Breaking news from Britain's News Portal.",
        top_story=lead,
        sections=[],
        created_at=NOW,
    )


def hostile_edition() -> Edition:
    """An edition whose stories carry script, CR/LF, 10,000-char words, emoji and RTL text."""
    evil = article(
        1,
        "UK",
        image=True,
        headline=HOSTILE_HEADLINE,
        standfirst="مرحبا بالعالم " + "https://example.com/" + "a" * 3000 + " \x00\x0c end",
        key_points=["<b>bold?</b> & \"quotes\" 'single'", "x" * 5000],
        why_it_matters="<img src=x onerror=alert(1)>",
        url="https://news.example.com/uk/" + "long-" * 400,
    )
    return daily_edition(
        [evil, article(2, "UK", headline="שלום עולם — a right-to-left headline 🇬🇧")],
        id="2026-11-26-daily-hostile",
        subject="Hostile edition",
        preheader="Preheader with <b>tags</b> & ampersands",
    )
