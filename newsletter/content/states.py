"""An edition's kind and the states of its life: plain enums, cheap to import (CLI options)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EditionKind", "EditionStatus"]


class EditionKind(StrEnum):
    """A daily digest, or a breaking-news alert carrying one article."""

    DAILY = "daily"
    BREAKING = "breaking"


class EditionStatus(StrEnum):
    """Where an edition is in its life."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"
