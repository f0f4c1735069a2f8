"""The web app of ``newsletter serve``: signup, confirm, unsubscribe, preferences, archive.

:func:`create_app` builds a Starlette app over one :class:`~newsletter.core.config.Settings`
and one migrated engine. Every response carries the security headers of
:class:`~newsletter.web.headers.SecurityHeaders`; every failure is a small HTML
page (a bad link is a 400, an unknown edition a 404, a bug a 500), never a
traceback. The client's address comes from the peer, or from a proxy named in
``NEWSLETTER_TRUSTED_PROXIES`` (:class:`~newsletter.web.proxies.TrustedProxies`).
There is no preview of drafts here: see :mod:`newsletter.web.preview`.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.content.render import Renderer
from newsletter.content.templates import templates_dir
from newsletter.core.config import Settings
from newsletter.core.errors import NotFoundError, TokenError, TokenExpiredError
from newsletter.web.admin.console import console_context, console_routes
from newsletter.web.archive import routes as archive_routes
from newsletter.web.clicks import routes as click_routes
from newsletter.web.csrf import Csrf
from newsletter.web.headers import SecurityHeaders, security_headers
from newsletter.web.limits import RequestLimiter
from newsletter.web.logs import redact
from newsletter.web.pages import WebContext, message_page
from newsletter.web.preferences import routes as preferences_routes
from newsletter.web.proxies import TrustedProxies
from newsletter.web.signup import routes as signup_routes

__all__ = [
    "BasePath",
    "create_app",
    "healthz",
    "stylesheet",
]

log = logging.getLogger("newsletter.web.app")


class BasePath:
    """Serve the app under the path of NEWSLETTER_BASE_URL, whether or not a proxy strips it.

    Links in emails read ``{base_url}/unsubscribe/...``; with a base URL such as
    ``https://example.com/newsletter`` a reverse proxy may pass ``/newsletter/...``
    through or strip it. Either way the app sees ``root_path`` = the prefix and
    the full public path, so routing and the links in its pages agree.
    """

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.prefix and scope["type"] == "http":
            scope = dict(scope)
            path: str = scope["path"]
            if path == self.prefix:
                path = self.prefix + "/"
            elif not path.startswith(self.prefix + "/"):
                path = self.prefix + path
            scope["path"] = path
            scope["root_path"] = self.prefix
        await self.app(scope, receive, send)


async def healthz(request: Request) -> Response:
    """GET /healthz: 200 when the database answers, 503 when it does not."""
    engine: Engine = request.app.state.web.engine

    def ping() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    try:
        await run_in_threadpool(ping)
    except sa.exc.SQLAlchemyError as exc:
        log.error("health check: database unavailable (%s)", type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


async def stylesheet(request: Request) -> Response:
    """GET /static/site.css: the pages' one stylesheet (no inline styles, for the CSP)."""
    return FileResponse(
        templates_dir() / "web" / "site.css",
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )


async def _token_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, TokenExpiredError):
        return message_page(
            request,
            "This link has expired",
            "Please use the link in a more recent email from us.",
            400,
        )
    return message_page(
        request,
        "This link does not work",
        "It may have been cut short or changed when it was copied. "
        "Please use the link exactly as it appears in the email.",
        400,
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return message_page(
        request, "Page not found", "There is nothing at this address.", 404, link=("/", "Sign up")
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return await _not_found(request, exc)
    if status == 405:
        return message_page(request, "Not allowed", "This page cannot be used that way.", 405)
    return message_page(request, "Something went wrong", "Please try again.", status)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, redact(request.url.path))
    response = message_page(
        request,
        "Something went wrong on our side",
        "We could not complete this. Please try again in a few minutes.",
        500,
    )
    # this handler runs outside the middleware stack: add the headers here
    response.headers.update(security_headers())
    return response


def create_app(settings: Settings, engine: Engine) -> Starlette:
    """The readers' web app over ``settings`` and a migrated ``engine``.

    Signups are limited to 10 per client address in 10 minutes, and
    confirmation emails to 3 per address an hour, counted in the database.
    """
    routes = [
        *signup_routes(),
        *preferences_routes(),
        *archive_routes(),
        *click_routes(),  # BASE_URL/c/<token>: tracked article links
        Route("/healthz", healthz, methods=["GET"]),
        Route("/static/site.css", stylesheet, methods=["GET"]),
        Mount("/admin", routes=console_routes()),  # the editor's console
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(TrustedProxies, proxies=settings.trusted_proxies),
            Middleware(BasePath, prefix=urlsplit(settings.base_url).path),
            Middleware(SecurityHeaders, hsts=urlsplit(settings.base_url).scheme == "https"),
        ],
        exception_handlers={
            TokenError: _token_error,
            NotFoundError: _not_found,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    secret = settings.secret()
    app.state.web = WebContext(
        settings=settings,
        engine=engine,
        csrf=Csrf(secret),
        renderer=Renderer(settings),
        signup_limiter=RequestLimiter(engine, secret, "signup", limit=10, window=600.0),
        email_limiter=RequestLimiter(engine, secret, "email", limit=3, window=3600.0),
    )
    app.state.admin = console_context(settings, engine, secret)
    return app
