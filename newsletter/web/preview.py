"""The editor's preview page, behind ``newsletter preview --serve`` and the web app's /preview.

One page shows the edition at 600 px and 375 px side by side, in sandboxed
frames, next to its text part. Every request renders afresh with a new
:class:`Renderer`, so an edited template shows on the next reload. The page
links to its other views (``html``, ``text``, ``message.eml``) relatively, so
the same page works at ``/`` of the preview server and at
``/preview/{edition}`` of the web app, under any base path. The CLI binds the
preview server to 127.0.0.1 only: the preview shows editions that were not
sent yet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from newsletter.content.models import Edition
from newsletter.content.preview import PreviewRecipient, build_preview
from newsletter.content.render import Renderer, variant_key
from newsletter.content.templates import email_environment
from newsletter.core.config import Settings
from newsletter.core.errors import NewsletterError, NotFoundError

__all__ = [
    "EMAIL_FRAME_CSP",
    "PREVIEW_VIEWS",
    "create_preview_app",
    "preview_links",
    "preview_response",
]

# The email itself may load pictures and inline styles, and nothing else; only
# our own page may frame it.
EMAIL_FRAME_CSP = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
    "form-action 'none'; frame-ancestors 'self'; base-uri 'none'"
)
_PAGE_CSP = (
    "default-src 'none'; frame-src 'self'; style-src 'unsafe-inline'; img-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)

# "" is the side-by-side page; the others are what it links to.
PREVIEW_VIEWS = ("", "html", "text", "message.eml")


def preview_links(edition_id: str) -> str:
    """The link prefix for a page served at ``.../{edition_id}`` with its views under it."""
    return quote(edition_id, safe="") + "/"


def preview_response(
    settings: Settings,
    edition: Edition,
    recipient: PreviewRecipient,
    view: str,
    *,
    links: str = "",
    template_dir: Path | None = None,
) -> Response:
    """The preview's ``view`` (one of :data:`PREVIEW_VIEWS`) of ``edition`` for ``recipient``.

    Renders afresh with a new renderer, so template edits show. ``links`` goes
    before the page's relative links to its other views: "" when the page is
    served from the folder holding them (``/`` with ``/html`` next to it).
    Blocking (rendering): call it from a thread. Raises :class:`NotFoundError`
    for an unknown view and the rendering's errors as they come.
    """
    if view not in PREVIEW_VIEWS:
        raise NotFoundError(f"no preview view {view!r}")
    renderer = Renderer(settings, template_dir=template_dir)
    doc = build_preview(settings, edition, recipient, renderer)
    if view == "html":
        return HTMLResponse(doc.html, headers={"Content-Security-Policy": EMAIL_FRAME_CSP})
    if view == "text":
        return PlainTextResponse(doc.text)
    if view == "message.eml":
        return Response(
            doc.eml,
            media_type="message/rfc822",
            headers={"Content-Disposition": f'attachment; filename="{edition.id}.eml"'},
        )
    html = (
        email_environment(template_dir)
        .get_template("preview.html")
        .render(
            subject=edition.subject,
            edition_id=edition.id,
            recipient=recipient.personal.email,
            variant_key=variant_key(edition, recipient.topics),
            size_kb=f"{len(doc.html.encode()) / 1024:.1f}",
            rendered_at=datetime.now(UTC).strftime("%H:%M:%S UTC"),
            text=doc.text,
            links=links,
        )
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": _PAGE_CSP})


def create_preview_app(
    settings: Settings,
    load_edition: Callable[[], Edition],
    recipient: PreviewRecipient,
    *,
    template_dir: Path | None = None,
) -> Starlette:
    """A Starlette app previewing the edition ``load_edition`` returns, for ``recipient``.

    The page is at ``/``, its views at ``/html``, ``/text`` and ``/message.eml``.
    ``load_edition`` is called on every request, so a rebuilt edition shows too.
    """

    def respond(view: str) -> Response:
        return preview_response(
            settings, load_edition(), recipient, view, template_dir=template_dir
        )

    def endpoint(view: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            try:
                return await run_in_threadpool(respond, view)
            except NewsletterError as exc:
                return PlainTextResponse(f"error: {exc}\n", status_code=500)

        return serve

    routes = [Route("/" + view, endpoint(view), methods=["GET"]) for view in PREVIEW_VIEWS]
    return Starlette(routes=routes)
