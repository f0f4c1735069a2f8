"""What a send is told and what it reports: options, the progress hook, the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from newsletter.content.models import EditionStatus
from newsletter.core.text import plural
from newsletter.delivery.outcomes import DeliveryStatus

__all__ = ["SendOptions", "SendProgress", "SendReport"]


@dataclass(frozen=True)
class SendOptions:
    """How to run one send; ``None`` means "as the settings say"."""

    concurrency: int | None = None
    rate: float | None = None
    dry_run: bool = False
    test_to: str | None = None
    resend_unknown: bool = False
    max_attempts: int | None = None
    failure_threshold: int | None = None
    retry_base: float = 2.0  # seconds before the first retry; doubles each time
    retry_cap: float = 300.0
    claim_batch: int = 200
    flush_interval: float = 0.2


class SendProgress(Protocol):
    """Receives progress as the send goes (the CLI draws a bar from it)."""

    def start(self, total: int) -> None:
        """``total`` messages are to be attempted in this run."""

    def advance(self, outcome: DeliveryStatus) -> None:
        """One more attempt finished with ``outcome``."""


@dataclass
class SendReport:
    """What one run did, for the summary line and for the scheduler."""

    edition_id: str
    mode: Literal["send", "dry-run", "test"] = "send"
    test_to: str | None = None
    enqueued: int = 0
    recovered_unknown: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    unknown: int = 0
    built: int = 0
    built_bytes: int = 0
    variants: int = 0
    elapsed: float = 0.0
    stopped: bool = False
    paused_reason: str | None = None
    slowed_to: float | None = None  # the rate after the relay's last 421
    remaining: int = 0
    edition_status: EditionStatus | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Messages sent per second in this run."""
        done = self.built if self.mode == "dry-run" else self.sent
        return done / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        if self.mode == "dry-run":
            return (
                f"dry run of {self.edition_id}: built {plural(self.built, 'message')} "
                f"({plural(self.variants, 'variant')}, "
                f"{self.built_bytes / 1e6:.1f} MB), sent none"
            )
        if self.mode == "test":
            return f"test message of {self.edition_id} sent to {self.test_to}"
        attempts = self.sent + self.deferred + self.failed + self.unknown
        if not attempts and not self.remaining and not self.stopped:
            return f"{self.edition_id}: nothing to send (every recipient's message is settled)"
        text = (
            f"{self.edition_id}: sent {self.sent}, deferred {self.deferred}, "
            f"failed {self.failed} ({self.bounced} bounced), unknown {self.unknown} "
            f"in {self.elapsed:.1f}s ({self.rate:.0f}/s)"
        )
        if self.slowed_to:
            text += f"; the relay asked to slow down (421): now {self.slowed_to:.1f}/s"
        if self.remaining:
            text += f"; {self.remaining} still to send"
        return text
