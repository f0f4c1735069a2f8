"""CSV import: streaming, in chunks each committed, idempotent, careful with people who left.

The file is read record by record (:mod:`subscribers.csvio`) and parsed into
chunks of addresses ahead of the writes (:mod:`subscribers.importrows`), in a
thread or, for a large file, in a child process (:mod:`subscribers.importchild`).
Each chunk is one transaction of a few set-based statements
(:mod:`subscribers.bulk`: a staging table, the suppression check as a join, one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` with the ``created`` events
written from its rows), so the cost per row is the same at a million rows as
at a thousand, and memory holds at most three chunks whatever the file's size.

Committing per chunk lets another writer (a signup, a send) in between chunks
instead of waiting for the whole file. A fatal error in the file (not UTF-8, no
email column) is found before the first chunk is written. A chunk that fails
(the database goes away) is rolled back alone; the chunks before it stay, and
importing the same file again finishes the job, since a re-run changes nothing
that is already done.

Rules, per normalised address:

- rows for the same address in one chunk merge (later non-empty cells win,
  topics add up), so a file with duplicates makes one person (a duplicate in
  a later chunk updates that person: its cells win, its topics replace);
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

import codecs
import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.core.db import utcnow
from newsletter.core.errors import SubscriberInputError
from newsletter.core.newsletters import DEFAULT_NEWSLETTER_ID
from subscribers import bulk, importchild, subscriptions, suppressions
from subscribers.csvio import COLUMNS, read_records
from subscribers.importrows import (
    Chunk,
    Layout,
    Problem,
    Row,
    parsed_ahead,
    read_chunks,
    row_from_stage,
    target_status,
)
from subscribers.model import SubscriberStatus
from subscribers.schema import subscriber_events, subscribers

__all__ = ["HEADER_ALIASES", "ImportReport", "Problem", "import_csv", "import_file"]

_S = subscribers.c
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
    encoder: bulk.Encoder
    newsletters: frozenset[str]  # a new person's when their row names none


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
    batch_size: int = 20_000,
    on_problem: Callable[[Problem], None] | None = None,
    on_commit: Callable[[ImportReport], None] | None = None,
    columns: Mapping[str, str] | None = None,
    newsletters: Sequence[str] = (DEFAULT_NEWSLETTER_ID,),
    parse_in_child: bool | None = None,
) -> ImportReport:
    """Import a CSV byte stream with a header row (``email`` required), committing in chunks.

    The delimiter (comma, semicolon or tab) is read off the header; other tools'
    headers (``Email Address``, ``First Name``...) are recognised, and ``columns``
    maps any other header name to one of ours (``{"E-Mail-Adresse": "email"}``).

    Each chunk of ``batch_size`` addresses is one transaction; ``on_commit`` is
    called after each with the counts so far. Each rejected or skipped line is
    passed to ``on_problem`` (a skipped one once its chunk is committed).
    Raises :class:`SubscriberInputError` (naming ``source`` and the line) for an
    empty file, a header without an ``email`` column, or bytes that are not
    UTF-8; these are found before anything is written, in a stream that can seek.
    ``newsletters`` are the configured ids, the default first: a ``newsletters`` cell
    (ids separated by ``;`` or ``|``) may name only these; a blank one (or no column)
    gives a new person the default; a held person's newsletters are added to theirs.

    Rows are parsed ahead of the writes: in a child process
    (:mod:`subscribers.importchild`) when ``parse_in_child`` is true, or when it
    is None and the stream holds a few megabytes and this process may fork;
    otherwise in a thread. The result is the same either way.
    """
    report = ImportReport()
    _check_utf8(stream, source)
    if parse_in_child is None:
        parse_in_child = importchild.worth_a_child(stream)
    records = read_records(stream, source)
    header_record = next(records, None)
    if header_record is None:
        raise SubscriberInputError(
            "is empty; expected a header row such as 'email,name,topics,timezone,status'",
            source=source,
        )
    layout = Layout.from_header(_header(header_record.fields, source, header_record.line, columns))
    layout = dataclasses.replace(layout, known=frozenset(newsletters))
    now = now or utcnow()
    encoder = bulk.Encoder(engine.dialect, now)
    default = frozenset(newsletters[:1])
    options = _Options(secret, confirmed, resubscribe, now, source, on_problem, encoder, default)
    with engine.connect() as conn, bulk.session(conn):
        with conn.begin():
            hashing = suppressions.has_any(conn)
            bulk.Stage(conn, encoder, default).create()
        chunks = read_chunks(
            records,
            layout,
            size=batch_size,
            confirmed=confirmed,
            encoder=encoder,
            hashes=suppressions.hashers(secret) if hashing else [],
        )
        parsed = importchild.parsed_in_child if parse_in_child else parsed_ahead
        with contextlib.closing(parsed(chunks)) as ahead:
            for chunk in ahead:
                for problem in chunk.rejected:
                    _problem(report, options, problem)
                report.duplicates += chunk.duplicates
                outcome = (
                    _commit_chunk(conn, chunk, options, hashing) if chunk.count else _Outcome()
                )
                report.imported += outcome.imported
                report.updated += outcome.updated
                report.unchanged += outcome.unchanged
                for problem in outcome.skipped:
                    _problem(report, options, problem)
                if on_commit is not None:
                    on_commit(report)
    return report


def import_file(engine: Engine, path: Path, **options: Any) -> ImportReport:
    """:func:`import_csv` for a file (same options); a missing file is a one-line error."""
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise SubscriberInputError(f"cannot be read ({exc.strerror})", source=str(path)) from None
    with stream:
        return import_csv(engine, stream, source=str(path), **options)


# Other tools' export headers for our columns (Mailchimp, listmonk, Substack, spreadsheets);
# first and last names are kept as the attributes the greeting reads.
HEADER_ALIASES = {
    "email address": "email",
    "e-mail": "email",
    "e-mail address": "email",
    "email_address": "email",
    "full name": "name",
    "first name": "first_name",
    "last name": "last_name",
    "time zone": "timezone",
    "tags": "topics",
}


def _header(
    fields: list[str], source: str, line: int, columns: Mapping[str, str] | None = None
) -> list[str]:
    # the standard columns match in any case; a custom attribute keeps its own spelling
    mapped = [(columns or {}).get(name.strip(), name.strip()) for name in fields]
    mapped = [HEADER_ALIASES.get(name.lower(), name) for name in mapped]
    names = [name.lower() if name.lower() in COLUMNS else name for name in mapped]
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


def _check_utf8(stream: BinaryIO, source: str) -> None:
    """Refuse a stream that is not UTF-8 before the first chunk is committed.

    Decoding is fast next to parsing, so a seekable stream is read once ahead;
    on a bad byte, :func:`read_records` reads it again and names the line.
    """
    if not stream.seekable():
        return
    start = stream.tell()
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while block := stream.read(1 << 20):
            decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        stream.seek(start)
        for _ in read_records(stream, source):
            pass
        raise SubscriberInputError("is not UTF-8", source=source) from None
    finally:
        stream.seek(start)


@dataclass
class _Outcome:
    """One chunk's counts, added to the report once the chunk is committed."""

    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[Problem] = field(default_factory=list)


