"""The typed subscriber models that cross module boundaries.

A :class:`Subscriber` is everything held about one person (one normalised
address). A :class:`Recipient` is the little the delivery engine needs per
message; it is a slotted dataclass because a send builds one per subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer

from subscribers.states import SubscriberStatus, SubscriptionStatus

__all__ = [
    "Consent",
    "Recipient",
    "Subscriber",
    "SubscriberEvent",
    "SubscriberStatus",
    "Subscription",
    "SubscriptionStatus",
]


class _Model(BaseModel):
    # each model's validator is built on first use, not at import: `subscribers list`
    # of an empty list (and any command that never builds a Subscription) skips it
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Consent(_Model):
    """How a person agreed to receive the newsletter: source (web, import, cli), time, IP."""

    source: str
    at: AwareDatetime
    ip: str | None = None


class Subscriber(_Model):
    """One person on the list, keyed by their normalised address."""

    id: int
    email: str
    name: str | None = None
    status: SubscriberStatus
    # folded topic slugs; empty means "everything"
    topics: frozenset[str] = frozenset()
    timezone: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    consent: Consent | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    confirmed_at: AwareDatetime | None = None
    unsubscribed_at: AwareDatetime | None = None
    bounced_at: AwareDatetime | None = None
    complained_at: AwareDatetime | None = None

    @field_serializer("topics")
    def _sorted_topics(self, topics: frozenset[str]) -> list[str]:
        return sorted(topics)

    def wants(self, topics: frozenset[str]) -> bool:
        """True when an edition about ``topics`` (empty = general) is for this person."""
        return not self.topics or not topics or bool(self.topics & topics)


class Subscription(_Model):
    """A person's choice about one newsletter: subscribed or not, since when, from where."""

    newsletter_id: str
    status: SubscriptionStatus
    subscribed_at: AwareDatetime
    unsubscribed_at: AwareDatetime | None = None
    source: str | None = None


class SubscriberEvent(_Model):
    """One timestamped change in a subscriber's life (created, confirmed, unsubscribed...)."""

    at: datetime
    kind: str
    detail: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recipient:
    """What delivery needs to address and personalise one message."""

    subscriber_id: int
    email: str
    name: str | None
    # empty means the person takes every topic
    topics: frozenset[str]
