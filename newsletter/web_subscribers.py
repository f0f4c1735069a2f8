"""What the web pages do to the subscriber list, as a few calls over ``subscribers.store``.

The pages never touch the tables themselves: signing up, confirming,
unsubscribing and changing preferences go through the subscribers package,
which keeps the lifecycle, the events and the suppression list consistent.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.errors import NotFoundError
from newsletter.models import normalise_topic
from newsletter.schema import articles as articles_table
from subscribers import store
from subscribers.model import Consent, Subscriber, SubscriberStatus

__all__ = [
    "SignupKind",
    "SignupOutcome",
    "available_topics",
    "confirm",
    "get",
    "sign_up",
    "unsubscribe",
    "update_preferences",
]


class SignupKind(enum.Enum):
    """What a signup found: a new (or returning) person, a pending one, or a confirmed one."""

    NEW = "new"
    PENDING = "pending"
    CONFIRMED = "confirmed"


@dataclass(frozen=True)
class SignupOutcome:
    """The subscriber after a signup, and what the signup found."""

    subscriber: Subscriber
    kind: SignupKind


def available_topics(conn: Connection) -> dict[str, str]:
    """The topics readers may choose, slug to label: every article topic and section."""
    labels: dict[str, str] = {}
    # PostgreSQL's json type has no equality, so DISTINCT compares the lists as text
    topics_text = sa.cast(articles_table.c.topics, sa.Text)
    query = sa.select(articles_table.c.section, topics_text).distinct()
    for section, topics_json in conn.execute(query):
        labels.setdefault(normalise_topic(section), section)
        for topic in json.loads(topics_json) if topics_json else ():
            slug = normalise_topic(str(topic))
            if slug:
                labels.setdefault(slug, slug.replace("-", " ").capitalize())
    return dict(sorted(labels.items(), key=lambda item: item[1].casefold()))


def get(conn: Connection, subscriber_id: int) -> Subscriber:
    """The subscriber with this id; :class:`NotFoundError` when erased or unknown."""
    return store.get(conn, subscriber_id)


def sign_up(
    conn: Connection,
    *,
    secret: bytes,
    email: str,
    name: str | None,
    topics: frozenset[str],
    consent: Consent,
    statement: str,
) -> SignupOutcome:
    """Record a web signup; a confirmed person is left exactly as they were.

    A new address, or one that had left the list (unsubscribed, bounced,
    erased), becomes ``pending`` with this consent: the double opt-in that
    follows is the explicit request that lets them back in. The words the
    person agreed to are kept in their history, as proof of what consent meant.
    """
    existing = store.find_by_email(conn, email)
    if existing is not None and existing.status is SubscriberStatus.CONFIRMED:
        return SignupOutcome(existing, SignupKind.CONFIRMED)
    kind = (
        SignupKind.PENDING
        if existing is not None and existing.status is SubscriberStatus.PENDING
        else SignupKind.NEW
    )
    subscriber = store.add(
        conn,
        email,
        secret=secret,
        name=name,
        topics=topics,
        consent_source=consent.source,
        consent_ip=consent.ip,
        resubscribe=True,
        now=consent.at,
    )
    store.record_event(
        conn,
        subscriber.id,
        "consent",
        consent.at,
        source=consent.source,
        ip=consent.ip,
        statement=statement,
    )
    return SignupOutcome(subscriber, kind)


def confirm(conn: Connection, subscriber_id: int, now: datetime, ip: str | None) -> Subscriber:
    """Confirm a pending subscriber (idempotent for a confirmed one)."""
    return store.confirm(conn, subscriber_id, now=now, ip=ip)


def unsubscribe(conn: Connection, subscriber_id: int, now: datetime, source: str) -> None:
    """Unsubscribe; nothing to do when the person was erased (the result is the same)."""
    try:
        store.unsubscribe(conn, subscriber_id, now=now, source=source)
    except NotFoundError:
        return


def update_preferences(
    conn: Connection, subscriber_id: int, *, name: str, topics: frozenset[str], now: datetime
) -> Subscriber:
    """Set a subscriber's name (blank clears it) and topics (empty = everything)."""
    return store.update_preferences(conn, subscriber_id, name=name, topics=topics, now=now)
