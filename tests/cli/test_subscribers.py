"""``newsletter subscribers ...`` through the real entry point, as an editor would use it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import EXAMPLES, CLIResult

Run = Callable[..., CLIResult]


def _ok(result: CLIResult) -> CLIResult:
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_the_sample_list_imports_lists_and_exports(run_cli: Run, workdir: Path) -> None:
    sample = EXAMPLES / "subscribers.csv"
    first = _ok(run_cli("subscribers", "import", str(sample)))
    assert first.stdout.strip().endswith(
        "imported 12, updated 0, unchanged 0, skipped 0, rejected 0"
    )
    again = _ok(run_cli("subscribers", "import", str(sample)))
    assert "imported 0, updated 0, unchanged 12" in again.stdout

    listed = json.loads(_ok(run_cli("subscribers", "list", "--json")).stdout)
    assert len(listed) == 12
    assert any(p["name"] == "Siobhán Walsh" and p["topics"] == [] for p in listed)
    politics = json.loads(
        _ok(
            run_cli("subscribers", "list", "--json", "--status", "confirmed", "--topic", "Politics")
        ).stdout
    )
    # the confirmed people who chose politics, plus the one who takes everything
    assert {p["email"] for p in politics} == {
        "amelia.hughes@example.co.uk",
        "siobhan.walsh@example.com",
    }

    table = _ok(run_cli("subscribers", "list", "--status", "unsubscribed"))
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["id", "status", "email", "name", "topics"]
    assert len(lines) == 3
    assert "daniel.evans@example.com" in lines[1]
    assert "business,politics" in lines[1]
    assert lines[2] == "1 subscriber"  # the count on stdout, after the list
    assert table.stderr == ""

    exported = workdir / "out.csv"
    result = _ok(run_cli("subscribers", "export", "-o", str(exported)))
    assert "exported 12 subscribers" in result.stdout
    reimport = _ok(run_cli("subscribers", "import", str(exported)))
    assert "unchanged 12" in reimport.stdout


def test_add_confirm_link_show_unsubscribe_delete(run_cli: Run) -> None:
    added = _ok(
        run_cli(
            "subscribers", "add", "Ann@Example.com", "--name", "Ann Lee", "--topic", "UK",
            "--no-email",
        )
    )  # fmt: skip
    assert "added Ann@example.com (pending)" in added.stdout
    assert "/confirm/" not in added.stdout + added.stderr  # a link token is never printed

    shown = json.loads(_ok(run_cli("subscribers", "show", "ann@EXAMPLE.com")).stdout)
    assert shown["subscriber"]["name"] == "Ann Lee"
    assert shown["consent"]["source"] == "cli"
    assert [e["kind"] for e in shown["events"]] == ["created"]

    _ok(run_cli("subscribers", "unsubscribe", "ann@example.com"))
    shown = json.loads(_ok(run_cli("subscribers", "show", "ann@example.com")).stdout)
    assert shown["subscriber"]["status"] == "unsubscribed"
    assert [e["kind"] for e in shown["events"]] == ["created", "unsubscribed"]

    refused = run_cli("subscribers", "add", "ann@example.com")
    assert refused.code == 1
    assert (
        refused.stderr.strip()
        == "error: ann@example.com is unsubscribed; adding them again needs --resubscribe"
    )

    by_id = json.loads(_ok(run_cli("subscribers", "show", str(shown["subscriber"]["id"]))).stdout)
    assert by_id == shown
    erased = _ok(run_cli("subscribers", "delete", "ann@example.com"))
    assert "erased ann@example.com" in erased.stdout
    gone = run_cli("subscribers", "show", "ann@example.com")
    assert gone.code == 1
    assert gone.stderr.strip() == "error: no subscriber with the address 'ann@example.com'"
    refused = run_cli("subscribers", "add", "ann@example.com")
    assert refused.code == 1
    assert "was erased at their request" in refused.stderr
    forced = _ok(run_cli("subscribers", "add", "ann@example.com", "--force", "--confirmed"))
    assert "added ann@example.com (confirmed)" in forced.stdout


def test_a_large_file_parsed_in_a_child_reports_each_line_once(run_cli: Run, workdir: Path) -> None:
    # over the size at which the command (single-threaded) parses in a forked child
    from subscribers.importchild import CHILD_THRESHOLD

    lines = ["email,name,topics,plan"]
    lines += [f"reader{i}@example.com,Reader {i},uk;world,plan-{i % 5}" for i in range(45_000)]
    lines[30_001] = "bad@,Bad,,"  # the 30,000th address: line 30,002, in the second chunk
    (workdir / "big.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert (workdir / "big.csv").stat().st_size > CHILD_THRESHOLD
    result = run_cli("subscribers", "import", "big.csv", "--confirmed")
    assert result.code == 65, result.stderr
    assert result.stdout.splitlines() == [
        "big.csv:30002: rejected: 'bad@' is not a valid email address: "
        "There must be something after the @-sign.",
        "imported 44999, updated 0, unchanged 0, skipped 0, rejected 1",
    ]
    assert result.stderr == ""
    again = run_cli("subscribers", "import", "big.csv", "--confirmed")
    assert again.code == 65, again.stderr
    assert again.stdout.splitlines()[-1] == (
        "imported 0, updated 0, unchanged 44999, skipped 0, rejected 1"
    )


def test_on_a_terminal_a_large_import_shows_the_rows_committed_as_it_goes(workdir: Path) -> None:
    import re

    from subscribers.importchild import CHILD_THRESHOLD
    from tests.support.terminal import output_on_a_terminal

    lines = ["email,name,topics"]
    lines += [f"reader{i}@example.com,Reader {i},uk;world;politics" for i in range(45_000)]
    lines[44_001] = "bad@,Bad,"
    (workdir / "big.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # parsed in a child: the line refreshes from the main thread, so the command still forks
    assert (workdir / "big.csv").stat().st_size > CHILD_THRESHOLD
    code, text = output_on_a_terminal(workdir, ["subscribers", "import", "big.csv"])
    assert code == 65, text
    shown = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", part) for part in re.split(r"[\r\n]", text)]
    committed = {line.split(" rows committed")[0] for line in shown if "rows committed" in line}
    # after each chunk of 20,000, and the last
    assert {"importing 20,000", "importing 40,000", "importing 44,999"} <= committed
    assert any(re.search(r"rows committed [0-9,]+ rows/s", line) for line in shown)
    assert "big.csv:44002: rejected: 'bad@' is not a valid email address" in text
    # the summary is the last thing shown: the progress line is gone by then
    assert [line for line in shown if line.strip()][-1] == (
        "imported 44999, updated 0, unchanged 0, skipped 0, rejected 1"
    )


def test_the_import_progress_line_starts_no_thread() -> None:
    # a second thread would keep the import from forking its parsing child
    import threading

    from newsletter.cli.progress import ImportProgress
    from subscribers.importchild import fork_is_safe

    before = threading.active_count()
    progress = ImportProgress()
    try:
        progress.committed(20_000)
        assert threading.active_count() == before
        assert fork_is_safe() is (before == 1)
    finally:
        progress.stop()


def test_import_reports_rejected_lines_and_file_errors(run_cli: Run, workdir: Path) -> None:
    (workdir / "list.csv").write_text(
        'email,name,notes\nok@example.com,Ok,"two\nlines"\nbad@,Bad,\nok2@example.com,,\n',
        encoding="utf-8",
    )
    result = run_cli("subscribers", "import", "list.csv", "--confirmed")
    assert result.code == 65, result.stderr  # some rows rejected, the good ones in
    assert "list.csv:4: rejected: 'bad@' is not a valid email address" in result.stdout
    assert "imported 2, updated 0, unchanged 0, skipped 0, rejected 1" in result.stdout

    (workdir / "latin1.csv").write_bytes("email,name\nz@example.com,Zoë\n".encode("latin-1"))
    (workdir / "empty.csv").write_bytes(b"")
    (workdir / "noemail.csv").write_text("name\nAnn\n", encoding="utf-8")
    for name, message in [
        ("latin1.csv", "error: latin1.csv:2: is not UTF-8: byte 0xeb"),
        ("empty.csv", "error: empty.csv: is empty"),
        ("noemail.csv", "error: noemail.csv:1: has no 'email' column"),
        ("missing.csv", "error: missing.csv: cannot be read"),
    ]:
        failed = run_cli("subscribers", "import", name)
        assert failed.code == 1
        assert failed.stderr.startswith(message)
        assert len(failed.stderr.strip().splitlines()) == 1
        assert "Traceback" not in failed.stderr


@pytest.mark.postgres
def test_the_commands_run_on_postgresql(run_cli: Run, postgresql_url: str) -> None:
    env = {"NEWSLETTER_DATABASE_URL": postgresql_url}
    _ok(run_cli("subscribers", "import", str(EXAMPLES / "subscribers.csv"), env=env))
    _ok(run_cli("subscribers", "delete", "grace.lee@example.net", env=env))
    listed = json.loads(_ok(run_cli("subscribers", "list", "--json", env=env)).stdout)
    assert len(listed) == 11
    assert all(p["created_at"].endswith("Z") and p["consent"]["at"] for p in listed)
    assert any(p["name"] == "Siobhán Walsh" and p["topics"] == [] for p in listed)
    assert any(p["attributes"].get("membership") == "premium" for p in listed)
    # the listing's plain SQL, with its filters, on PostgreSQL's driver
    politics = run_cli(
        "subscribers", "list", "--json", "--status", "confirmed", "--topic", "Politics", env=env
    )
    assert {p["email"] for p in json.loads(_ok(politics).stdout)} == {
        "amelia.hughes@example.co.uk",
        "siobhan.walsh@example.com",
    }
    daily = _ok(run_cli("subscribers", "list", "--newsletter", "daily", env=env))
    assert daily.stdout.splitlines()[-1] == "11 subscribers"
    left = _ok(run_cli("subscribers", "list", "--status", "unsubscribed", env=env))
    assert "daniel.evans@example.com" in left.stdout.splitlines()[1]
    assert left.stdout.splitlines()[-1] == "1 subscriber"
    again = _ok(run_cli("subscribers", "import", str(EXAMPLES / "subscribers.csv"), env=env))
    assert "skipped 1" in again.stdout
    assert "grace.lee@example.net was erased at their request" in again.stdout


# what a spreadsheet would run: =, +, -, @, tab, CR at the start of a cell
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def test_export_is_formula_safe_and_imports_back_to_the_same_values(
    run_cli: Run, workdir: Path
) -> None:
    import csv
    import io

    from subscribers.csvio import escape_cell

    hostile = {
        "eq@example.com": ("=1+2", "+44 20 7946 0000"),
        "at@example.com": ("@SUM(A1:A9)", "-3"),
        "tab@example.com": ("Tab", "\tx"),
        "cr@example.com": ("Cr", "\r=cmd|' /C calc'!A0"),
        "quoted@example.com": ("'=quoted", "''-1"),
        "-dash@example.com": ("Plain Name", "plain"),
    }
    rows = [["email", "name", "=HYPERLINK(1)", "notes"]]
    # a spreadsheet's text prefix is not part of the value: "'-1" in a file means "-1"
    rows += [
        [email, escape_cell(name), escape_cell(value), "ok"]
        for email, (name, value) in hostile.items()
    ]
    source = io.StringIO()
    csv.writer(source, lineterminator="\r\n").writerows(rows)
    (workdir / "hostile.csv").write_text(source.getvalue(), encoding="utf-8")
    _ok(run_cli("subscribers", "import", "hostile.csv", "--confirmed"))

    _ok(run_cli("subscribers", "export", "-o", "out.csv"))
    text = (workdir / "out.csv").read_text(encoding="utf-8")
    exported = list(csv.reader(io.StringIO(text, newline="")))
    for row in exported:  # header included: a custom attribute's name is a cell too
        for cell in row:
            assert not cell.startswith(_FORMULA_STARTS), repr(cell)
    assert "'=HYPERLINK(1)" in exported[0]

    # a second database gets back exactly what was imported
    again = {"NEWSLETTER_DATABASE_URL": f"sqlite:///{workdir / 'again.db'}"}
    _ok(run_cli("subscribers", "import", "out.csv", env=again))
    for email, (name, value) in hostile.items():
        shown = json.loads(_ok(run_cli("subscribers", "show", "--", email, env=again)).stdout)
        person = shown["subscriber"]
        assert person["email"] == email
        assert person["name"] == name
        assert person["attributes"] == {"=HYPERLINK(1)": value, "notes": "ok"}


def test_names_lose_direction_controls_and_refuse_encoded_words_on_import(
    run_cli: Run, workdir: Path
) -> None:
    (workdir / "names.csv").write_text(
        "email,name\n"
        "bidi@example.com,Ann \u202egnp.exe\u202c Lee\n"
        "enc@example.com,=?utf-8?b?UGF5UGFsIFNlY3VyaXR5?=\n",
        encoding="utf-8",
    )
    result = run_cli("subscribers", "import", "names.csv")
    assert result.code == 65, result.stderr
    assert "names.csv:3: rejected: field 'name': looks like an encoded mail header" in result.stdout
    shown = json.loads(_ok(run_cli("subscribers", "show", "bidi@example.com")).stdout)
    assert shown["subscriber"]["name"] == "Ann gnp.exe Lee"
