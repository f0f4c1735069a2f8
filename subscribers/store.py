"""The subscriber store on SQLAlchemy Core: the same code on SQLite and PostgreSQL.

One row per normalised address (``email_key`` is unique). Every change of a
person's state is timestamped in the row and recorded in ``subscriber_events``.
Functions take a :class:`~sqlalchemy.engine.Connection` inside the caller's
transaction (``with engine.begin() as conn``) and an aware ``now`` (default: the
clock), so tests can move time.

Lifecycle::

    pending --confirm--> confirmed --unsubscribe--> unsubscribed
        \\__________________\\______ mark_bounced / mark_complained (delivery)

Only ``confirmed`` people are recipients, of the newsletters they are subscribed
to (:mod:`subscribers.subscriptions`); leaving the last one makes them ``unsubscribed``.
Re-adding someone who unsubscribed,
bounced, complained or was erased needs ``resubscribe=True``: an explicit, new
consent. A web signup only *asks* (``keep_suppression=True``, see
:mod:`subscribers.signup`): an erased address's suppression is lifted by
:func:`confirm` (given the secret), once the person has proved they own the mailbox.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from newsletter.core.db import utcnow
from newsletter.core.errors import NotFoundError, StateError, SuppressedError
from newsletter.core.newsletters import DEFAULT_NEWSLETTER_ID
from subscribers import listing, subscriptions, suppressions
from subscribers.fields import clean_attribute, clean_name, clean_timezone, clean_topics
from subscribers.listing import to_subscriber
from subscribers.model import Recipient, Subscriber, SubscriberEvent, SubscriberStatus
from subscribers.schema import subscriber_events, subscribers

__all__ = [
    "add",
    "confirm",
    "count_by_status",
    "events",
    "find",
    "find_by_email",
    "get",
    "get_by_email",
    "iter_recipients",
    "list_subscribers",
    "mark_bounced",
    "mark_complained",
    "record_event",
    "to_subscriber",
    "unsubscribe",
    "update_preferences",
]

_S = subscribers.c
_INACTIVE = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)


def record_event(
    conn: Connection, subscriber_id: int, kind: str, now: datetime, **detail: Any
) -> None:
    """Append one timestamped event to a subscriber's history."""
    conn.execute(
        subscriber_events.insert().values(
            subscriber_id=subscriber_id, at=now, kind=kind, detail=detail
        )
    )


def find_by_email(conn: Connection, email: str) -> Subscriber | None:
    """The subscriber with this address (compared normalised), or None."""
    from subscribers.addresses import normalise_address  # email_validator: only when needed

    key = normalise_address(email).key
    row = conn.execute(sa.select(subscribers).where(_S.email_key == key)).first()
    return None if row is None else to_subscriber(row._mapping)


def get_by_email(conn: Connection, email: str) -> Subscriber:
    """The subscriber with this address; :class:`NotFoundError` when there is none."""
    found = find_by_email(conn, email)
    if found is None:
        raise NotFoundError(f"no subscriber with the address {email.strip()!r}")
    return found


def find(conn: Connection, subscriber_id: int) -> Subscriber | None:
    """The subscriber with this id, or None (erased, or never there)."""
    row = conn.execute(sa.select(subscribers).where(_S.id == subscriber_id)).first()
    return None if row is None else to_subscriber(row._mapping)


def get(conn: Connection, subscriber_id: int) -> Subscriber:
    """The subscriber with this id; :class:`NotFoundError` when there is none."""
    row = conn.execute(sa.select(subscribers).where(_S.id == subscriber_id)).first()
    if row is None:
        raise NotFoundError(f"no subscriber with id {subscriber_id}")
    return to_subscriber(row._mapping)


