"""One page of the subscriber list, by keyset (never OFFSET), for any page of a million rows.

Three orders, each walking an index: newest first (``id``), by address prefix
(the unique ``email_key``), by name prefix (``lower(name), id``, made by the
0009 migration). The cursor is the last row's key, so page 10,000 costs what
page 1 does. A newsletter filter is an EXISTS on ``subscriptions`` (its primary
key answers "is this person subscribed to N" per row walked). A topic filter
reads the JSON topics in Python, over at most ``scan`` rows per page; a page
that stops early carries on from its cursor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.topics import normalise_topic
from subscribers.schema import subscribers
from subscribers.states import SubscriberStatus
from subscribers.subscriptions import subscribed_to_newsletter

__all__ = ["ListPage", "ListQuery", "Row", "list_page", "page_query"]

_S = subscribers.c
_TOP = "\U0010ffff"  # sorts after every character: the end of a prefix's range


@dataclass(frozen=True)
class ListQuery:
    """What the list shows: a search (by address or name prefix), filters and a cursor."""

    q: str = ""
    by: Literal["email", "name"] = "email"
    status: SubscriberStatus | None = None
    topic: str = ""
    after: str = ""
    size: int = 50
    scan: int = 5000
    newsletter: str = ""  # an id checked by the caller: only people subscribed to it


@dataclass(frozen=True)
class Row:
    """One line of the list."""

    id: int
    email: str
    name: str | None
    status: str
    topics: list[str]
    created_at: Any


@dataclass(frozen=True)
class ListPage:
    """A page of rows and the cursor of the next page (None on the last)."""

    rows: list[Row]
    next_after: str | None


def page_query(query: ListQuery, limit: int) -> sa.Select[Any]:
    """The SQL of one page (``limit`` rows) without the topic filter: what the index walks
    (the newsletter filter, an EXISTS, is in it)."""
    columns = (_S.id, _S.email, _S.email_key, _S.name, _S.status, _S.topics, _S.created_at)
    stmt = sa.select(*columns)
    q = query.q.strip().lower()
    if query.status is not None:
        # with a prefix, the prefix's index bounds the walk: ``status || ''`` keeps the
        # planner off the status index (which would sort most of a million rows)
        status = _S.status.concat("") if q else _S.status
        stmt = stmt.where(status == query.status.value)
    if query.newsletter:
        stmt = stmt.where(subscribed_to_newsletter(query.newsletter))
    if q and query.by == "name":
        key = sa.func.lower(_S.name)
        stmt = stmt.where(key >= q, key < q + _TOP).order_by(key, _S.id)
        if query.after:
            name, _, last_id = query.after.rpartition("\0")
            if last_id.isdigit():
                stmt = stmt.where(sa.tuple_(key, _S.id) > sa.tuple_(name, int(last_id)))
    elif q:
        stmt = stmt.where(_S.email_key >= q, _S.email_key < q + _TOP).order_by(_S.email_key)
        if query.after:
            stmt = stmt.where(_S.email_key > query.after)
    else:
        stmt = stmt.order_by(_S.id.desc())
        if query.after.isdigit():
            stmt = stmt.where(_S.id < int(query.after))
    return stmt.limit(limit)


def _cursor(query: ListQuery, row: Any) -> str:
    if query.q.strip() and query.by == "name":
        return f"{(row.name or '').lower()}\0{row.id}"
    if query.q.strip():
        return str(row.email_key)
    return str(row.id)


def list_page(conn: Connection, query: ListQuery) -> ListPage:
    """The page ``query`` asks for, and the cursor of the one after it."""
    wanted = normalise_topic(query.topic) if query.topic.strip() else ""
    rows: list[Row] = []
    current = query
    scanned = 0
    last: Any = None
    while True:
        batch = query.size + 1 if not wanted else 500
        found = conn.execute(page_query(current, batch)).all()
        for r in found:
            scanned += 1
            topics = list(r.topics or [])
            if wanted and topics and wanted not in topics:
                continue
            if len(rows) == query.size:
                return ListPage(rows, _cursor(query, last))
            rows.append(Row(r.id, r.email, r.name, r.status, topics, r.created_at))
            last = r
        if len(found) < batch or scanned >= query.scan:
            more = len(found) == batch and scanned >= query.scan
            return ListPage(rows, _cursor(query, found[-1]) if more and found else None)
        current = replace(current, after=_cursor(query, found[-1]))
