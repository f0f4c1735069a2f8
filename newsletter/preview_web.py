"""The local preview server behind ``newsletter preview --serve``.

One page shows the edition at 600 px and 375 px side by side, in sandboxed
frames, next to its text part. Every request renders afresh with a new
:class:`Renderer`, so an edited template shows on the next reload. The CLI binds
it to 127.0.0.1 only: the preview shows editions that were not sent yet.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.models import Edition
from newsletter.preview import PreviewDocument, PreviewRecipient, build_preview
from newsletter.render import Renderer, variant_key
from newsletter.templates import email_environment

__all__ = ["EMAIL_FRAME_CSP", "create_preview_app"]

# The email itself may load pictures and inline styles, and nothing else.
EMAIL_FRAME_CSP = "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'"
_PAGE_CSP = "default-src 'none'; frame-src 'self'; style-src 'unsafe-inline'; img-src 'self'"


def create_preview_app(
    settings: Settings,
    load_edition: Callable[[], Edition],
    recipient: PreviewRecipient,
    *,
    template_dir: Path | None = None,
) -> Starlette:
    """A Starlette app previewing the edition ``load_edition`` returns, for ``recipient``.

    ``load_edition`` is called on every request, so a rebuilt edition shows too.
    """

    def render() -> tuple[Edition, PreviewDocument]:
        edition = load_edition()
        renderer = Renderer(settings, template_dir=template_dir)
        return edition, build_preview(settings, edition, recipient, renderer)

    async def document() -> tuple[Edition, PreviewDocument] | Response:
        try:
            return await run_in_threadpool(render)
        except NewsletterError as exc:
            return PlainTextResponse(f"error: {exc}\n", status_code=500)

    async def page(request: Request) -> Response:
        result = await document()
        if isinstance(result, Response):
            return result
        edition, doc = result
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
            )
        )
        return HTMLResponse(html, headers={"Content-Security-Policy": _PAGE_CSP})

    async def html_view(request: Request) -> Response:
        result = await document()
        if isinstance(result, Response):
            return result
        return HTMLResponse(result[1].html, headers={"Content-Security-Policy": EMAIL_FRAME_CSP})

    async def text_view(request: Request) -> Response:
        result = await document()
        if isinstance(result, Response):
            return result
        return PlainTextResponse(result[1].text)

    async def eml_view(request: Request) -> Response:
        result = await document()
        if isinstance(result, Response):
            return result
        edition, doc = result
        return Response(
            doc.eml,
            media_type="message/rfc822",
            headers={"Content-Disposition": f'attachment; filename="{edition.id}.eml"'},
        )

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/html", html_view, methods=["GET"]),
        Route("/text", text_view, methods=["GET"]),
        Route("/message.eml", eml_view, methods=["GET"]),
    ]
    return Starlette(routes=routes)