def add(
    conn: Connection,
    email: str,
    *,
    secret: bytes,
    name: str | None = None,
    topics: Collection[str] | None = None,
    timezone: str | None = None,
    attributes: Mapping[str, str] | None = None,
    confirmed: bool = False,
    consent_source: str = "cli",
    consent_ip: str | None = None,
    resubscribe: bool = False,
    keep_suppression: bool = False,
    newsletters: Collection[str] | None = None,
    now: datetime | None = None,
) -> Subscriber:
    """Add a person, or update the one already holding this address, and return them.

    A new person is ``pending`` (or ``confirmed`` with ``confirmed=True``) with a
    consent record. An existing pending or confirmed person gets the given fields.
    Someone who unsubscribed, bounced, complained or was erased raises
    :class:`SuppressedError` unless ``resubscribe`` (a fresh, explicit consent).
    With ``keep_suppression`` an erased address may be added as ``pending`` while
    its suppression stays (only :func:`confirm` with the secret lifts it).

    ``newsletters`` (checked ids) are added to their subscriptions, never taken away;
    None gives a new person (or one back with none left) ``DEFAULT_NEWSLETTER_ID``
    (the CLI, the web and the import always name them: the configured default).
    """
    from subscribers.addresses import normalise_address  # email_validator: only when needed

    now = now or utcnow()
    address = normalise_address(email)
    name = clean_name(name)
    folded = clean_topics(topics) if topics is not None else None
    timezone = clean_timezone(timezone)
    # a blank attribute is no attribute, as in an import
    extra = {k: clean_attribute(k, v) for k, v in (attributes or {}).items() if v}
    target = SubscriberStatus.CONFIRMED if confirmed else SubscriberStatus.PENDING

    if suppressions.is_suppressed(conn, secret, address.key):
        if keep_suppression and not confirmed:
            pass  # a request to be confirmed by the mailbox's owner, who alone lifts it
        elif not resubscribe:
            raise SuppressedError(
                f"{address.email} was erased at their request; "
                "adding them again needs resubscribe=True"
            )
        else:
            suppressions.lift(conn, secret, address.key)

    row = conn.execute(sa.select(subscribers).where(_S.email_key == address.key)).first()
    if row is None:
        new_id = conn.execute(
            subscribers.insert()
            .values(
                email=address.email,
                email_key=address.key,
                name=name,
                status=target.value,
                topics=sorted(folded or ()),
                timezone=timezone,
                attributes=extra,
                consent_source=consent_source,
                consent_at=now,
                consent_ip=consent_ip,
                created_at=now,
                updated_at=now,
                confirmed_at=now if confirmed else None,
            )
            .returning(_S.id)
        ).scalar_one()
        lists = sorted(newsletters if newsletters is not None else (DEFAULT_NEWSLETTER_ID,))
        subscriptions.subscribe(conn, new_id, lists, now=now, source=consent_source, event=False)
        detail = {"status": target.value, "source": consent_source, "newsletters": lists}
        record_event(conn, new_id, "created", now, **detail)
        return get(conn, new_id)

    current = to_subscriber(row._mapping)
    values: dict[str, Any] = {}
    if current.status in _INACTIVE:
        if not resubscribe:
            raise SuppressedError(
                f"{address.email} is {current.status.value}; "
                "adding them again needs resubscribe=True"
            )
        values.update(
            status=target.value,
            consent_source=consent_source,
            consent_at=now,
            consent_ip=consent_ip,
            confirmed_at=now if confirmed else None,
        )
        record_event(
            conn, current.id, "resubscribed", now, status=target.value, source=consent_source
        )
        if newsletters is None and not subscriptions.subscribed_to(conn, current.id):
            newsletters = (DEFAULT_NEWSLETTER_ID,)
    elif confirmed and current.status is SubscriberStatus.PENDING:
        values.update(status=target.value, confirmed_at=now)
        record_event(conn, current.id, "confirmed", now, source=consent_source)
    changed: dict[str, Any] = {}
    if name is not None and name != current.name:
        changed["name"] = name
    if folded is not None and folded != current.topics:
        changed["topics"] = sorted(folded)
    if timezone is not None and timezone != current.timezone:
        changed["timezone"] = timezone
    if extra and {**current.attributes, **extra} != current.attributes:
        changed["attributes"] = {**current.attributes, **extra}
    if changed:
        record_event(conn, current.id, "updated", now, fields=sorted(changed))
    values.update(changed)
    if values:
        conn.execute(
            subscribers.update().where(_S.id == current.id).values(updated_at=now, **values)
        )
    if newsletters:
        subscriptions.subscribe(conn, current.id, newsletters, now=now, source=consent_source)
    return get(conn, current.id)


