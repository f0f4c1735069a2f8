"""Progress on stderr: the send's bar (done/total, rate, ETA) and an import's line.

Its own module so that only ``send`` and ``subscribers import`` load rich's
progress machinery.
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
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    from newsletter.delivery.outcomes import DeliveryStatus

__all__ = ["ImportProgress", "SendBar"]


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


class _RowRateColumn(ProgressColumn):
    """Rows committed per second so far."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        return Text(f"{task.completed / elapsed:,.0f} rows/s" if elapsed > 0 else "-- rows/s")


class ImportProgress:
    """A line on stderr while a large import runs: rows committed so far, rate, time taken.

    The file's length in rows is not known ahead (it is read once, as it is
    imported), so there is no bar and no ETA; the line moves at each commit. It
    refreshes only then, from the caller's thread: a refreshing thread would make
    the import parse in a thread too, since only a single-threaded process forks
    (see :mod:`subscribers.importchild`).
    """

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("importing"),
            TextColumn("{task.completed:,} rows committed"),
            _RowRateColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True, highlight=False),
            transient=True,
            auto_refresh=False,
        )
        self.task = self.progress.add_task("importing", total=None)
        self.progress.start()

    def committed(self, rows: int) -> None:
        """``rows`` (imported, updated, unchanged and skipped) are committed so far."""
        self.progress.update(self.task, completed=rows, refresh=True)

    def stop(self) -> None:
        """Take the line off the terminal."""
        self.progress.stop()
