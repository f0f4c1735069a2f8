"""What the web pages do to the subscriber list, as a few calls over ``subscribers.store``.

The pages never touch the tables themselves: signing up, confirming,
unsubscribing and changing preferences go through the subscribers package,
which keeps the lifecycle, the events and the suppression list consistent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from newsletter.content.articles import known_topics
from newsletter.core.errors import NotFoundError
from subscribers import signup, store, subscriptions
from subscribers.model import Consent, Subscriber
from subscribers.signup import SignupKind

__all__ = [
    "SignupKind",
    "SignupOutcome",
    "available_topics",
    "awaits_confirmation",
    "choose_newsletters",
    "confirm",
    "get",
    "sign_up",
    "subscribed_to",
    "unsubscribe",
    "update_preferences",
]


@dataclass(frozen=True)
class SignupOutcome:
    """The subscriber after a signup, what the signup found, and the topics asked for."""

    subscriber: Subscriber
    kind: SignupKind
    topics: frozenset[str]


def available_topics(conn: Connection) -> dict[str, str]:
    """The topics readers may choose, slug to label (every article topic and section)."""
    return known_topics(conn)


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
    newsletters: frozenset[str],
) -> SignupOutcome:
    """Record a web signup as a request; only its confirmation changes who is sent anything.

    A new or erased address becomes ``pending`` (an erasure's suppression stays
    until the confirmation); someone who left stays as they are, with the request
    in their history; a confirmed person is left exactly as they were.
    """
    asked = signup.request(
        conn,
        email,
        secret=secret,
        name=name,
        topics=topics,
        consent=consent,
        statement=statement,
        newsletters=newsletters,
    )
    return SignupOutcome(asked.subscriber, asked.kind, asked.topics)


def awaits_confirmation(conn: Connection, person: Subscriber, now: datetime) -> bool:
    """True when the confirm button would subscribe this person."""
    return signup.awaits_confirmation(conn, person, now)


def confirm(
    conn: Connection, subscriber_id: int, *, secret: bytes, now: datetime, ip: str | None
) -> Subscriber | None:
    """Confirm a signup (lifting any suppression); None when the person was erased."""
    return signup.confirm(conn, subscriber_id, secret=secret, now=now, ip=ip)


def unsubscribe(
    conn: Connection,
    subscriber_id: int,
    now: datetime,
    source: str,
    newsletter: str | None = None,
) -> None:
    """Unsubscribe from ``newsletter`` (None: from every one); nothing to do when the
    person was erased (the result is the same)."""
    try:
        store.unsubscribe(conn, subscriber_id, now=now, source=source, newsletter=newsletter)
    except NotFoundError:
        return


def subscribed_to(conn: Connection, subscriber_id: int) -> frozenset[str]:
    """The ids of the newsletters a person receives now (while confirmed)."""
    return subscriptions.subscribed_to(conn, subscriber_id)


def choose_newsletters(
    conn: Connection,
    subscriber_id: int,
    chosen: frozenset[str],
    offered: list[str],
    now: datetime,
) -> None:
    """Make a person's subscriptions among the ``offered`` ids exactly ``chosen``."""
    subscriptions.choose(conn, subscriber_id, chosen, offered, now=now, source="preferences")


def update_preferences(
    conn: Connection, subscriber_id: int, *, name: str, topics: frozenset[str], now: datetime
) -> Subscriber:
    """Set a subscriber's name (blank clears it) and topics (empty = everything)."""
    return store.update_preferences(conn, subscriber_id, name=name, topics=topics, now=now)
