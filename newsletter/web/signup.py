"""The reader's way in: the signup form and the double opt-in confirmation link.

A signup answers with the same page, after the same work, whatever the
address's state: it is recorded only after the answer is sent, so neither the
page nor its timing tells a stranger who is on the list; the email that follows
differs (a confirm link, or a note to someone already subscribed).
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from newsletter.core.config import Settings
from newsletter.core.db import utcnow
from newsletter.core.errors import InputError, NewsletterError, NotFoundError
from newsletter.delivery.confirmation import (
    Confirmation,
    build_confirmation,
    send_confirmation,
    send_welcome,
    welcome_for,
)
from newsletter.web import subscriptions as subs
from newsletter.web.pages import (
    Section,
    WebContext,
    brand_stylesheet,
    checked_form,
    client_ip,
    context_of,
    first_value,
    log,
    mask_address,
    message_page,
    name_ok,
    page,
    sections_of,
    token_subject,
    topics_of,
)
from subscribers import links, store
from subscribers.addresses import normalise_address
from subscribers.fields import MAX_NAME
from subscribers.model import Consent, Subscriber, SubscriberStatus
from subscribers.tokens import Purpose, TokenExpiredError

__all__ = [
    "confirm",
    "confirm_page",
    "consent_statement",
    "routes",
    "signup",
    "signup_form",
]


# --- signup -----------------------------------------------------------------


def _signup_form(
    request: Request,
    sections: list[Section],
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, object] | None = None,
) -> HTMLResponse:
    settings = context_of(request).settings
    return page(
        request,
        "signup.html",
        status_code,
        sections=sections,
        errors=errors or {},
        values=values or _blank(settings),
        consent_statement=consent_statement(_what_is_agreed(settings)),
        # one newsletter: no choice to show
        newsletters=[] if len(settings.newsletter_list) < 2 else list(settings.newsletter_list),
    )


def _blank(settings: Settings, email: str = "") -> dict[str, object]:
    return {
        "email": email,
        "name": "",
        "receive": "all",
        "topics": [],
        "consent": False,
        "newsletters": [settings.newsletter_list.default.id],
    }


def _what_is_agreed(settings: Settings) -> str:
    """What the consent box names: the one newsletter, or the ones ticked above it."""
    if len(settings.newsletter_list) < 2:
        return settings.newsletter_name
    return f"the newsletters I ticked from {settings.site_name}"


def consent_statement(newsletter_name: str) -> str:
    """The words a reader agrees to by ticking the consent box (recorded with the signup)."""
    return (
        f"I agree to receive {newsletter_name} by email. We record when and from "
        "where you agreed, use your address only to send you the newsletter, and you can "
        "unsubscribe at any time."
    )


async def signup_form(request: Request) -> Response:
    """GET /: the signup form: everything, or the sections a reader ticks (``signup_sections``).

    ``?email=`` pre-fills the address, so the portal's own signup box can lead here.
    """
    prefill = request.query_params.get("email", "")[:320]
    ctx = context_of(request)
    return _signup_form(request, await sections_of(ctx), values=_blank(ctx.settings, prefill))


def _note(ctx: WebContext, outcome: subs.SignupOutcome, topics: dict[str, str]) -> Confirmation:
    person = outcome.subscriber
    if outcome.kind is subs.SignupKind.CONFIRMED:
        # already subscribed: a note with their preferences link, no confirm link
        preferences = links.preferences_url(ctx.settings, person.id, person.email)
        return Confirmation(person.email, person.name, None, preferences)
    return Confirmation(
        person.email,
        person.name,
        links.confirm_url(ctx.settings, person.id, person.email),
        topics=tuple(topics[t] for t in sorted(outcome.topics) if t in topics),
    )


async def _record_and_notify(
    ctx: WebContext,
    email: str,
    name: str,
    chosen: frozenset[str],
    consent: Consent,
    topics: dict[str, str],
    newsletters: frozenset[str],
) -> None:
    """Record the signup and send its email, after the response (see :func:`signup`)."""

    def record() -> subs.SignupOutcome | None:
        for attempt in (1, 2):
            try:
                with ctx.engine.begin() as conn:
                    return subs.sign_up(
                        conn,
                        secret=ctx.settings.secret(),
                        email=email,
                        name=name,
                        topics=chosen,
                        consent=consent,
                        statement=consent_statement(_what_is_agreed(ctx.settings)),
                        newsletters=newsletters,
                    )
            except IntegrityError:
                # two signups of one new address raced (PostgreSQL): the second now finds it
                if attempt == 2:
                    raise
        return None

    try:
        outcome = await run_in_threadpool(record)
        if outcome is None or not await run_in_threadpool(
            ctx.email_limiter.allow, outcome.subscriber.email.casefold()
        ):
            return
        message = build_confirmation(ctx.settings, _note(ctx, outcome, topics))
        await send_confirmation(ctx.settings, message)
    except NewsletterError as exc:
        log.warning("signup not completed: %s", exc)
    except Exception as exc:  # the reader already has their page: log it, one line
        log.error("signup not completed: %s", type(exc).__name__)


async def signup(request: Request) -> Response:
    """POST /signup: a pending subscriber with a consent record, and a confirmation email.

    The answer depends on the form alone, never on what the list holds: it is
    sent before the signup is recorded, and recording it (which does different
    work for a new, a pending and a confirmed address) and emailing happen
    after the response, in :func:`_record_and_notify`. So neither the page nor
    its timing tells a stranger who is on the list.
    """
    ctx = context_of(request)
    form = await checked_form(request)
    if isinstance(form, HTMLResponse):
        return form
    ip = client_ip(request)
    if not await run_in_threadpool(ctx.signup_limiter.allow, ip):
        return message_page(
            request, "Too many signups", "Please wait a few minutes and try again.", 429
        )
    sections = await sections_of(ctx)
    # a label for every slug the form may carry: the offered sections and, for the
    # portal's own signup box, any topic the articles know
    topics = {**await topics_of(ctx), **{s.slug: s.label for s in sections}}
    chosen = [t for t in form.get("topic", []) if t]
    picked = [n for n in form.get("newsletter", []) if n]
    receive = first_value(form, "receive") or ("chosen" if chosen else "all")
    values: dict[str, object] = {
        "email": first_value(form, "email"),
        "name": first_value(form, "name"),
        "receive": receive,
        "topics": chosen,
        "consent": bool(first_value(form, "consent")),
        "newsletters": picked,
    }
    offered = ctx.settings.newsletter_list
    wanted = frozenset(picked)
    if len(offered) < 2:
        wanted = frozenset([offered.default.id])  # no choice shown: the one there is
    errors: dict[str, str] = {}
    try:
        address = normalise_address(str(values["email"]))
    except InputError:
        errors["email"] = "Enter an email address such as name@example.com."
    name = (form.get("name") or [""])[0]
    if not name_ok(name):
        errors["name"] = f"Enter a name on one line, at most {MAX_NAME} characters."
    if receive not in {"all", "chosen"}:
        errors["receive-all"] = "Choose everything, or the sections you want."
    elif receive == "all":
        chosen = []  # everything: no topic filter, whatever was ticked
    elif not chosen:
        errors["topics"] = "Choose at least one section, or choose everything."
    if any(t not in topics for t in chosen):
        errors["topics"] = "Choose sections from the list."
    if any(n not in offered.ids for n in wanted):
        errors["newsletters"] = "Choose newsletters from the list."
    elif not wanted:
        errors["newsletters"] = "Choose at least one newsletter."
    if not values["consent"]:
        errors["consent"] = "Tick the box to agree to receive the newsletter."
    if errors:
        return _signup_form(request, sections, 400, errors, values)

    consent = Consent(source="web", at=utcnow(), ip=ip)
    background = BackgroundTask(
        _record_and_notify, ctx, address.email, name, frozenset(chosen), consent, topics, wanted
    )
    # the same words whatever the list holds: the page never tells who is on it
    return message_page(
        request,
        "Check your inbox",
        f"If {address.email} can receive the newsletter, a message is on its way to it. "
        "Open the link in that message to confirm your subscription.",
        background=background,
    )


# --- confirm ----------------------------------------------------------------
# The emailed link only shows a button: mail scanners that prefetch every link
# (GET) must not confirm an address nobody confirmed. The POST behind the button
# is authenticated by the token and, like every form of the app, CSRF-checked.


def _expired(request: Request) -> Response:
    return message_page(
        request,
        "This link has expired",
        "Confirmation links last seven days. Sign up again and we will send a new one.",
        400,
        link=("/", "Sign up again"),
    )


def _not_waiting(request: Request) -> Response:
    return message_page(
        request,
        "This link is no longer valid",
        "This address is not waiting for confirmation. Sign up again to subscribe.",
        400,
        link=("/", "Sign up again"),
    )


def _subscribed(
    request: Request, person: Subscriber, background: BackgroundTask | None = None
) -> Response:
    settings = context_of(request).settings
    return message_page(
        request,
        "You are subscribed",
        f"Thank you: {person.email} will receive the {settings.site_name} newsletter.",
        link=(links.preferences_url(settings, person.id, person.email), "Choose your topics"),
        background=background,
    )


async def confirm_page(request: Request) -> Response:
    """GET /confirm/{token}: one "Confirm my subscription" button; a GET changes nothing."""
    ctx = context_of(request)
    try:
        subscriber_id = await token_subject(request, Purpose.CONFIRM)
    except TokenExpiredError:
        return _expired(request)

    def load() -> tuple[Subscriber, bool] | None:
        with ctx.engine.connect() as conn:
            try:
                person = subs.get(conn, subscriber_id)
            except NotFoundError:
                return None
            return person, subs.awaits_confirmation(conn, person, utcnow())

    found = await run_in_threadpool(load)
    if found is None:
        return _not_waiting(request)
    person, waiting = found
    if person.status is SubscriberStatus.CONFIRMED:
        return _subscribed(request, person)
    if not waiting:
        return _not_waiting(request)
    return page(
        request,
        "confirm.html",
        address=mask_address(person.email),
        action=request.url.path,
    )


async def confirm(request: Request) -> Response:
    """POST /confirm/{token}: the signup is confirmed (idempotent; CSRF-checked)."""
    ctx = context_of(request)
    try:
        subscriber_id = await token_subject(request, Purpose.CONFIRM)
    except TokenExpiredError:
        return _expired(request)
    form = await checked_form(request)
    if isinstance(form, HTMLResponse):
        return form

    def apply() -> tuple[Subscriber | None, bool]:
        with ctx.engine.begin() as conn:
            before = store.find(conn, subscriber_id)
            person = subs.confirm(
                conn,
                subscriber_id,
                secret=ctx.settings.secret(),
                now=utcnow(),
                ip=client_ip(request),
            )
        # welcomed once: the press that made them confirmed, never a second press
        newly = before is None or before.status is not SubscriberStatus.CONFIRMED
        return person, newly

    person, newly = await run_in_threadpool(apply)
    if person is None or person.status is not SubscriberStatus.CONFIRMED:
        return _not_waiting(request)
    welcome = None
    if newly and ctx.settings.welcome_email:
        welcome = BackgroundTask(_welcome, ctx, person)
    return _subscribed(request, person, background=welcome)


async def _welcome(ctx: WebContext, person: Subscriber) -> None:
    """Send the welcome after the page: a failure is logged (one line), the confirmation stays."""
    try:
        sections = {s.slug: s.label for s in await sections_of(ctx)}
        labels = {**await topics_of(ctx), **sections}
        await send_welcome(ctx.settings, welcome_for(ctx.settings, person, labels))
    except NewsletterError as exc:
        log.warning("welcome email not sent to subscriber %d: %s", person.id, exc)
    except Exception as exc:  # the reader is confirmed and has their page: log it, one line
        log.error("welcome email not sent to subscriber %d: %s", person.id, type(exc).__name__)


def routes() -> list[Route]:
    """The signup and confirmation routes, and the pages' brand stylesheet."""
    return [
        Route("/", signup_form, methods=["GET"]),
        Route("/signup", signup_form, methods=["GET"]),
        Route("/signup", signup, methods=["POST"]),
        Route("/confirm/{token}", confirm_page, methods=["GET"]),
        Route("/confirm/{token}", confirm, methods=["POST"]),
        # the readers' pages' brand colours and font (here, as every page links it)
        Route("/static/brand.css", brand_stylesheet, methods=["GET"]),
    ]
