"""The benchmarks still run and still measure what they say, on small inputs.

No figure is checked here (speed is measured by ``make bench``, never by a
test): what is checked is that a benchmark has not rotted between two runs of
``make bench`` (they are not part of the suite otherwise) and that what it
measures did the whole job: bench/import.py's import handled every row and its
floor loaded the rows the import wrote, on each store; bench/render.py's
per-recipient path calls no CSS inliner; bench/console.py's pages answer.
bench/send.py and bench/startup.py take minutes and Postfix's tools; they are
left to ``make bench``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROWS = 3_000  # one chunk: a few seconds for all three sides on both stores
# every 100th generated address is invalid (see bench/import.py's generate)
REJECTED = ROWS // 100

needs_cli = pytest.mark.skipif(
    shutil.which("sqlite3") is None or shutil.which("psql") is None,
    reason="needs the sqlite3 and psql commands (scripts/system-deps.sh installs them as root)",
)


def _run(bench: str, *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / bench), *arguments],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _bench(*arguments: str) -> str:
    return _run("import.py", "--rows", str(ROWS), "--repeat", "1", *arguments)


def _store_lines(out: str, store: str) -> tuple[str, str, str]:
    """The result line of ``store``, the floor line under it and the line after that."""
    lines = out.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith(f"{store} ")]
    return lines[at], lines[at + 1], lines[at + 2]


@needs_cli
@pytest.mark.postgres
def test_each_store_prints_its_ratio_and_the_floor_of_the_rows_imported(
    postgresql_server: str,
) -> None:
    admin = postgresql_server.rsplit("/", 1)[0] + "/postgres"
    out = _bench("--postgresql", admin)
    for store in ("SQLite", "PostgreSQL"):
        result, floor, _ = _store_lines(out, store)
        counts = re.search(
            r"imported ([\d,]+), skipped ([\d,]+) \(erased\), rejected ([\d,]+)", result
        )
        assert counts is not None, result
        imported, skipped, rejected = (int(n.replace(",", "")) for n in counts.groups())
        # the whole file went through our import: every row imported, skipped or rejected
        assert rejected == REJECTED
        assert skipped > 0  # the seeded erased addresses were checked against the suppressions
        assert imported + skipped + rejected == ROWS
        assert re.search(r"ratio \d+\.\d\d, (meets|BELOW) the 0\.2 target", result), result
        # the floor loaded what the import wrote: a person, their newsletter and their event each
        assert "of the rows the import wrote, into the migrated schema" in floor
        written = (
            f"{imported:,} subscribers, {imported:,} subscriptions, {imported:,} subscriber_events"
        )
        assert f"it loaded {written})" in floor, floor
        assert re.search(r"ratio \d+\.\d\d .*the import runs at \d+\.\d\d of it", floor), floor
    # the test's server runs here: what its processes spent per row on each side is read
    sqlite_after, postgresql_after = (
        _store_lines(out, store)[2] for store in ("SQLite", "PostgreSQL")
    )
    assert "server CPU" not in sqlite_after
    spent = re.search(
        r"server CPU per row \(the PostgreSQL processes, least of the turns\): "
        r"psql \\copy ([\d.]+) µs, floor ([\d.]+) µs, import ([\d.]+) µs and our own processes "
        r"([\d.]+) µs; at 0\.2 of psql \\copy's rate an import has ([\d.]+) µs of wall time per "
        r"row, on \d+ cores",
        postgresql_after,
    )
    assert spent is not None, postgresql_after
    # the loader's few milliseconds may round to no clock tick at this size; the rest cannot
    assert all(float(figure) > 0 for figure in spent.groups()[1:]), postgresql_after


@needs_cli
def test_floor_variants_load_each_changed_schema() -> None:
    out = _bench("--store", "sqlite", "--floor-variants")
    floors = [line for line in out.splitlines() if "rows: floor " in line]
    names = [re.sub(r"^.*rows: floor (.*?)\s{2,}.*$", r"\1", line) for line in floors]
    assert names == [
        "the schema as it is",
        "without the status and name indexes",
        "without the events rows",
        "the subscribers rows alone",
    ]
    assert all(re.search(r"[\d,]+ rows/s, ratio \d+\.\d\d", line) for line in floors), floors


def test_render_bench_personalises_without_inlining_css_per_recipient() -> None:
    out = _run("render.py", "--recipients", "300")
    assert "premailer calls on the per-recipient path: 0" in out, out
    assert re.search(r"whole path .*: best \d+\.\d µs", out), out
    # the repeat window left some readers out of the alert (else it measured nothing)
    window = re.search(r"with the 7d window\s+(\d+) variants,\s+(\d+) skipped", out)
    assert window is not None, out
    assert int(window.group(2)) > 0


def test_console_bench_pages_every_case() -> None:
    out = _run("console.py", "--people", "3000")
    cases = [line for line in out.splitlines() if re.search(r"ms\s+[\d.]+ms\s+[\d.]+ms$", line)]
    assert len(cases) == 9, out
    assert re.search(r"worst page p95 [\d.]+ ms", out), out
