"""The public archive of sent editions, and the editor's preview of any edition.

The archive shows only editions whose status is ``sent``; each is the email's
own HTML rendered for a generic reader: no name, and the personal unsubscribe
and preferences links replaced by the signup page. The preview answers only
when the app was created with ``allow_preview`` (loopback, or asked for).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from newsletter.content.editions import get_edition, list_editions
from newsletter.content.models import Edition, EditionStatus
from newsletter.content.preview import sample_recipient
from newsletter.content.render import Renderer
from newsletter.core.errors import NotFoundError
from newsletter.web.pages import context_of, page
from newsletter.web.preview import preview_links, preview_response
from newsletter.web.security import EMAIL_CSP

__all__ = [
    "archive",
    "archived_edition",
    "edition_html",
    "preview",
    "routes",
]


def edition_html(renderer: Renderer, edition: Edition) -> str:
    """The edition's HTML as any reader would see it, with no personal links in it.

    The renderer caches the variant, so premailer runs once per edition and app.
    """
    variant = renderer.render(edition, None)
    # a visitor has no subscription to manage: both personal links lead to the signup page
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


async def preview(request: Request) -> Response:
    """GET /preview/{edition_id}[/html|/text|/message.eml]: any edition, for the sample reader.

    The same side-by-side page (600 px, 375 px, text part) as ``newsletter
    preview --serve``, from :mod:`newsletter.web.preview`. Served only when the
    app allows it (loopback): drafts are not public. A fresh renderer each
    time, so an edited template shows on the next reload.
    """
    ctx = context_of(request)
    if not ctx.allow_preview:
        raise NotFoundError("preview is not served here")
    edition_id = str(request.path_params["edition_id"])
    view = str(request.path_params.get("view", ""))

    def render() -> Response:
        with ctx.engine.connect() as conn:
            edition = get_edition(conn, edition_id)
        recipient = sample_recipient(ctx.settings)
        links = preview_links(edition.id)
        return preview_response(ctx.settings, edition, recipient, view, links=links)

    return await run_in_threadpool(render)


def routes() -> list[Route]:
    """The archive's and the preview's routes."""
    return [
        Route("/archive", archive, methods=["GET"]),
        Route("/archive/{edition_id}", archived_edition, methods=["GET"]),
        Route("/preview/{edition_id}", preview, methods=["GET"]),
        Route("/preview/{edition_id}/{view}", preview, methods=["GET"]),
    ]
