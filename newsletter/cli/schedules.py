"""``newsletter schedule ...`` and ``newsletter scheduler``: plan digests, then run them.

Testing aid: ``NEWSLETTER_NOW=2026-03-29T06:00:00Z`` makes these commands
believe the clock started at that instant (it then runs on at real speed).
It exists so tests can drive ``schedule add`` and ``scheduler --once``
across a daylight-saving change; never set it in production.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from newsletter.cli.common import err, get_engine, get_settings, out, plural
from newsletter.cli.tables import Column, print_list
from newsletter.content.states import EditionKind
from newsletter.core.errors import InputError, ScheduleError
from newsletter.core.text import has_line_break
from newsletter.core.times import parse_aware

if TYPE_CHECKING:
    from newsletter.scheduling.scheduler import Clock, RunResult
    from newsletter.scheduling.store import ScheduleRecord

__all__ = [
    "add",
    "app",
    "attach",
    "cancel",
    "list_command",
    "pause",
    "register",
    "resume",
    "show",
]

app = typer.Typer(
    help="Schedule digests: one-off (--at) or recurring (--cron) in a time zone.",
    no_args_is_help=True,
)

NOW_VARIABLE = "NEWSLETTER_NOW"


def _clock() -> Clock:
    """The real clock, or (testing aid) one that starts at ``NEWSLETTER_NOW``."""
    from newsletter.core.db import utcnow

    text = os.environ.get(NOW_VARIABLE, "").strip()
    if not text:
        return utcnow
    base = parse_aware(text)
    if base is None:
        raise InputError(
            f"{NOW_VARIABLE} must be an ISO date-time with an offset, e.g. 2026-03-29T06:00Z"
        )
    started = time.monotonic()
    return lambda: base + timedelta(seconds=time.monotonic() - started)


def _next_text(schedule: ScheduleRecord, now: datetime) -> str:
    from newsletter.scheduling.timing import describe_local

    if schedule.status.value != "active":
        return "-"
    after = max(filter(None, [now, schedule.handled_until]))
    upcoming = schedule.timing.first_after(after)
    return describe_local(upcoming, schedule.timezone) if upcoming else "-"


def _note_clock_change(at: str, zone: str, run_at: datetime) -> None:
    """Tell the editor when --at names a local time that a clock change moves."""
    from newsletter.scheduling.timing import describe_local, is_ambiguous, is_nonexistent

    wall = datetime.fromisoformat(at.strip())
    if wall.tzinfo is not None:
        return
    when = describe_local(run_at, zone)
    if is_nonexistent(wall, zone):
        note = f"note: {at} does not exist in {zone} (clocks go forward); it runs at {when}"
    elif is_ambiguous(wall, zone):
        note = f"note: {at} happens twice in {zone} (clocks go back); it runs once, at {when}"
    else:
        return
    err.print(note, markup=False)


@app.command("add")
def add(
    at: Annotated[
        str | None,
        typer.Option("--at", help="One-off: a local date and time, e.g. '2026-03-29 07:00'."),
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option("--cron", help="Recurring: a cron expression, e.g. '0 7 * * *'."),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option("--tz", help="IANA time zone of --at/--cron; default the configured one."),
    ] = None,
    edition: Annotated[
        str | None,
        typer.Option("--edition", help="With --at: send this built edition (no build)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Build: window of the first run and longest window (default 24h)."),
    ] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", help="Build: only articles with this topic (repeatable)."),
    ] = None,
    kind: Annotated[
        EditionKind | None, typer.Option(case_sensitive=False, help="Build: daily or breaking.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Build: the edition's title.")] = None,
    subscriber_zone: Annotated[
        bool,
        typer.Option(
            "--subscriber-zone",
            help="With --cron: at that local time in each subscriber's own zone, in waves.",
        ),
    ] = False,
    newsletter: Annotated[
        str | None,
        typer.Option(
            "--newsletter",
            metavar="ID",
            help="Build: editions of this newsletter (default: the default one); its "
            "configured cron and timezone stand in for --cron and --tz when neither is given.",
        ),
    ] = None,
) -> None:
    """Add a schedule: a fixed edition, or one built at run time from new articles.

    --subscriber-zone sends at the cron's local time in each subscriber's own
    time zone (theirs, else --tz): one edition, built when the first zone gets
    there, delivered in waves; a wave later than the lateness limit is skipped.

    Cron fields match local wall-clock time in the zone, so '0 7 * * *' in
    Europe/London sends at 07:00 GMT in winter and 07:00 BST in summer. Each
    run builds from the articles published since the schedule's previous
    sent run (at most --since back), with the --topic filters.

    Clock changes: a time that does not exist (the spring-forward gap, e.g.
    01:30 on 2026-03-29 in London) runs at the first valid instant after the
    gap, shifted forward by it (02:30 BST); a time that happens twice (fall
    back, 01:30 on 2026-10-25) runs once, at its first occurrence (BST).
    An --at time with an offset (2026-10-25 01:30+00:00) is exactly that instant.

    Example:

        newsletter schedule add --cron '0 7 * * *' --tz Europe/London --topic politics
    """
    from newsletter.content.states import EditionKind
    from newsletter.scheduling.store import BuildOptions, add_schedule
    from newsletter.scheduling.timing import (
        Timing,
        describe_local,
        get_zone,
        parse_at,
        parse_cron,
        parse_duration,
    )

    settings = get_settings()
    now = _clock()()
    chosen = settings.newsletter_list.get(newsletter or settings.newsletter_list.default.id)
    if newsletter and at is None and cron is None and edition is None and chosen.cron:
        cron, tz = chosen.cron, tz or chosen.timezone
    if (at is None) == (cron is None):
        raise ScheduleError("give exactly one of --at TIME or --cron EXPR")
    building = since is not None or topic or kind is not None or title is not None or newsletter
    if edition is not None and building:
        raise ScheduleError("--edition sends a built edition; it takes no build options")
    if edition is not None and cron is not None:
        raise ScheduleError(
            "--edition goes with --at (an edition is sent once); --cron builds a new one each time"
        )
    if subscriber_zone and cron is None:
        raise ScheduleError("--subscriber-zone goes with --cron (a recurring local time)")
    if title is not None and has_line_break(title):
        raise ScheduleError("must be one line", field="--title")
    zone_name = tz or settings.timezone
    get_zone(zone_name)
    if at is not None:
        run_at = parse_at(at, zone_name)
        if run_at <= now:
            raise ScheduleError(f"{describe_local(run_at, zone_name)} is in the past", field="--at")
        timing = Timing(kind="once", tz=zone_name, run_at=run_at)
    else:
        timing = Timing(kind="cron", tz=zone_name, cron=parse_cron(cron or ""))
    build = BuildOptions(
        since=parse_duration(since) if since else BuildOptions().since,
        topics=list(topic or []),
        kind=kind or EditionKind.DAILY,
        title=title,
        subscriber_zone=subscriber_zone,
    )
    with get_engine().begin() as conn:
        schedule = add_schedule(
            conn, timing=timing, now=now, edition_id=edition, build=build, newsletter=chosen.id
        )
    if timing.run_at is not None and at is not None:
        _note_clock_change(at, zone_name, timing.run_at)
    out.print(
        f"schedule {schedule.id}: {schedule.describe()}, {schedule.describe_what()}; "
        f"next run {_next_text(schedule, now)}",
        markup=False,
    )


def _schedule_json(schedule: ScheduleRecord, now: datetime) -> dict[str, object]:
    data: dict[str, object] = schedule.model_dump(mode="json")
    data["next_run"] = _next_text(schedule, now)
    return data


@app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List every schedule with its status, timing, what it sends and its next run.

    Example:

        newsletter schedule list
    """
    from newsletter.scheduling.claims import list_runs
    from newsletter.scheduling.store import list_schedules
    from newsletter.scheduling.timing import describe_local

    now = _clock()()
    with get_engine().connect() as conn:
        found = list_schedules(conn)
        last = {s.id: next(iter(list_runs(conn, s.id, limit=1)), None) for s in found}
    if as_json:
        typer.echo(json.dumps([_schedule_json(s, now) for s in found], indent=2))
        return
    rows = []
    for schedule in found:
        run = last[schedule.id]
        outcome = (
            "-"
            if run is None
            else f"{run.outcome.value} {describe_local(run.occurrence_at, schedule.timezone)}"
        )
        what, when = schedule.describe_what(), schedule.describe()
        next_run = _next_text(schedule, now)
        rows.append([str(schedule.id), schedule.status.value, when, what, next_run, outcome])
    columns = [Column("id", right=True, key=True), Column("status"), Column("when", flex=True)]
    # what it sends names an edition: an identifier, never cut
    columns += [Column("what", key=True), Column("next run"), Column("last outcome", flex=True)]
    print_list(columns, rows, plural(len(rows), "schedule"))


