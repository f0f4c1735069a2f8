"""``newsletter articles ...`` and ``newsletter edition ...`` through the real entry point."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import EXAMPLES, CLIResult
from tests.support.feed_server import Served, serve_http
from tests.support.feeds import RSS

Run = Callable[..., CLIResult]
SEED_ID = "met-police-live-facial-recognition-expansion"


@pytest.fixture
def http_server() -> Iterator[Served]:
    """A loopback HTTP server (127.0.0.1, port 0) for this test only."""
    with serve_http() as served:
        yield served


def one_error_line(result: CLIResult) -> str:
    assert result.code == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def fresh(article_id: str, hours_ago: float, **changes: Any) -> dict[str, Any]:
    published = datetime.now(UTC) - timedelta(hours=hours_ago)
    data: dict[str, Any] = {
        "id": article_id,
        "url": f"https://news.example.com/{article_id}",
        "headline": f"Headline {article_id}",
        "standfirst": f"About {article_id}.",
        "section": "UK",
        "published_at": published.isoformat(),
    }
    data.update(changes)
    return data


def test_import_examples_then_reimport_updates_nothing(run_cli: Run) -> None:
    first = run_cli("articles", "import", str(EXAMPLES / "articles"))
    assert first.code == 0, first.stderr
    match = re.search(
        r"imported (\d+) articles: (\d+) inserted, 0 updated, 0 unchanged", first.stdout
    )
    assert match
    assert match.group(1) == match.group(2)
    assert int(match.group(1)) >= 8
    again = run_cli("articles", "import", str(EXAMPLES / "articles"))
    assert f"0 inserted, 0 updated, {match.group(1)} unchanged" in again.stdout
    listed = run_cli("articles", "list", "--json")
    rows = json.loads(listed.stdout)
    assert len(rows) == int(match.group(1))
    assert rows[0]["id"] == SEED_ID  # newest first
    assert [r["published_at"] for r in rows] == sorted(
        (r["published_at"] for r in rows), reverse=True
    )
    table = run_cli("articles", "list", "--topic", "crime")
    assert table.code == 0
    assert "Met Police Set to Expand" in table.stdout
    assert "Hedgehog" not in table.stdout


def test_build_daily_and_breaking_editions_from_the_examples(run_cli: Run) -> None:
    assert run_cli("articles", "import", str(EXAMPLES / "articles")).code == 0
    daily = run_cli("edition", "build", "--since", "2026-11-25")
    assert daily.code == 0, daily.stderr
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-daily\n", daily.stdout)
    breaking = run_cli("edition", "build", "--since", "2026-11-25", "--kind", "breaking")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-breaking\n", breaking.stdout), breaking.stderr
    editions = json.loads(run_cli("edition", "list", "--json").stdout)
    by_id = {e["id"]: e for e in editions}
    made = by_id[daily.stdout.strip()]
    assert made["article_ids"][0] == SEED_ID
    assert len(made["article_ids"]) >= 8
    assert made["status"] == "draft"
    assert made["kind"] == "daily"
    assert made["subject"].startswith("Met Police Set to Expand")
    assert by_id[breaking.stdout.strip()]["article_ids"] == [SEED_ID]
    table = run_cli("edition", "list")
    assert daily.stdout.strip() in table.stdout
    assert "draft" in table.stdout


def test_build_default_window_topics_and_overrides(run_cli: Run, workdir: Path) -> None:
    path = workdir / "today.json"
    path.write_text(
        json.dumps(
            [
                fresh("crime-1", 1, section="Crime"),
                fresh("sport-1", 2, section="Sport"),
                fresh("last-week", 24 * 7, section="Crime"),
            ]
        ),
        encoding="utf-8",
    )
    assert run_cli("articles", "import", str(path)).code == 0
    built = run_cli(
        "edition", "build", "--topic", "Crime", "--subject", "Crime today", "--title", "Crime desk"
    )
    assert built.code == 0, built.stderr
    assert ", 1 article: Crime today" in built.stderr
    one = run_cli("edition", "list")
    assert "1 edition" in one.stdout
    assert "1 editions" not in one.stdout
    (edition,) = json.loads(run_cli("edition", "list", "--json").stdout)
    assert edition["id"] == built.stdout.strip()
    assert edition["article_ids"] == ["crime-1"]
    assert (edition["subject"], edition["title"], edition["topics"]) == (
        "Crime today",
        "Crime desk",
        ["crime"],
    )
    chosen = run_cli("edition", "build", "--article", "last-week", "--article", "sport-1")
    assert chosen.code == 0, chosen.stderr
    assert chosen.stdout.strip().endswith("-daily-2")
    assert ", 2 articles: " in chosen.stderr
    assert "2 editions" in run_cli("edition", "list").stdout


def test_nothing_to_build_is_one_line(run_cli: Run) -> None:
    result = run_cli("edition", "build", "--since", "2h", "--topic", "crime")
    line = one_error_line(result)
    assert line.startswith("error: no articles published since ")
    assert line.endswith("matching topics crime")
    assert result.stdout == ""


def test_a_bad_file_imports_nothing_and_names_where(run_cli: Run, workdir: Path) -> None:
    good = workdir / "good.json"
    good.write_text(json.dumps(fresh("good", 1)), encoding="utf-8")
    bad = workdir / "bad.json"
    bad.write_text(json.dumps(fresh("bad", 1, url="/relative/path"), indent=2), encoding="utf-8")
    line = one_error_line(run_cli("articles", "import", str(good), str(bad)))
    assert re.match(rf"error: {re.escape(str(bad))}:\d+, field 'url': article 1 \(id 'bad'\)", line)
    listed = run_cli("articles", "list", "--json")
    # nothing was written, not even a database: the command that only reads says so
    assert listed.code == 1
    assert "no database here" in listed.stderr


def test_a_malformed_feed_is_one_line(run_cli: Run) -> None:
    feed = Path(__file__).resolve().parent.parent / "data" / "malformed_feed.xml"
    line = one_error_line(run_cli("articles", "import", str(feed)))
    assert "malformed_feed.xml: not a readable RSS or Atom feed" in line


def test_import_a_feed_from_a_loopback_url(run_cli: Run, http_server: Served) -> None:
    url = http_server.add("/feed.xml", RSS.encode())
    result = run_cli("articles", "import", url)
    assert result.code == 0, result.stderr
    assert "2 articles: 2 inserted" in result.stdout
    rows = json.loads(run_cli("articles", "list", "--json").stdout)
    assert {r["headline"] for r in rows} == {"Bridge reopens after repairs", "No category here"}


def test_bad_since_is_one_line(run_cli: Run) -> None:
    line = one_error_line(run_cli("articles", "list", "--since", "last tuesday"))
    assert "'--since'" in line
    assert "last tuesday" in line
