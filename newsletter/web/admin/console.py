"""The console's routes under ``/admin`` and its context, for ``create_app``."""

from __future__ import annotations

from importlib import resources
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from newsletter.core.config import Settings
from newsletter.web.admin import (
    articles,
    dashboard,
    editions,
    imports,
    login,
    people,
    reports,
    schedules,
    sending,
)
from newsletter.web.admin.audit import list_entries
from newsletter.web.admin.context import AdminContext, Visit, admin_of, render, view
from newsletter.web.admin.roles import Role
from newsletter.web.admin.sending import SendJobs
from newsletter.web.admin.sessions import SessionCodec
from newsletter.web.limits import RequestLimiter

__all__ = ["audit_page", "console_context", "console_routes", "static_file"]

_STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
LOGIN_WINDOW = 900.0


def console_context(settings: Settings, engine: Engine, secret: bytes) -> AdminContext:
    """The console's context: sessions over the site's key, login limits in the database."""
    parts = urlsplit(settings.base_url)
    codec = SessionCodec(
        secret,
        idle=settings.console_idle_timeout,
        absolute=settings.console_session_max,
        secure=parts.scheme == "https",
        path=parts.path.rstrip("/") + "/admin",
    )
    ctx = AdminContext(
        settings=settings,
        engine=engine,
        sessions=codec,
        login_by_account=RequestLimiter(
            engine, secret, "login-acct", limit=10, window=LOGIN_WINDOW
        ),
        login_by_client=RequestLimiter(engine, secret, "login-ip", limit=30, window=LOGIN_WINDOW),
    )
    ctx.jobs = SendJobs(settings, engine)
    return ctx


async def static_file(request: Request) -> Response:
    """GET /admin/static/{name}: the console's stylesheet and script (no data: no login)."""
    name = str(request.path_params["name"])
    if name not in _STATIC:
        return Response("not found\n", status_code=404, media_type="text/plain")
    data = resources.files(__package__).joinpath("static", name).read_bytes()
    return Response(
        data, media_type=_STATIC[name], headers={"Cache-Control": "public, max-age=300"}
    )


@view(Role.VIEWER)
async def audit_page(request: Request, visit: Visit) -> Response:
    """GET /admin/audit: the audit log, newest first, 100 a page (``?before=ID``)."""
    before = request.query_params.get("before", "")
    engine = admin_of(request).engine

    def load() -> list[object]:
        with engine.connect() as conn:
            return list(
                list_entries(conn, limit=100, before=int(before) if before.isdigit() else None)
            )

    entries = await run_in_threadpool(load)
    return render(
        request, "audit.html", visit.user, title="Audit log", nav="audit", entries=entries
    )


def console_routes() -> list[BaseRoute]:
    """Every route of the console, relative to ``/admin``."""
    return [
        Route("/", dashboard.dashboard, methods=["GET"]),
        Route("/static/{name}", static_file, methods=["GET"]),
        Route("/audit", audit_page, methods=["GET"]),
        *login.routes(),
        *articles.routes(),
        *editions.routes(),
        *sending.routes(),
        *people.routes(),
        *imports.routes(),
        *schedules.routes(),
        *reports.routes(),
    ]
