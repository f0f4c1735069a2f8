"""The public archive of sent editions.

The list shows the editions every reader was sent: ``sent``, daily, built for
everyone (no topic filter) and not unlisted (``edition edit ID --unlist``).
Any sent edition keeps its page, since the "View in browser" link of every
email leads there. A page is the email's own HTML rendered for a generic
reader (no greeting, no personal links), with the site's navigation above it
and a signup box below. Drafts are never shown here: the editors' preview is a
separate, loopback-only listener
(:func:`newsletter.web.preview.create_editor_preview_app`).
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from newsletter.content.editions import get_edition, list_editions
from newsletter.content.models import Edition, EditionKind, EditionStatus
from newsletter.content.render import Renderer
from newsletter.core.config import Settings
from newsletter.core.errors import NotFoundError
from newsletter.web.headers import EMAIL_CSP
from newsletter.web.pages import context_of, page, root_of
from newsletter.web.templates import web_environment

__all__ = [
    "archive",
    "archived_edition",
    "edition_html",
    "is_listed",
    "routes",
    "with_site_chrome",
]

_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


def is_listed(edition: Edition) -> bool:
    """True when the archive's list shows ``edition``: a sent daily digest for everyone."""
    return (
        edition.status is EditionStatus.SENT
        and edition.kind is EditionKind.DAILY
        and not edition.topics
        and not edition.unlisted
    )


def edition_html(renderer: Renderer, edition: Edition) -> str:
    """The edition's web copy: no greeting, no personal links, a signup line instead.

    The renderer caches the variant, so premailer runs once per edition and app.
    """
    variant = renderer.render(edition, None, web=True)
    # the web copy holds no slot; any left would lead a visitor to the signup page
    signup = f"{renderer.settings.base_url}/"
    return variant.fill_html({"name": "", "unsubscribe_url": signup, "preferences_url": signup})


def with_site_chrome(html: str, settings: Settings, root: str) -> str:
    """``html`` (an email's web copy) with the site's navigation after ``<body>`` and a
    signup box before ``</body>``; inline styles only, as the email's CSP allows."""
    values = {
        "newsletter_name": settings.newsletter_name,
        "site_name": settings.site_name,
        "schedule_text": settings.schedule_text,
        "brand": settings.brand,
        "root": root,
    }
    env = web_environment()
    top = env.get_template("archive_top.html").render(values)
    bottom = env.get_template("archive_signup.html").render(values)
    opened, closing = _BODY_OPEN.search(html), html.lower().rfind("</body")
    if opened is None or closing < opened.end():
        return top + html + bottom
    start = opened.end()
    return html[:start] + top + html[start:closing] + bottom + html[closing:]


async def archive(request: Request) -> Response:
    """GET /archive: the listed editions (:func:`is_listed`), newest first."""
    ctx = context_of(request)

    def load() -> list[Edition]:
        with ctx.engine.connect() as conn:
            listed = [e for e in list_editions(conn) if is_listed(e)]
        return sorted(listed, key=lambda e: e.sent_at or e.created_at, reverse=True)

    editions = await run_in_threadpool(load)
    return page(request, "archive.html", editions=editions, current="archive")


async def archived_edition(request: Request) -> Response:
    """GET /archive/{edition_id}: a sent edition's HTML, listed or not; 404 for any other."""
    ctx = context_of(request)
    edition_id = str(request.path_params["edition_id"])

    def load() -> Edition:
        with ctx.engine.connect() as conn:
            edition = get_edition(conn, edition_id)
        if edition.status is not EditionStatus.SENT:
            raise NotFoundError(f"edition {edition_id!r} was not sent")
        return edition

    edition = await run_in_threadpool(load)
    html = await run_in_threadpool(edition_html, ctx.renderer, edition)
    html = with_site_chrome(html, ctx.settings, root_of(request))
    return HTMLResponse(html, headers={"Content-Security-Policy": EMAIL_CSP})


def routes() -> list[Route]:
    """The archive's routes."""
    return [
        Route("/archive", archive, methods=["GET"]),
        Route("/archive/{edition_id}", archived_edition, methods=["GET"]),
    ]
