"""Settling an outbox before a run: what dead workers and departed subscribers left.

* rows a dead worker left in ``sending`` become ``unknown`` (the message may
  have arrived; only ``--resend-unknown`` sends them again), and its untouched
  reservations are released;
* rows not yet handed over whose subscriber is no longer confirmed are failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.schema import deliveries
from newsletter.delivery.outbox import confirmed
from newsletter.delivery.outcomes import OPEN_STATES, DeliveryStatus

__all__ = ["Recovered", "drop_unsubscribed", "recover", "requeue_unknown"]


@dataclass(frozen=True, slots=True)
class Recovered:
    """What start-of-run recovery found: rows now ``unknown``, reservations released."""

    unknown: int
    released: int


def drop_unsubscribed(
    conn: Connection, edition_id: str, now: datetime, newsletter: str | None = None
) -> int:
    """Fail the rows not yet handed over whose subscriber is no longer confirmed or
    (given the edition's ``newsletter``) no longer subscribed to it."""
    result = conn.execute(
        deliveries.update()
        .where(
            deliveries.c.edition_id == edition_id,
            deliveries.c.status.in_([DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value]),
            ~confirmed(deliveries.c.subscriber_id, newsletter),
        )
        .values(
            status=DeliveryStatus.FAILED.value,
            last_error="no longer subscribed",
            claimed_by=None,
            updated_at=now,
        )
    )
    return max(result.rowcount, 0)


def recover(
    conn: Connection,
    edition_id: str,
    *,
    me: str,
    is_alive: Callable[[str], bool],
    now: datetime,
) -> Recovered:
    """Settle what dead workers left: their ``sending`` rows become ``unknown``
    (the message may have arrived) and their reservations are released.

    ``is_alive(claimed_by)`` says whether that worker still runs; live workers'
    rows are left alone so that a concurrent sender is never robbed.
    """
    owners = conn.execute(
        sa.select(deliveries.c.claimed_by)
        .where(
            deliveries.c.edition_id == edition_id,
            deliveries.c.status.in_([s.value for s in OPEN_STATES]),
            deliveries.c.claimed_by.is_not(None),
        )
        .distinct()
    ).scalars()
    dead = [o for o in owners if o != me and not is_alive(o)]
    unknown = released = 0
    for owner in dead:
        unknown += conn.execute(
            deliveries.update()
            .where(
                deliveries.c.edition_id == edition_id,
                deliveries.c.claimed_by == owner,
                deliveries.c.status == DeliveryStatus.SENDING.value,
            )
            .values(
                status=DeliveryStatus.UNKNOWN.value,
                last_error="the sender stopped while this message was being sent",
                updated_at=now,
            )
        ).rowcount
        released += conn.execute(
            deliveries.update()
            .where(
                deliveries.c.edition_id == edition_id,
                deliveries.c.claimed_by == owner,
                deliveries.c.status.in_(
                    [DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value]
                ),
            )
            .values(claimed_by=None)
        ).rowcount
    # A row in `sending` with no owner at all cannot be vouched for either.
    unknown += conn.execute(
        deliveries.update()
        .where(
            deliveries.c.edition_id == edition_id,
            deliveries.c.claimed_by.is_(None),
            deliveries.c.status == DeliveryStatus.SENDING.value,
        )
        .values(status=DeliveryStatus.UNKNOWN.value, updated_at=now)
    ).rowcount
    return Recovered(unknown=unknown, released=released)


def requeue_unknown(conn: Connection, edition_id: str, now: datetime) -> int:
    """Put every ``unknown`` row back in the queue (``--resend-unknown``); return how many."""
    return conn.execute(
        deliveries.update()
        .where(
            deliveries.c.edition_id == edition_id,
            deliveries.c.status == DeliveryStatus.UNKNOWN.value,
        )
        .values(status=DeliveryStatus.QUEUED.value, claimed_by=None, updated_at=now)
    ).rowcount
