"""The reading side of a subscriber import: rows checked, normalised, merged, in chunks.

Each chunk holds up to ``size`` addresses (rows for one address merged), the
lines rejected on the way, and its values ready for the staging table
(:data:`subscribers.bulk.STAGE_COLUMNS`, keyed hashes included).
:func:`parsed_ahead` reads the next chunk in a thread while the caller writes
the one before: parsing is Python, the writes mostly wait on the database (or
run in SQLite's C code, which lets go of the GIL), so the two overlap in part;
the writer's own Python (binding values) takes turns with the parsing under the
GIL, which is why a large file is parsed in a child process instead
(:mod:`subscribers.importchild`, the same chunks). At most three chunks are
held at once, whatever the file's size.
"""

from __future__ import annotations

import functools
import operator
import queue
import re
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from newsletter.core.errors import SubscriberInputError
from newsletter.core.times import parse_aware
from subscribers.addresses import normalise_address
from subscribers.bulk import Encoder, copy_text
from subscribers.csvio import COLUMNS, Record
from subscribers.fields import (
    MAX_ATTRIBUTE,
    MAX_NAME,
    clean_attribute,
    clean_name,
    clean_timezone,
    split_topics,
)
from subscribers.model import SubscriberStatus

__all__ = [
    "Chunk",
    "Layout",
    "Problem",
    "Row",
    "merge",
    "parse_row",
    "parsed_ahead",
    "read_chunks",
    "row_from_stage",
    "target_status",
]

_RESERVED = frozenset(COLUMNS)
_STATUSES = {status.value: status for status in SubscriberStatus}


@dataclass(frozen=True, slots=True)
class Problem:
    """A line that was not imported: ``rejected`` (bad data) or ``skipped`` (protected person)."""

    line: int
    kind: str
    reason: str


class Row(NamedTuple):
    """A valid import row. ``None`` (and empty ``attributes``) means the cell was blank."""

    line: int
    key: str
    email: str
    name: str | None
    topics: frozenset[str] | None
    timezone: str | None
    status: SubscriberStatus | None
    attributes: dict[str, str]
    consent_source: str | None
    consent_at: datetime | None
    consent_ip: str | None
    newsletters: frozenset[str] | None = None  # blank: a new person gets the default one


# a NamedTuple's own constructor parses keywords and defaults: twice the cost per row
_new = tuple.__new__


def _consent_at(value: str) -> datetime | None:
    if not value:
        return None
    parsed = parse_aware(value)
    if parsed is None:
        raise SubscriberInputError(
            f"{value!r} is not an ISO 8601 time with a UTC offset", field="consent_at"
        )
    return parsed


