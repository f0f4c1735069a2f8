"""Signups under double opt-in: a signup only asks; the confirmation decides.

Anyone can type any address into a signup form, so nothing a signup does may
change who is sent the newsletter or who an import may add:

- a new address becomes ``pending``;
- an erased address becomes ``pending`` too, but its suppression (the keyed
  hash) stays: ``subscribers import`` still refuses it;
- someone who unsubscribed, bounced or complained keeps that status; the
  signup is recorded as a request (event ``resubscribe_requested``, with the
  name, topics and consent words asked for).

Only :func:`confirm` (the mailbox's owner pressing the button behind the
emailed link) lifts the suppression or brings a person who left back, with
the new consent. A request counts only if nothing took the person off the list
after it and it is no older than a confirm link lives.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from subscribers import store
from subscribers.fields import clean_name, clean_topics
from subscribers.model import Consent, Subscriber, SubscriberEvent, SubscriberStatus
from subscribers.tokens import DEFAULT_MAX_AGE, Purpose

__all__ = [
    "REQUEST_EVENT",
    "SignupKind",
    "SignupRequest",
    "awaits_confirmation",
    "confirm",
    "open_request",
    "request",
]

REQUEST_EVENT = "resubscribe_requested"
_LEFT = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)
# the events after which an earlier request no longer speaks for the person
_ENDS_REQUEST = {"created", "confirmed", "resubscribed", *(s.value for s in _LEFT)}
_REQUEST_MAX_AGE = DEFAULT_MAX_AGE[Purpose.CONFIRM]


class SignupKind(enum.Enum):
    """What a signup found: a new person, a pending one, one who left, or a confirmed one."""

    NEW = "new"
    PENDING = "pending"
    RETURNING = "returning"
    CONFIRMED = "confirmed"


@dataclass(frozen=True)
class SignupRequest:
    """The person after a signup (unchanged when confirmed or returning), and what was asked."""

    subscriber: Subscriber
    kind: SignupKind
    topics: frozenset[str]


def request(
    conn: Connection,
    email: str,
    *,
    secret: bytes,
    name: str | None,
    topics: Collection[str],
    consent: Consent,
    statement: str,
    newsletters: Collection[str] | None = None,
) -> SignupRequest:
    """Record a signup; nothing it does makes anyone a recipient or lifts a suppression.

    ``newsletters`` (checked ids) are the ones asked for: a new or pending person
    holds them at once (sent nothing before confirming), a person who left gets
    them with the confirmation. A confirmed person is left exactly as they were. The
    words the person agreed to are kept in their history, as proof of what consent meant.
    """
    existing = store.find_by_email(conn, email)
    if existing is not None and existing.status is SubscriberStatus.CONFIRMED:
        return SignupRequest(existing, SignupKind.CONFIRMED, existing.topics)
    if existing is not None and existing.status in _LEFT:
        chosen = clean_topics(topics)
        store.record_event(
            conn,
            existing.id,
            REQUEST_EVENT,
            consent.at,
            source=consent.source,
            ip=consent.ip,
            statement=statement,
            name=clean_name(name),
            topics=sorted(chosen),
            newsletters=sorted(newsletters) if newsletters is not None else None,
        )
        return SignupRequest(existing, SignupKind.RETURNING, chosen)
    kind = SignupKind.PENDING if existing is not None else SignupKind.NEW
    subscriber = store.add(
        conn,
        email,
        secret=secret,
        name=name,
        topics=topics,
        consent_source=consent.source,
        consent_ip=consent.ip,
        keep_suppression=True,
        newsletters=newsletters,
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
    return SignupRequest(subscriber, kind, subscriber.topics)


def open_request(conn: Connection, person: Subscriber, now: datetime) -> SubscriberEvent | None:
    """The signup request of a person who left that a confirmation may still grant, or None."""
    if person.status not in _LEFT:
        return None
    latest: SubscriberEvent | None = None
    for event in store.events(conn, person.id):
        if event.kind == REQUEST_EVENT:
            latest = event
        elif event.kind in _ENDS_REQUEST:
            latest = None
    if latest is None or _REQUEST_MAX_AGE is None or now - latest.at > _REQUEST_MAX_AGE:
        return None
    return latest


def awaits_confirmation(conn: Connection, person: Subscriber, now: datetime) -> bool:
    """True when pressing "confirm" would subscribe this person (pending, or an open request)."""
    if person.status is SubscriberStatus.PENDING:
        return True
    return open_request(conn, person, now) is not None


def confirm(
    conn: Connection, subscriber_id: int, *, secret: bytes, now: datetime, ip: str | None
) -> Subscriber | None:
    """Confirm a signup: the person becomes ``confirmed`` and their suppression is lifted.

    Idempotent for a confirmed person. A person who left comes back only through
    an open request (:func:`open_request`), with its name, topics and consent;
    otherwise they are returned unchanged. None when the person was erased.
    """
    person = store.find(conn, subscriber_id)
    if person is None:
        return None
    if person.status in _LEFT:
        asked = open_request(conn, person, now)
        if asked is None:
            return person
        back = store.add(
            conn,
            person.email,
            secret=secret,
            name=asked.detail.get("name"),
            topics=asked.detail.get("topics") or (),
            confirmed=True,
            consent_source=str(asked.detail.get("source") or "web"),
            consent_ip=ip,
            resubscribe=True,
            newsletters=asked.detail.get("newsletters"),
            now=now,
        )
        store.record_event(
            conn,
            back.id,
            "consent",
            now,
            source="confirmation",
            ip=ip,
            statement=asked.detail.get("statement"),
            requested_at=asked.at.isoformat(),
        )
        return back
    return store.confirm(conn, subscriber_id, now=now, ip=ip, secret=secret)
