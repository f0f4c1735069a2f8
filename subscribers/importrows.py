"""One CSV row of a subscriber import: checked, normalised, and merged with its duplicates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from newsletter.core.errors import SubscriberInputError
from newsletter.core.times import parse_aware
from subscribers.addresses import normalise_address
from subscribers.csvio import COLUMNS
from subscribers.fields import (
    MAX_ATTRIBUTE,
    clean_attribute,
    clean_name,
    clean_timezone,
    split_topics,
)
from subscribers.model import SubscriberStatus

__all__ = ["Layout", "Row", "merge", "parse_row"]

_RESERVED = frozenset(COLUMNS)
_STATUSES = {status.value: status for status in SubscriberStatus}


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
    extra: tuple[tuple[int, str], ...]  # custom attribute columns: (position, name)

    @classmethod
    def from_header(cls, names: list[str]) -> Layout:
        """The layout of a header (names already folded); absent columns read as blank."""
        width = len(names)
        # an absent column points one past the end, where parse_row puts a blank cell
        position = {name: i for i, name in enumerate(names) if name}
        spots = {column: position.get(column, width) for column in COLUMNS}
        extra = tuple((i, name) for i, name in enumerate(names) if name and name not in _RESERVED)
        return cls(width=width, extra=extra, **spots)


def parse_row(layout: Layout, fields: list[str], line: int) -> Row:
    """Check one record; :class:`SubscriberInputError` names the field that is wrong."""
    if len(fields) > layout.width:
        raise SubscriberInputError(f"has {len(fields)} fields but the header has {layout.width}")
    # spreadsheets drop trailing blank cells: pad, plus the blank cell of absent columns
    cells = fields + [""] * (layout.width + 1 - len(fields))
    raw_email = cells[layout.email].strip()
    if not raw_email:
        raise SubscriberInputError("no email address", field="email")
    address = normalise_address(raw_email)
    status_cell = cells[layout.status].strip().lower()
    status = _STATUSES.get(status_cell) if status_cell else None
    if status_cell and status is None:
        raise SubscriberInputError(
            f"{status_cell!r} is not one of {', '.join(_STATUSES)}", field="status"
        )
    consent_source, consent_at, consent_ip = (
        cells[layout.consent_source],
        cells[layout.consent_at],
        cells[layout.consent_ip],
    )
    return Row(
        line=line,
        key=address.key,
        email=address.email,
        name=clean_name(cells[layout.name]),
        topics=split_topics(cells[layout.topics].strip()) or None,
        timezone=clean_timezone(cells[layout.timezone]),
        status=status,
        attributes={
            column: clean_attribute(column, cells[i]) for i, column in layout.extra if cells[i]
        },
        consent_source=_short(consent_source.strip(), "consent_source") if consent_source else None,
        consent_at=_consent_at(consent_at.strip()) if consent_at else None,
        consent_ip=_short(consent_ip.strip(), "consent_ip") if consent_ip else None,
    )


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
    )
