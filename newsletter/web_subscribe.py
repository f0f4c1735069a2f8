"""The reader's pages: sign up, confirm, unsubscribe (RFC 8058 one-click) and preferences.

Links carry signed tokens (``subscribers.tokens``); a bad, tampered or expired
token is a friendly 400 page. A signup answers with the same page whatever the
address's state, so the form never tells a stranger who is on the list.
"""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from newsletter import web_subscribers as subs
from newsletter.confirmation import Confirmation, build_confirmation, send_confirmation
from newsletter.db import utcnow
from newsletter.errors import InputError, NewsletterError, NotFoundError
from newsletter.web_pages import WebContext, client_ip, context_of, log, message_page, page
from newsletter.web_security import FormError, read_form
from subscribers import links
from subscribers.addresses import normalise_address
from subscribers.fields import MAX_NAME, clean_name
from subscribers.model import Consent, Subscriber, SubscriberStatus
from subscribers.tokens import Purpose, TokenExpiredError, verify_token

__all__ = ["routes"]

_ONE_CLICK_MAX = 64 * 1024


def _first(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0].strip()


def _name_ok(name: str) -> bool:
    try:
        clean_name(name)
    except InputError:
        return False
    return True


def _mask(email: str) -> str:
    # enough to recognise one's own address, not enough to harvest it from a forwarded link
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}•••@{domain}"


def _bad_form(request: Request, problem: str) -> HTMLResponse:
    return message_page(
        request,
        "This form could not be sent",
        f"{problem} Please reload the page and try again.",
        400,
        link=("/", "Back to the signup form"),
    )


async def _subscriber_from(request: Request, purpose: Purpose) -> int:
    """The subscriber id in the path's token (raises TokenError, shown as a 400 page)."""
    ctx = context_of(request)
    token = str(request.path_params["token"])
    return verify_token(ctx.settings.secret(), purpose, token)


async def _topics(ctx: WebContext) -> dict[str, str]:
    def query() -> dict[str, str]:
        with ctx.engine.connect() as conn:
            return subs.available_topics(conn)

    return await run_in_threadpool(query)


# --- signup -----------------------------------------------------------------


def _signup_form(
    request: Request,
    topics: dict[str, str],
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, object] | None = None,
) -> HTMLResponse:
    return page(
        request,
        "signup.html",
        status_code,
        topics=topics,
        errors=errors or {},
        values=values or {"email": "", "name": "", "topics": [], "consent": False},
    )


async def signup_form(request: Request) -> Response:
    """GET /: the signup form, with a checkbox per topic found in the articles."""
    return _signup_form(request, await _topics(context_of(request)))


async def _send_quietly(ctx: WebContext, confirmation: Confirmation) -> None:
    # runs after the response: its success or failure must not change what the page said
    try:
        message = build_confirmation(ctx.settings, confirmation)
        await send_confirmation(ctx.settings, message)
    except NewsletterError as exc:
        log.warning("confirmation email not sent: %s", exc)


async def signup(request: Request) -> Response:
    """POST /signup: a pending subscriber with a consent record, and a confirmation email."""
    ctx = context_of(request)
    try:
        form = await read_form(request)
    except FormError as exc:
        return _bad_form(request, f"{exc}.")
    if not ctx.csrf.check(request, form):
        return _bad_form(request, "The form had expired or came from another site.")
    ip = client_ip(request)
    if not ctx.signup_limiter.allow(ip):
        return message_page(
            request, "Too many signups", "Please wait a few minutes and try again.", 429
        )
    topics = await _topics(ctx)
    chosen = [t for t in form.get("topic", []) if t]
    values: dict[str, object] = {
        "email": _first(form, "email"),
        "name": _first(form, "name"),
        "topics": chosen,
        "consent": bool(_first(form, "consent")),
    }
    errors: dict[str, str] = {}
    try:
        address = normalise_address(str(values["email"]))
    except InputError:
        errors["email"] = "Enter an email address such as name@example.com."
    name = (form.get("name") or [""])[0]
    if not _name_ok(name):
        errors["name"] = f"Enter a name on one line, at most {MAX_NAME} characters."
    if any(t not in topics for t in chosen):
        errors["topics"] = "Choose topics from the list."
    if not values["consent"]:
        errors["consent"] = "Tick the box to agree to receive the newsletter."
    if errors:
        return _signup_form(request, topics, 400, errors, values)

    now = utcnow()
    consent = Consent(source="web", at=now, ip=ip)

    def record() -> subs.SignupOutcome:
        with ctx.engine.begin() as conn:
            return subs.sign_up(
                conn,
                secret=ctx.settings.secret(),
                email=address.email,
                name=name,
                topics=frozenset(chosen),
                consent=consent,
            )

    outcome = await run_in_threadpool(record)
    person = outcome.subscriber
    background = None
    if ctx.email_limiter.allow(person.email.casefold()):
        if outcome.kind is subs.SignupKind.CONFIRMED:
            note = Confirmation(
                person.email,
                person.name,
                None,
                links.preferences_url(ctx.settings, person.id),
            )
        else:
            note = Confirmation(
                person.email,
                person.name,
                links.confirm_url(ctx.settings, person.id),
                topics=tuple(topics[t] for t in sorted(person.topics) if t in topics),
            )
        background = BackgroundTask(_send_quietly, ctx, note)
    # the same words whatever was found: the page never tells who is on the list
    return message_page(
        request,
        "Check your inbox",
        f"If {address.email} can receive the newsletter, a message is on its way to it. "
        "Open the link in that message to confirm your subscription.",
        background=background,
    )