def _short(value: str | None, name: str) -> str | None:
    if value and len(value) > MAX_ATTRIBUTE:
        raise SubscriberInputError(
            f"is {len(value)} characters long (at most {MAX_ATTRIBUTE})", field=name
        )
    return value or None


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each column sits in a record, worked out once from the header row."""

    width: int
    email: int
    name: int
    topics: int
    timezone: int
    status: int
    consent_source: int
    consent_at: int
    consent_ip: int
    newsletters: int
    extra: tuple[tuple[int, str], ...]  # custom attribute columns: (position, name)
    # the standard columns' cells, in csvio.COLUMNS order, taken in one call
    cells: Callable[[list[str]], tuple[str, ...]]
    # the configured newsletter ids a `newsletters` cell may name (None: any is refused)
    known: frozenset[str] = frozenset()

    @classmethod
    def from_header(cls, names: list[str]) -> Layout:
        """The layout of a header (names already folded); absent columns read as blank."""
        width = len(names)
        # an absent column points one past the end, where parse_row puts a blank cell
        position = {name: i for i, name in enumerate(names) if name}
        spots = {column: position.get(column, width) for column in COLUMNS}
        extra = tuple((i, name) for i, name in enumerate(names) if name and name not in _RESERVED)
        cells = operator.itemgetter(*(spots[column] for column in COLUMNS))
        return cls(width=width, extra=extra, cells=cells, **spots)  # type: ignore[arg-type]


def parse_row(layout: Layout, fields: list[str], line: int) -> Row:
    """Check one record; :class:`SubscriberInputError` names the field that is wrong."""
    count = len(fields)
    if count > layout.width:
        raise SubscriberInputError(f"has {count} fields but the header has {layout.width}")
    # spreadsheets drop trailing blank cells: pad, plus the blank cell of absent columns
    cells = fields + [""] * (layout.width + 1 - count)
    email, name, topics, timezone, status_cell, source, at, ip, lists = layout.cells(cells)
    if not email or email.isspace():
        raise SubscriberInputError("no email address", field="email")
    address = normalise_address(email)
    status = None
    if status_cell:
        status = _STATUSES.get(status_cell) or _status(status_cell)
    attributes = {}
    for i, column in layout.extra:
        value = cells[i]
        if value:
            attributes[column] = (
                clean_attribute(column, value) if len(value) > MAX_ATTRIBUTE else value
            )
    if not name and "first_name" in attributes:
        # a Mailchimp-style export (First Name, Last Name): the greeting's first word is theirs
        name = " ".join(attributes[k] for k in ("first_name", "last_name") if k in attributes)
    email, key, _ = address
    return _new(
        Row,
        (
            line,
            key,
            email,
            _name(name),
            (split_topics(topics.strip()) or None) if topics else None,
            _timezone(timezone),
            status,
            attributes,
            _short(source.strip(), "consent_source") if source else None,
            _consent_at(at.strip()) if at else None,
            _short(ip.strip(), "consent_ip") if ip else None,
            _newsletters(lists, layout.known) if lists.strip() else None,
        ),
    )


def _newsletters(cell: str, known: frozenset[str]) -> frozenset[str]:
    ids = frozenset(part.strip() for part in re.split(r"[;|]", cell) if part.strip())
    for newsletter in sorted(ids):
        if newsletter not in known:
            shown = ", ".join(sorted(known)) or "none"
            raise SubscriberInputError(
                f"no newsletter {newsletter[:40]!r} (configured: {shown})", field="newsletters"
            )
    return ids


def _status(cell: str) -> SubscriberStatus | None:
    folded = cell.strip().lower()
    status = _STATUSES.get(folded)
    if folded and status is None:
        raise SubscriberInputError(
            f"{folded!r} is not one of {', '.join(_STATUSES)}", field="status"
        )
    return status


def _name(cell: str) -> str | None:
    """:func:`clean_name`, with a quick way for the usual name (same answers, held by a test)."""
    if not cell:
        return None
    # printable excludes every control, line break and bidirectional control (categories
    # Cc, Cf, Zl, Zp); no "=?" means no encoded word: clean_name would only strip it
    if len(cell) <= MAX_NAME and cell.isprintable() and "=?" not in cell:
        return cell.strip() or None
    return clean_name(cell)


@functools.lru_cache(maxsize=1024)  # a file holds a few zones, over and over
def _timezone(cell: str) -> str | None:
    return clean_timezone(cell) if cell else None


def merge(earlier: Row, later: Row) -> Row:
    """Two rows for one address as one: later non-blank cells win, topics add up."""
    if earlier.topics is None or later.topics is None:
        topics = later.topics if earlier.topics is None else earlier.topics
    else:
        topics = earlier.topics | later.topics
    return Row(
        line=later.line,
        key=later.key,
        email=earlier.email,  # the first spelling seen is the one kept
        name=later.name or earlier.name,
        topics=topics,
        timezone=later.timezone or earlier.timezone,
        status=later.status or earlier.status,
        attributes={**earlier.attributes, **later.attributes},
        consent_source=earlier.consent_source or later.consent_source,
        consent_at=earlier.consent_at or later.consent_at,
        consent_ip=earlier.consent_ip or later.consent_ip,
        newsletters=(earlier.newsletters or frozenset()) | (later.newsletters or frozenset())
        or None,
    )


def target_status(wanted: SubscriberStatus | None, confirmed: bool) -> SubscriberStatus:
    """The status a new person arrives in: the row's, else pending (confirmed if asked)."""
    status = wanted or SubscriberStatus.PENDING
    if status is SubscriberStatus.PENDING and confirmed:
        return SubscriberStatus.CONFIRMED
    return status


@dataclass
class Chunk:
    """Up to a chunk's size of addresses as staged values, and the lines rejected.

    The staged values hold all a row said (:func:`row_from_stage` rebuilds it), so a
    chunk carries no :class:`Row` objects: the writer reads back from the stage only
    the few rows it needs (people already held, or erased).
    """

    count: int = 0  # addresses staged (rows for one address merged)
    # in bulk.STAGE_COLUMNS order, or as COPY text when the encoder copies
    staged: list[tuple[Any, ...]] | str = field(default_factory=list)
    retired: list[tuple[str, str]] = field(default_factory=list)  # key, hash under a retired key
    rejected: list[Problem] = field(default_factory=list)
    duplicates: int = 0
    named_newsletters: bool = False  # some row has a newsletters cell


