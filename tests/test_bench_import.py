"""bench/import.py still runs and still measures what it says, on a file of a few rows.

No figure is checked here (speed is measured by ``make bench``, never by a test):
what is checked is that the benchmark has not rotted between two runs of ``make
bench`` (it is not part of the suite otherwise), that our import inside it did
the whole job, and that the floor it prints was measured on the rows our import
wrote, into the migrated schema, on each store.
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


def _bench(*arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "import.py"), "--rows", str(ROWS), "--repeat", "1",
         *arguments],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _store_lines(out: str, store: str) -> tuple[str, str]:
    """The result line of ``store`` and the floor line under it."""
    lines = out.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith(f"{store} ")]
    return lines[at], lines[at + 1]


@needs_cli
@pytest.mark.postgres
def test_each_store_prints_its_ratio_and_the_floor_of_the_rows_imported(
    postgresql_server: str,
) -> None:
    admin = postgresql_server.rsplit("/", 1)[0] + "/postgres"
    out = _bench("--postgresql", admin)
    for store in ("SQLite", "PostgreSQL"):
        result, floor = _store_lines(out, store)
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
