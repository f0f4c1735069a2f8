"""The ``newsletters`` column of CSV import and export, on SQLite and on PostgreSQL.

A cell names newsletter ids separated by ``;`` or ``|``; a blank one gives a new person
the default newsletter and leaves a held person's as they are; an unknown id rejects
that line alone, naming the column; importing the same file again changes nothing;
export writes the column so that the file reads back to the same subscriptions.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from newsletter.core.db import make_engine
from newsletter.database import migrate
from subscribers import store, subscriptions
from subscribers.csvio import export_csv
from subscribers.importer import ImportReport, import_csv

# every test here runs with rows parsed in a thread and in a child process
pytestmark = pytest.mark.usefixtures("import_parser")

SECRET = b"test-secret"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONFIGURED = ("daily", "breaking", "weekly")  # the default first

FILE = (
    "email,name,newsletters\n"  # 1
    "semi@example.com,Semi,daily;breaking\n"  # 2
    "pipe@example.com,Pipe,weekly|breaking\n"  # 3
    "blank@example.com,Blank,\n"  # 4: the default
    "held@example.com,Held,\n"  # 5: already subscribed to weekly alone: untouched
    "more@example.com,More,breaking\n"  # 6: already on weekly: breaking is added
    "bad@example.com,Bad,daily;nope\n"  # 7: an unknown id
    "spaced@example.com,Spaced, breaking ; daily \n"  # 8
)


def _import(engine: Engine, data: str, *, now: datetime = T0, **options: object) -> ImportReport:
    return import_csv(
        engine,
        io.BytesIO(data.encode()),
        secret=SECRET,
        source="list.csv",
        now=now,
        newsletters=CONFIGURED,
        **options,  # type: ignore[arg-type]
    )


def _held(engine: Engine) -> dict[str, list[str]]:
    """Each address and the newsletters it is subscribed to now."""
    with engine.connect() as conn:
        people = list(store.list_subscribers(conn))
        return {p.email: sorted(subscriptions.subscribed_to(conn, p.id)) for p in people}


def _seed(engine: Engine) -> None:
    with engine.begin() as conn:
        for email in ("held@example.com", "more@example.com"):
            store.add(conn, email, secret=SECRET, newsletters=["weekly"], now=T0)


@pytest.mark.parametrize("batch_size", [20_000, 2])
def test_the_newsletters_column_on_import(engine: Engine, batch_size: int) -> None:
    _seed(engine)
    report = _import(engine, FILE, batch_size=batch_size)
    assert report.rejected == 1
    (problem,) = report.problems
    assert problem.line == 7
    assert "newsletters" in problem.reason
    assert "'nope'" in problem.reason
    assert _held(engine) == {
        "semi@example.com": ["breaking", "daily"],
        "pipe@example.com": ["breaking", "weekly"],
        "blank@example.com": ["daily"],
        "held@example.com": ["weekly"],  # a blank cell takes nothing away, adds nothing
        "more@example.com": ["breaking", "weekly"],  # added to, never taken from
        "spaced@example.com": ["breaking", "daily"],
    }
    before = _held(engine)
    with engine.connect() as conn:
        events = sum(len(store.events(conn, p.id)) for p in store.list_subscribers(conn))
    again = _import(engine, FILE, now=T1, batch_size=batch_size)
    assert (again.imported, again.updated, again.rejected) == (0, 0, 1)
    assert _held(engine) == before
    with engine.connect() as conn:
        after = sum(len(store.events(conn, p.id)) for p in store.list_subscribers(conn))
    assert after == events  # a re-run records nothing either


def test_export_writes_the_newsletters_column_and_reads_back(
    engine: Engine, tmp_path: Path
) -> None:
    _seed(engine)
    _import(engine, FILE.replace(",Semi,", ',"=HYPERLINK(""x"")",'))
    out = io.StringIO()
    with engine.connect() as conn:
        assert export_csv(conn, out) == 6
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    by_email = {r["email"]: r for r in rows}
    assert by_email["semi@example.com"]["newsletters"] == "breaking;daily"
    assert by_email["held@example.com"]["newsletters"] == "weekly"
    assert by_email["blank@example.com"]["newsletters"] == "daily"
    # formula-safe: the cell a spreadsheet would run starts with a quote
    assert by_email["semi@example.com"]["name"] == '\'=HYPERLINK("x")'
    assert not any(v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values() if v)
    # the file reads back, into a fresh database, to the same choices
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    migrate(other)
    back = _import(other, out.getvalue())
    assert (back.imported, back.rejected) == (6, 0)
    assert _held(other) == _held(engine)
    other.dispose()
