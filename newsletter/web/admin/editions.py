"""Editions in the console: the list, building from chosen articles, editing, scheduling.

Building and editing call the same library as ``newsletter edition build/edit``
(:func:`~newsletter.content.editions.build_edition`,
:func:`~newsletter.content.editing.edit_edition`), so the rules (a breaking
edition carries one story, only drafts change) and their messages are the same.
With several newsletters, the builder chooses the edition's (default: the default
newsletter), and the list and the page name it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.content.articles import get_articles, list_articles
from newsletter.content.editing import delete_edition, duplicate_edition, edit_edition
from newsletter.content.editions import build_edition, get_edition, list_editions
from newsletter.content.models import EditionKind
from newsletter.core.db import utcnow
from newsletter.core.errors import InputError, StateError
from newsletter.scheduling.store import (
    ScheduleStatus,
    add_schedule,
    attach_edition,
    attached_to,
    detach_edition,
    list_schedules,
)
from newsletter.scheduling.timing import Timing, get_zone, parse_at
from newsletter.web.admin import previews
from newsletter.web.admin.audit import record
from newsletter.web.admin.context import Visit, admin_of, go, render, view
from newsletter.web.admin.dashboard import edition_line
from newsletter.web.admin.lists import chosen, names_if_several, several
from newsletter.web.admin.roles import Role
from newsletter.web.admin.sending import may_send

__all__ = [
    "SUBJECT_HINT",
    "attach",
    "build",
    "delete",
    "detach",
    "duplicate",
    "edit",
    "edition_page",
    "editions_page",
    "new_page",
    "order_from_form",
    "routes",
    "schedule",
]

_UNSENT = ("draft", "scheduled")
#: subjects longer than this are cut short in most inboxes (and on phones sooner)
SUBJECT_HINT = 60


@view(Role.VIEWER)
async def editions_page(request: Request, visit: Visit) -> Response:
    """GET /admin/editions: every edition, newest first."""
    ctx = admin_of(request)

    def load() -> list[Any]:
        with ctx.engine.connect() as conn:
            return sorted(list_editions(conn), key=lambda e: e.created_at, reverse=True)

    editions = await run_in_threadpool(load)
    return render(
        request,
        "editions.html",
        visit.user,
        title="Editions",
        nav="editions",
        editions=editions,
        newsletters=names_if_several(ctx.settings),
    )


@view(Role.EDITOR)
async def new_page(request: Request, visit: Visit) -> Response:
    """GET /admin/editions/new: pick articles (``?days=N``, default 2), order, lead, lines.

    ``?pick=ID`` (repeated, from the articles page) preselects those stories, in
    that order, whenever they were published.
    """
    days = request.query_params.get("days", "2")
    window = int(days) if days.isdigit() and 0 < int(days) <= 365 else 2
    picked = list(dict.fromkeys(request.query_params.getlist("pick")))[:100]
    ctx = admin_of(request)
    engine = ctx.engine

    def load() -> list[Any]:
        with engine.connect() as conn:
            chosen = get_articles(conn, picked)
            recent = list_articles(conn, since=utcnow() - timedelta(days=window))[:300]
        return chosen + [a for a in recent if a.id not in set(picked)]

    articles = await run_in_threadpool(load)
    return render(
        request,
        "edition_new.html",
        visit.user,
        title="Build an edition",
        nav="editions",
        articles=articles,
        picked=set(picked),
        days=window,
        hint=SUBJECT_HINT,
        newsletters=names_if_several(ctx.settings),
        default_newsletter=ctx.settings.newsletter_list.default.id,
    )


def order_from_form(visit: Visit, candidates: list[str]) -> list[str]:
    """The ids ticked in ``pick``, ordered by their ``pos-<id>`` numbers (ties keep page order)."""
    picked = [i for i in candidates if i in set(visit.values("pick"))]

    def position(item: tuple[int, str]) -> tuple[float, int]:
        index, article_id = item
        text = visit.value(f"pos-{article_id}")
        try:
            return (float(text), index)
        except ValueError:
            return (float(index + 1), index)

    return [a for _, a in sorted(enumerate(picked), key=position)]


@view(Role.EDITOR)
async def build(request: Request, visit: Visit) -> Response:
    """POST /admin/editions/new: build a draft from the chosen articles, for ``newsletter``
    (a configured id; empty: the default newsletter)."""
    ctx = admin_of(request)
    newsletter_id = chosen(ctx.settings, visit.value("newsletter"))
    ids = order_from_form(visit, visit.values("candidate"))
    if not ids:
        raise InputError("choose at least one article", field="articles")
    lead = visit.value("lead") or None
    kind = EditionKind(visit.value("kind", "daily") or "daily")

    def write() -> str:
        with ctx.engine.begin() as conn:
            edition = build_edition(
                conn,
                now=utcnow(),
                article_ids=ids,
                lead=lead if lead in ids else None,
                kind=kind,
                title=visit.value("title") or None,
                subject=visit.value("subject") or None,
                preheader=visit.value("preheader") or None,
                intro=visit.value("intro") or None,
                site_name=ctx.settings.site_name,
                timezone=ctx.settings.timezone,
                newsletter=newsletter_id,
            )
            detail = f"{len(ids)} articles"
            if several(ctx.settings):
                detail += f", newsletter {newsletter_id}"
            record(conn, visit.user.email, "edition.build", edition.id, detail)
            return edition.id

    edition_id = await run_in_threadpool(write)
    return go(request, f"/editions/{edition_id}", "built")


@view(Role.VIEWER)
async def edition_page(request: Request, visit: Visit) -> Response:
    """GET /admin/editions/{id}: its lines and stories (editable while a draft), and actions."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])

    def load() -> tuple[Any, Any, Any, list[Any]]:
        with ctx.engine.connect() as conn:
            edition = get_edition(conn, edition_id)
            line = edition_line(conn, edition) if edition.status.value not in _UNSENT else None
            holder = attached_to(conn, edition.id)
            recurring = [
                s
                for s in list_schedules(conn, (ScheduleStatus.ACTIVE,))
                if s.kind == "cron" and s.newsletter_id == edition.newsletter
            ]
            conn.rollback()
        return edition, line, holder, recurring

    edition, report, holder, recurring = await run_in_threadpool(load)
    return render(
        request,
        "edition.html",
        visit.user,
        title=edition.subject,
        nav="editions",
        e=edition,
        report=report,
        hint=SUBJECT_HINT,
        editable=edition.status.value in ("draft", "scheduled")
        and visit.user.role.at_least(Role.EDITOR),
        can_send=may_send(visit.user, ctx.settings),
        zone=ctx.settings.timezone,
        holder=holder,
        recurring=recurring,
        newsletters=names_if_several(ctx.settings),
    )


