"""Data-protection requests: show everything held about a person, or erase them.

``access_report`` answers an access request (GDPR art. 15): the subscriber row,
the consent record, the event history and what was sent to them. ``erase``
answers an erasure request (art. 17): the row and its history go, the outbox
rows lose the address and name, and only a keyed hash of the address stays in
the suppression list so that an import of an old list cannot re-add them unasked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.db import utcnow
from newsletter.core.schema import deliveries
from subscribers import store, suppressions
from subscribers.addresses import normalise_address
from subscribers.schema import subscriber_events, subscribers

__all__ = ["access_report", "erase"]

# outbox rows that have not been handed to the relay yet must not go out any more
_UNSENT = ("queued", "deferred")


def access_report(conn: Connection, email: str) -> dict[str, Any]:
    """Everything held about the person with this address, as JSON-ready data.

    Raises :class:`~newsletter.core.errors.NotFoundError` when no one holds it.
    """
    subscriber = store.get_by_email(conn, email)
    sent = conn.execute(
        sa.select(
            deliveries.c.edition_id,
            deliveries.c.status,
            deliveries.c.email,
            deliveries.c.sent_at,
            deliveries.c.updated_at,
        )
        .where(deliveries.c.subscriber_id == subscriber.id)
        .order_by(deliveries.c.updated_at)
    )
    return {
        "subscriber": subscriber.model_dump(mode="json", exclude={"consent"}),
        "consent": subscriber.consent.model_dump(mode="json") if subscriber.consent else None,
        "events": [e.model_dump(mode="json") for e in store.events(conn, subscriber.id)],
        "deliveries": [
            {
                "edition_id": row.edition_id,
                "status": row.status,
                "email": row.email,
                "sent_at": row.sent_at.isoformat() if row.sent_at else None,
                "updated_at": row.updated_at.isoformat(),
            }
            for row in sent
        ],
    }


def erase(conn: Connection, email: str, *, secret: bytes, now: datetime | None = None) -> bool:
    """Erase the person with this address and suppress the address; True if someone was held.

    The suppression is recorded even when no one holds the address, so that
    "forget me and never add me" works before an import too.
    """
    now = now or utcnow()
    address = normalise_address(email)
    found = conn.execute(
        sa.select(subscribers.c.id).where(subscribers.c.email_key == address.key)
    ).scalar_one_or_none()
    if found is not None:
        conn.execute(
            deliveries.update()
            .where(deliveries.c.subscriber_id == found, deliveries.c.status.in_(_UNSENT))
            .values(status="failed", last_error="subscriber erased", updated_at=now)
        )
        conn.execute(
            deliveries.update()
            .where(deliveries.c.subscriber_id == found)
            .values(email="", name=None, updated_at=now)
        )
        conn.execute(subscriber_events.delete().where(subscriber_events.c.subscriber_id == found))
        conn.execute(subscribers.delete().where(subscribers.c.id == found))
    suppressions.suppress(conn, secret, address.key, "erased", now)
    return found is not None
