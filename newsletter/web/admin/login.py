"""Signing in and out of the console, with attempts limited per account and per client.

Each attempt counts against the address tried (10 in 15 minutes) and the
client (30 in 15 minutes), in the database (:class:`~newsletter.web.limits.RequestLimiter`),
so a guesser is slowed across restarts and processes. The client is the peer,
or what a proxy named in ``NEWSLETTER_TRUSTED_PROXIES`` says.
"""

from __future__ import annotations

import logging
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from newsletter.web.admin.accounts import User, authenticate
from newsletter.web.admin.audit import record
from newsletter.web.admin.context import Visit, admin_of, admin_root, go, login_page, render, view
from newsletter.web.admin.roles import Role
from newsletter.web.admin.sessions import SESSION_COOKIE, Session
from newsletter.web.forms import FormError, read_form
from newsletter.web.pages import client_ip, context_of

__all__ = ["login", "login_form", "logout", "routes"]

log = logging.getLogger("newsletter.web.admin")


async def login_form(request: Request) -> Response:
    """GET /admin/login: the sign-in form (a signed-in editor goes to the dashboard)."""
    ctx = admin_of(request)
    if ctx.sessions.loads(request.cookies.get(SESSION_COOKIE), time.time()) is not None:
        return go(request, "/")
    return login_page(request, next_path=request.query_params.get("next", ""))


def _safe_next(request: Request, wanted: str) -> str:
    root = admin_root(request)
    if wanted.startswith(root + "/") and "//" not in wanted and "\\" not in wanted:
        return wanted
    return root + "/"


def _attempt(request: Request, email: str, password: str) -> User | str | None:
    ctx = admin_of(request)
    by_account = ctx.login_by_account.allow(email.strip().lower())
    by_client = ctx.login_by_client.allow(client_ip(request))
    if not (by_account and by_client):
        return "throttled"
    with ctx.engine.begin() as conn:
        user = authenticate(conn, email, password)
        if user is not None:
            record(conn, user.email, "session.login", None, f"from {client_ip(request)}")
    return user


async def login(request: Request) -> Response:
    """POST /admin/login: check the form, the limits and the password; start a session."""
    web = context_of(request)
    try:
        form = await read_form(request)
    except FormError:
        return login_page(request, 400, error="The form could not be read; please try again.")
    if not web.csrf.check(request, form):
        return login_page(request, 400, error="The form had expired; please try again.")
    email = (form.get("email") or [""])[0][:320]
    password = (form.get("password") or [""])[0]
    next_path = (form.get("next") or [""])[0]
    result = await run_in_threadpool(_attempt, request, email, password)
    if result == "throttled":
        log.warning("console: sign-in attempts throttled for client %s", client_ip(request))
        return login_page(
            request,
            429,
            error="Too many attempts. Please wait 15 minutes before trying again.",
            next_path=next_path,
        )
    if not isinstance(result, User):
        return login_page(
            request, 401, error="That address and password do not match.", next_path=next_path
        )
    now = time.time()
    response = RedirectResponse(_safe_next(request, next_path), status_code=303)
    admin_of(request).sessions.set_cookie(
        response, Session(result.id, result.session_epoch, now, now)
    )
    return response


@view(Role.VIEWER)
async def logout(request: Request, visit: Visit) -> Response:
    """POST /admin/logout: end the session."""

    def write() -> None:
        with admin_of(request).engine.begin() as conn:
            record(conn, visit.user.email, "session.logout")

    await run_in_threadpool(write)
    response = render(
        request, "login.html", None, title="Signed out", error=None, next_path="", signed_out=True
    )
    admin_of(request).sessions.clear_cookie(response)  # the guard does not renew a cleared one
    return response


def routes() -> list[Route]:
    """The sign-in and sign-out routes (relative to ``/admin``)."""
    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
