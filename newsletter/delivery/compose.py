"""Messages for a send: each variant rendered once, bytes personalised per recipient.

Also the recipients of an edition as outbox rows: confirmed subscribers whose
topics meet the edition's, each with the key of the variant they get.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.content.message import MessageTemplate, Personal
from newsletter.content.models import Edition
from newsletter.content.render import Renderer, Variant
from newsletter.core.config import Settings
from newsletter.core.schema import deliveries
from newsletter.delivery import outbox
from newsletter.delivery.dkim import DKIMSigner
from subscribers import store
from subscribers.links import preferences_url, unsubscribe_links

__all__ = ["MessageBuilder", "outbox_rows", "variant_counts"]


class MessageBuilder:
    """Renders each variant once and personalises its bytes per recipient."""

    def __init__(self, settings: Settings, edition: Edition) -> None:
        self.settings = settings
        self.edition = edition
        self.signer = DKIMSigner.from_settings(settings)
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
            variant = self._renderer.render(self.edition, Variant.parse(key))
            found = MessageTemplate.from_variant(variant, self.settings, self.edition)
            self._templates[key] = found
        return found

    def build(
        self, key: str, subscriber_id: int, email: str, name: str | None, message_id: str
    ) -> bytes:
        """The finished (and, with a key configured, DKIM-signed) bytes for one recipient."""
        settings = self.settings
        unsubscribe, mailto = unsubscribe_links(settings, subscriber_id, email)
        personal = Personal(
            email=email,
            name=name or "",
            unsubscribe_url=unsubscribe,
            preferences_url=preferences_url(settings, subscriber_id, email),
            message_id=message_id,
            unsubscribe_mailto=mailto,
        )
        data = self.template(key).personalise(personal)
        return self.signer.sign(data) if self.signer else data


def outbox_rows(conn: Connection, edition: Edition) -> Iterator[outbox.NewDelivery]:
    """The edition's recipients as new outbox rows, streamed (never all in memory)."""
    variants: dict[frozenset[str], Variant] = {}
    for r in store.iter_recipients(conn, topics=edition.topics):
        variant = variants.get(r.topics)
        if variant is None:
            variant = variants[r.topics] = Variant.of(edition, r.topics)
        if not variant.is_empty:  # no article for their topics: they get nothing
            yield outbox.NewDelivery(r.subscriber_id, r.email, r.name, variant.key)


def variant_counts(conn: Connection, edition: Edition) -> dict[str, int]:
    """Recipients per variant key: from the outbox once the send has begun, else as it
    would be written now (confirmed subscribers whose topics meet the edition's)."""
    query = (
        sa.select(deliveries.c.variant, sa.func.count())
        .where(deliveries.c.edition_id == edition.id)
        .group_by(deliveries.c.variant)
    )
    written = {str(key): int(n) for key, n in conn.execute(query)}
    if written:
        return written
    counts: dict[str, int] = {}
    for row in outbox_rows(conn, edition):
        counts[row.variant] = counts.get(row.variant, 0) + 1
    return counts