def read_chunks(
    records: Iterator[Record],
    layout: Layout,
    *,
    size: int,
    confirmed: bool,
    encoder: Encoder,
    hashes: list[Callable[[str], str]],
) -> Iterator[Chunk]:
    """The records as chunks of ``size`` addresses, staged values made with ``hashes``.

    ``hashes`` are :func:`subscribers.suppressions.hashers` (none: no hashing).
    """
    chunk = Chunk()
    rows: dict[str, Row] = {}  # the loop runs once per line of the file: names held locally
    for line, fields, error, _ in records:
        if error is not None:
            chunk.rejected.append(Problem(line, "rejected", error))
            continue
        try:
            row = parse_row(layout, fields, line)
        except SubscriberInputError as exc:
            chunk.rejected.append(Problem(line, "rejected", str(exc)))
            continue
        key = row[1]  # row.key
        earlier = rows.get(key)
        if earlier is not None:
            chunk.duplicates += 1
            row = merge(earlier, row)
        rows[key] = row
        if len(rows) >= size:
            yield _stage(chunk, rows, confirmed, encoder, hashes)
            chunk = Chunk()
            rows = {}
    if rows or chunk.rejected:
        yield _stage(chunk, rows, confirmed, encoder, hashes)


_by_key = operator.itemgetter(1)  # the key's place in bulk.STAGE_COLUMNS


def _stage(
    chunk: Chunk,
    rows: dict[str, Row],
    confirmed: bool,
    encoder: Encoder,
    hashes: list[Callable[[str], str]],
) -> Chunk:
    current = hashes[0] if hashes else None
    topics, attributes, time = encoder.topics, encoder.attributes, encoder.time
    arrives = {
        status: target_status(status, confirmed).value for status in (None, *SubscriberStatus)
    }
    wanted = {status: status.value if status else None for status in (None, *SubscriberStatus)}
    # a blank cell stays NULL (topics, newsletters, the status asked for): the merge
    # fills in a new person's defaults, and a held person's row keeps what it has
    staged = [
        (
            email,
            key,
            current(key) if current is not None else None,
            name,
            arrives[status],
            topics(topic_set) if topic_set is not None else None,
            timezone,
            attributes(extra),
            source,
            time(at) if at is not None else None,
            ip,
            topics(lists) if lists is not None else None,  # a sorted JSON list, as topics are
            line,
            wanted[status],
        )
        for key, (
            line,
            _,
            email,
            name,
            topic_set,
            timezone,
            status,
            extra,
            source,
            at,
            ip,
            lists,
        ) in (rows.items())
    ]
    # in key order: the database then adds to the email index's pages in turn, and
    # SQLite need not sort the stage itself
    staged.sort(key=_by_key)
    chunk.count = len(rows)
    chunk.named_newsletters = any(row.newsletters is not None for row in rows.values())
    chunk.staged = copy_text(staged) if encoder.copies else staged
    chunk.retired = [(key, hashed(key)) for hashed in hashes[1:] for key in rows]
    return chunk


def row_from_stage(values: Mapping[str, Any]) -> Row:
    """The :class:`Row` a chunk staged, from its typed stage values (``st_`` + column name)."""
    topics, wanted, lists = values["st_topics"], values["st_wanted"], values["st_newsletters"]
    return Row(
        line=values["st_line"],
        key=values["st_email_key"],
        email=values["st_email"],
        name=values["st_name"],
        topics=frozenset(topics) if topics is not None else None,
        timezone=values["st_timezone"],
        status=SubscriberStatus(wanted) if wanted is not None else None,
        attributes=dict(values["st_attributes"] or {}),
        consent_source=values["st_consent_source"],
        consent_at=values["st_consent_at"],
        consent_ip=values["st_consent_ip"],
        newsletters=frozenset(lists) if lists is not None else None,
    )


_DONE = object()


def parsed_ahead(chunks: Iterator[Chunk]) -> Generator[Chunk, None, None]:
    """The same chunks, each read in a thread while the caller handles the one before.

    An error while reading is raised here, in the caller's thread; closing this
    iterator (or the caller failing) stops the thread before it returns.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False

    def read() -> None:
        try:
            for chunk in chunks:
                if not hand_over(chunk):
                    return
        except BaseException as exc:  # handed to the caller's thread, raised there
            hand_over(exc)
            return
        hand_over(_DONE)

    thread = threading.Thread(target=read, name="import-reader", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
