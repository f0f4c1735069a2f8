"""``subscribers import`` reads other tools' exports, says which rows it refused, and exits so."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import CLIResult

Run = Callable[..., CLIResult]


def _show(run_cli: Run, email: str) -> dict[str, object]:
    shown = run_cli("subscribers", "show", email)
    assert shown.code == 0, shown.stderr
    person: dict[str, object] = json.loads(shown.stdout)["subscriber"]
    return person


def test_a_mailchimp_export_with_semicolons_goes_in(run_cli: Run, workdir: Path) -> None:
    (workdir / "mc.csv").write_text(
        "Email Address;First Name;Last Name;TAGS\n"
        "ada@example.com;Ada;Lovelace;science\n"
        "bo@example.com;Bo;;\n",
        encoding="utf-8",
    )
    result = run_cli("subscribers", "import", "mc.csv", "--confirmed")
    assert result.code == 0, result.stderr
    assert "imported 2" in result.stdout
    ada = _show(run_cli, "ada@example.com")
    assert ada["attributes"] == {"first_name": "Ada", "last_name": "Lovelace"}
    assert ada["name"] == "Ada Lovelace"  # made of the two, so the greeting says "Hello Ada,"
    assert _show(run_cli, "bo@example.com")["name"] == "Bo"
    assert ada["topics"] == ["science"]


def test_map_names_any_header_and_tabs_are_read(run_cli: Run, workdir: Path) -> None:
    (workdir / "de.tsv").write_text("E-Mail-Adresse\tName\ncy@example.com\tCy\n", encoding="utf-8")
    unmapped = run_cli("subscribers", "import", "de.tsv")
    assert unmapped.code == 1
    assert "has no 'email' column" in unmapped.stderr
    mapped = run_cli("subscribers", "import", "de.tsv", "--map", "E-Mail-Adresse=email")
    assert mapped.code == 0, mapped.stderr
    assert _show(run_cli, "cy@example.com")["name"] == "Cy"
    bad = run_cli("subscribers", "import", "de.tsv", "--map", "nonsense")
    assert bad.code == 1
    assert "is not HEADER=COLUMN" in bad.stderr


def test_some_rows_rejected_is_exit_65_and_the_good_ones_go_in(run_cli: Run, workdir: Path) -> None:
    (workdir / "mixed.csv").write_text(
        "email,name\nok@example.com,Ok\nnot-an-address,Bad\n", encoding="utf-8"
    )
    result = run_cli("subscribers", "import", "mixed.csv")
    assert result.code == 65
    assert "mixed.csv:3: rejected" in result.stdout
    assert "imported 1" in result.stdout
    assert _show(run_cli, "ok@example.com")["name"] == "Ok"


def test_an_unclosed_quote_is_reported_at_its_own_line(run_cli: Run, workdir: Path) -> None:
    (workdir / "q.csv").write_text(
        'email,name\nfirst@example.com,First\nann@example.com,"Ann\nbob@example.com,Bob\n',
        encoding="utf-8",
    )
    result = run_cli("subscribers", "import", "q.csv")
    assert result.code == 65
    assert (
        "q.csv:3: rejected: a quote opened on this line is never closed: lines 3-4 were read "
        "as one field; close the quote and import again"
    ) in result.stdout
    assert "imported 1" in result.stdout