def _commit_chunk(conn: Connection, chunk: Chunk, options: _Options, hashing: bool) -> _Outcome:
    """Apply one chunk in a transaction of its own."""
    with conn.begin():
        return _apply(conn, chunk, options, hashing)


def _erased(
    conn: Connection, stage: bulk.Stage, options: _Options, hashing: bool, retired: bool
) -> set[str]:
    """The chunk's keys on the suppression list (held people too: see the module doc)."""
    if hashing:
        found = stage.suppressed()
        if retired:  # a match under a retired key is re-hashed to the current key
            for key in found:
                suppressions.is_suppressed(conn, options.secret, key)
        return found
    if suppressions.has_any(conn):  # someone was erased since the import began
        return suppressions.suppressed_among(conn, options.secret, stage.keys())
    return set()


def _apply(conn: Connection, chunk: Chunk, options: _Options, hashing: bool) -> _Outcome:
    outcome = _Outcome()
    stage = bulk.Stage(conn, options.encoder, options.newsletters)
    stage.load(chunk.staged, chunk.retired)
    skipped = set()
    erased = _erased(conn, stage, options, hashing, bool(chunk.retired))
    if options.resubscribe:
        for key in erased:
            suppressions.lift(conn, options.secret, key)
    elif erased:
        for values in stage.values(erased):
            row = row_from_stage(values)
            reason = f"{row.email} was erased at their request (--resubscribe adds them again)"
            outcome.skipped.append(Problem(row.line, "skipped", reason))
            skipped.add(row.key)
    if skipped:
        stage.drop(skipped)
    outcome.imported = stage.merge(chunk.count - len(skipped), chunk.named_newsletters)
    updates: list[dict[str, Any]] = []
    events: list[tuple[int, str, dict[str, Any]]] = []  # subscriber id, kind, detail
    joins: list[tuple[int, frozenset[str], bool]] = []  # held people's newsletters cells
    for current in stage.held():
        row = row_from_stage(current)
        before = outcome.unchanged
        target = _update(current, row, options, outcome, updates, events)
        if row.newsletters and target is not None and target.is_active:
            joins.append((current["id"], row.newsletters, outcome.unchanged > before))
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
                {"subscriber_id": person, "at": options.now, "kind": kind, "detail": detail}
                for person, kind, detail in events
            ],
        )
    for person, newsletters, unchanged in joins:  # added to, never taken from
        joined = subscriptions.subscribe(
            conn, person, newsletters, now=options.now, source="import"
        )
        if joined and unchanged:
            outcome.unchanged, outcome.updated = outcome.unchanged - 1, outcome.updated + 1
    stage.finish()
    outcome.skipped.sort(key=lambda problem: problem.line)
    return outcome


def _update(
    current: Any,
    row: Row,
    options: _Options,
    outcome: _Outcome,
    updates: list[dict[str, Any]],
    events: list[tuple[int, str, dict[str, Any]]],
) -> SubscriberStatus | None:
    """Queue the update of one held person; return the status they end in (None: skipped)."""
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
            outcome.skipped.append(Problem(row.line, "skipped", reason))
            return None
        target = target_status(row.status, options.confirmed)
        values.update(consent_source="import", consent_at=options.now, consent_ip=None)
        values.update(unsubscribed_at=None, bounced_at=None, complained_at=None)
    else:
        target = wanted
    changed = []
    if target is not status:
        values["status"] = target.value
        if target in _STAMPS:
            values[_STAMPS[target]] = options.now
        events.append((current["id"], target.value, {"previous": status.value, "source": "import"}))
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
        events.append((current["id"], "updated", {"fields": changed, "source": "import"}))
    if target is status and not changed:
        outcome.unchanged += 1
        return target
    outcome.updated += 1
    updates.append(
        {"b_id": current["id"], "b_updated_at": options.now}
        | {f"b_{name}": value for name, value in values.items()}
    )
    return target
