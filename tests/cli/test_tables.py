"""One style for every list: plain aligned columns under a header row, then a count.

Every list command is checked against the one style (:func:`_one_style`): no
borders or rules, lower-case column names, one line per item, a count on the
last line, on stdout with nothing on stderr. Narrow terminals cut free text with
"…" but never an identifier; a pipe gets whole lines; --json stays whole.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.cells import cell_len

from tests.support.cli import EXAMPLES, CLIResult

Run = Callable[..., CLIResult]
SEED_ID = "met-police-live-facial-recognition-expansion"
SEED_HEADLINE = "Met Police Set to Expand Live Facial Recognition After Court Victory"
_BOX = re.compile("[\u2500-\u257f\u2580-\u259f]")  # box drawing and block elements
_COUNT = re.compile(r"^\d[\d,]* [a-z]")


def _ok(result: CLIResult) -> CLIResult:
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def _one_style(result: CLIResult, header: list[str], *, items: int | None = None) -> list[str]:
    """The rows of a list printed in the one style (asserting it), header and count apart."""
    _ok(result)
    assert result.stderr == "", result.stderr  # counts and summaries go to stdout
    lines = result.stdout.splitlines()
    assert not _BOX.search(result.stdout), result.stdout  # no borders, no rules
    assert all(line == line.rstrip() for line in lines), result.stdout
    assert re.split(r" {2,}", lines[0].strip()) == header, lines[0]
    assert _COUNT.match(lines[-1]), lines[-1]  # "12 subscribers"
    rows = lines[1:-1]
    if items is not None:
        assert len(rows) == items, result.stdout
    return rows


def _block(result: CLIResult, first: str) -> CLIResult:
    """The list inside a longer output: from its header row (``first``) to its count."""
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i in range(start + 1, len(lines)) if _COUNT.match(lines[i]))
    return CLIResult(result.code, "\n".join(lines[start : end + 1]) + "\n", result.stderr)


def _fits(stdout: str, columns: int) -> None:
    assert all(cell_len(line) <= columns for line in stdout.splitlines()), stdout


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
    result = run_cli("articles", "list", env={"COLUMNS": str(columns)})
    rows = _one_style(result, ["published", "section", "headline"], items=len(stored))
    _fits(result.stdout, columns)
    assert result.stdout.splitlines()[-1] == f"{len(stored)} articles"
    for row, article in zip(rows, stored, strict=True):
        headline = str(article["headline"])
        shown = row.split("  ")[-1].strip()
        flag = "BREAKING: " if article["breaking"] else ""
        # the headline's start is readable, whole or cut with an ellipsis
        assert (flag + headline).startswith(shown.removesuffix("…")), (row, headline)
        assert len(shown) >= 30
    assert any(row.endswith("…") for row in rows)  # the long ones are cut, not wrapped
    assert SEED_ID not in result.stdout


def test_articles_list_wide_shows_ids_and_topics_in_full(
    run_cli: Run, stored: list[dict[str, object]]
) -> None:
    result = run_cli("articles", "list", "--wide", env={"COLUMNS": "80"})
    header = ["published", "id", "section", "headline", "topics"]
    rows = _one_style(result, header, items=len(stored))
    for row, article in zip(rows, stored, strict=True):
        assert str(article["id"]) in row
        assert str(article["headline"]) in row
        assert ", ".join(map(str, article["topics"])) in row  # type: ignore[call-overload]
    # --json keeps every field
    assert {"id", "body", "key_points", "image", "topics"} <= set(stored[0])


@pytest.mark.parametrize("columns", [60, 80, 100])
def test_edition_list_fits_and_keeps_whole_ids(run_cli: Run, columns: int) -> None:
    _ok(run_cli("articles", "import", str(EXAMPLES / "articles")))
    daily = _ok(run_cli("edition", "build", "--since", "2026-11-25")).stdout.strip()
    breaking = _ok(run_cli("edition", "build", "--since", "2026-11-25", "--kind", "breaking"))
    result = run_cli("edition", "list", env={"COLUMNS": str(columns)})
    rows = _one_style(result, ["id", "status", "created", "subject"], items=2)
    _fits(result.stdout, columns)
    assert {row.split()[0] for row in rows} == {daily, breaking.stdout.strip()}  # whole ids
    assert all(" draft " in row for row in rows)
    if columns >= 80:
        assert any(f"Breaking: {SEED_HEADLINE}"[:20] in row for row in rows)  # one line, cut
    wide = run_cli("edition", "list", "--wide", env={"COLUMNS": str(columns)})
    header = ["id", "kind", "status", "created", "articles", "subject"]
    wide_rows = _one_style(wide, header, items=2)
    # the subject itself is cut to what a phone's inbox shows (60 characters), not the table
    subject = next(line for line in wide_rows if "Breaking: " in line)
    assert f"Breaking: {SEED_HEADLINE}"[:45] in subject
    assert subject.endswith("…")


@pytest.mark.parametrize("columns", [40, 80, 100])
def test_subscribers_list_fits_the_terminal_and_a_pipe_gets_whole_lines(
    run_cli: Run, columns: int
) -> None:
    _ok(run_cli("subscribers", "import", str(EXAMPLES / "subscribers.csv")))
    result = run_cli("subscribers", "list", env={"COLUMNS": str(columns)})
    rows = _one_style(result, ["id", "status", "email", "name", "topics"], items=12)
    assert result.stdout.splitlines()[-1] == "12 subscribers"
    if columns >= 80:
        _fits(result.stdout, columns)
        assert "Zoë Müller" in result.stdout  # cut and padded by terminal cells, not bytes
    # ids and addresses, the keys of a row, are whole however narrow the terminal
    assert [row.split()[0] for row in rows] == [str(n) for n in range(1, 13)]
    assert "amelia.hughes@example.co.uk" in result.stdout
    assert "hamish.macleod@example.scot" in result.stdout
    piped = run_cli("subscribers", "list", env={"COLUMNS": ""})
    _one_style(piped, ["id", "status", "email", "name", "topics"], items=12)
    assert "environment,science,wildlife" in piped.stdout
    assert "…" not in piped.stdout


def _env(workdir: Path) -> dict[str, str]:
    """The environment ``run_cli`` gives a command (for a run that needs stdin)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_DATABASE_URL"] = f"sqlite:///{workdir / 'test.db'}"
    env["NEWSLETTER_SECRET_KEY"] = "test-secret-key-not-for-production"
    return env


