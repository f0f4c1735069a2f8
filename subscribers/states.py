"""The states of a subscriber's life: a plain enum, cheap to import (the CLI's options use it)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["SubscriberStatus"]


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
