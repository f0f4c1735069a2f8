"""The states of a subscriber's life: a plain enum, cheap to import (the CLI's options use it)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["SubscriberStatus", "SubscriptionStatus"]


class SubscriberStatus(StrEnum):
    """Where a subscriber is in their life; only ``confirmed`` people are sent editions."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"

    @property
    def is_active(self) -> bool:
        """True for the states a person is (or is about to be) subscribed in."""
        return self in (SubscriberStatus.PENDING, SubscriberStatus.CONFIRMED)


class SubscriptionStatus(StrEnum):
    """A person's choice about one newsletter; they are sent it while ``subscribed``
    (and confirmed: their :class:`SubscriberStatus` governs every newsletter)."""

    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
