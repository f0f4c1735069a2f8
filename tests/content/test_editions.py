"""Editions on SQLite and PostgreSQL: choosing, ordering, naming, storing and snapshotting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from newsletter.content.articles import upsert_articles
from newsletter.content.editions import (
    MAX_ARTICLES,
    build_edition,
    get_edition,
    latest_edition,
    list_editions,
    set_status,
)
from newsletter.content.lines import PREHEADER_MAX, SUBJECT_MAX
from newsletter.content.models import Article, Edition, EditionKind, EditionStatus
from newsletter.core.errors import (
    ConfigError,
    HeaderInjectionError,
    InputError,
    NotFoundError,
    StateError,
)
from newsletter.core.times import parse_since, parse_span

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # a Thursday; London is on GMT
IMAGE = {"url": "https://i.example.com/a.jpg", "alt": "A picture", "width": 600}


def make(article_id: str, hours_ago: float = 1, **changes: Any) -> Article:
    data: dict[str, Any] = {
        "id": article_id,
        "url": f"https://news.example.com/{article_id}",
        "headline": f"Headline {article_id}",
        "standfirst": f"Standfirst of {article_id}.",
        "section": "UK",
        "published_at": NOW - timedelta(hours=hours_ago),
    }
    data.update(changes)
    return Article.model_validate(data)


def store(engine: Engine, *articles: Article) -> None:
    with engine.begin() as conn:
        upsert_articles(conn, articles, NOW)


def build(engine: Engine, **options: Any) -> Edition:
    options.setdefault("now", NOW)
    options.setdefault("site_name", "Britain's News Portal")
    with engine.begin() as conn:
        return build_edition(conn, **options)


def ids(edition: Edition) -> list[str]:
    return [a.id for a in edition.articles()]


def test_default_window_is_the_last_24_hours(engine: Engine) -> None:
    store(engine, make("fresh", 2), make("edge", 24), make("stale", 25), make("embargoed", -1))
    assert sorted(ids(build(engine))) == ["edge", "fresh"]
    assert sorted(ids(build(engine, since=NOW - timedelta(hours=48)))) == [
        "edge",
        "fresh",
        "stale",
    ]


def test_topic_filter_matches_topics_and_section(engine: Engine) -> None:
    store(
        engine,
        make("crime-section", section="Crime"),
        make("crime-topic", topics=["Crime"]),
        make("sport", section="Sport"),
    )
    edition = build(engine, topics=["CRIME"])
    assert sorted(ids(edition)) == ["crime-section", "crime-topic"]
    assert edition.topics == ["crime"]


def test_top_story_is_breaking_first(engine: Engine) -> None:
    store(
        engine,
        make("newest", 1, image=IMAGE),
        make("breaking-old", 5, breaking=True),
        make("breaking-older", 6, breaking=True),
    )
    edition = build(engine)
    assert edition.top_story is not None
    assert edition.top_story.id == "breaking-old"
    assert ids(edition)[0] == "breaking-old"
    assert len(ids(edition)) == 3


def test_top_story_is_newest_with_image_then_newest(engine: Engine) -> None:
    store(engine, make("newest", 1), make("pictured", 3, image=IMAGE), make("older", 4))
    assert build(engine).top_story.id == "pictured"  # type: ignore[union-attr]
    store(engine, make("pictured", 3))  # the picture is withdrawn
    assert build(engine).top_story.id == "newest"  # type: ignore[union-attr]


def test_ties_are_broken_by_id_so_builds_repeat(engine: Engine) -> None:
    store(engine, make("b", 2, image=IMAGE), make("a", 2, image=IMAGE), make("c", 2))
    first, second = build(engine), build(engine)
    assert first.top_story.id == "a"  # type: ignore[union-attr]
    assert first.model_copy(update={"id": "x"}) == second.model_copy(update={"id": "x"})


def test_sections_follow_the_editorial_order(engine: Engine) -> None:
    store(
        engine,
        make("top", 0.5, image=IMAGE),
        make("zz", 1, section="Zoology"),
        make("sport", 1, section="Sport"),
        make("crime-new", 2, section="Crime"),
        make("crime-old", 8, section="crime"),
        make("uk", 3, section="UK"),
        make("aa", 4, section="Aardvarks"),
    )
    edition = build(engine)
    assert edition.top_story.id == "top"  # type: ignore[union-attr]
    assert [s.name for s in edition.sections] == ["UK", "Crime", "Sport", "Aardvarks", "Zoology"]
    crime = edition.sections[1]
    assert [a.id for a in crime.articles] == ["crime-new", "crime-old"]
    assert "top" not in [a.id for s in edition.sections for a in s.articles]


def test_derived_subject_preheader_title_and_intro(engine: Engine) -> None:
    store(
        engine,
        make("lead", 1, image=IMAGE, headline="Lead story"),
        make("two", 2),
        make("three", 3),
    )
    edition = build(engine)
    assert edition.subject == "Lead story and 2 more stories"
    assert edition.preheader.startswith("Standfirst of lead. Standfirst of")
    assert edition.title == "The Morning Briefing — Thursday 26 November 2026"
    assert "3 stories from Britain's News Portal" in edition.intro
    assert edition.kind is EditionKind.DAILY
    assert edition.status is EditionStatus.DRAFT
    assert edition.created_at == NOW


def test_subject_and_preheader_stay_short_and_on_one_line(engine: Engine) -> None:
    long_headline = "Line one\r\nBcc: victim@example.com " + "word " * 60
    store(
        engine,
        make("lead", 1, image=IMAGE, headline=long_headline, standfirst="x" * 500),
        make("two", 2),
    )
    edition = build(engine)
    assert len(edition.subject) <= SUBJECT_MAX
    assert edition.subject.endswith("… and 1 more story")
    assert "\r" not in edition.subject
    assert "\n" not in edition.subject
    assert len(edition.preheader) <= PREHEADER_MAX
    assert edition.preheader.endswith("…")


def test_overrides_win_and_are_checked(engine: Engine) -> None:
    store(engine, make("a"))
    edition = build(engine, title="Special", subject="  Hello  there ", preheader="Read this")
    assert (edition.title, edition.subject, edition.preheader) == (
        "Special",
        "Hello there",
        "Read this",
    )
    with pytest.raises(HeaderInjectionError) as info:
        build(engine, subject="Hi\r\nBcc: x@example.com")
    assert info.value.field == "subject"
    with pytest.raises(InputError, match="must not be empty"):
        build(engine, title="   ")


def test_title_and_id_use_the_configured_time_zone(engine: Engine) -> None:
    late = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
    store(engine, make("a", hours_ago=-16))  # published 23:00 UTC
    edition = build(engine, now=late, timezone="Asia/Tokyo")
    assert edition.title == "The Morning Briefing — Friday 27 November 2026"
    assert edition.id == "2026-11-27-daily"
    summer = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)  # 00:30 BST on 1 July
    store(engine, make("s", hours_ago=(NOW - summer).total_seconds() / 3600 + 1))
    london = build(engine, now=summer)
    assert london.title == "The Morning Briefing — Wednesday 1 July 2026"
    assert london.id == "2026-07-01-daily"
    evening = build(engine, now=NOW.replace(hour=19), since=summer - timedelta(days=1))
    assert evening.title.startswith("The Evening Briefing — ")


def test_ids_are_readable_and_unique(engine: Engine) -> None:
    store(engine, make("a", breaking=True))
    made = [build(engine).id for _ in range(3)]
    made.append(build(engine, kind=EditionKind.BREAKING).id)
    assert made == [
        "2026-11-26-daily",
        "2026-11-26-daily-2",
        "2026-11-26-daily-3",
        "2026-11-26-breaking",
    ]


def test_breaking_edition_carries_the_newest_breaking_article(engine: Engine) -> None:
    store(
        engine,
        make("newest-plain", 0.5),
        make("breaking-new", 1, breaking=True, headline="Flood barrier closes"),
        make("breaking-old", 2, breaking=True),
    )
    edition = build(engine, kind=EditionKind.BREAKING)
    assert ids(edition) == ["breaking-new"]
    assert edition.sections == []
    assert edition.kind is EditionKind.BREAKING
    assert edition.subject == "Breaking: Flood barrier closes"
    assert edition.title == "Breaking News — Thursday 26 November 2026"
    chosen = build(engine, kind=EditionKind.BREAKING, article_ids=["newest-plain"])
    assert ids(chosen) == ["newest-plain"]
    with pytest.raises(InputError, match="exactly one article"):
        build(engine, kind=EditionKind.BREAKING, article_ids=["breaking-new", "breaking-old"])
    with pytest.raises(NotFoundError, match="'missing'"):
        build(engine, kind=EditionKind.BREAKING, article_ids=["missing"])


def test_breaking_without_a_breaking_article_is_a_state_error(engine: Engine) -> None:
    store(engine, make("plain"))
    with pytest.raises(StateError, match="no breaking articles published since"):
        build(engine, kind=EditionKind.BREAKING)


def test_chosen_articles_for_a_daily_edition(engine: Engine) -> None:
    store(engine, make("a", 100), make("b", 1), make("c", 2))
    assert sorted(ids(build(engine, article_ids=["a", "c"]))) == ["a", "c"]


def test_nothing_matches_is_one_line_state_error(engine: Engine) -> None:
    store(engine, make("old", 48, section="Sport"))
    with pytest.raises(StateError) as info:
        build(engine, topics=["crime", "politics"])
    message = str(info.value)
    assert message == (
        "no articles published since 2026-11-25 07:00 GMT matching topics crime, politics"
    )


def test_a_daily_edition_is_capped(engine: Engine) -> None:
    store(engine, *[make(f"n{i:02d}", hours_ago=i / 10) for i in range(MAX_ARTICLES + 5)])
    edition = build(engine)
    assert len(ids(edition)) == MAX_ARTICLES
    assert "n00" in ids(edition)
    assert f"n{MAX_ARTICLES + 4:02d}" not in ids(edition)


def test_an_edition_is_a_snapshot(engine: Engine) -> None:
    store(engine, make("a", headline="As first published"))
    built = build(engine)
    store(engine, make("a", headline="Corrected later"))
    with engine.connect() as conn:
        again = get_edition(conn, built.id)
    assert again.top_story is not None
    assert again.top_story.headline == "As first published"
    assert again == built


def test_get_latest_list_and_missing(engine: Engine) -> None:
    with engine.connect() as conn:
        assert list_editions(conn) == []
        with pytest.raises(NotFoundError, match="no edition has been built"):
            latest_edition(conn)
        with pytest.raises(NotFoundError, match="'2026-01-01-daily'"):
            get_edition(conn, "2026-01-01-daily")
    store(engine, make("a", 1))
    first = build(engine)
    second = build(engine, now=NOW + timedelta(minutes=5))
    with engine.connect() as conn:
        assert latest_edition(conn).id == second.id
        assert [e.id for e in list_editions(conn)] == [second.id, first.id]
        assert get_edition(conn, first.id) == first


def test_set_status_records_times_and_refuses_leaving_final_states(engine: Engine) -> None:
    store(engine, make("a"))
    edition = build(engine)
    later = NOW + timedelta(hours=1)
    with engine.begin() as conn:
        scheduled = set_status(
            conn, edition.id, EditionStatus.SCHEDULED, now=NOW, scheduled_at=later
        )
        assert scheduled.scheduled_at == later
        paused = set_status(conn, edition.id, EditionStatus.PAUSED, "too many\nfailures", now=NOW)
        assert paused.status_reason == "too many failures"
        sent = set_status(conn, edition.id, EditionStatus.SENT, now=later)
        assert sent.sent_at == later
        assert sent.status is EditionStatus.SENT
        assert sent.status_reason is None
        with pytest.raises(StateError, match="is sent"):
            set_status(conn, edition.id, EditionStatus.DRAFT, now=later)
    with engine.connect() as conn:
        stored = get_edition(conn, edition.id)
        assert stored.status is EditionStatus.SENT
        assert stored.scheduled_at == later
        # the snapshot itself is untouched by the status changes
        assert stored.articles() == edition.articles()
    other = build(engine)
    with engine.begin() as conn:
        set_status(conn, other.id, EditionStatus.CANCELLED, now=NOW)
        with pytest.raises(StateError, match="cancelled"):
            set_status(conn, other.id, EditionStatus.SENDING, now=NOW)
        with pytest.raises(NotFoundError):
            set_status(conn, "nope", EditionStatus.SENT, now=NOW)


# --- --since -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("90m", NOW - timedelta(minutes=90)),
        ("7d", NOW - timedelta(days=7)),
        ("1d12h", NOW - timedelta(hours=36)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2026-11-25T06:00:00Z", datetime(2026, 11, 25, 6, tzinfo=UTC)),
        ("2026-11-25T06:00:00+01:00", datetime(2026, 11, 25, 5, tzinfo=UTC)),
        ("2026-11-25", datetime(2026, 11, 25, 0, tzinfo=UTC)),  # London midnight, GMT
        ("2026-07-01", datetime(2026, 6, 30, 23, tzinfo=UTC)),  # London midnight, BST
        ("2026-07-01T09:30", datetime(2026, 7, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW, "Europe/London") == expected


@pytest.mark.parametrize("text", ["", "yesterday", "24", "h", "0h", "-3h", "2026-13-01"])
def test_parse_since_refuses(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_since(text, NOW)
    assert info.value.field == "--since"


def test_parse_span_is_none_for_non_spans() -> None:
    assert parse_span("12x") is None
    assert parse_span("3h") == timedelta(hours=3)


def test_an_unknown_time_zone_is_a_config_error(engine: Engine) -> None:
    store(engine, make("a"))
    with pytest.raises(ConfigError, match="'Mars/Olympus'"):
        build(engine, timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="unknown time zone"):
        parse_since("2026-11-25", NOW, "Mars/Olympus")