@app.command("show")
def show(
    schedule_id: Annotated[int, typer.Argument(metavar="ID", help="The schedule's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[
        int, typer.Option(help="Show at most this many occurrences (0: all).", min=0)
    ] = 50,
) -> None:
    """Show one schedule and the outcome of each of its occurrences, newest first.

    Each occurrence is sent (with its edition id), skipped (and why: nothing
    new, too late, superseded) or failed (and why), or running.

    Example:

        newsletter schedule show 1
    """
    from newsletter.scheduling.claims import list_runs
    from newsletter.scheduling.store import get_schedule
    from newsletter.scheduling.timing import describe_local

    now = _clock()()
    from newsletter.scheduling.waves import waves_of_run

    with get_engine().connect() as conn:
        schedule = get_schedule(conn, schedule_id)
        runs = list_runs(conn, schedule_id)
        hidden = len(runs) - limit if limit and len(runs) > limit else 0
        runs = runs[: len(runs) - hidden]
        waves = {r.id: waves_of_run(conn, r.id) for r in runs}
    if as_json:
        data = _schedule_json(schedule, now)
        data["runs"] = [
            {**r.model_dump(mode="json"), "waves": [w.model_dump(mode="json") for w in waves[r.id]]}
            for r in runs
        ]
        typer.echo(json.dumps(data, indent=2))
        return
    out.print(f"schedule {schedule.id} ({schedule.status.value})", markup=False)
    out.print(f"  when: {schedule.describe()}", markup=False)
    out.print(f"  what: {schedule.describe_what()}", markup=False)
    out.print(f"  next run: {_next_text(schedule, now)}", markup=False)
    if not runs:
        out.print("  no occurrences yet", markup=False)
    for run in runs:
        line = f"  {describe_local(run.occurrence_at, schedule.timezone)}  {run.outcome.value}"
        if run.edition_id:
            line += f"  {run.edition_id}"
        if run.reason:
            line += f"  {run.reason}"
        out.print(line, markup=False)
        for wave in waves[run.id]:
            out.print(f"    wave {wave.describe()}", markup=False)
    if hidden:
        out.print(f"  ... and {hidden} older (--limit 0 shows all)", markup=False)


def _change(schedule_id: int, action: Literal["pause", "resume", "cancel"]) -> None:
    from newsletter.scheduling.store import set_schedule_status

    now = _clock()()
    with get_engine().begin() as conn:
        schedule = set_schedule_status(conn, schedule_id, action, now)
    out.print(f"schedule {schedule.id}: {schedule.status.value}", markup=False)


@app.command("pause")
def pause(schedule_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Pause a schedule: nothing runs until it is resumed.

    Example:

        newsletter schedule pause 1
    """
    _change(schedule_id, "pause")


@app.command("resume")
def resume(schedule_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Resume a paused schedule; occurrences that fell while it was paused are not run.

    Example:

        newsletter schedule resume 1
    """
    _change(schedule_id, "resume")


@app.command("cancel")
def cancel(schedule_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Cancel a schedule for good (its history stays for `schedule show`).

    Example:

        newsletter schedule cancel 1
    """
    _change(schedule_id, "cancel")


@app.command("attach")
def attach(
    schedule_id: Annotated[int, typer.Argument(metavar="ID")],
    edition: Annotated[str | None, typer.Argument(metavar="EDITION", show_default=False)] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Take it off; a draft again.")] = False,
) -> None:
    """Send a draft at a recurring schedule's next run, instead of building one (that run only).

    Example:

        newsletter schedule attach 1 2026-03-29-daily
    """
    from newsletter.scheduling.store import attach_edition, detach_edition

    if (edition is None) != detach:
        raise InputError("give an EDITION, or --detach alone", field="edition")
    with get_engine().begin() as conn:
        if edition is None:
            done = f"edition {detach_edition(conn, schedule_id, _clock()())} is a draft again"
        else:
            done = attach_edition(conn, schedule_id, edition, _clock()()).describe_what()
    out.print(f"schedule {schedule_id}: {done}", markup=False)


async def _run_scheduler(once: bool, poll: float) -> list[RunResult]:
    import asyncio

    from newsletter.scheduling.scheduler import (
        Scheduler,
        delivery_sender,
        describe_result,
    )

    settings = get_settings()
    engine = get_engine()
    scheduler = Scheduler(settings, engine, send=delivery_sender(settings, engine), clock=_clock())
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
        import asyncio

        results = asyncio.run(_run_scheduler(once, poll))
        if any(r.outcome in {"failed", "deferred"} for r in results):
            raise typer.Exit(1)
