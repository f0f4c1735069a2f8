"""The editor's preview page, behind ``newsletter preview --serve`` and the web app's /preview.

One page shows the edition at 600 px and 375 px side by side, in sandboxed
frames, then at 375 px in dark mode (:func:`dark_html`), next to its text
part. A render is kept per (edition content, template files, reader) by a
:class:`PreviewCache`, so reloading costs nothing and an edited template or
edition shows on the next reload. The page links to its other views
(``html``, ``dark``, ``text``, ``message.eml``) relatively, so the same page
works at ``/`` of the preview server and at ``/preview/{edition}`` of the
editors' preview listener.

Drafts are not public: the public app has no preview at all.
:func:`create_editor_preview_app` is the preview of every edition that
``newsletter serve --preview-port N`` runs on a second listener bound to
127.0.0.1, which no proxy reaches; it refuses any request that carries a
proxy's ``Forwarded``/``X-Forwarded-*`` headers, and any peer that is not
loopback. ``newsletter preview --serve`` likewise binds to 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.content.editions import get_edition
from newsletter.content.models import Edition
from newsletter.content.preview import (
    PreviewDocument,
    PreviewRecipient,
    build_preview,
    sample_recipient,
)
from newsletter.content.render import Renderer, Variant
from newsletter.content.templates import email_environment, templates_dir
from newsletter.core.config import Settings, is_loopback_host
from newsletter.core.errors import NewsletterError, NotFoundError
from newsletter.web.headers import SecurityHeaders
from newsletter.web.proxies import is_forwarded

__all__ = [
    "EMAIL_FRAME_CSP",
    "PREVIEW_VIEWS",
    "LoopbackOnly",
    "PreviewCache",
    "create_editor_preview_app",
    "create_preview_app",
    "dark_html",
    "preview_links",
    "preview_response",
    "template_version",
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
PREVIEW_VIEWS = ("", "html", "dark", "text", "message.eml")

_SCHEME_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*(dark|light)\s*\)", re.IGNORECASE)
_SCHEMES = re.compile(r"(color-schemes?\s*(?:\"\s+content=\"|:)\s*)light dark", re.IGNORECASE)


def dark_html(html: str) -> str:
    """``html`` as a mail client in dark mode shows it, whatever the viewer's own setting.

    A browser applies ``prefers-color-scheme`` from the viewer's preference to
    frames too (emulating it reaches only the top page), so the dark view
    rewrites the email's own queries: its dark rules always apply, its light
    ones never, and its declared schemes become ``dark`` alone.
    """

    def forced(match: re.Match[str]) -> str:
        return "(min-width: 0px)" if match.group(1).lower() == "dark" else "(max-width: 0px)"

    return _SCHEMES.sub(r"\1dark", _SCHEME_QUERY.sub(forced, html))


def template_version(template_dir: Path | None = None) -> str:
    """A digest of every email and web template file: it changes when any template does."""
    root = template_dir if template_dir is not None else templates_dir()
    digest = hashlib.sha256()
    for folder in (root / "email", root / "web"):
        for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
            if path.is_file():
                digest.update(str(path.relative_to(root)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


class PreviewCache:
    """Rendered previews, one per (edition content, template version, reader); the newest kept.

    Rendering (premailer) costs about a second of CPU: a reload, or many, of an
    unchanged edition under unchanged templates costs a dictionary lookup.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.renders = 0  # how many times it had to render (for tests and curiosity)
        self._docs: OrderedDict[tuple[str, ...], PreviewDocument] = OrderedDict()
        self._lock = threading.Lock()

    def document(
        self,
        settings: Settings,
        edition: Edition,
        recipient: PreviewRecipient,
        template_dir: Path | None = None,
    ) -> PreviewDocument:
        """The preview of ``edition`` for ``recipient``, rendered only when not held."""
        key = (
            edition.id,
            hashlib.sha256(edition.model_dump_json().encode()).hexdigest(),
            template_version(template_dir),
            repr(recipient),
        )
        with self._lock:
            if key in self._docs:
                self._docs.move_to_end(key)
                return self._docs[key]
        doc = build_preview(
            settings, edition, recipient, Renderer(settings, template_dir=template_dir)
        )
        with self._lock:
            self.renders += 1
            self._docs[key] = doc
            while len(self._docs) > self.size:
                self._docs.popitem(last=False)
        return doc


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
    cache: PreviewCache | None = None,
) -> Response:
    """The preview's ``view`` (one of :data:`PREVIEW_VIEWS`) of ``edition`` for ``recipient``.

    Renders through ``cache`` when given (else afresh), so template edits show. ``links`` goes
    before the page's relative links to its other views: "" when the page is
    served from the folder holding them (``/`` with ``/html`` next to it).
    Blocking (rendering): call it from a thread. Raises :class:`NotFoundError`
    for an unknown view and the rendering's errors as they come.
    """
    if view not in PREVIEW_VIEWS:
        raise NotFoundError(f"no preview view {view!r}")
    if cache is not None:
        doc = cache.document(settings, edition, recipient, template_dir)
    else:
        doc = build_preview(
            settings, edition, recipient, Renderer(settings, template_dir=template_dir)
        )
    if view in {"html", "dark"}:
        html = doc.html if view == "html" else dark_html(doc.html)
        return HTMLResponse(html, headers={"Content-Security-Policy": EMAIL_FRAME_CSP})
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
            sender=settings.sender,
            preheader=edition.preheader,
            edition_id=edition.id,
            recipient=recipient.personal.email,
            variant_key=Variant.of(edition, recipient.topics).key,
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
    cache = PreviewCache()

    def respond(view: str) -> Response:
        return preview_response(
            settings, load_edition(), recipient, view, template_dir=template_dir, cache=cache
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


class LoopbackOnly:
    """ASGI middleware: answer only loopback peers whose request no proxy forwarded.

    The editors' preview listener is bound to 127.0.0.1; a reverse proxy on the
    same machine could still be pointed at it by mistake, and then every public
    request would arrive from loopback. A proxy adds ``Forwarded`` or
    ``X-Forwarded-*`` headers: such a request is refused (403).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            if is_forwarded(scope) or not client or not is_loopback_host(str(client[0])):
                refusal = PlainTextResponse(
                    "The preview answers only local requests, never forwarded ones.\n",
                    status_code=403,
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_editor_preview_app(settings: Settings, engine: Engine) -> ASGIApp:
    """The editors' preview of any edition (drafts too), for the loopback-only listener.

    ``/preview/{edition}`` is the side-by-side page, ``/preview/{edition}/html``,
    ``/text`` and ``/message.eml`` its views, for the sample reader. Renders are
    cached per edition content and template version.
    """
    cache = PreviewCache()
    recipient = sample_recipient(settings)

    def respond(edition_id: str, view: str) -> Response:
        if view not in PREVIEW_VIEWS:
            return PlainTextResponse("no such view\n", status_code=404)
        with engine.connect() as conn:
            try:
                edition = get_edition(conn, edition_id)
            except NotFoundError:
                return PlainTextResponse("no such edition\n", status_code=404)
        links = preview_links(edition.id)
        return preview_response(settings, edition, recipient, view, links=links, cache=cache)

    async def endpoint(request: Request) -> Response:
        edition_id = str(request.path_params["edition_id"])
        view = str(request.path_params.get("view", ""))
        try:
            return await run_in_threadpool(respond, edition_id, view)
        except NewsletterError as exc:
            return PlainTextResponse(f"error: {exc}\n", status_code=500)

    routes = [
        Route("/preview/{edition_id}", endpoint, methods=["GET"]),
        Route("/preview/{edition_id}/{view}", endpoint, methods=["GET"]),
    ]
    return LoopbackOnly(SecurityHeaders(Starlette(routes=routes)))
