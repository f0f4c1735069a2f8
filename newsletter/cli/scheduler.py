"""``newsletter scheduler``: run due schedules, once (``--once``) or until stopped.

Testing aid: ``NEWSLETTER_NOW`` sets its clock as for ``newsletter schedule``
(:func:`newsletter.cli.schedules.clock`).
"""

from __future__ import annotations

import signal
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from newsletter.cli.common import err, get_engine, get_settings, out
from newsletter.cli.schedules import clock

if TYPE_CHECKING:
    from newsletter.scheduling.scheduler import RunResult

__all__ = ["register"]


async def _run_scheduler(once: bool, poll: float) -> list[RunResult]:
    import asyncio

    from newsletter.scheduling.scheduler import (
        Scheduler,
        delivery_sender,
        describe_result,
    )

    settings = get_settings()
    engine = get_engine()
    scheduler = Scheduler(settings, engine, send=delivery_sender(settings, engine), clock=clock())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def show_result(result: RunResult) -> None:
        out.print(describe_result(result, settings.timezone), markup=False)

    try:
        if once:
            results = await scheduler.run_once(stop)
            for result in results:
                show_result(result)
            return results
        err.print(f"scheduler {scheduler.worker} running; Ctrl-C or SIGTERM stops it", markup=False)
        await scheduler.run_forever(
            stop,
            poll=timedelta(seconds=poll),
            on_result=show_result,
            on_error=lambda line: err.print(f"warning: {line}", markup=False),
        )
        err.print("scheduler stopped", markup=False)
        return []
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def register(root: typer.Typer) -> None:
    """Add the top-level ``scheduler`` command to ``root``."""

    @root.command("scheduler")
    def scheduler(
        once: Annotated[
            bool, typer.Option("--once", help="Run what is due now, then exit (for cron/systemd).")
        ] = False,
        poll: Annotated[
            float, typer.Option(help="Seconds between checks for new schedules.", min=0.1)
        ] = 30.0,
    ) -> None:
        """Run due schedules until stopped (Ctrl-C or SIGTERM finish the send in flight).

        Several schedulers may share one database: each occurrence is claimed
        in the database and runs once. A missed occurrence runs if it is less
        late than NEWSLETTER_SCHEDULE_MAX_LATENESS (default 2h), else it is
        skipped and recorded. A send interrupted by a crash is resumed by the
        next scheduler, without sending anyone the edition twice. --once exits
        with status 1 when an occurrence failed or was deferred (relay down: the
        next pass retries while it is less late than the limit). Testing aid only:
        NEWSLETTER_NOW=2026-03-29T06:00Z starts the clock at that instant.

        Example:

            newsletter scheduler --once
        """
        from newsletter.delivery import eventloop

        choice = get_settings().event_loop  # a bad setting stops here, before any coroutine
        results = eventloop.run(_run_scheduler(once, poll), choice)
        if any(r.outcome in {"failed", "deferred"} for r in results):
            raise typer.Exit(1)
