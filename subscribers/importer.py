"""CSV import: streaming, batched, idempotent, and careful with people who left.

The file is read record by record (:mod:`subscribers.csvio`); valid rows are
gathered into batches; each batch costs three or four statements (look up the
batch's addresses, then ``executemany`` inserts, updates and events), so the
import runs at tens of thousands of rows a second and memory does not grow
with the file. The whole file is one transaction: a fatal error (a file that is
not UTF-8, no email column) imports nothing.

Rules, per normalised address:

- rows for the same address in one batch merge (later non-empty cells win,
  topics add up), so a file with duplicates makes one person;
- a new address is added as the row's status, else ``pending`` (``confirmed``
  with ``confirmed=True``), with consent source ``import``;
- an existing person gets the row's non-empty cells; a status may go forward
  (pending to confirmed, or to unsubscribed/bounced/complained), never from
  confirmed back to pending;
- someone who unsubscribed, bounced, complained or was erased is never made
  active again unless ``resubscribe=True``: such rows are *skipped* (an erased
  address stays suppressed, and skipped, even while a web signup of it awaits
  confirmation);
- importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.core.db import utcnow
from newsletter.core.errors import SubscriberInputError
from subscribers import bulk, suppressions
from subscribers.csvio import COLUMNS, read_records
from subscribers.importrows import Layout, Row, merge, parse_row
from subscribers.model import SubscriberStatus
from subscribers.schema import subscriber_events, subscribers

__all__ = ["ImportReport", "Problem", "import_csv", "import_file"]

_S = subscribers.c
_VALUES = {status: status.value for status in SubscriberStatus}  # plain str, for the driver
_ACTIVE = (SubscriberStatus.PENDING, SubscriberStatus.CONFIRMED)
_STAMPS = {
    SubscriberStatus.CONFIRMED: "confirmed_at",
    SubscriberStatus.UNSUBSCRIBED: "unsubscribed_at",
    SubscriberStatus.BOUNCED: "bounced_at",
    SubscriberStatus.COMPLAINED: "complained_at",
}
_MUTABLE = (
    "name",
    "status",
    "topics",
    "timezone",
    "attributes",
    "consent_source",
    "consent_at",
    "consent_ip",
    "confirmed_at",
    "unsubscribed_at",
    "bounced_at",
    "complained_at",
)


@dataclass(frozen=True, slots=True)
class Problem:
    """A line that was not imported: ``rejected`` (bad data) or ``skipped`` (protected person)."""

    line: int
    kind: str
    reason: str


@dataclass
class ImportReport:
    """What an import did, counted per address (duplicates merged) and per rejected line."""

    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    rejected: int = 0
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)  # the first 1000, for callers

    def summary(self) -> str:
        """One line: the counts."""
        line = (
            f"imported {self.imported}, updated {self.updated}, unchanged {self.unchanged}, "
            f"skipped {self.skipped}, rejected {self.rejected}"
        )
        return line + (f"; duplicate rows merged: {self.duplicates}" if self.duplicates else "")


@dataclass
class _Options:
    secret: bytes
    confirmed: bool
    resubscribe: bool
    now: datetime
    source: str
    on_problem: Callable[[Problem], None] | None


def _problem(report: ImportReport, options: _Options, problem: Problem) -> None:
    if problem.kind == "rejected":
        report.rejected += 1
    else:
        report.skipped += 1
    if len(report.problems) < 1000:
        report.problems.append(problem)
    if options.on_problem is not None:
        options.on_problem(problem)


def import_csv(
    engine: Engine,
    stream: BinaryIO,
    *,
    secret: bytes,
    source: str = "<csv>",
    confirmed: bool = False,
    resubscribe: bool = False,
    now: datetime | None = None,
    batch_size: int = 5000,
    on_problem: Callable[[Problem], None] | None = None,
) -> ImportReport:
    """Import a CSV byte stream with a header row (``email`` required) in one transaction.

    Each rejected or skipped line is passed to ``on_problem`` as it is found.
    Raises :class:`SubscriberInputError` (naming ``source`` and the line) for an
    empty file, a header without an ``email`` column, or bytes that are not UTF-8.
    """
    options = _Options(secret, confirmed, resubscribe, now or utcnow(), source, on_problem)
    report = ImportReport()
    records = read_records(stream, source)
    header_record = next(records, None)
    if header_record is None:
        raise SubscriberInputError(
            "is empty; expected a header row such as 'email,name,topics,timezone,status'",
            source=source,
        )
    layout = Layout.from_header(_header(header_record.fields, source, header_record.line))
    with engine.begin() as conn:
        check_suppressions = suppressions.has_any(conn)
        batch: dict[str, Row] = {}
        for record in records:
            if record.error is not None:
                _problem(report, options, Problem(record.line, "rejected", record.error))
                continue
            try:
                row = parse_row(layout, record.fields, record.line)
            except SubscriberInputError as exc:
                _problem(report, options, Problem(record.line, "rejected", str(exc)))
                continue
            earlier = batch.get(row.key)
            if earlier is not None:
                report.duplicates += 1
                row = merge(earlier, row)
            batch[row.key] = row
            if len(batch) >= batch_size:
                _apply(conn, batch, options, report, check_suppressions)
                batch = {}
        _apply(conn, batch, options, report, check_suppressions)
    return report


def import_file(engine: Engine, path: Path, **options: Any) -> ImportReport:
    """:func:`import_csv` for a file (same options); a missing file is a one-line error."""
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise SubscriberInputError(f"cannot be read ({exc.strerror})", source=str(path)) from None
    with stream:
        return import_csv(engine, stream, source=str(path), **options)


def _header(fields: list[str], source: str, line: int) -> list[str]:
    # the standard columns match in any case; a custom attribute keeps its own spelling
    names = [
        name.strip().lower() if name.strip().lower() in COLUMNS else name.strip() for name in fields
    ]
    if "email" not in names:
        raise SubscriberInputError(
            f"has no 'email' column (the header reads {','.join(fields)[:200]!r})",
            source=source,
            line=line,
        )
    seen: set[str] = set()
    for name in names:
        if name and name in seen:
            raise SubscriberInputError(f"names the column {name!r} twice", source=source, line=line)
        seen.add(name)
    return names


def _apply(
    conn: Connection,
    batch: dict[str, Row],
    options: _Options,
    report: ImportReport,
    check_suppressions: bool,
) -> None:
    if not batch:
        return
    known = bulk.existing_keys(conn, list(batch))
    existing = {}
    if known:  # the full, typed rows only for the people already held
        query = sa.select(subscribers).where(_S.email_key.in_(sa.bindparam("k", expanding=True)))
        existing = {row.email_key: row._mapping for row in conn.execute(query, {"k": known})}
    # held people too: an erased person whose address a web signup made pending again
    # stays suppressed until they confirm, and an import must not slip them back in
    erased = (
        suppressions.suppressed_among(conn, options.secret, list(batch))
        if check_suppressions
        else set()
    )
    inserts: list[tuple[Any, ...]] = []
    created: dict[SubscriberStatus, list[str]] = {}  # keys of the people added, by status
    encoder = bulk.Encoder(conn.dialect, options.now)
    updates: list[dict[str, Any]] = []
    events: list[tuple[str, str, dict[str, Any]]] = []  # key, kind, detail
    for key, row in batch.items():
        if key in erased:
            if not options.resubscribe:
                reason = f"{row.email} was erased at their request (--resubscribe adds them again)"
                _problem(report, options, Problem(row.line, "skipped", reason))
                continue
            suppressions.lift(conn, options.secret, key)
        if key in existing:
            _update(existing[key], row, options, report, updates, events)
            continue
        target = _target(row, options)
        inserts.append(_new(row, target, encoder))
        created.setdefault(target, []).append(key)
        report.imported += 1
    inserts.sort(key=_by_key)  # neighbouring keys touch neighbouring index pages
    before = bulk.insert_subscribers(conn, inserts) if inserts else None
    for status, keys in created.items():
        # one INSERT ... SELECT per status, not one event row per parameter set
        detail = {"status": status.value, "source": "import"}
        bulk.insert_events(
            conn, keys, "created", detail, encoder, inserted_after=before, status=status.value
        )
    ids = {key: row["id"] for key, row in existing.items()}
    if updates:
        conn.execute(
            subscribers.update()
            .where(_S.id == sa.bindparam("b_id"))
            .values(
                updated_at=sa.bindparam("b_updated_at"),
                **{name: sa.bindparam(f"b_{name}") for name in _MUTABLE},
            ),
            updates,
        )
    if events:
        conn.execute(
            subscriber_events.insert(),
            [
                {"subscriber_id": ids[key], "at": options.now, "kind": kind, "detail": detail}
                for key, kind, detail in events
            ],
        )


def _by_key(values: tuple[Any, ...]) -> str:
    return str(values[1])  # email_key


def _target(row: Row, options: _Options) -> SubscriberStatus:
    status = row.status or SubscriberStatus.PENDING
    if status is SubscriberStatus.PENDING and options.confirmed:
        return SubscriberStatus.CONFIRMED
    return status


def _new(row: Row, status: SubscriberStatus, encoder: bulk.Encoder) -> tuple[Any, ...]:
    """The driver-ready values of a new person, in the order of ``bulk.INSERT_COLUMNS``."""
    now = encoder.now
    return (
        row.email,
        row.key,
        row.name,
        _VALUES[status],
        encoder.topics(row.topics),
        row.timezone,
        encoder.attributes(row.attributes),
        row.consent_source or "import",
        encoder.time(row.consent_at) if row.consent_at else now,
        row.consent_ip,
        now,  # created_at
        now,  # updated_at
        now if status is SubscriberStatus.CONFIRMED else None,
        now if status is SubscriberStatus.UNSUBSCRIBED else None,
        now if status is SubscriberStatus.BOUNCED else None,
        now if status is SubscriberStatus.COMPLAINED else None,
    )


def _update(
    current: Any,
    row: Row,
    options: _Options,
    report: ImportReport,
    updates: list[dict[str, Any]],
    events: list[tuple[str, str, dict[str, Any]]],
) -> None:
    status = SubscriberStatus(current["status"])
    values = {name: current[name] for name in _MUTABLE}
    wanted = row.status
    if status in _ACTIVE:
        # a file never takes anyone from confirmed back to pending
        target = status if wanted in (None, SubscriberStatus.PENDING) else wanted
        if target is SubscriberStatus.PENDING and options.confirmed:
            target = SubscriberStatus.CONFIRMED
    elif wanted is None or wanted in _ACTIVE:
        if not options.resubscribe:
            reason = f"{current['email']} is {status.value} (--resubscribe subscribes them again)"
            _problem(report, options, Problem(row.line, "skipped", reason))
            return
        target = _target(row, options)
        values.update(consent_source="import", consent_at=options.now, consent_ip=None)
        values.update(unsubscribed_at=None, bounced_at=None, complained_at=None)
    else:
        target = wanted
    changed = []
    if target is not status:
        values["status"] = target.value
        if target in _STAMPS:
            values[_STAMPS[target]] = options.now
        events.append((row.key, target.value, {"previous": status.value, "source": "import"}))
    if row.name is not None and row.name != current["name"]:
        values["name"] = row.name
        changed.append("name")
    if row.topics is not None and row.topics != frozenset(current["topics"] or ()):
        values["topics"] = sorted(row.topics)
        changed.append("topics")
    if row.timezone is not None and row.timezone != current["timezone"]:
        values["timezone"] = row.timezone
        changed.append("timezone")
    merged = {**(current["attributes"] or {}), **row.attributes}
    if merged != (current["attributes"] or {}):
        values["attributes"] = merged
        changed.append("attributes")
    if changed:
        events.append((row.key, "updated", {"fields": changed, "source": "import"}))
    if target is status and not changed:
        report.unchanged += 1
        return
    report.updated += 1
    updates.append(
        {"b_id": current["id"], "b_updated_at": options.now}
        | {f"b_{name}": value for name, value in values.items()}
    )
