"""RSS and Atom feeds become articles: files, loopback URLs, errors that name the entry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from newsletter.content.feeds import html_to_paragraphs, stable_id
from newsletter.content.loaders import load_articles
from newsletter.core.errors import ArticleError
from tests.support.feed_server import Served, serve_http
from tests.support.feeds import ATOM, RSS
from tests.support.sample_editions import article_data

DATA = Path(__file__).resolve().parent.parent / "data"
SEED = Path("/work/shared/seed/000_6c8eba20f98929d4.txt")


@pytest.fixture
def http_server() -> Iterator[Served]:
    """A loopback HTTP server (127.0.0.1, port 0) for this test only."""
    with serve_http() as served:
        yield served


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def test_rss_entries_become_articles(tmp_path: Path) -> None:
    path = tmp_path / "uk.xml"
    path.write_text(RSS, encoding="utf-8")
    bridge, plain = load_articles(path)
    assert bridge.url == "https://news.example.com/uk/bridge-reopens"
    assert bridge.headline == "Bridge reopens after repairs"
    assert bridge.standfirst == "The bridge is open again & traffic flows."
    assert bridge.published_at == datetime(2026, 11, 26, 7, 30, tzinfo=UTC)
    assert bridge.published_at.utcoffset() is not None
    assert bridge.section == "Transport"
    assert bridge.topics == ["transport", "bristol"]
    assert bridge.breaking is True
    assert bridge.author == "news@example.com (Ann Editor)"
    assert bridge.image is not None
    assert (bridge.image.url, bridge.image.width, bridge.image.height) == (
        "https://i.example.com/bridge.jpg",
        800,
        450,
    )
    assert bridge.id.startswith("bridge-reopens-")
    assert bridge.id == stable_id("https://news.example.com/uk/bridge-reopens?id=991")
    assert plain.id == "plain-1"
    assert plain.section == "Portal — UK"  # no category: the feed's title
    assert plain.image is not None
    assert plain.image.url == "https://i.example.com/plain.png"
    assert plain.image.width == 600  # no width given: the email column's


def test_feed_ids_are_stable_across_loads(tmp_path: Path) -> None:
    path = tmp_path / "uk.rss"
    path.write_text(RSS, encoding="utf-8")
    assert [a.id for a in load_articles(path)] == [a.id for a in load_articles(path)]


def test_atom_entry_becomes_an_article(tmp_path: Path) -> None:
    path = tmp_path / "science.atom"
    path.write_text(ATOM, encoding="utf-8")
    (comet,) = load_articles(path)
    assert comet.headline == "Comet visible tonight"
    assert comet.standfirst == "Look north after dark."
    assert comet.body == ["First.", "Second."]
    assert comet.author == "Sam Stargazer"
    assert comet.section == "Space"
    assert comet.published_at == datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    assert len(comet.id) <= 200


def test_malformed_feed_is_a_clear_error() -> None:
    with pytest.raises(ArticleError) as info:
        load_articles(DATA / "malformed_feed.xml")
    message = str(info.value)
    assert message.startswith(str(DATA / "malformed_feed.xml"))
    assert "not a readable RSS or Atom feed" in message
    assert "\n" not in message


def test_a_feed_of_nothing_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "page.xml"
    path.write_text("<html><body><p>Hello</p></body></html>", encoding="utf-8")
    with pytest.raises(ArticleError, match=r"page\.xml"):
        load_articles(path)


@pytest.mark.parametrize(
    ("drop", "field", "words"),
    [
        ("<link>https://news.example.com/uk/plain</link>", "link", "has no link"),
        ("<title>No category here</title>", "title", "has no title"),
        ("<pubDate>Thu, 26 Nov 2026 06:00:00 GMT</pubDate>", "published", "has no date"),
    ],
)
def test_feed_entry_missing_parts_names_feed_and_entry(
    tmp_path: Path, drop: str, field: str, words: str
) -> None:
    path = tmp_path / "uk.xml"
    path.write_text(RSS.replace(drop, ""), encoding="utf-8")
    with pytest.raises(ArticleError) as info:
        load_articles(path)
    assert info.value.field == field
    assert info.value.source == str(path)
    assert "entry 2" in str(info.value)
    assert words in str(info.value)


def test_feed_entry_with_http_link_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "uk.xml"
    path.write_text(
        RSS.replace("https://news.example.com/uk/plain", "http://x.example/p"), encoding="utf-8"
    )
    with pytest.raises(ArticleError) as info:
        load_articles(path)
    assert info.value.field == "link"
    assert "entry 2 ('plain-1')" in str(info.value)


def test_html_to_paragraphs_drops_scripts_and_splits_blocks() -> None:
    assert html_to_paragraphs(
        "<p>One &amp; <i>two</i></p><script>x()</script><div>Three</div>"
    ) == [
        "One & two",
        "Three",
    ]


# --- URLs (a loopback server, never the internet) --------------------------------


def test_feed_from_a_loopback_url(http_server: Served) -> None:
    url = http_server.add("/feeds/uk.xml", RSS.encode())
    loaded = load_articles(url)
    assert [a.headline for a in loaded] == ["Bridge reopens after repairs", "No category here"]
    assert http_server.requests == ["/feeds/uk.xml"]


def test_json_from_a_loopback_url(http_server: Served) -> None:
    url = http_server.add("/api/latest", json.dumps([article_data()]).encode(), "application/json")
    assert [a.id for a in load_articles(url)] == ["a1"]


def test_http_error_names_the_url_without_its_password(http_server: Served) -> None:
    url = http_server.base.replace("http://", "http://editor:hunter2@") + "/missing.xml"
    with pytest.raises(ArticleError) as info:
        load_articles(url)
    assert "HTTP 404" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "/missing.xml" in str(info.value)


def test_unreachable_url_is_one_clear_line() -> None:
    with pytest.raises(ArticleError, match="cannot fetch"):
        load_articles("http://127.0.0.1:9/feed.xml")
