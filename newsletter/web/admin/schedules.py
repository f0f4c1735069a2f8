"""Schedules in the console: list, add (with the cron read aloud and its next five runs), act.

Adding, pausing, resuming and cancelling go through :mod:`newsletter.scheduling.store`
as ``newsletter schedule ...`` does; each occurrence's history comes from
:func:`newsletter.scheduling.claims.list_runs`. With several newsletters, a new
schedule is for the one chosen (a fixed edition's: its own) and the list names it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.content.models import EditionKind
from newsletter.core.db import utcnow
from newsletter.core.errors import InputError, NewsletterError
from newsletter.scheduling.claims import list_runs
from newsletter.scheduling.store import (
    BuildOptions,
    add_schedule,
    get_schedule,
    list_schedules,
    set_schedule_status,
)
from newsletter.scheduling.timing import (
    Timing,
    describe_local,
    get_zone,
    next_run,
    parse_at,
    parse_cron,
    parse_duration,
)
from newsletter.web.admin.audit import record
from newsletter.web.admin.context import Visit, admin_of, go, render, view
from newsletter.web.admin.crontext import describe_cron
from newsletter.web.admin.lists import chosen, names_if_several
from newsletter.web.admin.roles import Role

__all__ = [
    "add",
    "change",
    "new_page",
    "next_five",
    "routes",
    "schedule_page",
    "schedules_page",
]


def next_five(cron: str, zone: str, after: datetime) -> list[str]:
    """The next five runs of ``cron`` in ``zone`` after ``after``, in local time."""
    runs = []
    at = after
    for _ in range(5):
        at = next_run(cron, zone, at)
        runs.append(describe_local(at, zone))
    return runs


@view(Role.VIEWER)
async def schedules_page(request: Request, visit: Visit) -> Response:
    """GET /admin/schedules: every schedule and its next run."""
    ctx = admin_of(request)

    def load() -> list[tuple[Any, str]]:
        now = utcnow()
        with ctx.engine.connect() as conn:
            found = list_schedules(conn)
        rows = []
        for s in found:
            at = s.timing.first_after(now) if s.status.value == "active" else None
            rows.append((s, describe_local(at, s.timezone) if at else "—"))
        return rows

    rows = await run_in_threadpool(load)
    return render(
        request,
        "schedules.html",
        visit.user,
        title="Schedules",
        nav="schedules",
        rows=rows,
        newsletters=names_if_several(ctx.settings),
    )


@view(Role.EDITOR)
async def new_page(request: Request, visit: Visit) -> Response:
    """GET /admin/schedules/new: the form; ``?cron=&tz=`` also reads it aloud with 5 runs."""
    params = request.query_params
    settings = admin_of(request).settings
    cron = params.get("cron", "").strip()
    zone = params.get("tz", "").strip() or settings.timezone
    reading: str | None = None
    runs: list[str] = []
    error: str | None = None
    if cron:
        try:
            get_zone(zone)
            tidy = parse_cron(cron)
            reading = f"{describe_cron(tidy)} ({zone})"
            runs = next_five(tidy, zone, utcnow())
        except NewsletterError as exc:
            error = (
                exc.with_field(exc.field.lstrip("-"))
                if isinstance(exc, InputError) and exc.field
                else str(exc)
            )
    return render(
        request,
        "schedule_new.html",
        visit.user,
        title="Add a schedule",
        nav="schedules",
        cron=cron,
        zone=zone,
        reading=reading,
        runs=runs,
        error=error,
        newsletters=names_if_several(settings),
        default_newsletter=settings.newsletter_list.default.id,
    )


@view(Role.EDITOR)
async def add(request: Request, visit: Visit) -> Response:
    """POST /admin/schedules/new: a recurring build-and-send, or a one-off, for
    ``newsletter`` (a configured id; empty: the default; a fixed edition's: its own)."""
    ctx = admin_of(request)
    newsletter_id = chosen(ctx.settings, visit.value("newsletter"))
    zone = visit.value("tz") or ctx.settings.timezone
    get_zone(zone)
    if visit.value("kind") == "once":
        at = parse_at(visit.value("at").replace("T", " "), zone)
        timing = Timing(kind="once", tz=zone, run_at=at)
    else:
        timing = Timing(kind="cron", tz=zone, cron=parse_cron(visit.value("cron")))
    topics = [t.strip() for t in visit.value("topics").split(",") if t.strip()]
    build = BuildOptions(
        since=parse_duration(visit.value("since") or "24h"),
        topics=topics,
        kind=EditionKind(visit.value("edition_kind") or "daily"),
        title=visit.value("title") or None,
    )
    edition_id = visit.value("edition") or None

    def write() -> int:
        with ctx.engine.begin() as conn:
            found = add_schedule(
                conn,
                timing=timing,
                now=utcnow(),
                edition_id=edition_id,
                build=build,
                newsletter=newsletter_id,
            )
            record(conn, visit.user.email, "schedule.add", f"schedule {found.id}", found.describe())
            return found.id

    schedule_id = await run_in_threadpool(write)
    return go(request, f"/schedules/{schedule_id}", "schedule-added")


@view(Role.VIEWER)
async def schedule_page(request: Request, visit: Visit) -> Response:
    """GET /admin/schedules/{id}: when it runs, the next five runs and each occurrence's fate."""
    ctx = admin_of(request)
    engine = ctx.engine
    schedule_id = int(request.path_params["schedule_id"])

    def load() -> tuple[Any, Any, list[str], str]:
        with engine.connect() as conn:
            found = get_schedule(conn, schedule_id)
            runs = list_runs(conn, schedule_id, limit=50)
        upcoming: list[str] = []
        reading = found.describe()
        if found.kind == "cron" and found.cron:
            reading = f"{describe_cron(found.cron)} ({found.timezone})"
            if found.status.value == "active":
                upcoming = next_five(found.cron, found.timezone, utcnow())
        return found, runs, upcoming, reading

    found, runs, upcoming, reading = await run_in_threadpool(load)
    return render(
        request,
        "schedule.html",
        visit.user,
        title=f"Schedule {found.id}",
        nav="schedules",
        s=found,
        runs=runs,
        upcoming=upcoming,
        reading=reading,
        newsletters=names_if_several(ctx.settings),
    )


@view(Role.EDITOR)
async def change(request: Request, visit: Visit) -> Response:
    """POST /admin/schedules/{id}/{pause|resume|cancel}."""
    ctx = admin_of(request)
    schedule_id = int(request.path_params["schedule_id"])
    action = str(request.path_params["action"])
    if action not in ("pause", "resume", "cancel"):
        return Response("no such action\n", status_code=404, media_type="text/plain")
    verb: Literal["pause", "resume", "cancel"] = action  # type: ignore[assignment]

    def write() -> None:
        with ctx.engine.begin() as conn:
            set_schedule_status(conn, schedule_id, verb, utcnow())
            record(conn, visit.user.email, f"schedule.{verb}", f"schedule {schedule_id}")

    await run_in_threadpool(write)
    return go(request, f"/schedules/{schedule_id}", "schedule-changed")


def routes() -> list[Route]:
    """The schedule routes (relative to ``/admin``)."""
    return [
        Route("/schedules", schedules_page, methods=["GET"]),
        Route("/schedules/new", new_page, methods=["GET"]),
        Route("/schedules/new", add, methods=["POST"]),
        Route("/schedules/{schedule_id:int}", schedule_page, methods=["GET"]),
        Route("/schedules/{schedule_id:int}/{action}", change, methods=["POST"]),
    ]