@view(Role.EDITOR)
async def edit(request: Request, visit: Visit) -> Response:
    """POST /admin/editions/{id}/edit: lines, order, lead and removals in one go."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])

    def write() -> None:
        with ctx.engine.begin() as conn:
            current = get_edition(conn, edition_id)
            ids = [a.id for a in current.articles()]
            remove = [i for i in visit.values("remove") if i in ids]
            kept = [i for i in ids if i not in remove]
            visit.form["pick"] = kept
            order = order_from_form(visit, kept)
            lead = visit.value("lead") or None
            edit_edition(
                conn,
                edition_id,
                site_name=ctx.settings.site_name,
                timezone=ctx.settings.timezone,
                subject=visit.value("subject") or None,
                preheader=visit.value("preheader") or None,
                intro=visit.value("intro") or None,  # empty keeps the note as it is
                lead=lead if lead in kept and lead != ids[0] else None,
                remove=remove,
                moves=[(a, n) for n, a in enumerate(order, 1)] if order != kept else [],
            )
            record(conn, visit.user.email, "edition.edit", edition_id)

    await run_in_threadpool(write)
    return go(request, f"/editions/{edition_id}", "saved")


@view(Role.EDITOR)
async def delete(request: Request, visit: Visit) -> Response:
    """POST /admin/editions/{id}/delete: delete a draft that never went out."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])

    def write() -> None:
        with ctx.engine.begin() as conn:
            delete_edition(conn, edition_id)
            record(conn, visit.user.email, "edition.delete", edition_id)

    await run_in_threadpool(write)
    return go(request, "/editions", "deleted")


