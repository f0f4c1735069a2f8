"""What every web handler shares: the app's context and how a page is rendered.

Every page goes through :func:`page`, which adds the site's name, the CSRF
token of its forms (setting the cookie when the reader has none) and renders a
template from ``templates/web`` with autoescape on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.content.render import Renderer
from newsletter.core.config import Settings
from newsletter.core.errors import InputError
from newsletter.core.schema import articles as articles_table
from newsletter.core.times import zone_info
from newsletter.core.topics import normalise_topic
from newsletter.web import subscriptions as subs
from newsletter.web.csrf import Csrf
from newsletter.web.forms import FormError, read_form
from newsletter.web.limits import RequestLimiter
from newsletter.web.templates import web_environment
from subscribers.addresses import mask_address
from subscribers.fields import clean_name
from subscribers.links import verify_scoped_link
from subscribers.tokens import Purpose, TokenOwnerGoneError

__all__ = [
    "MAX_SECTIONS",
    "Section",
    "WebContext",
    "bad_form",
    "brand_stylesheet",
    "checked_form",
    "client_ip",
    "context_of",
    "first_value",
    "long_date",
    "mask_address",
    "message_page",
    "name_ok",
    "page",
    "root_of",
    "sections_of",
    "token_claims",
    "token_subject",
    "topics_of",
]

log = logging.getLogger("newsletter.web.app")


@dataclass(frozen=True)
class Section:
    """One choice on the signup page: a topic slug, its label and a one-line description."""

    slug: str
    label: str
    description: str = ""


@dataclass
class WebContext:
    """The settings, database and defences one app instance works with."""

    settings: Settings
    engine: Engine
    csrf: Csrf
    renderer: Renderer
    # signups per client address, and confirmation emails per address (no mail bombing)
    signup_limiter: RequestLimiter
    email_limiter: RequestLimiter
    # the topic list scans the articles; a busy signup page reuses it for a minute
    topics_cache: tuple[float, dict[str, str]] | None = None
    sections_cache: tuple[float, list[Section]] | None = None


def context_of(request: Request) -> WebContext:
    """The :class:`WebContext` of the app serving ``request``."""
    ctx: WebContext = request.app.state.web
    return ctx


def client_ip(request: Request) -> str:
    """The client's address: the peer, or what a trusted proxy said (``TrustedProxies``)."""
    return request.client.host if request.client else "unknown"


def root_of(request: Request) -> str:
    """The public path prefix the app is served under ("" at the root)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def long_date(when: datetime | None, zone: str = "UTC") -> str:
    """The one way the readers' pages write a date: "Thursday 26 November 2026" (in ``zone``)."""
    if when is None:
        return ""
    local = when.astimezone(zone_info(zone))
    return f"{local:%A} {local.day} {local:%B %Y}"


@jinja2.pass_context
def _long_date_filter(context: jinja2.runtime.Context, when: datetime | None) -> str:
    return long_date(when, str(context.get("timezone", "UTC")))


def _environment() -> jinja2.Environment:
    env = web_environment()
    env.filters.setdefault("long_date", _long_date_filter)
    return env


def page(
    request: Request,
    template: str,
    status_code: int = 200,
    background: BackgroundTask | None = None,
    **values: Any,
) -> HTMLResponse:
    """Render ``templates/web/<template>`` into a response, with a CSRF token for its forms."""
    ctx = context_of(request)
    nonce, fresh = ctx.csrf.nonce_for(request)
    values.setdefault("notice", None)
    values.setdefault("current", "")  # which navigation link is this page
    settings = ctx.settings
    html = (
        _environment()
        .get_template(template)
        .render(
            site_name=settings.site_name,
            newsletter_name=settings.newsletter_name,
            brand=settings.brand,
            privacy_url=settings.privacy_url,
            schedule_text=settings.schedule_text,
            timezone=settings.timezone,
            language=settings.language,
            direction=settings.direction,
            postal_address=settings.postal_address,
            csrf_token=ctx.csrf.form_token(nonce),
            root=root_of(request),
            **values,
        )
    )
    response = HTMLResponse(html, status_code=status_code, background=background)
    if fresh:
        ctx.csrf.set_cookie(response, request, nonce)
    return response