def test_schedule_status_users_audit_and_report_lists_share_the_style(
    run_cli: Run, workdir: Path
) -> None:
    _ok(run_cli("articles", "import", str(EXAMPLES / "articles")))
    _ok(run_cli("subscribers", "import", str(EXAMPLES / "subscribers.csv"), "--confirmed"))
    edition = _ok(run_cli("edition", "build", "--since", "2026-11-25")).stdout.strip()
    _ok(run_cli("schedule", "add", "--at", "2031-01-02 07:00", "--edition", edition))
    _ok(run_cli("schedule", "add", "--cron", "0 7 * * *", "--tz", "Europe/London"))
    narrow = {"COLUMNS": "60"}
    schedules = run_cli("schedule", "list", env=narrow)
    header = ["id", "status", "when", "what", "next run", "last outcome"]
    rows = _one_style(schedules, header, items=2)
    assert f"edition {edition}" in rows[0]  # the edition id is whole, even at 60
    assert _ok(run_cli("send", edition, "--dry-run")).code == 0
    status = run_cli("status", edition)
    assert status.stdout.startswith(f"{edition}: ")  # the edition's line, then the list
    state_rows = _one_style(_block(status, "state"), ["state", "messages"], items=7)
    assert any(re.fullmatch(r"queued +\d+", row) for row in state_rows)
    report = run_cli("report", edition)
    _one_style(_block(report, "measure"), ["measure", "count"], items=14)
    header = ["story", "section", "clicks", "unique", "scanners"]
    _one_style(_block(report, "story "), header)
    account = subprocess.run(
        [sys.executable, "-m", "newsletter", "users", "add", "ed@example.com", "--role",
         "editor", "--password-stdin"],
        cwd=workdir, env=_env(workdir), input="Correct-Horse-Battery-9\n",
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert account.returncode == 0, account.stderr
    assert account.stdout.strip() == "added ed@example.com (editor)"
    _one_style(run_cli("users", "list"), ["email", "role", "last sign-in"], items=1)
    audit = run_cli("audit", env={"COLUMNS": "50"})
    rows = _one_style(audit, ["at", "actor", "action", "target", "detail"], items=1)
    assert "ed@example.com" in rows[0]
    lists = _one_style(run_cli("newsletters"), ["id", "receiving", "pending", "left", "name"])
    # the one default newsletter, marked
    assert re.fullmatch(r"daily\* +\d+ +\d+ +\d+  Britain.s News Portal Briefing", lists[0])


def test_an_empty_list_says_so_on_stdout(run_cli: Run) -> None:
    _ok(run_cli("init"))
    for args, said in (
        (["subscribers", "list"], "0 subscribers"),
        (["edition", "list"], "0 editions"),
        (["schedule", "list"], "0 schedules"),
        (["audit"], "the audit log is empty"),
    ):
        result = _ok(run_cli(*args))
        assert result.stderr == ""
        assert result.stdout.splitlines()[-1] == said


def test_the_one_style_fails_a_table_with_borders() -> None:
    """The checker itself: a rich table, or a count on stderr, is another style."""
    boxed = "┏━━━━┳━━━━━━━━┓\n┃ id ┃ status ┃\n┡━━━━╇━━━━━━━━┩\n│ 1  │ active │\n└────┴────────┘\n"
    with pytest.raises(AssertionError):
        _one_style(CLIResult(0, boxed + "1 schedule\n", ""), ["id", "status"])
    plain = "id  status\n 1  active\n"
    with pytest.raises(AssertionError):
        _one_style(CLIResult(0, plain, "1 schedule\n"), ["id", "status"])
    _one_style(CLIResult(0, plain + "1 schedule\n", ""), ["id", "status"], items=1)


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
