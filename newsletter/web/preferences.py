"""The reader's way out and around: unsubscribe (RFC 8058 one-click) and preferences.

Both pages are reached by signed links from every email. The one-click POST is
authenticated by its token alone (a mail client sends no cookie); the
preferences forms are also CSRF-checked.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from newsletter.core.db import utcnow
from newsletter.core.errors import NotFoundError
from newsletter.web import subscriptions as subs
from newsletter.web.pages import (
    checked_form,
    context_of,
    first_value,
    mask_address,
    message_page,
    name_ok,
    page,
    token_subject,
)
from subscribers.fields import MAX_NAME
from subscribers.model import Subscriber, SubscriberStatus
from subscribers.tokens import Purpose

__all__ = [
    "preferences",
    "preferences_page",
    "routes",
    "unsubscribe",
    "unsubscribe_page",
]

_ONE_CLICK_MAX = 64 * 1024


# --- unsubscribe ----------------------------------------------------------------


async def unsubscribe_page(request: Request) -> Response:
    """GET /unsubscribe/{token}: one button; nothing changes until it is pressed."""
    ctx = context_of(request)
    subscriber_id = await token_subject(request, Purpose.UNSUBSCRIBE)

    def load() -> Subscriber | None:
        with ctx.engine.connect() as conn:
            try:
                return subs.get(conn, subscriber_id)
            except NotFoundError:
                return None

    person = await run_in_threadpool(load)
    return page(
        request,
        "unsubscribe.html",
        address=mask_address(person.email) if person else None,
        already=person is None or person.status is not SubscriberStatus.CONFIRMED,
        action=request.url.path,
    )


async def unsubscribe(request: Request) -> Response:
    """POST /unsubscribe/{token}: unsubscribe at once, answering 200.

    RFC 8058: a mail client posts ``List-Unsubscribe=One-Click`` with no cookie,
    no CSRF token and no script; the signed token in the URL is the authority.
    """
    ctx = context_of(request)
    subscriber_id = await token_subject(request, Purpose.UNSUBSCRIBE)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _ONE_CLICK_MAX:
            break
    # RFC 8058 allows the urlencoded form (Gmail) and multipart/form-data (the RFC's example)
    one_click = b"List-Unsubscribe=One-Click" in body or (
        b'name="List-Unsubscribe"' in body and b"One-Click" in body
    )
    source = "one-click" if one_click else "web"

    def apply() -> None:
        with ctx.engine.begin() as conn:
            subs.unsubscribe(conn, subscriber_id, utcnow(), source)

    await run_in_threadpool(apply)
    return message_page(
        request,
        "You are unsubscribed",
        f"You will not receive the {ctx.settings.site_name} newsletter any more.",
        link=("/", "Changed your mind? Sign up again"),
    )


# --- preferences ----------------------------------------------------------------


def _preferences_form(
    request: Request,
    person: Subscriber,
    topics: dict[str, str],
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    shown = dict(topics)
    for slug in person.topics:  # a topic no article carries any more stays visible
        shown.setdefault(slug, slug.replace("-", " ").capitalize())
    return page(
        request,
        "preferences.html",
        status_code,
        person=person,
        address=mask_address(person.email),  # the link never expires: show no full address
        subscribed=person.status is SubscriberStatus.CONFIRMED,
        topics=shown,
        chosen=sorted(person.topics),
        errors=errors or {},
        notice=notice,
        action=request.url.path,
    )


def _gone(request: Request) -> HTMLResponse:
    return message_page(
        request,
        "We hold nothing for this link",
        "This address is no longer on our list.",
        404,
        link=("/", "Sign up"),
    )


async def preferences_page(request: Request) -> Response:
    """GET /preferences/{token}: the reader's name and topics, and a way out."""
    ctx = context_of(request)
    subscriber_id = await token_subject(request, Purpose.PREFERENCES)

    def load() -> tuple[Subscriber, dict[str, str]] | None:
        with ctx.engine.connect() as conn:
            try:
                return subs.get(conn, subscriber_id), subs.available_topics(conn)
            except NotFoundError:
                return None

    found = await run_in_threadpool(load)
    if found is None:
        return _gone(request)
    return _preferences_form(request, *found)


async def preferences(request: Request) -> Response:
    """POST /preferences/{token}: save name and topics, or unsubscribe (CSRF-checked)."""
    ctx = context_of(request)
    subscriber_id = await token_subject(request, Purpose.PREFERENCES)
    form = await checked_form(request)
    if isinstance(form, HTMLResponse):
        return form
    action = first_value(form, "action") or "save"
    name = (form.get("name") or [""])[0]
    chosen = frozenset(t for t in form.get("topic", []) if t)

    def apply() -> tuple[Subscriber, dict[str, str], dict[str, str]] | None:
        with ctx.engine.begin() as conn:
            try:
                person = subs.get(conn, subscriber_id)
            except NotFoundError:
                return None
            topics = subs.available_topics(conn)
            errors: dict[str, str] = {}
            if action == "unsubscribe":
                subs.unsubscribe(conn, subscriber_id, utcnow(), "preferences")
                return subs.get(conn, subscriber_id), topics, errors
            if not name_ok(name):
                errors["name"] = f"Enter a name on one line, at most {MAX_NAME} characters."
            if any(t not in topics and t not in person.topics for t in chosen):
                errors["topics"] = "Choose topics from the list."
            if errors:
                return person, topics, errors
            person = subs.update_preferences(
                conn, subscriber_id, name=name, topics=chosen, now=utcnow()
            )
            return person, topics, errors

    result = await run_in_threadpool(apply)
    if result is None:
        return _gone(request)
    person, topics, errors = result
    if errors:
        return _preferences_form(request, person, topics, 400, errors)
    if action == "unsubscribe":
        notice = "You are unsubscribed. You will not receive the newsletter any more."
    else:
        notice = "Your preferences are saved."
    return _preferences_form(request, person, topics, notice=notice)


def routes() -> list[Route]:
    """The unsubscribe and preferences routes."""
    return [
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
        Route("/preferences/{token}", preferences_page, methods=["GET"]),
        Route("/preferences/{token}", preferences, methods=["POST"]),
    ]