# --- confirm ----------------------------------------------------------------


async def confirm(request: Request) -> Response:
    """GET /confirm/{token}: a pending subscriber becomes confirmed (idempotent)."""
    ctx = context_of(request)
    try:
        subscriber_id = await _subscriber_from(request, Purpose.CONFIRM)
    except TokenExpiredError:
        return message_page(
            request,
            "This link has expired",
            "Confirmation links last seven days. Sign up again and we will send a new one.",
            400,
            link=("/", "Sign up again"),
        )

    def apply() -> Subscriber | None:
        with ctx.engine.begin() as conn:
            try:
                person = subs.get(conn, subscriber_id)
            except NotFoundError:
                return None
            if person.status is SubscriberStatus.PENDING:
                return subs.confirm(conn, subscriber_id, utcnow(), client_ip(request))
            return person

    person = await run_in_threadpool(apply)
    if person is None or person.status is not SubscriberStatus.CONFIRMED:
        return message_page(
            request,
            "This link is no longer valid",
            "This address is not waiting for confirmation. Sign up again to subscribe.",
            400,
            link=("/", "Sign up again"),
        )
    return message_page(
        request,
        "You are subscribed",
        f"Thank you: {person.email} will receive the {ctx.settings.site_name} newsletter.",
        link=(links.preferences_url(ctx.settings, person.id), "Choose your topics"),
    )


# --- unsubscribe ----------------------------------------------------------------


async def unsubscribe_page(request: Request) -> Response:
    """GET /unsubscribe/{token}: one button; nothing changes until it is pressed."""
    ctx = context_of(request)
    subscriber_id = await _subscriber_from(request, Purpose.UNSUBSCRIBE)

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
        address=_mask(person.email) if person else None,
        already=person is None or person.status is not SubscriberStatus.CONFIRMED,
        action=request.url.path,
    )


async def unsubscribe(request: Request) -> Response:
    """POST /unsubscribe/{token}: unsubscribe at once, answering 200.

    RFC 8058: a mail client posts ``List-Unsubscribe=One-Click`` with no cookie,
    no CSRF token and no script; the signed token in the URL is the authority.
    """
    ctx = context_of(request)
    subscriber_id = await _subscriber_from(request, Purpose.UNSUBSCRIBE)
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
        address=person.email,
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
    subscriber_id = await _subscriber_from(request, Purpose.PREFERENCES)

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
    subscriber_id = await _subscriber_from(request, Purpose.PREFERENCES)
    try:
        form = await read_form(request)
    except FormError as exc:
        return _bad_form(request, f"{exc}.")
    if not ctx.csrf.check(request, form):
        return _bad_form(request, "The form had expired or came from another site.")
    action = _first(form, "action") or "save"
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
            if not _name_ok(name):
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
    """The reader's routes."""
    return [
        Route("/", signup_form, methods=["GET"]),
        Route("/signup", signup_form, methods=["GET"]),
        Route("/signup", signup, methods=["POST"]),
        Route("/confirm/{token}", confirm, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
        Route("/preferences/{token}", preferences_page, methods=["GET"]),
        Route("/preferences/{token}", preferences, methods=["POST"]),
    ]
