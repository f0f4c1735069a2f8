"""``newsletter edition build/show/edit/delete/duplicate`` through the real entry point."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from newsletter.content.editions import set_status
from newsletter.content.models import EditionStatus
from newsletter.core.db import utcnow
from newsletter.database import open_database
from tests.support.cli import EXAMPLES, CLIResult
from tests.support.terminal import on_a_terminal

Run = Callable[..., CLIResult]
# four of the example stories, in the order an editor wants them
A, B, C, D = (
    "met-police-live-facial-recognition-expansion",
    "amber-wind-warning-northern-england-scotland",
    "england-argentina-autumn-finale",
    "christmas-television-guide-2026-f5ff4c5afe83",
)


def ok(result: CLIResult) -> CLIResult:
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def one_error_line(result: CLIResult) -> str:
    assert result.code != 0, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def run(run_cli: Run) -> Run:
    ok(run_cli("articles", "import", str(EXAMPLES / "articles")))
    ok(run_cli("subscribers", "import", str(EXAMPLES / "subscribers.csv"), "--confirmed"))
    return run_cli


def build(run: Run, *args: str) -> str:
    return ok(run("edition", "build", "--since", "3650d", *args)).stdout.strip()


def show(run: Run, edition_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(run("edition", "show", edition_id, "--json")).stdout)
    return data


def test_build_keeps_the_editors_order_lead_note_and_title(run: Run, workdir: Path) -> None:
    edition_id = build(
        run,
        *("--article", B, "--article", C, "--article", A, "--article", D),
        *("--lead", C, "--title", "Weekend Extra"),
        *("--intro", "Good morning.\n\nRead https://example.com/note?a=1&b=2 <b>now</b>."),
    )
    data = show(run, edition_id)
    assert data["lead"] == C
    # sections follow the editor's order (first appearance), the lead comes first
    assert [a["id"] for a in data["articles"]] == [C, B, A, D]
    assert data["intro"].startswith("Good morning.\n\n")
    assert "intro" not in data["written_by_builder"]
    assert "title" not in data["written_by_builder"]

    ok(run("preview", edition_id, "--out", "out"))
    html = (workdir / "out" / f"{edition_id}.html").read_text()
    text = (workdir / "out" / f"{edition_id}.txt").read_text()
    root = lxml.html.document_fromstring(html)
    masthead = root.xpath("//td[contains(@class, 'masthead')]")[0].text_content()
    assert "Weekend Extra" in masthead
    # the note is escaped (the <b> is text) and its URL is a link
    assert "<b>now</b>" not in html
    assert root.xpath("//a[@href='https://example.com/note?a=1&b=2']")
    assert "&lt;b&gt;now&lt;/b&gt;" in html
    assert "Good morning." in text
    assert "https://example.com/note?a=1&b=2" in text


def test_a_generated_subject_fits_a_phone_inbox(run: Run) -> None:
    data = show(run, build(run))
    assert len(data["subject"]) <= 60
    assert "intro" in data["written_by_builder"]


def test_show_counts_recipients_per_variant(run: Run) -> None:
    data = show(run, build(run))
    assert data["recipients"] == sum(v["recipients"] for v in data["variants"]) > 0
    assert all(set(v) == {"variant", "recipients"} for v in data["variants"])
    text = ok(run("edition", "show", data["id"])).stdout
    assert data["subject"] in text
    assert f"variants: {len(data['variants'])}" in text


def test_edit_moves_removes_adds_and_rewrites_generated_lines(run: Run) -> None:
    edition_id = build(run, "--article", A, "--article", B, "--article", C)
    before = show(run, edition_id)
    ok(run("edition", "edit", edition_id, "--remove", B, "--add", D, "--move", f"{C}:1"))
    after = show(run, edition_id)
    assert [a["id"] for a in after["articles"]] == [C, A, D]
    assert after["lead"] == C
    assert after["subject"] != before["subject"]  # the builder's subject follows the new lead
    assert after["revision"] == before["revision"] + 1
    ok(run("edition", "edit", edition_id, "--subject", "Our pick of the day"))
    ok(run("edition", "edit", edition_id, "--lead", D))
    kept = show(run, edition_id)
    assert kept["subject"] == "Our pick of the day"  # an editor's line is kept as written
    assert kept["lead"] == D


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--remove", "no-such-story"], "is not in this edition"),
        (["--move", "nonsense"], "ID:POSITION"),
        (["--move", f"{A}:9"], "outside 1..2"),
        (["--add", A], "already in this edition"),
        (["--subject", "two\nlines"], "line break"),
    ],
)
def test_edit_errors_are_one_line(run: Run, args: list[str], words: str) -> None:
    edition_id = build(run, "--article", A, "--article", B)
    assert words in one_error_line(run("edition", "edit", edition_id, *args))


def test_a_sent_edition_refuses_edit_and_delete_saying_why(run: Run, workdir: Path) -> None:
    edition_id = build(run)
    engine = open_database(f"sqlite:///{workdir / 'test.db'}")
    with engine.begin() as conn:
        set_status(conn, edition_id, EditionStatus.SENT, now=utcnow())
    line = one_error_line(run("edition", "edit", edition_id, "--subject", "x"))
    assert "is sent; only a draft or a scheduled edition can be edited" in line
    line = one_error_line(run("edition", "delete", edition_id, "--yes"))
    assert "only a draft can be deleted" in line
    copy = ok(run("edition", "duplicate", edition_id)).stdout.strip()
    assert copy != edition_id
    assert show(run, copy)["status"] == "draft"
    assert [a["id"] for a in show(run, copy)["articles"]] == [
        a["id"] for a in show(run, edition_id)["articles"]
    ]


def test_delete_a_draft(run: Run) -> None:
    first, second = build(run), build(run)
    ok(run("edition", "delete", second, "--yes"))
    ids = [e["id"] for e in json.loads(ok(run("edition", "list", "--json")).stdout)]
    assert ids == [first]
    assert "no edition" in one_error_line(run("edition", "show", second))


def test_delete_askson_a_terminal(run: Run, workdir: Path) -> None:
    edition_id = build(run)
    code, screen = on_a_terminal(workdir, ["edition", "delete", edition_id], b"n\n")
    assert code == 1
    assert f"Delete draft {edition_id}" in screen
    assert show(run, edition_id)["id"] == edition_id  # still there
    code, _ = on_a_terminal(workdir, ["edition", "delete", edition_id], b"y\n")
    assert code == 0
    assert "no edition" in one_error_line(run("edition", "show", edition_id))
