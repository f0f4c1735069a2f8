"""The subscriber listing, on the DB-API driver: one plain SQL text for SQLite and PostgreSQL.

``newsletter subscribers list`` opens no SQLAlchemy (it starts at once): these
functions take a DB-API connection, ``sqlite3``'s or psycopg's (see
:mod:`newsletter.core.dbapi` for the placeholders), and are the listing's only
implementation; :func:`subscribers.store.list_subscribers` runs them on a
SQLAlchemy connection's own driver connection, inside its transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from newsletter.core.dbapi import as_json, as_utc, execute
from subscribers.fields import clean_topics
from subscribers.model import Consent, Subscriber
from subscribers.states import SubscriberStatus, SubscriptionStatus

__all__ = ["list_subscribers", "newsletters_of", "to_subscriber"]

# the columns of ``subscribers`` (subscribers.schema) a Subscriber is built from
_COLUMNS = (
    "id", "email", "name", "status", "topics", "timezone", "attributes",
    "consent_source", "consent_at", "consent_ip", "created_at", "updated_at",
    "confirmed_at", "unsubscribed_at", "bounced_at", "complained_at",
)  # fmt: skip
# a person subscribed to the newsletter given as the parameter
_IN_NEWSLETTER = (
    "EXISTS (SELECT 1 FROM subscriptions WHERE subscriptions.subscriber_id = subscribers.id"
    " AND subscriptions.newsletter_id = ? AND subscriptions.status = ?)"
)
_ON = SubscriptionStatus.SUBSCRIBED.value


def to_subscriber(data: Mapping[Any, Any]) -> Subscriber:
    """The model for one ``subscribers`` row, read through SQLAlchemy or the bare driver."""
    consent = None
    if data["consent_source"] is not None and data["consent_at"] is not None:
        consent = Consent(
            source=data["consent_source"], at=as_utc(data["consent_at"]), ip=data["consent_ip"]
        )
    return Subscriber(
        id=data["id"],
        email=data["email"],
        name=data["name"],
        status=SubscriberStatus(data["status"]),
        topics=frozenset(as_json(data["topics"]) or ()),
        timezone=data["timezone"],
        attributes=dict(as_json(data["attributes"]) or {}),
        consent=consent,
        created_at=as_utc(data["created_at"]),
        updated_at=as_utc(data["updated_at"]),
        confirmed_at=as_utc(data["confirmed_at"]),
        unsubscribed_at=as_utc(data["unsubscribed_at"]),
        bounced_at=as_utc(data["bounced_at"]),
        complained_at=as_utc(data["complained_at"]),
    )


def list_subscribers(
    conn: Any,
    *,
    status: SubscriberStatus | str | None = None,
    topic: str | None = None,
    newsletter: str | None = None,
    batch_size: int = 1000,
) -> Iterator[Subscriber]:
    """Every subscriber, by id, optionally only those in ``status``, taking ``topic`` or
    subscribed to ``newsletter``, read from the DB-API connection ``conn``.

    A person with no topics takes every topic, so they match any ``topic`` filter.
    Read in pages of ``batch_size`` by id (keyset): memory stays flat however long
    the list, on both databases.
    """
    where, params = ["id > ?"], []
    if newsletter is not None:
        where.append(_IN_NEWSLETTER)
        params += [newsletter, _ON]
    if status is not None:
        where.append("status = ?")
        params.append(SubscriberStatus(status).value)
    # names from this module, values as parameters
    sql = (
        f"SELECT {', '.join(_COLUMNS)} FROM subscribers WHERE {' AND '.join(where)}"  # noqa: S608
        " ORDER BY id LIMIT ?"
    )
    wanted = clean_topics([topic]) if topic else frozenset()
    last = 0
    while True:
        rows = execute(conn, sql, [last, *params, batch_size]).fetchall()
        for row in rows:
            subscriber = to_subscriber(dict(zip(_COLUMNS, row, strict=True)))
            if not wanted or subscriber.wants(wanted):
                yield subscriber
        if len(rows) < batch_size:
            return
        last = rows[-1][0]


def newsletters_of(conn: Any, subscriber_ids: Collection[int]) -> dict[int, list[str]]:
    """For a page of people: the ids of the newsletters each is subscribed to now, sorted
    (one query on the DB-API connection ``conn``; someone subscribed to none is absent)."""
    held: dict[int, list[str]] = {}
    if not subscriber_ids:
        return held
    marks = ", ".join("?" * len(subscriber_ids))
    sql = (
        "SELECT subscriber_id, newsletter_id FROM subscriptions"  # noqa: S608 - ? marks only
        f" WHERE status = ? AND subscriber_id IN ({marks}) ORDER BY newsletter_id"
    )
    for person, newsletter_id in execute(conn, sql, [_ON, *subscriber_ids]).fetchall():
        held.setdefault(int(person), []).append(str(newsletter_id))
    return held
