"""CSV import and export: broken files, idempotence, protected people, the round trip."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from newsletter import privacy
from newsletter.core.db import make_engine
from newsletter.core.errors import SubscriberInputError
from newsletter.database import migrate
from subscribers import store
from subscribers.csvio import export_csv
from subscribers.importer import ImportReport, Problem, import_csv
from subscribers.model import SubscriberStatus
from subscribers.schema import subscriber_events

# every test here runs with rows parsed in a thread and in a child process
pytestmark = pytest.mark.usefixtures("import_parser")

SECRET = b"test-secret"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _import(engine: Engine, data: bytes | str, **options: object) -> ImportReport:
    raw = data.encode() if isinstance(data, str) else data
    options.setdefault("now", T0)
    return import_csv(engine, io.BytesIO(raw), secret=SECRET, source="list.csv", **options)  # type: ignore[arg-type]


def _people(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return sorted(
            (s.email, s.name, s.status.value, sorted(s.topics), s.timezone, s.attributes)
            for s in store.list_subscribers(conn)
        )


BROKEN = (
    "email,name,topics,timezone,status,notes\n"  # 1
    "ann@example.com,Ann Lee,UK;Politics,Europe/London,,\n"  # 2
    "not-an-address,Nobody,,,,\n"  # 3
    '"lee@example.com","Lee, Ann","world|science",,confirmed,"line one\n'  # 4
    'line two, with a comma"\n'  # 5
    "ANN@EXAMPLE.COM,,sport,,,\n"  # 6: the same person as line 2
    "big@example.com," + "x" * 1_000_000 + ",,,,\n"  # 7: a 1 MB field
    "many@example.com,a,b,,,,extra,cells\n"  # 8
    "tz@example.com,Tz,,Mars/Olympus,,\n"  # 9
    "st@example.com,St,,,maybe,\n"  # 10
    ",No Address,,,,\n"  # 11
    "\n"  # 12: blank
    'quote@example.com,"Bad "quote,,,,\n'  # 13: a stray quote (csv keeps it)
    "last@example.com,Last One,,,,\n"  # 14
)


def test_a_broken_file_imports_what_it_can_and_says_where(engine: Engine) -> None:
    seen: list[Problem] = []
    report = _import(engine, BROKEN, on_problem=seen.append)
    rejected = {p.line: p.reason for p in seen}
    assert sorted(rejected) == [3, 7, 8, 9, 10, 11]
    assert "'not-an-address' is not a valid email address" in rejected[3]
    assert "1000000 characters" in rejected[7] or "longer than" in rejected[7]
    assert "has 8 fields but the header has 6" in rejected[8]
    assert "field 'timezone'" in rejected[9]
    assert "field 'status'" in rejected[10]
    assert "no email address" in rejected[11]
    assert (report.imported, report.rejected, report.duplicates) == (4, 6, 1)
    with engine.connect() as conn:
        ann = store.get_by_email(conn, "ann@example.com")
        lee = store.get_by_email(conn, "lee@example.com")
        assert store.find_by_email(conn, "big@example.com") is None
        assert store.get_by_email(conn, "last@example.com").name == "Last One"
        for person in store.list_subscribers(conn):
            assert [e.kind for e in store.events(conn, person.id)] == ["created"]
    assert ann.topics == {"uk", "politics", "sport"}  # duplicates merge
    assert ann.email == "ann@example.com"
    assert lee.name == "Lee, Ann"
    assert lee.status is SubscriberStatus.CONFIRMED
    assert lee.topics == {"world", "science"}
    assert lee.attributes == {"notes": "line one\nline two, with a comma"}
    assert ann.consent is not None
    assert ann.consent.source == "import"


def test_importing_the_same_file_twice_changes_nothing(engine: Engine) -> None:
    first = _import(engine, BROKEN)
    before = _people(engine)
    with engine.connect() as conn:
        events = conn.execute(sa.select(sa.func.count()).select_from(subscriber_events)).scalar()
        stamps = [s.updated_at for s in store.list_subscribers(conn)]
    second = _import(engine, BROKEN, now=T1)
    assert first.imported == 4
    assert (second.imported, second.updated, second.unchanged) == (0, 0, 4)
    assert _people(engine) == before
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(subscriber_events)).scalar()
            == events
        )
        assert [s.updated_at for s in store.list_subscribers(conn)] == stamps


def test_a_file_without_an_email_column_is_one_clear_error(sqlite_engine: Engine) -> None:
    with pytest.raises(SubscriberInputError) as info:
        _import(sqlite_engine, "mail,name\nann@example.com,Ann\n")
    assert str(info.value).startswith("list.csv:1: has no 'email' column")
    assert _people(sqlite_engine) == []


def test_latin1_bytes_are_refused_naming_the_line_and_byte(sqlite_engine: Engine) -> None:
    data = "email,name\nann@example.com,Ann\nzoe@example.com,Zoë Müller\n".encode("latin-1")
    with pytest.raises(SubscriberInputError) as info:
        _import(sqlite_engine, data)
    message = str(info.value)
    assert message.startswith("list.csv:3: is not UTF-8: byte 0xeb at byte 49 (column 19)")
    assert "\n" not in message
    assert _people(sqlite_engine) == []  # one transaction: nothing half-imported


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xef\xbb\xbf"])
def test_an_empty_file_is_one_clear_error(sqlite_engine: Engine, data: bytes) -> None:
    with pytest.raises(SubscriberInputError, match=r"^list\.csv: is empty"):
        _import(sqlite_engine, data)


def test_a_header_only_file_imports_nobody(sqlite_engine: Engine) -> None:
    report = _import(sqlite_engine, "email,name,topics,timezone,status\n")
    assert report.summary() == "imported 0, updated 0, unchanged 0, skipped 0, rejected 0"


def test_a_byte_order_mark_and_crlf_are_fine(sqlite_engine: Engine) -> None:
    data = "\ufeffEmail,Name\r\nann@example.com,Åsa\r\n".encode()
    assert _import(sqlite_engine, data).imported == 1
    assert _people(sqlite_engine)[0][:2] == ("ann@example.com", "Åsa")


def test_people_who_left_are_never_resubscribed_unasked(engine: Engine) -> None:
    with engine.begin() as conn:
        gone = store.add(conn, "gone@example.com", secret=SECRET, confirmed=True, now=T0)
        store.unsubscribe(conn, gone.id, now=T0)
        bounced = store.add(conn, "bounced@example.com", secret=SECRET, confirmed=True, now=T0)
        store.mark_bounced(conn, bounced.id, "550", now=T0)
        store.add(conn, "erased@example.com", secret=SECRET, now=T0)
        privacy.erase(conn, "erased@example.com", secret=SECRET, now=T0)
    data = "email,status\ngone@example.com,\nbounced@example.com,confirmed\nERASED@example.com,\n"
    report = _import(engine, data, confirmed=True)
    assert (report.skipped, report.imported, report.updated) == (3, 0, 0)
    assert [p.line for p in report.problems] == [2, 3, 4]
    assert "erased at their request" in report.problems[2].reason
    statuses = {p[0]: p[2] for p in _people(engine)}
    assert statuses == {"gone@example.com": "unsubscribed", "bounced@example.com": "bounced"}

    again = _import(engine, data, confirmed=True, resubscribe=True, now=T1)
    assert (again.skipped, again.imported, again.updated) == (0, 1, 2)
    statuses = {p[0]: p[2] for p in _people(engine)}
    assert set(statuses.values()) == {"confirmed"}
    assert len(statuses) == 3


def test_confirmed_flag_confirms_and_a_file_never_unconfirms(engine: Engine) -> None:
    _import(engine, "email\nann@example.com\nbob@example.com\n")
    assert {p[2] for p in _people(engine)} == {"pending"}
    report = _import(
        engine, "email,status\nann@example.com,\nbob@example.com,pending\n", confirmed=True
    )
    assert report.updated == 2
    assert {p[2] for p in _people(engine)} == {"confirmed"}
    # a later file saying "pending" does not take anyone back
    assert _import(engine, "email,status\nann@example.com,pending\n").unchanged == 1
    with engine.connect() as conn:
        ann = store.get_by_email(conn, "ann@example.com")
    assert ann.status is SubscriberStatus.CONFIRMED
    assert ann.confirmed_at == T0


@pytest.fixture
def other_sqlite(tmp_path: Path) -> Iterator[Engine]:
    """A second, separate SQLite database to import an export into."""
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    migrate(other)
    yield other
    other.dispose()


def test_export_reads_back_to_the_same_list(engine: Engine, other_sqlite: Engine) -> None:
    rows = (
        "email,name,topics,timezone,status,plan,notes\n"
        "ann@example.com,Ann Lee,uk;politics,Europe/London,confirmed,premium,\n"
        '"o\'neill@example.ie","O\'Neill, Tom",sport,Europe/Dublin,pending,,"multi\nline"\n'
        "zoë@bücher.de,Zoë Müller,,Europe/Berlin,unsubscribed,,\n"
        "b@example.com,,,,bounced,,\n"
        'c@example.com,"=cmd|x",science|technology,,complained,free,"a ""quoted"" note"\n'
    )
    _import(engine, rows)
    with engine.begin() as conn:
        store.add(conn, "gone@example.com", secret=SECRET, now=T0)
        privacy.erase(conn, "gone@example.com", secret=SECRET, now=T0)
    out = io.StringIO()
    with engine.connect() as conn:
        assert export_csv(conn, out, batch_size=2) == 5
    text = out.getvalue()
    assert "gone@example.com" not in text
    assert text.splitlines()[0] == (
        "email,name,topics,timezone,status,consent_source,consent_at,consent_ip,newsletters,notes,plan"
    )
    report = _import(other_sqlite, text)
    assert report.imported == 5
    assert report.rejected == 0
    assert _people(other_sqlite) == _people(engine)
    with other_sqlite.connect() as conn:
        ann = store.get_by_email(conn, "ann@example.com")
    assert ann.consent is not None
    assert ann.consent.at == T0  # the consent record travels with the list
    # and back into the list it came from: nothing changes
    assert _import(engine, text, now=T1).unchanged == 5


_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
_names = st.text(st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp"]), max_size=30).map(
    str.strip
)
_people_strategy = st.lists(
    st.tuples(
        st.sampled_from(["ann", "bob", "o'neill", "zoë", "x.y+z", "Ann"]),
        _names,
        st.frozensets(st.sampled_from(["uk", "politics", "world", "cost-of-living"])),
        st.sampled_from(list(SubscriberStatus)),
        st.dictionaries(st.sampled_from(["plan", "notes", "Über"]), _text, max_size=2),
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=_people_strategy)
def test_any_list_survives_export_and_import(people: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = make_engine(f"sqlite:///{folder}/a.db")
        target = make_engine(f"sqlite:///{folder}/b.db")
        try:
            migrate(source)
            migrate(target)
            with source.begin() as conn:
                for i, (local, name, topics, status, attributes) in enumerate(people):
                    person = store.add(
                        conn, f"{local}{i}@example.com", secret=SECRET, name=name or None,
                        topics=topics, attributes=attributes, now=T0,
                    )  # fmt: skip
                    if status is SubscriberStatus.CONFIRMED:
                        store.confirm(conn, person.id, now=T0)
                    elif status is SubscriberStatus.UNSUBSCRIBED:
                        store.unsubscribe(conn, person.id, now=T0)
                    elif status is SubscriberStatus.BOUNCED:
                        store.mark_bounced(conn, person.id, "550", now=T0)
                    elif status is SubscriberStatus.COMPLAINED:
                        store.mark_complained(conn, person.id, "fbl", now=T0)
            out = io.StringIO()
            with source.connect() as conn:
                export_csv(conn, out)
            report = _import(target, out.getvalue())
            assert report.rejected == 0, report.problems
            assert _people(target) == _people(source)
        finally:
            source.dispose()
            target.dispose()
