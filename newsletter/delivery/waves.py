"""Readers by time zone, for editions delivered in waves ("at 07:00 in each reader's zone").

A reader's zone is their own ``timezone``, else the schedule's. Only the readers
of the edition's newsletter count: confirmed *and* subscribed to it, the very
people :func:`subscribers.store.iter_recipients` yields for it. The scheduler
(:mod:`newsletter.scheduling.waves`) asks which zones exist and how many readers
each holds; the outbox writer asks, reader by reader in id order, whose zone is
in the wave being written (:func:`in_zones`, a keyset-paged stream merged with
the recipients, so memory stays flat).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from subscribers.schema import subscribers
from subscribers.states import SubscriberStatus
from subscribers.subscriptions import subscribed_to_newsletter

__all__ = ["in_zones", "zone_counts"]

_S = subscribers.c
_PAGE = 2000


def _readers(newsletter: str) -> sa.ColumnElement[bool]:
    """Who an edition of ``newsletter`` reaches: confirmed and subscribed to it."""
    return sa.and_(
        _S.status == SubscriberStatus.CONFIRMED.value, subscribed_to_newsletter(newsletter)
    )


def zone_counts(conn: Connection, default_zone: str, newsletter: str) -> dict[str, int]:
    """Readers of ``newsletter`` per zone (no zone of their own: ``default_zone``);
    a zone where only other newsletters' readers live is not counted."""
    zone = sa.func.coalesce(_S.timezone, default_zone)
    rows = conn.execute(sa.select(zone, sa.func.count()).where(_readers(newsletter)).group_by(zone))
    counts: dict[str, int] = {}
    for name, number in rows:
        counts[str(name)] = counts.get(str(name), 0) + int(number)
    return counts


def in_zones(
    conn: Connection, zones: Collection[str], default_zone: str, newsletter: str
) -> Callable[[int], bool]:
    """A test ``(subscriber id) -> bool``: is this reader of ``newsletter`` in one of ``zones``?

    Ask it in ascending id order (as :func:`subscribers.store.iter_recipients` yields):
    the answers come from id-ordered pages, read ahead of the question.
    """
    wanted = list(zones)
    zone = sa.func.coalesce(_S.timezone, default_zone)
    query = (
        sa.select(_S.id).where(_readers(newsletter), zone.in_(wanted)).order_by(_S.id).limit(_PAGE)
    )
    page: list[int] = []
    state = {"last": 0, "done": False, "at": 0}

    def member(subscriber_id: int) -> bool:
        nonlocal page
        while True:
            while state["at"] < len(page) and page[state["at"]] < subscriber_id:
                state["at"] += 1
            if state["at"] < len(page):
                return page[state["at"]] == subscriber_id
            if state["done"]:
                return False
            page = list(conn.execute(query.where(_S.id > state["last"])).scalars())
            state["at"] = 0
            state["done"] = len(page) < _PAGE
            if page:
                state["last"] = page[-1]

    return member
