"""What a scheduler pass comes to: a send's result, a run's result, and their reading.

:class:`SendResult` is what one send of an edition came to; :class:`RunResult` is one
thing a pass dealt with (an occurrence of a schedule, or an edition's subject-line
test it finished), for the CLI to print with :func:`describe_result`.
:func:`delivery_sender` is the production :data:`SendFn`, the delivery engine's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from newsletter.core.config import Settings
from newsletter.scheduling.claims import RunOutcome
from newsletter.scheduling.timing import describe_local

if TYPE_CHECKING:
    from newsletter.delivery.engine import SendReport

__all__ = [
    "RunResult",
    "SendFn",
    "SendResult",
    "delivery_sender",
    "describe_result",
    "result_of",
]


@dataclass(frozen=True)
class SendResult:
    """What a send of one edition came to: sent, failed (with why), or stopped midway."""

    outcome: RunOutcome
    reason: str | None = None
    interrupted: bool = False  # left unfinished: the run stays claimable and resumes
    retry: bool = False  # unfinished because the relay was down: a later pass retries


# (edition id, stop event) -> result; the delivery engine in production, a fake in tests
SendFn = Callable[[str, asyncio.Event], Awaitable[SendResult]]


@dataclass(frozen=True)
class RunResult:
    """One occurrence this scheduler dealt with, for the CLI to print; ``schedule_id`` is
    ``None`` for a subject-line test it finished (``occurrence_at``: the decision time)."""

    schedule_id: int | None
    occurrence_at: datetime
    outcome: str  # a RunOutcome value, "interrupted" (stopped) or "deferred" (relay down)
    reason: str | None = None
    edition_id: str | None = None


def delivery_sender(
    settings: Settings, engine: Engine, *, clock: Callable[[], datetime] | None = None
) -> SendFn:
    """The production :data:`SendFn`: the delivery engine's ``send_edition``, with its
    resume; ``clock`` (default: the real one) is what a subject-line test is decided by."""

    async def send(edition_id: str, stop: asyncio.Event) -> SendResult:
        # imported here: `schedule list` and friends need not load the delivery stack
        from newsletter.delivery.engine import SendOptions, send_edition

        options = SendOptions(clock=clock)
        return result_of(
            await send_edition(settings, engine, edition_id, options=options, stop=stop)
        )

    return send


def result_of(report: SendReport) -> SendResult:
    """Read a delivery report: stopped midway, every row settled (sent), or rows left (failed)."""
    summary = str(report).removeprefix(f"{report.edition_id}: ")  # the run names the edition
    if report.stopped:
        return SendResult(RunOutcome.RUNNING, summary, interrupted=True)
    if report.deferred_until is not None:  # the relay deferred some: a later pass retries them
        return SendResult(RunOutcome.RUNNING, summary, interrupted=True, retry=True)
    if report.remaining == 0:
        return SendResult(RunOutcome.SENT, summary)
    return SendResult(RunOutcome.FAILED, summary)


def describe_result(result: RunResult, tz: str) -> str:
    """One line for the CLI: ``schedule 3 2026-03-29 07:00 BST: sent 2026-03-29-daily``, or
    ``subject-line test due 2026-03-29 08:00 BST: sent 2026-03-29-daily (...)``."""
    when = describe_local(result.occurrence_at, tz)
    if result.schedule_id is None:
        text = f"subject-line test due {when}: {result.outcome}"
    else:
        text = f"schedule {result.schedule_id} {when}: {result.outcome}"
    if result.edition_id:
        text += f" {result.edition_id}"
    if result.reason:
        text += f" ({result.reason})"
    return text
