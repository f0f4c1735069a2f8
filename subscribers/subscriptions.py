"""Which newsletters each person receives: the ``subscriptions`` table.

A person is sent a newsletter's editions while their status is ``confirmed``
(:class:`~subscribers.states.SubscriberStatus`, which governs every newsletter)
*and* their subscription to that newsletter is ``subscribed``. Rows are never
deleted while the person exists: leaving one newsletter sets ``unsubscribed``
with the time, so the history of a choice stays (rows go with the person on
erasure, by the foreign key's cascade).

Every change is recorded as a ``newsletter_subscribed`` or
``newsletter_unsubscribed`` event naming the newsletters and the source. Ids are
the caller's (checked against the configuration at the edge): this package
depends on no setting, so it neither knows nor checks which ids exist.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.db import is_postgres
from subscribers.model import Subscription
from subscribers.schema import subscribers, subscriptions
from subscribers.states import SubscriberStatus, SubscriptionStatus

__all__ = [
    "SUBSCRIBED_EVENT",
    "UNSUBSCRIBED_EVENT",
    "choose",
    "counts",
    "of",
    "subscribe",
    "subscribed_to",
    "subscribed_to_newsletter",
    "unsubscribe",
]

SUBSCRIBED_EVENT = "newsletter_subscribed"
UNSUBSCRIBED_EVENT = "newsletter_unsubscribed"
_C = subscriptions.c
_ON = SubscriptionStatus.SUBSCRIBED.value
_OFF = SubscriptionStatus.UNSUBSCRIBED.value


def _event(
    conn: Connection, subscriber_id: int, kind: str, now: datetime, ids: list[str], source: str
) -> None:
    from subscribers.store import record_event  # store imports this module

    record_event(conn, subscriber_id, kind, now, newsletters=ids, source=source)


def of(conn: Connection, subscriber_id: int) -> list[Subscription]:
    """Every subscription a person holds (either state), by newsletter id."""
    rows = conn.execute(
        sa.select(subscriptions).where(_C.subscriber_id == subscriber_id).order_by(_C.newsletter_id)
    )
    return [
        Subscription(
            newsletter_id=r.newsletter_id,
            status=SubscriptionStatus(r.status),
            subscribed_at=r.subscribed_at,
            unsubscribed_at=r.unsubscribed_at,
            source=r.source,
        )
        for r in rows
    ]


def subscribed_to(conn: Connection, subscriber_id: int) -> frozenset[str]:
    """The ids of the newsletters a person is subscribed to now."""
    query = sa.select(_C.newsletter_id).where(_C.subscriber_id == subscriber_id, _C.status == _ON)
    return frozenset(conn.execute(query).scalars())


def subscribed_to_newsletter(newsletter_id: str) -> sa.ColumnElement[bool]:
    """A WHERE clause over ``subscribers``: the person is subscribed to ``newsletter_id``."""
    return sa.exists().where(
        _C.subscriber_id == subscribers.c.id,
        _C.newsletter_id == newsletter_id,
        _C.status == _ON,
    )


def subscribe(
    conn: Connection,
    subscriber_id: int,
    newsletters: Collection[str],
    *,
    now: datetime,
    source: str,
    event: bool = True,
) -> list[str]:
    """Subscribe a person to ``newsletters`` (idempotent); return the ids that changed.

    A subscription already ``subscribed`` keeps its time; one left earlier is
    taken up again. Nobody is unsubscribed from anything here. ``event=False``:
    the caller records the change (a new person's ``created`` event names them).
    """
    wanted = sorted(set(newsletters))
    if not wanted:
        return []
    changed = sorted(set(wanted) - subscribed_to(conn, subscriber_id))
    if not changed:
        return []
    # the dialects' insert (ON CONFLICT): imported here, so a listing does not load them
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if is_postgres(conn) else sqlite
    statement = dialect.insert(subscriptions).values(
        [
            {
                "subscriber_id": subscriber_id,
                "newsletter_id": newsletter_id,
                "status": _ON,
                "subscribed_at": now,
                "unsubscribed_at": None,
                "source": source,
            }
            for newsletter_id in changed
        ]
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[_C.subscriber_id, _C.newsletter_id],
            set_={
                "status": _ON,
                "subscribed_at": now,
                "unsubscribed_at": None,
                "source": source,
            },
        )
    )
    if event:
        _event(conn, subscriber_id, SUBSCRIBED_EVENT, now, changed, source)
    return changed


def unsubscribe(
    conn: Connection,
    subscriber_id: int,
    newsletters: Collection[str] | None,
    *,
    now: datetime,
    source: str,
    event: bool = True,
) -> list[str]:
    """Leave ``newsletters`` (None: every one); return the ids that changed (idempotent).
    ``event=False``: the caller's own event (``unsubscribed``, ``complained``) says it."""
    held = subscribed_to(conn, subscriber_id)
    changed = sorted(held if newsletters is None else held & set(newsletters))
    if not changed:
        return []
    conn.execute(
        subscriptions.update()
        .where(_C.subscriber_id == subscriber_id, _C.newsletter_id.in_(changed))
        .values(status=_OFF, unsubscribed_at=now, source=source)
    )
    if event:
        _event(conn, subscriber_id, UNSUBSCRIBED_EVENT, now, changed, source)
    return changed


def choose(
    conn: Connection,
    subscriber_id: int,
    chosen: Collection[str],
    offered: Collection[str],
    *,
    now: datetime,
    source: str,
) -> tuple[list[str], list[str]]:
    """Make a person's subscriptions among ``offered`` exactly ``chosen``; return (joined, left).

    Newsletters not offered (say, one no longer configured) are left as they are.
    """
    wanted = set(chosen) & set(offered)
    joined = subscribe(conn, subscriber_id, wanted, now=now, source=source)
    left = unsubscribe(conn, subscriber_id, set(offered) - wanted, now=now, source=source)
    return joined, left


def counts(conn: Connection) -> dict[str, dict[str, int]]:
    """Per newsletter id: ``subscribed`` (all states), ``confirmed`` (who an edition
    reaches now) and ``unsubscribed`` (who left it)."""
    query = (
        sa.select(_C.newsletter_id, _C.status, subscribers.c.status, sa.func.count())
        .select_from(subscriptions.join(subscribers, subscribers.c.id == _C.subscriber_id))
        .group_by(_C.newsletter_id, _C.status, subscribers.c.status)
    )
    result: dict[str, dict[str, int]] = {}
    for newsletter_id, choice, person, number in conn.execute(query):
        entry = result.setdefault(
            str(newsletter_id), {"subscribed": 0, "confirmed": 0, "unsubscribed": 0}
        )
        if choice == _ON:
            entry["subscribed"] += int(number)
            if person == SubscriberStatus.CONFIRMED.value:
                entry["confirmed"] += int(number)
        else:
            entry["unsubscribed"] += int(number)
    return result
