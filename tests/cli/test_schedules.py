"""The ``schedule`` and ``scheduler`` commands through the real entry point, at a set clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.content.editions import get_edition
from newsletter.content.models import Article
from newsletter.database import open_database
from tests.support.cli import CLIResult
from tests.support.scheduling import (
    article,
)


def write_articles(folder: Path, *articles: Article) -> Path:
    path = folder / "articles.json"
    path.write_text(json.dumps([a.model_dump(mode="json") for a in articles]), encoding="utf-8")
    return path


def test_schedule_commands_and_once_at_an_injected_clock(
    run_cli: Callable[..., CLIResult], workdir: Path
) -> None:
    source = write_articles(workdir, article("a", "2026-03-29T05:00Z", section="Crime"))
    assert run_cli("articles", "import", str(source)).code == 0
    before = {"NEWSLETTER_NOW": "2026-03-28T12:00:00Z"}
    added = run_cli("schedule", "add", "--cron", "0 7 * * *", "--topic", "politics", env=before)
    assert added.code == 0, added.stderr
    assert added.stdout.strip() == (
        "schedule 1: cron '0 7 * * *' Europe/London, build daily (politics); "
        "next run 2026-03-29 07:00 BST"
    )
    gap = run_cli("schedule", "add", "--at", "2026-03-29 01:30", env=before)
    assert gap.code == 0, gap.stderr
    assert "does not exist in Europe/London" in gap.stderr
    assert "next run 2026-03-29 02:30 BST" in gap.stdout
    assert run_cli("schedule", "pause", "2", env=before).stdout.strip() == "schedule 2: paused"
    twice = run_cli("schedule", "add", "--at", "2026-10-25 01:30", env=before)
    assert twice.stderr.strip() == (
        "note: 2026-10-25 01:30 happens twice in Europe/London (clocks go back); "
        "it runs once, at 2026-10-25 01:30 BST"
    )
    assert run_cli("schedule", "cancel", "3", env=before).code == 0

    early = run_cli("scheduler", "--once", env={"NEWSLETTER_NOW": "2026-03-29T05:59:00Z"})
    assert (early.code, early.stdout) == (0, "")
    due = run_cli("scheduler", "--once", env={"NEWSLETTER_NOW": "2026-03-29T06:00:05Z"})
    assert due.code == 0, due.stderr
    assert due.stdout.startswith("schedule 1 2026-03-29 07:00 BST: skipped (nothing new: ")
    again = run_cli("scheduler", "--once", env={"NEWSLETTER_NOW": "2026-03-29T06:30:00Z"})
    assert (again.code, again.stdout) == (0, "")

    shown = run_cli("schedule", "show", "1", env={"NEWSLETTER_NOW": "2026-03-29T07:00:00Z"})
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[:4] == [
        "schedule 1 (active)",
        "  when: cron '0 7 * * *' Europe/London",
        "  what: build daily (politics)",
        "  next run: 2026-03-30 07:00 BST",
    ]
    assert lines[4].startswith("  2026-03-29 07:00 BST  skipped  nothing new: no articles")
    data = json.loads(run_cli("schedule", "show", "1", "--json").stdout)
    assert [r["outcome"] for r in data["runs"]] == ["skipped"]
    listed = json.loads(run_cli("schedule", "list", "--json").stdout)
    assert [(s["id"], s["status"]) for s in listed] == [
        (1, "active"),
        (2, "paused"),
        (3, "cancelled"),
    ]


def test_a_fixed_edition_is_scheduled_and_cancelling_returns_it_to_draft(
    run_cli: Callable[..., CLIResult], workdir: Path
) -> None:
    source = write_articles(workdir, article("a", "2026-03-28T05:00Z"))
    now = {"NEWSLETTER_NOW": "2026-03-28T12:00:00Z"}
    assert run_cli("articles", "import", str(source)).code == 0
    built = run_cli("edition", "build", "--since", "2026-03-28", env=now)
    assert built.code == 0, built.stderr
    edition_id = built.stdout.strip()
    added = run_cli("schedule", "add", "--at", "2026-03-29 07:00", "--edition", edition_id, env=now)
    assert added.code == 0, added.stderr
    assert f"once 2026-03-29 07:00 BST, edition {edition_id}" in added.stdout

    def status() -> tuple[str, str | None]:
        engine = open_database(f"sqlite:///{workdir / 'test.db'}")
        with engine.connect() as conn:
            edition = get_edition(conn, edition_id)
        engine.dispose()
        scheduled = edition.scheduled_at.isoformat() if edition.scheduled_at else None
        return edition.status.value, scheduled

    assert status() == ("scheduled", "2026-03-29T06:00:00+00:00")
    assert run_cli("schedule", "cancel", "1").stdout.strip() == "schedule 1: cancelled"
    assert status()[0] == "draft"
    again = run_cli("schedule", "cancel", "1")
    assert (again.code, again.stderr.strip()) == (
        1,
        "error: schedule 1 is cancelled; cannot cancel it",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 7 * * *", "--at", "2026-12-01 07:00"], "exactly one of --at"),
        (["--cron", "61 7 * * *"], "field '--cron': '61 7 * * *' is not a cron expression"),
        (["--at", "2026-03-29 07:00", "--tz", "Mars/Olympus"], "unknown time zone"),
        (["--at", "2026-03-20 07:00"], "2026-03-20 07:00 GMT is in the past"),
        (["--cron", "0 7 * * *", "--edition", "x", "--topic", "uk"], "takes no build options"),
        (["--at", "2026-12-01 07:00", "--edition", "missing"], "missing"),
        (["--cron", "0 7 * * *", "--edition", "x"], "--edition goes with --at"),
        (["--cron", "0 7 * * *", "--since", "soon"], "field '--since'"),
        (["--cron", "0 7 * * *", "--title", "a\nBcc: x@example.org"], "field '--title'"),
    ],
)
def test_schedule_add_errors_are_one_line(
    run_cli: Callable[..., CLIResult], args: list[str], message: str
) -> None:
    result = run_cli("schedule", "add", *args, env={"NEWSLETTER_NOW": "2026-03-28T12:00:00Z"})
    assert result.code == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_bad_injected_clock_is_one_line(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("scheduler", "--once", env={"NEWSLETTER_NOW": "soon"})
    assert result.code == 1
    assert result.stderr.strip().startswith("error: NEWSLETTER_NOW must be")