@view(Role.EDITOR)
async def duplicate(request: Request, visit: Visit) -> Response:
    """POST /admin/editions/{id}/duplicate: a new draft with the same stories and lines."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])

    def write() -> str:
        with ctx.engine.begin() as conn:
            copy = duplicate_edition(conn, edition_id, now=utcnow(), timezone=ctx.settings.timezone)
            record(conn, visit.user.email, "edition.duplicate", copy.id, f"from {edition_id}")
            return copy.id

    new_id = await run_in_threadpool(write)
    return go(request, f"/editions/{new_id}", "duplicated")


@view(Role.EDITOR)
async def schedule(request: Request, visit: Visit) -> Response:
    """POST /admin/editions/{id}/schedule: send it once, at a local time in a zone."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])
    zone = visit.value("tz") or ctx.settings.timezone
    get_zone(zone)  # an unknown zone is a one-line InputError
    at = parse_at(visit.value("at").replace("T", " "), zone)
    if at <= utcnow():
        raise InputError("is in the past", field="at")

    def write() -> None:
        with ctx.engine.begin() as conn:
            found = add_schedule(
                conn,
                timing=Timing(kind="once", tz=zone, run_at=at),
                now=utcnow(),
                edition_id=edition_id,
            )
            record(conn, visit.user.email, "edition.schedule", edition_id, found.describe())

    await run_in_threadpool(write)
    return go(request, f"/editions/{edition_id}", "scheduled")


@view(Role.EDITOR)
async def attach(request: Request, visit: Visit) -> Response:
    """POST /admin/editions/{id}/attach: a recurring schedule's next run sends this draft."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])
    chosen = visit.value("schedule")
    if not chosen.isdigit():
        raise InputError("choose a recurring schedule", field="schedule")

    def write() -> None:
        with ctx.engine.begin() as conn:
            found = attach_edition(conn, int(chosen), edition_id, utcnow())
            record(conn, visit.user.email, "edition.attach", edition_id, f"schedule {found.id}")

    await run_in_threadpool(write)
    return go(request, f"/editions/{edition_id}", "attached")


@view(Role.EDITOR)
async def detach(request: Request, visit: Visit) -> Response:
    """POST /admin/editions/{id}/detach: off its recurring schedule, and a draft again."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])

    def write() -> None:
        with ctx.engine.begin() as conn:
            holder = attached_to(conn, edition_id)
            if holder is None:
                raise StateError(f"edition {edition_id} is not attached to a schedule")
            detach_edition(conn, holder.id, utcnow())
            record(conn, visit.user.email, "edition.detach", edition_id, f"schedule {holder.id}")

    await run_in_threadpool(write)
    return go(request, f"/editions/{edition_id}", "detached")


def routes() -> list[Route]:
    """The edition routes (relative to ``/admin``); previews are in :mod:`.previews`."""
    base = "/editions/{edition_id}"
    return [
        Route("/editions", editions_page, methods=["GET"]),
        Route("/editions/new", new_page, methods=["GET"]),
        Route("/editions/new", build, methods=["POST"]),
        *previews.routes(),
        Route(base, edition_page, methods=["GET"]),
        Route(base + "/edit", edit, methods=["POST"]),
        Route(base + "/delete", delete, methods=["POST"]),
        Route(base + "/duplicate", duplicate, methods=["POST"]),
        Route(base + "/schedule", schedule, methods=["POST"]),
        Route(base + "/attach", attach, methods=["POST"]),
        Route(base + "/detach", detach, methods=["POST"]),
    ]
