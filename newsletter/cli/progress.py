"""The send's progress bar on stderr: done/total, rate and ETA.

Its own module so that only ``send`` loads rich's progress machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    from newsletter.delivery.outcomes import DeliveryStatus

__all__ = ["SendBar"]


class _RateColumn(ProgressColumn):
    """Messages per second, as rich estimates it."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} msg/s" if speed else "-- msg/s")


class SendBar:
    """The progress bar on stderr: done/total, rate and ETA."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True, highlight=False),
        )
        self.task: Any = None

    def start(self, total: int) -> None:
        """Show the bar for ``total`` messages."""
        self.task = self.progress.add_task("sending", total=total)
        self.progress.start()

    def advance(self, outcome: DeliveryStatus) -> None:
        """Count one more message done, whatever its outcome."""
        self.progress.advance(self.task)

    def stop(self) -> None:
        """Take the bar off the terminal."""
        self.progress.stop()