def message_page(
    request: Request,
    title: str,
    message: str,
    status_code: int = 200,
    *,
    link: tuple[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> HTMLResponse:
    """A page that says one thing (a confirmation, an error), with an optional link onward."""
    return page(
        request,
        "message.html",
        status_code,
        background,
        title=title,
        message=message,
        link=link,
    )


def first_value(form: dict[str, list[str]], name: str) -> str:
    """The first value of a form field, stripped ("" when absent)."""
    return (form.get(name) or [""])[0].strip()


def name_ok(name: str) -> bool:
    """True when the subscriber store would accept ``name`` (one line, not too long)."""
    try:
        clean_name(name)
    except InputError:
        return False
    return True


def bad_form(request: Request, problem: str) -> HTMLResponse:
    """The 400 page for a form that cannot be processed (bad body, failed CSRF check)."""
    return message_page(
        request,
        "This form could not be sent",
        f"{problem} Please reload the page and try again.",
        400,
        link=("/", "Back to the signup form"),
    )


async def checked_form(request: Request) -> dict[str, list[str]] | HTMLResponse:
    """The posted form if its body reads and its CSRF token checks, else the 400 page to answer."""
    try:
        form = await read_form(request)
    except FormError as exc:
        return bad_form(request, f"{exc}.")
    if not context_of(request).csrf.check(request, form):
        return bad_form(request, "The form had expired or came from another site.")
    return form


async def token_subject(request: Request, purpose: Purpose) -> int:
    """The subscriber id in the path's token (raises TokenError, shown as a 400 page)."""
    return (await token_claims(request, purpose))[0]


async def token_claims(request: Request, purpose: Purpose) -> tuple[int, str | None]:
    """(subscriber id, newsletter id or None) of the path's token; raises TokenError."""
    ctx = context_of(request)
    token = str(request.path_params["token"])

    def check() -> tuple[int, str | None]:
        with ctx.engine.connect() as conn:
            try:
                return verify_scoped_link(conn, ctx.settings.secret(), purpose, token)
            except TokenOwnerGoneError as gone:
                # erased: the pages find nobody under this id and act on nobody
                return gone.subscriber_id, None

    return await run_in_threadpool(check)


TOPICS_TTL = 60.0


async def topics_of(ctx: WebContext) -> dict[str, str]:
    """The topics a reader may choose (slug -> label), at most a minute old."""
    cached = ctx.topics_cache
    if cached is not None and time.monotonic() - cached[0] < TOPICS_TTL:
        return cached[1]

    def query() -> dict[str, str]:
        with ctx.engine.connect() as conn:
            return subs.available_topics(conn)

    topics = await run_in_threadpool(query)
    ctx.topics_cache = (time.monotonic(), topics)
    return topics


MAX_SECTIONS = 10


def _readable(section: str) -> str:
    """A section's label as readers see it: the newsroom's own words, or a tidied slug."""
    words = section.replace("-", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words == words.lower() else words


async def sections_of(ctx: WebContext) -> list[Section]:
    """What the signup page offers: the configured ``signup_sections``, else the article
    sections with the most stories (at most :data:`MAX_SECTIONS`, by label); a minute old at most.
    """
    configured = ctx.settings.signup_sections
    if configured:
        return [Section(normalise_topic(s.topic), s.label, s.description) for s in configured]
    cached = ctx.sections_cache
    if cached is not None and time.monotonic() - cached[0] < TOPICS_TTL:
        return cached[1]

    def query() -> list[tuple[str, int]]:
        # one grouped read of a column: the article bodies stay in the database
        counted = sa.select(articles_table.c.section, sa.func.count()).group_by(
            articles_table.c.section
        )
        with ctx.engine.connect() as conn:
            return [(str(section), int(n)) for section, n in conn.execute(counted)]

    counts: dict[str, tuple[int, str]] = {}
    for section, n in await run_in_threadpool(query):
        slug = normalise_topic(section)
        if slug:
            before = counts.get(slug, (0, _readable(section)))
            counts[slug] = (before[0] + n, before[1])
    busiest = sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))[:MAX_SECTIONS]
    sections = sorted(
        (Section(slug, label) for slug, (_, label) in busiest), key=lambda s: s.label.casefold()
    )
    ctx.sections_cache = (time.monotonic(), sections)
    return sections


_BRAND_CSS = """/* the [brand] settings of newsletter.toml, for site.css */
:root {{ --brand: {colour}; --brand-accent: {accent}; --brand-font: {font}; }}
"""


async def brand_stylesheet(request: Request) -> Response:
    """GET /static/brand.css: the brand's colours and font as CSS custom properties.

    The CSP allows no inline style, so the brand arrives as a stylesheet of our
    own. Its values are validated settings (``#rrggbb`` colours with 4.5:1
    against white, a font stack with no ``;{}<>\\``), so they cannot break out.
    """
    brand = context_of(request).settings.brand
    css = _BRAND_CSS.format(colour=brand.colour, accent=brand.accent, font=brand.font)
    return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=300"})
