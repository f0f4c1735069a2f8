"""One CSV row of a subscriber import: checked, normalised, and merged with its duplicates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from newsletter.errors import SubscriberInputError
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

__all__ = ["Row", "merge", "parse_row"]

_RESERVED = frozenset(COLUMNS)
_STATUSES = {status.value: status for status in SubscriberStatus}


@dataclass(frozen=True, slots=True)
class Row:
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
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
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


def parse_row(header: list[str], fields: list[str], line: int) -> Row:
    """Check one record against the header; :class:`SubscriberInputError` names the field."""
    if len(fields) > len(header):
        raise SubscriberInputError(f"has {len(fields)} fields but the header has {len(header)}")
    cells = dict(zip(header, fields, strict=False))
    raw_email = cells.get("email", "").strip()
    if not raw_email:
        raise SubscriberInputError("no email address", field="email")
    address = normalise_address(raw_email)
    name = clean_name(cells.get("name"))
    topics = split_topics(cells.get("topics", "").strip())
    timezone = clean_timezone(cells.get("timezone"))
    attributes = {
        column: clean_attribute(column, value)
        for column, value in cells.items()
        if column and column not in _RESERVED and value
    }
    status_cell = cells.get("status", "").strip().lower()
    status = _STATUSES.get(status_cell) if status_cell else None
    if status_cell and status is None:
        raise SubscriberInputError(
            f"{status_cell!r} is not one of {', '.join(_STATUSES)}", field="status"
        )
    return Row(
        line=line,
        key=address.key,
        email=address.email,
        name=name,
        topics=topics or None,
        timezone=timezone,
        status=status,
        attributes=attributes,
        consent_source=_short(cells.get("consent_source", "").strip(), "consent_source"),
        consent_at=_consent_at(cells.get("consent_at", "").strip()),
        consent_ip=_short(cells.get("consent_ip", "").strip(), "consent_ip"),
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
