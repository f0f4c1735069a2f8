"""Subscribers in the console: the list (search, filters, keyset pages), a person, and actions.

Unsubscribing needs an editor; erasing (``newsletter.privacy.erase``: every
table scrubbed, the address suppressed) needs an admin, or an editor when
``NEWSLETTER_CONSOLE_EDITORS_MAY_SEND`` is on. The audit log names people by
id, never by address, so an erasure leaves nothing of them there.

With several newsletters, the list filters by one (``?newsletter=ID``: people
subscribed to it) and a person's page lists their subscriptions, each of which
an editor may end (``subscriber.leave`` in the audit log, naming the newsletter).
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.core.db import utcnow
from newsletter.core.errors import InputError
from newsletter.core.schema import deliveries
from newsletter.privacy import erase, forget_freed
from newsletter.web.admin.audit import record
from newsletter.web.admin.context import Visit, admin_of, go, not_allowed, render, view
from newsletter.web.admin.listing import ListQuery, list_page
from newsletter.web.admin.lists import chosen, names, names_if_several, several
from newsletter.web.admin.roles import Role
from newsletter.web.admin.sending import may_send
from subscribers import store, subscriptions
from subscribers.states import SubscriberStatus

__all__ = [
    "erase_confirm",
    "erase_person",
    "leave_newsletter",
    "list_query",
    "person_page",
    "routes",
    "subscribers_page",
    "unsubscribe_person",
]

_STATUSES = {s.value: s for s in SubscriberStatus}


def list_query(request: Request) -> ListQuery:
    """The list's query from the URL (``q``, ``by``, ``status``, ``topic``, ``newsletter``,
    ``after``); an unknown newsletter id is an :class:`InputError` (a 400)."""
    params = request.query_params
    wanted = params.get("newsletter", "").strip()
    settings = admin_of(request).settings
    by: Literal["email", "name"] = "name" if params.get("by") == "name" else "email"
    return ListQuery(
        q=params.get("q", "")[:320],
        by=by,
        status=_STATUSES.get(params.get("status", "")),
        topic=params.get("topic", "")[:100],
        after=params.get("after", "")[:400],
        newsletter=chosen(settings, wanted) if wanted else "",
    )


@view(Role.VIEWER)
async def subscribers_page(request: Request, visit: Visit) -> Response:
    """GET /admin/subscribers: 50 a page, newest first or by the searched prefix."""
    engine = admin_of(request).engine
    query = list_query(request)

    def load() -> Any:
        with engine.connect() as conn:
            page = list_page(conn, query)
            conn.rollback()
        return page

    page = await run_in_threadpool(load)
    kept = ("q", "by", "status", "topic", "newsletter")
    keep = {k: v for k, v in request.query_params.items() if k in kept and v}
    settings = admin_of(request).settings
    return render(
        request,
        "subscribers.html",
        visit.user,
        title="Subscribers",
        nav="subscribers",
        page=page,
        query=query,
        keep=keep,
        statuses=list(_STATUSES),
        newsletters=names_if_several(settings),
    )


def _person_id(request: Request) -> int:
    return int(request.path_params["subscriber_id"])


@view(Role.VIEWER)
async def person_page(request: Request, visit: Visit) -> Response:
    """GET /admin/subscribers/{id}: everything held, their history and their last deliveries."""
    ctx = admin_of(request)
    person_id = _person_id(request)

    def load() -> tuple[Any, Any, Any, Any]:
        with ctx.engine.connect() as conn:
            person = store.get(conn, person_id)
            held = subscriptions.of(conn, person_id)
            history = store.events(conn, person_id)
            d = deliveries.c
            sent = conn.execute(
                sa.select(d.edition_id, d.status, d.attempts, d.last_code, d.updated_at)
                .where(d.subscriber_id == person_id)
                .order_by(d.updated_at.desc())
                .limit(50)
            ).all()
            conn.rollback()
        return person, history, sent, held

    person, history, sent, held = await run_in_threadpool(load)
    return render(
        request,
        "subscriber.html",
        visit.user,
        title=person.name or person.email,
        nav="subscribers",
        p=person,
        history=history,
        sent=sent,
        may_erase=may_send(visit.user, ctx.settings),
        confirm=False,
        held=held if several(ctx.settings) else [],
        newsletters=names(ctx.settings),
    )


@view(Role.EDITOR)
async def unsubscribe_person(request: Request, visit: Visit) -> Response:
    """POST /admin/subscribers/{id}/unsubscribe: nothing more is sent to them."""
    ctx = admin_of(request)
    person_id = _person_id(request)

    def write() -> None:
        with ctx.engine.begin() as conn:
            store.unsubscribe(conn, person_id, now=utcnow(), source="console")
            record(conn, visit.user.email, "subscriber.unsubscribe", f"subscriber {person_id}")

    await run_in_threadpool(write)
    return go(request, f"/subscribers/{person_id}", "unsubscribed")


@view(Role.EDITOR)
async def leave_newsletter(request: Request, visit: Visit) -> Response:
    """POST /admin/subscribers/{id}/leave: end their subscription to one newsletter
    (``newsletter``, a configured id); their other newsletters and status stay."""
    ctx = admin_of(request)
    person_id = _person_id(request)
    if not visit.value("newsletter"):
        raise InputError("choose a newsletter", field="newsletter")
    newsletter_id = chosen(ctx.settings, visit.value("newsletter"))

    def write() -> None:
        with ctx.engine.begin() as conn:
            store.get(conn, person_id)  # a 404 for nobody
            left = subscriptions.unsubscribe(
                conn, person_id, [newsletter_id], now=utcnow(), source="console"
            )
            if left:
                record(
                    conn,
                    visit.user.email,
                    "subscriber.leave",
                    f"subscriber {person_id}",
                    f"newsletter {newsletter_id}",
                )

    await run_in_threadpool(write)
    return go(request, f"/subscribers/{person_id}", "left")


def _erase_forbidden(request: Request, visit: Visit) -> Response:
    return not_allowed(
        request,
        visit.user,
        "Erasing a person needs an admin "
        "(or an editor, when NEWSLETTER_CONSOLE_EDITORS_MAY_SEND is on).",
    )


@view(Role.EDITOR)
async def erase_confirm(request: Request, visit: Visit) -> Response:
    """GET /admin/subscribers/{id}/erase: what erasing does, and the button."""
    ctx = admin_of(request)
    if not may_send(visit.user, ctx.settings):
        return _erase_forbidden(request, visit)
    person_id = _person_id(request)

    def load() -> Any:
        with ctx.engine.connect() as conn:
            return store.get(conn, person_id)

    person = await run_in_threadpool(load)
    return render(
        request,
        "subscriber.html",
        visit.user,
        title=f"Erase {person.email}?",
        nav="subscribers",
        p=person,
        history=[],
        sent=[],
        may_erase=True,
        confirm=True,
    )


@view(Role.EDITOR)
async def erase_person(request: Request, visit: Visit) -> Response:
    """POST /admin/subscribers/{id}/erase: erase everywhere and suppress the address."""
    ctx = admin_of(request)
    if not may_send(visit.user, ctx.settings):
        return _erase_forbidden(request, visit)
    person_id = _person_id(request)
    if visit.value("confirm") != "yes":
        return go(request, f"/subscribers/{person_id}/erase")
    secret = ctx.settings.secret()

    def write() -> None:
        with ctx.engine.begin() as conn:
            person = store.get(conn, person_id)
            erase(conn, person.email, secret=secret, now=utcnow())
            record(conn, visit.user.email, "subscriber.erase", f"subscriber {person_id}")
        forget_freed(ctx.engine)

    await run_in_threadpool(write)
    return go(request, "/subscribers", "erased")


def routes() -> list[Route]:
    """The subscriber routes (relative to ``/admin``); import and export are in :mod:`.imports`."""
    base = "/subscribers/{subscriber_id:int}"
    return [
        Route("/subscribers", subscribers_page, methods=["GET"]),
        Route(base, person_page, methods=["GET"]),
        Route(base + "/unsubscribe", unsubscribe_person, methods=["POST"]),
        Route(base + "/leave", leave_newsletter, methods=["POST"]),
        Route(base + "/erase", erase_confirm, methods=["GET"]),
        Route(base + "/erase", erase_person, methods=["POST"]),
    ]