def _transition(
    conn: Connection,
    subscriber_id: int,
    status: SubscriberStatus,
    stamp: str,
    now: datetime | None,
    **detail: Any,
) -> Subscriber:
    now = now or utcnow()
    current = get(conn, subscriber_id)
    if current.status is status:
        return current
    conn.execute(
        subscribers.update()
        .where(_S.id == subscriber_id)
        .values(status=status.value, updated_at=now, **{stamp: now})
    )
    record_event(conn, subscriber_id, status.value, now, previous=current.status.value, **detail)
    return get(conn, subscriber_id)


def confirm(
    conn: Connection,
    subscriber_id: int,
    *,
    now: datetime | None = None,
    ip: str | None = None,
    secret: bytes | None = None,
) -> Subscriber:
    """Confirm a pending subscription (double opt-in); confirming twice is harmless.

    With ``secret``, a suppression of the address (an earlier erasure) is lifted:
    the confirmation proves the mailbox's owner asked to come back. Raises
    :class:`StateError` for someone who has since unsubscribed, bounced or complained.
    """
    from subscribers.addresses import normalise_address  # email_validator: only when needed

    now = now or utcnow()
    current = get(conn, subscriber_id)
    if current.status in _INACTIVE:
        raise StateError(f"subscriber {subscriber_id} is {current.status.value}; cannot confirm")
    if ip is not None and current.status is SubscriberStatus.PENDING:
        conn.execute(subscribers.update().where(_S.id == subscriber_id).values(consent_ip=ip))
    if secret is not None and suppressions.lift(conn, secret, normalise_address(current.email).key):
        record_event(conn, subscriber_id, "suppression_lifted", now, reason="confirmed")
    return _transition(conn, subscriber_id, SubscriberStatus.CONFIRMED, "confirmed_at", now, ip=ip)


def unsubscribe(
    conn: Connection,
    subscriber_id: int,
    *,
    now: datetime | None = None,
    source: str = "cli",
    newsletter: str | None = None,
) -> Subscriber:
    """Unsubscribe a person from ``newsletter``, or from every one (None); idempotent.
    Someone left with no newsletter becomes ``unsubscribed``: nothing is sent to them."""
    now = now or utcnow()
    get(conn, subscriber_id)  # NotFoundError for someone erased
    one = None if newsletter is None else (newsletter,)
    subscriptions.unsubscribe(conn, subscriber_id, one, now=now, source=source, event=bool(one))
    if newsletter is not None and subscriptions.subscribed_to(conn, subscriber_id):
        return get(conn, subscriber_id)
    return _transition(
        conn, subscriber_id, SubscriberStatus.UNSUBSCRIBED, "unsubscribed_at", now, source=source
    )


def mark_bounced(
    conn: Connection, subscriber_id: int, reason: str, now: datetime | None = None
) -> Subscriber | None:
    """Record a hard bounce (delivery calls this on a permanent 5xx): no more sends.

    Returns None when the person was erased while the message was on its way.
    """
    if find(conn, subscriber_id) is None:
        return None
    return _transition(
        conn, subscriber_id, SubscriberStatus.BOUNCED, "bounced_at", now, reason=reason
    )


def mark_complained(
    conn: Connection, subscriber_id: int, reason: str, now: datetime | None = None
) -> Subscriber | None:
    """Record a spam complaint (feedback loop): nothing more from any newsletter (it is
    about the sender); None if the person was erased."""
    if find(conn, subscriber_id) is None:
        return None
    now = now or utcnow()
    subscriptions.unsubscribe(conn, subscriber_id, None, now=now, source="complaint", event=False)
    return _transition(
        conn, subscriber_id, SubscriberStatus.COMPLAINED, "complained_at", now, reason=reason
    )


