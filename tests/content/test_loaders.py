"""Loaders: JSON, YAML, folders and RSS/Atom feeds (files and loopback URLs), and their errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.content.loaders import load_articles, load_many
from newsletter.core.errors import ArticleError
from tests.support.cli import EXAMPLES
from tests.support.feed_server import Served, serve_http
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


# --- JSON and YAML ---------------------------------------------------------------


def test_json_one_article_and_a_list(tmp_path: Path) -> None:
    one = load_articles(write_json(tmp_path / "one.json", article_data()))
    many = load_articles(
        write_json(
            tmp_path / "many.json", [article_data(id="a"), article_data(id="b", section="Crime")]
        )
    )
    assert [a.id for a in one] == ["a1"]
    assert [(a.id, a.section) for a in many] == [("a", "UK"), ("b", "Crime")]


def test_yaml_article_with_aware_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(
        "id: y1\nurl: https://news.example.com/y1\nheadline: From YAML\nsection: UK\n"
        "published_at: 2026-11-26T07:00:00+01:00\ntopics: [Cost of Living]\n",
        encoding="utf-8",
    )
    (loaded,) = load_articles(path)
    assert loaded.published_at == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    assert loaded.topics == ["cost-of-living"]


def test_json_syntax_error_names_file_and_line() -> None:
    with pytest.raises(ArticleError) as info:
        load_articles(DATA / "syntax_error.json")
    assert info.value.line == 5
    assert str(info.value).startswith(f"{DATA / 'syntax_error.json'}:5: invalid JSON")


def test_json_field_error_names_file_line_article_and_field(tmp_path: Path) -> None:
    good = article_data(id="ok")
    bad = article_data(id="bad", image={"url": "/images/a.jpg", "alt": "A", "width": 600})
    path = write_json(tmp_path / "list.json", [good, bad])
    with pytest.raises(ArticleError) as info:
        load_articles(path)
    error = info.value
    lines = path.read_text().splitlines()
    assert '"url": "/images/a.jpg"' in lines[error.line - 1]  # type: ignore[operator]
    assert error.field == "image.url"
    assert error.source == str(path)
    message = str(error)
    assert "article 2 (id 'bad')" in message
    assert "absolute https" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"url": "/uk/a1"}, "url", "absolute https"),
        ({"published_at": "2026-11-26T07:00:00"}, "published_at", "naive datetime"),
        ({"headline": ""}, "headline", "must not be empty"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"breaking": "perhaps"}, "breaking", "valid boolean"),
        ({"key_points": "one point"}, "key_points", "got str"),
        ({"key_points": ["fine", 3]}, "key_points[1]", "got int"),
    ],
)
def test_json_field_errors(tmp_path: Path, changes: dict[str, Any], field: str, words: str) -> None:
    path = write_json(tmp_path / "a.json", article_data(**changes))
    with pytest.raises(ArticleError) as info:
        load_articles(path)
    assert info.value.field == field
    assert words in str(info.value)
    assert info.value.line is not None
    # the line points at the offending key (or, for a list item, the item itself)
    key = field.split("[")[0].split(".")[-1]
    text = path.read_text().splitlines()
    assert key in text[info.value.line - 1] or field.endswith("]")


def test_missing_field_points_at_the_article(tmp_path: Path) -> None:
    data = article_data()
    del data["section"]
    path = write_json(tmp_path / "a.json", [article_data(id="x"), data])
    with pytest.raises(ArticleError) as info:
        load_articles(path)
    assert info.value.field == "section"
    assert "required field is missing" in str(info.value)
    assert path.read_text().splitlines()[info.value.line - 1].strip() == "{"  # type: ignore[operator]


def test_yaml_field_error_line_from_node_marks() -> None:
    path = DATA / "naive_datetime.yaml"
    with pytest.raises(ArticleError) as info:
        load_articles(path)
    assert info.value.line == 10
    assert info.value.field == "published_at"
    assert "article 2 (id 'second')" in str(info.value)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: a\nheadline: [unclosed\nsection: UK\n", encoding="utf-8")
    with pytest.raises(ArticleError) as info:
        load_articles(path)
    assert "invalid YAML" in str(info.value)
    assert info.value.line is not None
    assert info.value.line >= 2


@pytest.mark.parametrize("content", ["42", '"just a string"', "[1, 2]"])
def test_not_an_article_object(tmp_path: Path, content: str) -> None:
    path = tmp_path / "odd.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ArticleError, match=r"odd\.json"):
        load_articles(path)


def test_not_utf8_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"headline": "caf\xe9"}')
    with pytest.raises(ArticleError, match="not UTF-8"):
        load_articles(path)
    with pytest.raises(ArticleError, match="no such file"):
        load_articles(tmp_path / "absent.json")


# --- folders ----------------------------------------------------------------------


def test_folder_loads_every_supported_file_recursively(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    write_json(tmp_path / "a.json", article_data(id="a"))
    write_json(tmp_path / "sub" / "b.json", article_data(id="b"))
    write_json(tmp_path / ".hidden" / "c.json", article_data(id="c"))
    (tmp_path / "README.md").write_text("not an article", encoding="utf-8")
    assert sorted(a.id for a in load_articles(tmp_path)) == ["a", "b"]


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ArticleError, match="no article files"):
        load_articles(tmp_path)


def test_one_id_for_two_different_articles_is_refused(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", article_data(id="same", headline="One"))
    write_json(tmp_path / "b.json", article_data(id="same", headline="Another"))
    with pytest.raises(ArticleError) as info:
        load_articles(tmp_path)
    assert info.value.field == "id"
    assert "a.json" in str(info.value)
    assert "b.json" in str(info.value)


def test_the_same_article_twice_is_kept_once(tmp_path: Path) -> None:
    one = write_json(tmp_path / "a.json", article_data(id="same"))
    assert [a.id for a in load_many([one, one])] == ["same"]


# --- the examples -----------------------------------------------------------------


def test_examples_are_realistic_and_include_the_seed() -> None:
    loaded = load_articles(EXAMPLES / "articles")
    assert len(loaded) >= 8
    assert len({a.section for a in loaded}) >= 4
    assert len({a.id for a in loaded}) == len(loaded)
    times = sorted(a.published_at for a in loaded)
    assert times[-1] - times[0] < (datetime(2026, 1, 3) - datetime(2026, 1, 1))
    assert sum(a.image is not None for a in loaded) >= 5
    seed = next(a for a in loaded if a.id == "met-police-live-facial-recognition-expansion")
    assert seed.image is not None
    assert seed.image.url.startswith("https://")
    assert seed.image.alt
    assert seed.image.width
    page = SEED.read_text(encoding="utf-8") if SEED.exists() else None
    if page is not None:
        assert seed.headline in page
        assert seed.standfirst in page
        assert all(p in page for p in seed.key_points)
        assert len(seed.key_points) == 5
        assert all(p in page for p in seed.body)
        assert len(seed.body) == 5
        assert f"Why this matters: {seed.why_it_matters}" in page
    assert seed.what_it_means_for_you is not None
    assert not seed.what_it_means_for_you.startswith("What this means for you")
    assert seed.what_it_means_for_you.startswith("Your image could be scanned")


# --- feeds ------------------------------------------------------------------------


# --- any input at all: articles or one ArticleError, never another exception -----

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
_field_names = st.sampled_from([*article_data().keys(), "image", "topics", "body", "surprise"])
_near_articles = st.fixed_dictionaries(
    {}, optional={name: _json_values for name in ["id", "url", "headline", "section"]}
).flatmap(
    lambda base: st.dictionaries(_field_names, _json_values, max_size=4).map(
        lambda extra: {**article_data(), **base, **extra}
    )
)


def _load_quietly(path: Path) -> None:
    message = ""
    try:
        load_articles(path)
    except ArticleError as exc:
        message = str(exc)
    if message:
        assert "\n" not in message
        assert str(path) in message


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.one_of(_json_values, _near_articles, st.lists(_near_articles, max_size=3)))
def test_any_json_gives_articles_or_one_clear_error(tmp_path: Path, data: Any) -> None:
    _load_quietly(write_json(tmp_path / "any.json", data))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200), suffix=st.sampled_from([".yaml", ".xml", ".json"]))
def test_any_text_gives_articles_or_one_clear_error(tmp_path: Path, text: str, suffix: str) -> None:
    path = tmp_path / f"any{suffix}"
    path.write_text(text, encoding="utf-8")
    _load_quietly(path)


_xml_text = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from("<>&\"'\n"), max_size=30
)
_items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "title": _xml_text,
            "link": st.sampled_from(["https://news.example.com/a", "http://x/a", "/a", ""])
            | _xml_text,
            "guid": _xml_text,
            "pubDate": st.sampled_from(["Thu, 26 Nov 2026 06:00:00 GMT", "tomorrow", ""])
            | _xml_text,
            "category": _xml_text,
            "description": _xml_text,
        },
    ),
    max_size=3,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=_items)
def test_any_rss_items_give_articles_or_one_clear_error(
    tmp_path: Path, items: list[dict[str, str]]
) -> None:
    body = "".join(
        "<item>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in item.items()) + "</item>"
        for item in items
    )
    path = tmp_path / "any.xml"
    path.write_text(f'<rss version="2.0"><channel><title>T</title>{body}</channel></rss>', "utf-8")
    _load_quietly(path)
