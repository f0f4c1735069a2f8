"""The public archive of sent editions.

The archive shows only editions whose status is ``sent``; each is the email's
own HTML rendered for a generic reader: no name, and the personal unsubscribe
and preferences links replaced by the signup page. Drafts are never shown
here: the editors' preview is a separate, loopback-only listener
(:func:`newsletter.web.preview.create_editor_preview_app`).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from newsletter.content.editions import get_edition, list_editions
from newsletter.content.models import Edition, EditionStatus
from newsletter.content.render import Renderer
from newsletter.core.errors import NotFoundError
from newsletter.web.headers import EMAIL_CSP
from newsletter.web.pages import context_of, page

__all__ = [
    "archive",
    "archived_edition",
    "edition_html",
    "routes",
]


def edition_html(renderer: Renderer, edition: Edition) -> str:
    """The edition's web copy: no greeting, no personal links, a signup line instead.

    The renderer caches the variant, so premailer runs once per edition and app.
    """
    variant = renderer.render(edition, None, web=True)
    # the web copy holds no slot; any left would lead a visitor to the signup page
    signup = f"{renderer.settings.base_url}/"
    return variant.fill_html({"name": "", "unsubscribe_url": signup, "preferences_url": signup})


async def archive(request: Request) -> Response:
    """GET /archive: every sent edition, newest first."""
    ctx = context_of(request)

    def load() -> list[Edition]:
        with ctx.engine.connect() as conn:
            sent = [e for e in list_editions(conn) if e.status is EditionStatus.SENT]
        return sorted(sent, key=lambda e: e.sent_at or e.created_at, reverse=True)

    editions = await run_in_threadpool(load)
    return page(request, "archive.html", editions=editions)


async def archived_edition(request: Request) -> Response:
    """GET /archive/{edition_id}: a sent edition's HTML; 404 for any other edition."""
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
    return HTMLResponse(html, headers={"Content-Security-Policy": EMAIL_CSP})


def routes() -> list[Route]:
    """The archive's routes."""
    return [
        Route("/archive", archive, methods=["GET"]),
        Route("/archive/{edition_id}", archived_edition, methods=["GET"]),
    ]