def update_preferences(
    conn: Connection,
    subscriber_id: int,
    *,
    topics: Collection[str] | None = None,
    name: str | None = None,
    timezone: str | None = None,
    now: datetime | None = None,
) -> Subscriber:
    """Change a person's topics (empty = everything), name or time zone; None leaves a field."""
    now = now or utcnow()
    current = get(conn, subscriber_id)
    changed: dict[str, Any] = {}
    if topics is not None and (folded := clean_topics(topics)) != current.topics:
        changed["topics"] = sorted(folded)
    if name is not None and (cleaned := clean_name(name)) != current.name:
        changed["name"] = cleaned
    if timezone is not None and (zone := clean_timezone(timezone)) != current.timezone:
        changed["timezone"] = zone
    if not changed:
        return current
    conn.execute(
        subscribers.update().where(_S.id == subscriber_id).values(updated_at=now, **changed)
    )
    record_event(conn, subscriber_id, "updated", now, fields=sorted(changed), source="preferences")
    return get(conn, subscriber_id)


def events(conn: Connection, subscriber_id: int) -> list[SubscriberEvent]:
    """A subscriber's history, oldest first."""
    rows = conn.execute(
        sa.select(subscriber_events.c.at, subscriber_events.c.kind, subscriber_events.c.detail)
        .where(subscriber_events.c.subscriber_id == subscriber_id)
        .order_by(subscriber_events.c.id)
    )
    return [SubscriberEvent(at=r.at, kind=r.kind, detail=r.detail or {}) for r in rows]


def _pages(conn: Connection, query: sa.Select[Any], batch_size: int) -> Iterator[Row[Any]]:
    # keyset pagination: memory stays flat however long the list, on both databases
    last = 0
    while True:
        rows = conn.execute(query.where(_S.id > last).order_by(_S.id).limit(batch_size)).all()
        yield from rows
        if len(rows) < batch_size:
            return
        last = rows[-1].id


def list_subscribers(
    conn: Connection,
    *,
    status: SubscriberStatus | str | None = None,
    topic: str | None = None,
    newsletter: str | None = None,
    batch_size: int = 1000,
) -> Iterator[Subscriber]:
    """Every subscriber, by id, optionally only those in ``status``, taking ``topic`` or
    subscribed to ``newsletter``: :func:`subscribers.listing.list_subscribers` on this
    connection's driver connection, inside its transaction.

    A person with no topics takes every topic, so they match any ``topic`` filter.
    """
    raw = conn.connection.dbapi_connection
    return listing.list_subscribers(
        raw, status=status, topic=topic, newsletter=newsletter, batch_size=batch_size
    )


def iter_recipients(
    conn: Connection,
    batch_size: int = 1000,
    topics: Collection[str] = (),
    newsletter: str | None = None,
) -> Iterator[Recipient]:
    """Every confirmed subscriber as a :class:`Recipient`, by id, in pages of ``batch_size``.

    With ``newsletter`` (an edition's), only those subscribed to it; with ``topics``
    (an edition's), only those whose topics meet them or who take everything.
    Erased people have no row, so suppressed addresses never appear.
    """
    wanted = frozenset(topics)
    query = sa.select(_S.id, _S.email, _S.name, _S.topics).where(
        _S.status == SubscriberStatus.CONFIRMED.value
    )
    if newsletter is not None:
        query = query.where(subscriptions.subscribed_to_newsletter(newsletter))
    for row in _pages(conn, query, batch_size):
        chosen = frozenset(row.topics or ())
        if not wanted or not chosen or chosen & wanted:
            yield Recipient(row.id, row.email, row.name, chosen)


def count_by_status(conn: Connection) -> dict[SubscriberStatus, int]:
    """How many subscribers are in each state (every state present, zero included)."""
    counts = dict.fromkeys(SubscriberStatus, 0)
    query = sa.select(_S.status, sa.func.count()).group_by(_S.status)
    for status, count in conn.execute(query):
        counts[SubscriberStatus(status)] = count
    return counts
