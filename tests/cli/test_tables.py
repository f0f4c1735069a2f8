"""The list commands stay readable in 80- and 100-column terminals; --wide and --json stay whole."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from rich.cells import cell_len

from tests.support.cli import EXAMPLES, CLIResult

Run = Callable[..., CLIResult]
SEED_ID = "met-police-live-facial-recognition-expansion"
SEED_HEADLINE = "Met Police Set to Expand Live Facial Recognition After Court Victory"


def _ok(result: CLIResult) -> CLIResult:
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def _rows(stdout: str) -> list[str]:
    """The table's body: the lines after the header rule."""
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("──"))
    return lines[rule + 1 :]


@pytest.fixture
def stored(run_cli: Run) -> list[dict[str, object]]:
    _ok(run_cli("articles", "import", str(EXAMPLES / "articles")))
    articles: list[dict[str, object]] = json.loads(
        _ok(run_cli("articles", "list", "--json")).stdout
    )
    return articles


@pytest.mark.parametrize("columns", [80, 100])
def test_articles_list_gives_each_article_one_line_within_the_width(
    run_cli: Run, stored: list[dict[str, object]], columns: int
) -> None:
    table = _ok(run_cli("articles", "list", env={"COLUMNS": str(columns)})).stdout
    assert all(cell_len(line) <= columns for line in table.splitlines()), table
    header = table.splitlines()[1].split()
    assert header == ["Published", "Section", "Headline"]
    rows = _rows(table)
    assert len(rows) == len(stored)  # one line per article, nothing wrapped
    for row, article in zip(rows, stored, strict=True):
        headline = str(article["headline"])
        shown = row.split("   ")[-1].strip()
        flag = "BREAKING: " if article["breaking"] else ""
        # the headline's start is readable, whole or cut with an ellipsis
        assert (flag + headline).startswith(shown.removesuffix("…")), (row, headline)
        assert len(shown) >= 30
    assert any(row.endswith("…") for row in rows)  # the long ones are cut, not wrapped
    assert SEED_ID not in table


def test_articles_list_wide_shows_ids_and_topics_in_full(
    run_cli: Run, stored: list[dict[str, object]]
) -> None:
    table = _ok(run_cli("articles", "list", "--wide", env={"COLUMNS": "80"})).stdout
    assert table.splitlines()[1].split() == ["Published", "ID", "Section", "Headline", "Topics"]
    rows = _rows(table)
    assert len(rows) == len(stored)
    for row, article in zip(rows, stored, strict=True):
        assert str(article["id"]) in row
        assert str(article["headline"]) in row
        assert ", ".join(map(str, article["topics"])) in row  # type: ignore[call-overload]
        assert row == row.rstrip()
    # --json keeps every field
    assert {"id", "body", "key_points", "image", "topics"} <= set(stored[0])


@pytest.mark.parametrize("columns", [80, 100])
def test_edition_list_fits_and_keeps_whole_ids(run_cli: Run, columns: int) -> None:
    _ok(run_cli("articles", "import", str(EXAMPLES / "articles")))
    daily = _ok(run_cli("edition", "build", "--since", "2026-11-25")).stdout.strip()
    breaking = _ok(run_cli("edition", "build", "--since", "2026-11-25", "--kind", "breaking"))
    table = _ok(run_cli("edition", "list", env={"COLUMNS": str(columns)})).stdout
    assert all(cell_len(line) <= columns for line in table.splitlines()), table
    rows = _rows(table)
    assert len(rows) == 2
    assert {row.split()[0] for row in rows} == {daily, breaking.stdout.strip()}
    assert all(" draft " in row for row in rows)
    assert any(f"Breaking: {SEED_HEADLINE}"[:25] in row for row in rows)  # one line, cut
    wide = _ok(run_cli("edition", "list", "--wide", env={"COLUMNS": str(columns)})).stdout
    # the subject itself is cut to what a phone's inbox shows (60 characters), not the table
    subject = next(line for line in wide.splitlines() if "Breaking: " in line)
    assert f"Breaking: {SEED_HEADLINE}"[:45] in subject
    assert subject.rstrip().endswith("…")
    assert wide.splitlines()[1].split()[:3] == ["ID", "Kind", "Status"]


@pytest.mark.parametrize("columns", [80, 100])
def test_subscribers_list_fits_the_terminal_and_a_pipe_gets_whole_lines(
    run_cli: Run, columns: int
) -> None:
    _ok(run_cli("subscribers", "import", str(EXAMPLES / "subscribers.csv")))
    table = _ok(run_cli("subscribers", "list", env={"COLUMNS": str(columns)})).stdout
    lines = table.splitlines()
    assert len(lines) == 13
    assert all(cell_len(line) <= columns for line in lines), table
    assert lines[0].split() == ["id", "status", "email", "name", "topics"]
    # the address, the key of the row, is whole for ordinary lengths even at 80
    assert "amelia.hughes@example.co.uk" in table
    assert "Zoë Müller" in table  # cut and padded by terminal cells, not bytes
    piped = _ok(run_cli("subscribers", "list", env={"COLUMNS": ""})).stdout
    assert "environment,science,wildlife" in piped
    assert "…" not in piped


def test_counts_read_right_for_one_and_for_many(capsys: pytest.CaptureFixture[str]) -> None:
    from newsletter.cli.common import plural
    from newsletter.cli.delivery import _summary
    from newsletter.delivery.report import SendReport

    assert [plural(n, "edition") for n in (0, 1, 2)] == ["0 editions", "1 edition", "2 editions"]
    dry = SendReport("e1", mode="dry-run", built=1, variants=1, built_bytes=10)
    assert "built 1 message (1 variant," in str(dry)
    _summary(SendReport("e1", recovered_unknown=1, sent=1))
    _summary(SendReport("e1", recovered_unknown=2, sent=1))
    lines = capsys.readouterr().out.splitlines()
    assert (
        "1 message caught mid-send by an earlier run is 'unknown' and was not sent again "
        "(use --resend-unknown to send it)"
    ) in lines
    assert (
        "2 messages caught mid-send by an earlier run are 'unknown' and were not sent again "
        "(use --resend-unknown to send them)"
    ) in lines
