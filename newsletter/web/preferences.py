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
    token_claims,
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


def _label(request: Request, newsletter: str | None) -> str:
    """How the pages name a newsletter: its configured name (the id if it is gone)."""
    settings = context_of(request).settings
    if newsletter is None and len(settings.newsletter_list) < 2:
        return f"the {settings.site_name} newsletter"
    if newsletter is None:
        return f"any {settings.site_name} newsletter"
    found = next((n for n in settings.newsletter_list if n.id == newsletter), None)
    return found.name if found is not None else newsletter


async def unsubscribe_page(request: Request) -> Response:
    """GET /unsubscribe/{token}: one button for the link's newsletter, one for all of
    them; nothing changes until one is pressed."""
    ctx = context_of(request)
    subscriber_id, newsletter = await token_claims(request, Purpose.UNSUBSCRIBE)

    def load() -> tuple[Subscriber, frozenset[str]] | None:
        with ctx.engine.connect() as conn:
            try:
                return subs.get(conn, subscriber_id), subs.subscribed_to(conn, subscriber_id)
            except NotFoundError:
                return None

    found = await run_in_threadpool(load)
    person, held = found if found is not None else (None, frozenset[str]())
    receiving = person is not None and person.status is SubscriberStatus.CONFIRMED
    return page(
        request,
        "unsubscribe.html",
        address=mask_address(person.email) if person else None,
        already=not receiving or (newsletter is not None and newsletter not in held),
        newsletter=_label(request, newsletter),
        several=len(ctx.settings.newsletter_list) > 1 and newsletter is not None,
        action=request.url.path,
    )


async def unsubscribe(request: Request) -> Response:
    """POST /unsubscribe/{token}: unsubscribe at once, answering 200.

    RFC 8058: a mail client posts ``List-Unsubscribe=One-Click`` with no cookie,
    no CSRF token and no script; the signed token in the URL is the authority. It
    leaves the token's newsletter (every one for a token naming none); the page's
    second button posts ``scope=all`` and leaves every newsletter.
    """
    ctx = context_of(request)
    subscriber_id, newsletter = await token_claims(request, Purpose.UNSUBSCRIBE)
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
    if not one_click and b"scope=all" in body:
        newsletter = None

    def apply() -> frozenset[str]:
        with ctx.engine.begin() as conn:
            subs.unsubscribe(conn, subscriber_id, utcnow(), source, newsletter)
            try:
                person = subs.get(conn, subscriber_id)
            except NotFoundError:
                return frozenset()
            if person.status is not SubscriberStatus.CONFIRMED:
                return frozenset()
            return subs.subscribed_to(conn, subscriber_id)

    left = await run_in_threadpool(apply)
    message = f"You will not receive {_label(request, newsletter)} any more."
    if left:
        names = ", ".join(_label(request, n) for n in sorted(left))
        message += f" You still receive: {names}."
    return message_page(
        request,
        "You are unsubscribed",
        message,
        link=("/", "Changed your mind? Sign up again"),
    )


# --- preferences ----------------------------------------------------------------


def _preferences_form(
    request: Request,
    person: Subscriber,
    topics: dict[str, str],
    held: frozenset[str],
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    offered = context_of(request).settings.newsletter_list
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
        # the newsletters to tick, while there is a choice and the person is on the list
        newsletters=list(offered) if len(offered) > 1 and person.status.is_active else [],
        held=held,
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

    def load() -> tuple[Subscriber, dict[str, str], frozenset[str]] | None:
        with ctx.engine.connect() as conn:
            try:
                person = subs.get(conn, subscriber_id)
            except NotFoundError:
                return None
            held = subs.subscribed_to(conn, subscriber_id)
            return person, subs.available_topics(conn), held

    found = await run_in_threadpool(load)
    if found is None:
        return _gone(request)
    return _preferences_form(request, *found)


async def preferences(request: Request) -> Response:
    """POST /preferences/{token}: save name, topics and newsletters, or unsubscribe from
    every newsletter (CSRF-checked). An id not offered is refused, and so is ticking no
    newsletter at all (the page's "unsubscribe from all" button says what that means)."""
    ctx = context_of(request)
    subscriber_id = await token_subject(request, Purpose.PREFERENCES)
    form = await checked_form(request)
    if isinstance(form, HTMLResponse):
        return form
    action = first_value(form, "action") or "save"
    name = (form.get("name") or [""])[0]
    chosen = frozenset(t for t in form.get("topic", []) if t)
    offered = ctx.settings.newsletter_list.ids
    picked = frozenset(n for n in form.get("newsletter", []) if n)
    # only a form that showed the newsletters may change them
    choosing = bool(first_value(form, "newsletters-shown")) and len(offered) > 1

    def apply() -> tuple[Subscriber, dict[str, str], frozenset[str], dict[str, str]] | None:
        with ctx.engine.begin() as conn:
            try:
                person = subs.get(conn, subscriber_id)
            except NotFoundError:
                return None
            topics = subs.available_topics(conn)
            held = subs.subscribed_to(conn, subscriber_id)
            errors: dict[str, str] = {}
            if action == "unsubscribe":
                subs.unsubscribe(conn, subscriber_id, utcnow(), "preferences")
                return subs.get(conn, subscriber_id), topics, frozenset(), errors
            if not name_ok(name):
                errors["name"] = f"Enter a name on one line, at most {MAX_NAME} characters."
            if any(t not in topics and t not in person.topics for t in chosen):
                errors["topics"] = "Choose topics from the list."
            if choosing and any(n not in offered for n in picked):
                errors["newsletters"] = "Choose newsletters from the list."
            elif choosing and person.status.is_active and not picked:
                errors["newsletters"] = (
                    'Choose at least one newsletter, or use "Unsubscribe from all" below.'
                )
            if errors:
                return person, topics, held, errors
            person = subs.update_preferences(
                conn, subscriber_id, name=name, topics=chosen, now=utcnow()
            )
            if choosing and person.status.is_active:
                subs.choose_newsletters(conn, subscriber_id, picked, offered, utcnow())
                held = subs.subscribed_to(conn, subscriber_id)
            return person, topics, held, errors

    result = await run_in_threadpool(apply)
    if result is None:
        return _gone(request)
    person, topics, held, errors = result
    if errors:
        return _preferences_form(request, person, topics, held, 400, errors)
    if action == "unsubscribe":
        notice = "You are unsubscribed. You will not receive any newsletter from us any more."
    else:
        notice = "Your preferences are saved."
    return _preferences_form(request, person, topics, held, notice=notice)


def routes() -> list[Route]:
    """The unsubscribe and preferences routes."""
    return [
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
        Route("/preferences/{token}", preferences_page, methods=["GET"]),
        Route("/preferences/{token}", preferences, methods=["POST"]),
    ]
