"""Data-protection requests: show everything held about a person, or erase them.

``access_report`` answers an access request (GDPR art. 15): the subscriber row,
the consent record, the event history, what was sent to them and the article
links they followed (per-subscriber click tracking). ``erase``
answers an erasure request (art. 17): the row and its history go, the outbox
rows lose the address and name, their clicks lose every tie to them (the
anonymous count stays, so an edition's totals do not change), and only a keyed
hash of the address stays in the suppression list so that an import of an old
list cannot re-add them unasked.

Stored text can quote the address too: a relay's ``550 <ann@example.com>: no such
user`` in the outbox's last error, an edition's pause reason, a note in another
person's history, an inbound report. ``erase`` scrubs the address out of every
text and JSON column of every table (the newsroom's articles aside), whatever
owner added it. On SQLite, ``secure_delete`` (always on, see
:mod:`newsletter.core.db`) overwrites the freed bytes; :func:`forget_freed`, run
after the erasure's transaction, empties the WAL so no old page copy keeps them.
On PostgreSQL the old row versions stay on disk until VACUUM reclaims them.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.core.db import checkpoint, metadata, utcnow
from newsletter.core.schema import articles, clicks, deliveries
from subscribers import store, subscriptions, suppressions
from subscribers.addresses import normalise_address
from subscribers.schema import subscriber_events, subscribers
from subscribers.schema import subscriptions as subscriptions_table

__all__ = ["ERASED", "access_report", "erase", "forget_freed", "scrub_text"]

#: what an erased address or name is replaced with in stored text
ERASED = "[erased]"
# outbox rows that have not been handed to the relay yet must not go out any more
_UNSENT = ("queued", "deferred")
# the newsroom's own published text holds no reader's data
_NOT_PERSONAL = {articles.name, "schema_migrations"}


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
        "subscriptions": [s.model_dump(mode="json") for s in subscriptions.of(conn, subscriber.id)],
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
        "clicks": [
            {
                "edition_id": c.edition_id,
                "article_id": c.article_id,
                "kind": c.kind,
                "at": c.at.isoformat(),
            }
            for c in conn.execute(
                sa.select(clicks.c.edition_id, clicks.c.article_id, clicks.c.kind, clicks.c.at)
                .where(clicks.c.subscriber_id == subscriber.id)
                .order_by(clicks.c.at, clicks.c.id)
            )
        ],
    }


# an address (or name) inside a longer one is another person's: joann@ is not ann@
_BEFORE = r"(?<![\w.!#$%&'*+/=?^`{|}~-])"
_AFTER = r"(?![\w-]|\.\w)"


def scrub_text(text: str, needles: Collection[str]) -> str:
    """``text`` with each of ``needles`` (ignoring case, whole words only) replaced by ERASED."""
    for needle in sorted(needles, key=len, reverse=True):
        pattern = _BEFORE + re.escape(needle) + _AFTER
        text = re.sub(pattern, ERASED, text, flags=re.IGNORECASE)
    return text


def _scrub_value(value: Any, needles: Collection[str]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, needles)
    if isinstance(value, list):
        return [_scrub_value(v, needles) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_value(v, needles) for k, v in value.items()}
    return value


def _like(needle: str) -> str:
    escaped = needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _scrub_everywhere(conn: Connection, needles: Collection[str]) -> None:
    """Replace the address in every stored text of every table (but the articles)."""
    for table in metadata.sorted_tables:
        if table.name in _NOT_PERSONAL or not sa.inspect(conn).has_table(table.name):
            continue
        keys = list(table.primary_key.columns)
        for column in table.columns:
            if column.primary_key or not isinstance(column.type, sa.String | sa.Text | sa.JSON):
                continue
            text = sa.func.lower(sa.cast(column, sa.Text))
            hit = sa.or_(*(text.like(_like(n), escape="\\") for n in needles))
            for row in conn.execute(sa.select(*keys, column).where(hit)).all():
                where = [key == row._mapping[key.name] for key in keys]
                value = row._mapping[column.name]
                cleaned = _scrub_value(value, needles)
                if cleaned != value:
                    conn.execute(table.update().where(*where).values({column.name: cleaned}))


def erase(conn: Connection, email: str, *, secret: bytes, now: datetime | None = None) -> bool:
    """Erase the person with this address and suppress the address; True if someone was held.

    Their row and history go; their outbox rows keep no address or name; every
    stored text that quotes the address is scrubbed. The suppression is recorded
    even when no one holds the address, so that "forget me and never add me"
    works before an import too. Run :func:`forget_freed` after the transaction.
    """
    now = now or utcnow()
    address = normalise_address(email)
    spellings = (address.email, address.ascii_email, address.key, email.strip())
    needles: set[str] = {spelling for spelling in spellings if spelling}
    found = conn.execute(
        sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name).where(
            subscribers.c.email_key == address.key
        )
    ).first()
    if found is not None:
        needles.add(found.email)
        mine = deliveries.c.subscriber_id == found.id
        conn.execute(
            deliveries.update()
            .where(mine, deliveries.c.status.in_(_UNSENT))
            .values(status="failed", last_error="subscriber erased", updated_at=now)
        )
        # their own rows' errors may quote their name too ("550 Ann Smith <ann@...>")
        own: set[str] = {*needles, found.name} if found.name else needles
        for row in conn.execute(
            sa.select(deliveries.c.edition_id, deliveries.c.last_error).where(
                mine, deliveries.c.last_error.is_not(None)
            )
        ).all():
            conn.execute(
                deliveries.update()
                .where(mine, deliveries.c.edition_id == row.edition_id)
                .values(last_error=scrub_text(row.last_error, own))
            )
        conn.execute(deliveries.update().where(mine).values(email="", name=None, updated_at=now))
        conn.execute(
            subscriber_events.delete().where(subscriber_events.c.subscriber_id == found.id)
        )
        # (the foreign key cascades too; said here so no pragma is relied on)
        conn.execute(
            subscriptions_table.delete().where(subscriptions_table.c.subscriber_id == found.id)
        )
        # per-subscriber clicks: the reader and the visitor hash go, the bare count stays
        conn.execute(
            clicks.update()
            .where(clicks.c.subscriber_id == found.id)
            .values(subscriber_id=None, visitor=None)
        )
        conn.execute(subscribers.delete().where(subscribers.c.id == found.id))
    _scrub_everywhere(conn, needles)
    suppressions.suppress(conn, secret, address.key, "erased", now)
    return found is not None


def forget_freed(engine: Engine) -> None:
    """After an erasure's commit: leave no old copy of the erased bytes in SQLite's WAL."""
    checkpoint(engine)
