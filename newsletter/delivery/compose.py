"""Messages for a send: each variant rendered once, bytes personalised per recipient.

Also the recipients of an edition as outbox rows: confirmed subscribers of the
edition's newsletter whose topics meet the edition's, each with the key of the
variant they get. Unless the edition allows repeats, each reader's variant leaves
out the stories they were sent within the repeat window
(:mod:`newsletter.delivery.history`), so variants are grouped by (topics, stories
already had); a reader left with nothing gets a ``skipped`` row saying why, and is
not sent the edition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.content.arms import arm_copy, split_key
from newsletter.content.message import MessageTemplate, Personal, list_id_header
from newsletter.content.models import Edition
from newsletter.content.render import Renderer, Variant
from newsletter.core.config import Settings
from newsletter.core.errors import StateError
from newsletter.core.schema import deliveries
from newsletter.delivery import outbox
from newsletter.delivery.dkim import DKIMSigner
from newsletter.delivery.history import already_sent
from newsletter.delivery.outcomes import DeliveryStatus
from subscribers import store
from subscribers.links import preferences_url, unsubscribe_links

__all__ = ["MessageBuilder", "outbox_rows", "variant_counts"]


class MessageBuilder:
    """Renders each variant once and personalises its bytes per recipient.

    ``subject_b`` is the subject a subject-line test's arm B (and its rest, if B won)
    gets; both arms share the content's one render (:mod:`newsletter.content.arms`).
    """

    def __init__(self, settings: Settings, edition: Edition, subject_b: str | None = None) -> None:
        self.settings = settings
        self.edition = edition
        self.subject_b = subject_b
        self.signer = DKIMSigner.from_settings(settings)
        list_id_header(settings, edition.newsletter)  # a newsletter no longer configured: stop
        self._renderer = Renderer(settings)
        self._templates: dict[str, MessageTemplate] = {}

    @property
    def variants(self) -> int:
        """How many variants were rendered."""
        return len(self._templates)

    def template(self, key: str) -> MessageTemplate:
        """The message template of variant ``key`` (rendered on first use)."""
        found = self._templates.get(key)
        if found is None:
            content, arm = split_key(key)
            variant = self._renderer.render(self.edition, Variant.parse(content))
            if arm is not None:
                if self.subject_b is None and arm.endswith("B"):
                    raise StateError(f"edition {self.edition.id} has no subject-line test")
                variant = arm_copy(variant, self.edition, self.settings, arm, self.subject_b or "")
            found = MessageTemplate.from_variant(variant, self.settings, self.edition)
            self._templates[key] = found
        return found

    def build(
        self,
        key: str,
        subscriber_id: int,
        email: str,
        name: str | None,
        message_id: str,
        first_name: str | None = None,
    ) -> bytes:
        """The finished (and, with a key configured, DKIM-signed) bytes for one recipient;
        the greeting uses ``first_name`` when given, else the first word of ``name``."""
        settings = self.settings
        # the links leave this edition's newsletter only (the page offers "all" too)
        unsubscribe, mailto = unsubscribe_links(
            settings, subscriber_id, email, newsletter=self.edition.newsletter
        )
        personal = Personal(
            email=email,
            name=name or "",
            unsubscribe_url=unsubscribe,
            preferences_url=preferences_url(settings, subscriber_id, email),
            message_id=message_id,
            unsubscribe_mailto=mailto,
            first_name=first_name,
            subscriber_id=subscriber_id,  # signs their tracked links (per-subscriber mode)
        )
        data = self.template(key).personalise(personal)
        return self.signer.sign(data) if self.signer else data


def outbox_rows(
    conn: Connection,
    edition: Edition,
    *,
    repeat_window: timedelta | None = None,
    now: datetime | None = None,
    only: Callable[[int], bool] | None = None,
) -> Iterator[outbox.NewDelivery]:
    """The edition's recipients as new outbox rows, streamed (never all in memory).

    With ``repeat_window`` (and ``now``), stories a reader was sent since
    ``now - repeat_window`` are left out of their variant, unless the edition
    allows repeats; ``only(subscriber_id)`` keeps a subset (a wave), asked in id order.
    """
    variants: dict[frozenset[str], Variant] = {}
    history: Iterator[tuple[int, frozenset[str]]] = iter(())
    if repeat_window and now is not None and not edition.allow_repeats:
        history = already_sent(conn, edition, now - repeat_window)
    pending = next(history, None)
    minus: dict[tuple[str, frozenset[str]], Variant] = {}
    reason = f"already sent every story of it in the last {_span(repeat_window)}"
    for r in store.iter_recipients(conn, topics=edition.topics, newsletter=edition.newsletter):
        if only is not None and not only(r.subscriber_id):
            continue
        variant = variants.get(r.topics)
        if variant is None:
            variant = variants[r.topics] = Variant.of(edition, r.topics)
        if variant.is_empty:  # no article for their topics: they get nothing
            continue
        while pending is not None and pending[0] < r.subscriber_id:
            pending = next(history, None)
        if pending is not None and pending[0] == r.subscriber_id:
            key = (variant.key, pending[1])
            mine = minus.get(key)
            if mine is None:
                mine = minus[key] = variant.excluding(edition, pending[1])
            if mine is not variant and not mine.articles_of(edition):
                yield outbox.NewDelivery(
                    r.subscriber_id,
                    r.email,
                    r.name,
                    mine.key,
                    status=DeliveryStatus.SKIPPED,
                    reason=reason,
                )
                continue
            variant = mine
        yield outbox.NewDelivery(r.subscriber_id, r.email, r.name, variant.key)


def _span(window: timedelta | None) -> str:
    """``7d``, ``36h``, ``90m``: the repeat window as the setting is written."""
    seconds = int(window.total_seconds()) if window else 0
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def variant_counts(conn: Connection, edition: Edition) -> dict[str, int]:
    """Recipients per variant key: from the outbox once the send has begun, else as it
    would be written now (confirmed subscribers whose topics meet the edition's)."""
    query = (
        sa.select(deliveries.c.variant, sa.func.count())
        .where(
            deliveries.c.edition_id == edition.id,
            deliveries.c.status != DeliveryStatus.SKIPPED.value,
        )
        .group_by(deliveries.c.variant)
    )
    written = {str(key): int(n) for key, n in conn.execute(query)}
    if written:
        return written
    counts: dict[str, int] = {}
    for row in outbox_rows(conn, edition):
        counts[row.variant] = counts.get(row.variant, 0) + 1  # before a send: no history
    return counts
