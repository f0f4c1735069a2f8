"""What each reader was already sent lately: the outbox read back, for "no story twice".

A reader was sent an article when a ``deliveries`` row of theirs is ``sent``
(the relay's 250) and the variant on that row showed the article. The history
is read set-based: the editions sent in the window that share a story with the
new edition are found first (usually a handful, often none: then nothing more is
read), and their sent rows are streamed in subscriber order, page by page, so a
send can merge them with its recipients (also in id order) and memory stays flat.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.content.arms import split_key
from newsletter.content.editions import get_edition
from newsletter.content.models import Edition
from newsletter.content.render import Variant
from newsletter.core.errors import NotFoundError
from newsletter.core.schema import deliveries
from newsletter.delivery.outcomes import DeliveryStatus

__all__ = ["already_sent", "overlapping_editions"]

_D = deliveries.c
_PAGE = 2000


def overlapping_editions(conn: Connection, edition: Edition, since: datetime) -> list[Edition]:
    """Other editions with a message sent since ``since`` that share a story with ``edition``."""
    mine = {a.id for a in edition.articles()}
    found = conn.execute(
        sa.select(_D.edition_id)
        .where(
            _D.status == DeliveryStatus.SENT.value,
            _D.sent_at >= since,
            _D.edition_id != edition.id,
        )
        .distinct()
    ).scalars()
    overlapping: list[Edition] = []
    for edition_id in sorted(found):
        try:
            other = get_edition(conn, edition_id)
        except NotFoundError:  # deleted since: its stories can no longer be named
            continue
        if mine & {a.id for a in other.articles()}:
            overlapping.append(other)
    return overlapping


def already_sent(
    conn: Connection, edition: Edition, since: datetime
) -> Iterator[tuple[int, frozenset[str]]]:
    """``(subscriber id, ids of this edition's stories they were sent since ``since``)``,
    in ascending subscriber id, one pair per reader who had at least one of them."""
    others = overlapping_editions(conn, edition, since)
    if not others:
        return
    mine = {a.id for a in edition.articles()}
    by_id = {e.id: e for e in others}
    shown: dict[tuple[str, str], frozenset[str]] = {}  # (edition, variant) -> stories in both

    def stories(edition_id: str, key: str) -> frozenset[str]:
        found = shown.get((edition_id, key))
        if found is None:
            try:
                variant = Variant.parse(split_key(key)[0])  # a subject arm: same stories
            except ValueError:
                variant = Variant(None)  # an unreadable key: assume it showed everything
            kept = variant.articles_of(by_id[edition_id])
            found = shown[(edition_id, key)] = frozenset(a.id for a in kept) & mine
        return found

    query = (
        sa.select(_D.subscriber_id, _D.edition_id, _D.variant)
        .where(
            _D.edition_id.in_(list(by_id)),
            _D.status == DeliveryStatus.SENT.value,
            _D.sent_at >= since,
        )
        .order_by(_D.subscriber_id, _D.edition_id)
    )
    current: int | None = None
    had: set[str] = set()
    last: tuple[int, str] = (0, "")
    while True:
        # keyset pages on (subscriber, edition): no cursor stays open while the caller writes
        rows = conn.execute(
            query.where(
                sa.or_(
                    _D.subscriber_id > last[0],
                    sa.and_(_D.subscriber_id == last[0], _D.edition_id > last[1]),
                )
            ).limit(_PAGE)
        ).all()
        for subscriber_id, edition_id, key in rows:
            if subscriber_id != current:
                if current is not None and had:
                    yield current, frozenset(had)
                current, had = subscriber_id, set()
            had |= stories(edition_id, key)
        if len(rows) < _PAGE:
            break
        last = (rows[-1][0], rows[-1][1])
    if current is not None and had:
        yield current, frozenset(had)
