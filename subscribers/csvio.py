"""CSV in and out: records with their physical line numbers, and a streaming export.

Reading streams the file through an incremental UTF-8 decoder, so memory stays
flat however large the file and a leading byte-order mark is dropped; a byte
that is not UTF-8 is then located by a second look at the file, and reported
with its line and offset. ``csv.reader`` tells each record's
last line; the record's first line is one past the previous record's last, which
stays right when a quoted field holds newlines.

Exports are formula-safe (OWASP, CSV injection): a cell that a spreadsheet would
run as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab, CR or LF) is
written with a ``'`` before it, header cells included; a cell that already
starts with quotes before such a character gets one more. Reading takes exactly
one such ``'`` off again (:func:`unescape_cell`), so an exported file imports
back to the same values; in any other file, too, a leading ``'`` before such a
character is read as a spreadsheet's text prefix, not as part of the value.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.errors import SubscriberInputError
from subscribers.schema import subscribers, subscriptions

__all__ = [
    "COLUMNS",
    "Record",
    "escape_cell",
    "export_csv",
    "read_records",
    "sniff_delimiter",
    "unescape_cell",
]

#: the columns import understands and export writes first; any other is a custom attribute
COLUMNS = (
    "email",
    "name",
    "topics",
    "timezone",
    "status",
    "consent_source",
    "consent_at",
    "consent_ip",
    "newsletters",  # newsletter ids separated by ';' or '|'; blank: the default one
)


# quotes, then a character that makes a spreadsheet read the cell as a formula
_FORMULA = re.compile(r"'*[=+\-@\t\r\n]")
_ESCAPED = re.compile(r"''*[=+\-@\t\r\n]")


def escape_cell(value: str) -> str:
    """``value`` as a spreadsheet shows it as text: ``'`` before a formula-like start."""
    return "'" + value if _FORMULA.match(value) else value


def unescape_cell(value: str) -> str:
    """The value :func:`escape_cell` was given: one ``'`` before a formula-like start dropped."""
    return value[1:] if _ESCAPED.match(value) else value


class Record(NamedTuple):
    """One CSV record: its first physical line, and its fields or why it could not be read."""

    line: int
    fields: list[str]
    error: str | None = None
    end: int = 0  # its last physical line (a quoted field may span several)


# a NamedTuple's own constructor parses keywords and defaults: twice the cost per record
_new = tuple.__new__


def sniff_delimiter(header: str) -> str:
    """The delimiter a header line uses: comma, semicolon (European spreadsheets) or tab.

    The one that occurs most outside quotes wins; a header with none is read as commas.
    """
    counts = dict.fromkeys(",;\t", 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda c: (counts[c], c == ","))
    return best if counts[best] else ","


