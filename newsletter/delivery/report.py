"""What a send is told and what it reports: options, the progress hook, the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from newsletter.content.models import EditionStatus
from newsletter.core.text import plural
from newsletter.delivery.outcomes import DeliveryStatus
from newsletter.delivery.pacing import PaceChange, PacingPolicy
from newsletter.delivery.subjects import SubjectTestSpec

__all__ = ["EXIT_DEFERRED", "SendOptions", "SendProgress", "SendReport"]

#: The exit status of ``newsletter send`` when it stopped waiting for deferred
#: rows due far ahead (EX_TEMPFAIL, as sendmail and Postfix use it): run it again
#: later, or let the scheduler do it; nothing was lost.
EXIT_DEFERRED = 75


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
    # When only deferred rows are left and the first is due more than this many
    # seconds ahead, the send ends (``SendReport.deferred_until``) instead of waiting.
    linger: float = 30.0
    pacing: PacingPolicy | None = None  # the pacing rules' constants (tests tune them)
    # a subject-line test to start with the first send (newsletter.delivery.subjects)
    subject_test: SubjectTestSpec | None = None
    # the clock a subject-line test starts and is decided by (default: the real one)
    clock: Callable[[], datetime] | None = None


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
    slowdowns: int = 0  # bursts of 421s or drops that made the pacer slow down
    slowed_to: float | None = None  # the lowest rate the pacer imposed
    pace: list[PaceChange] = field(default_factory=list)  # every change of pace, in order
    deferred_until: datetime | None = None  # set when the run left deferred rows to a later run
    remaining: int = 0
    edition_status: EditionStatus | None = None
    counts: dict[str, int] = field(default_factory=dict)
    # a subject-line test: readers in arm A, arm B and the rest (a dry run's plan, or
    # the recorded split), the rows still waiting and when the test is decided
    arms: tuple[int, int, int] | None = None
    waiting: int = 0
    decision_at: datetime | None = None
    winner: str | None = None  # once decided: the arm whose subject the rest gets

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
            f"in {self.elapsed:.1f}s"
        )
        if self.slowdowns:
            lowest = f" (to {self.slowed_to:.1f}/s at the lowest)" if self.slowed_to else ""
            text += (
                f"; slowed down {plural(self.slowdowns, 'time')}{lowest} after bursts of "
                "421s or dropped connections"
            )
        if self.decision_at is not None and self.waiting:
            text += (
                f"; {self.waiting} wait for the subject-line test's decision at "
                f"{self.decision_at:%Y-%m-%d %H:%M:%S} UTC: send again then"
            )
        elif self.deferred_until is not None:
            text += (
                f"; {self.remaining} deferred by the relay until "
                f"{self.deferred_until:%Y-%m-%d %H:%M:%S} UTC: send again then "
                "(the scheduler does it by itself)"
            )
        elif self.remaining:
            text += f"; {self.remaining} still to send"
        return text