def _not_utf8(stream: BinaryIO, source: str) -> SubscriberInputError:
    """The error for a stream that failed to decode, naming the first bad line and byte."""
    try:
        stream.seek(0)
    except (OSError, ValueError):
        return SubscriberInputError("is not UTF-8; save the file as UTF-8", source=source)
    offset = 0
    for number, raw in enumerate(stream, start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return SubscriberInputError(
                f"is not UTF-8: byte 0x{raw[exc.start]:02x} at byte {offset + exc.start} "
                f"(column {exc.start + 1}); save the file as UTF-8 and import it again",
                source=source,
                line=number,
            )
        offset += len(raw)
    # the decoder failed on a sequence cut by the end of the file
    return SubscriberInputError("is not UTF-8: it ends inside a character", source=source)


def read_records(stream: BinaryIO, source: str) -> Iterator[Record]:
    """Every non-blank record of a UTF-8 CSV byte stream, with its first physical line.

    A record ``csv`` cannot parse (a field over the csv module's size limit, a
    stray quote) comes back with ``error`` set and reading goes on. A byte that
    is not UTF-8 raises :class:`SubscriberInputError` naming the line and byte.
    """
    # utf-8-sig drops a byte-order mark; newline="" leaves quoted newlines to csv
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    last = 0
    pending: Record | None = None  # held back one record: the last may hold an unclosed quote
    pending_unclosed = False
    try:
        header = text.readline()
        raw: list[str] = []  # the physical lines of the record being read

        def lines() -> Iterator[str]:
            for physical in itertools.chain([header], text):
                raw.append(physical)
                yield physical

        reader = csv.reader(lines(), delimiter=sniff_delimiter(header), strict=False)
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if pending is not None:
                    yield pending
                    pending = None
                yield Record(last + 1, [], _csv_reason(exc))
                last = reader.line_num
                continue
            first, last = last + 1, reader.line_num
            # an odd number of quotes: the record's quote never closed (csv read to the end);
            # only a record over several lines can be one (see the error below)
            unclosed = last > first and "".join(raw).count('"') % 2 == 1
            raw.clear()
            if fields and any(fields):
                # most records hold no cell that starts with a quote: skip the per-cell check
                if "\x00'" in "\x00" + "\x00".join(fields):
                    fields = [unescape_cell(field) for field in fields]
                if pending is not None:
                    yield pending
                pending, pending_unclosed = _new(Record, (first, fields, None, last)), unclosed
        if pending is not None:
            if pending_unclosed and pending.end > pending.line:
                # csv read to the end of the file looking for the closing quote
                pending = pending._replace(
                    fields=[],
                    error=(
                        f"a quote opened on this line is never closed: lines {pending.line}-"
                        f"{pending.end} were read as one field; close the quote and import again"
                    ),
                )
            yield pending
    except UnicodeDecodeError:
        raise _not_utf8(stream, source) from None
    finally:
        with contextlib.suppress(ValueError):
            text.detach()  # the caller owns the byte stream: do not close it


def _csv_reason(exc: csv.Error) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return f"a field is longer than {csv.field_size_limit()} characters"
    return f"not valid CSV ({text})"


def _attribute_names(conn: Connection, batch_size: int) -> list[str]:
    names: set[str] = set()
    last = 0
    query = sa.select(subscribers.c.id, subscribers.c.attributes).order_by(subscribers.c.id)
    while True:
        rows = conn.execute(query.where(subscribers.c.id > last).limit(batch_size)).all()
        for row in rows:
            names.update(row.attributes or ())
        if len(rows) < batch_size:
            return sorted(names - set(COLUMNS))
        last = rows[-1].id


def _rows(
    conn: Connection, batch_size: int
) -> Iterable[tuple[sa.Row[tuple[object, ...]], list[str]]]:
    """Each person's row with the newsletters they are subscribed to (one query a page)."""
    last = 0
    query = sa.select(subscribers).order_by(subscribers.c.id)
    chosen = subscriptions.c
    while True:
        rows = conn.execute(query.where(subscribers.c.id > last).limit(batch_size)).all()
        held: dict[int, list[str]] = {}
        if rows:
            ids = sa.select(chosen.subscriber_id, chosen.newsletter_id).where(
                chosen.subscriber_id.in_([row.id for row in rows]), chosen.status == "subscribed"
            )
            for person, newsletter in conn.execute(ids.order_by(chosen.newsletter_id)):
                held.setdefault(person, []).append(newsletter)
        for row in rows:
            yield row, held.get(row.id, [])
        if len(rows) < batch_size:
            return
        last = rows[-1].id


def export_csv(conn: Connection, out: TextIO, batch_size: int = 2000) -> int:
    """Write every subscriber as CSV that :func:`import_csv` reads back to the same list.

    Topics and newsletter ids are joined with ``;``; custom attributes follow the standard columns,
    sorted by name. Erased people have no row, so they are never exported.
    Every cell, header included, is formula-safe (:func:`escape_cell`).
    Returns how many people were written.
    """
    extra = _attribute_names(conn, batch_size)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([escape_cell(name) for name in (*COLUMNS, *extra)])
    count = 0
    for row, newsletters in _rows(conn, batch_size):
        data = row._mapping
        attributes = data["attributes"] or {}
        cells = (
            data["email"],
            data["name"] or "",
            ";".join(sorted(data["topics"] or ())),
            data["timezone"] or "",
            data["status"],
            data["consent_source"] or "",
            data["consent_at"].isoformat() if data["consent_at"] else "",
            data["consent_ip"] or "",
            ";".join(newsletters),
            *(attributes.get(name, "") for name in extra),
        )
        writer.writerow([escape_cell(str(cell)) for cell in cells])
        count += 1
    return count
