"""What every console page shares: its context, the guard on each view, and rendering.

:func:`view` wraps a handler: without a valid session the answer is the login
page (401) and no data; with too small a role, a 403 page; a POST without a
valid CSRF token, a 400. The handler's library errors become a small page (400
for bad input, 404, 409 for a state that forbids the action), never a traceback.
Every console response carries the readers' security headers with a CSP that
also lets the console load its own script and frame its own previews.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from newsletter.core.config import Settings
from newsletter.core.errors import InputError, NewsletterError, NotFoundError, StateError
from newsletter.web.admin.accounts import User, get_user
from newsletter.web.admin.roles import Role
from newsletter.web.admin.sessions import SESSION_COOKIE, Session, SessionCodec
from newsletter.web.csrf import CSRF_FIELD
from newsletter.web.forms import FormError, read_form
from newsletter.web.headers import PAGE_CSP
from newsletter.web.limits import RequestLimiter
from newsletter.web.pages import context_of, root_of
from newsletter.web.preview import PreviewCache
from newsletter.web.templates import web_environment

__all__ = [
    "ADMIN_CSP",
    "MAX_UPLOAD_BYTES",
    "NOTICES",
    "AdminContext",
    "Visit",
    "admin_of",
    "admin_root",
    "go",
    "login_page",
    "not_allowed",
    "render",
    "site_root",
    "view",
]

log = logging.getLogger("newsletter.web.admin")

# The readers' policy, plus the console's own script, its polling and its preview frames.
ADMIN_CSP = PAGE_CSP.replace(
    "default-src 'none';",
    "default-src 'none'; script-src 'self'; connect-src 'self'; frame-src 'self';",
)
MAX_UPLOAD_BYTES = 20 * 1024 * 1024

# what a redirect after a change says on the next page (``?done=KEY``): fixed texts only
NOTICES = {
    "built": "The edition was built as a draft.",
    "saved": "Saved.",
    "duplicated": "A copy was made as a new draft.",
    "deleted": "The draft was deleted.",
    "tested": "The test message was sent.",
    "scheduled": "The edition is scheduled.",
    "sending": "Sending has started.",
    "paused": "Sending is paused.",
    "resumed": "Sending has resumed.",
    "cancelled": "The send was cancelled.",
    "unsubscribed": "The person is unsubscribed.",
    "left": "The person is unsubscribed from that newsletter.",
    "erased": "The person was erased; their address is suppressed.",
    "schedule-added": "The schedule was added.",
    "schedule-changed": "The schedule was changed.",
    "attached": "The edition goes out at the schedule's next run.",
    "detached": "The edition is off the schedule and a draft again.",
}


@dataclass
class AdminContext:
    """The console's settings, database, session codec, login limits and running sends."""

    settings: Settings
    engine: Engine
    sessions: SessionCodec
    login_by_account: RequestLimiter
    login_by_client: RequestLimiter
    previews: PreviewCache = field(default_factory=PreviewCache)
    jobs: Any = None  # newsletter.web.admin.sending.SendJobs, set by the console


@dataclass
class Visit:
    """One authenticated request: who, and the posted form (and file) if any."""

    user: User
    form: dict[str, list[str]] = field(default_factory=dict)
    upload: bytes | None = None
    upload_name: str = ""

    def value(self, name: str, default: str = "") -> str:
        """The first value of form field ``name``, stripped."""
        return (self.form.get(name) or [default])[0].strip()

    def values(self, name: str) -> list[str]:
        """Every value of form field ``name``."""
        return self.form.get(name) or []


def admin_of(request: Request) -> AdminContext:
    """The console's context."""
    ctx: AdminContext = request.app.state.admin
    return ctx


def admin_root(request: Request) -> str:
    """The console's public path prefix (``/admin`` under the app's root)."""
    return site_root(request) + "/admin"


def site_root(request: Request) -> str:
    """The app's public path prefix ("" at the root), also inside the console's mount."""
    return str(request.scope.get("app_root_path", root_of(request))).rstrip("/")


def not_allowed(request: Request, user: User, message: str) -> Response:
    """The 403 page: what the signed-in ``user`` may not do, and why."""
    return render(request, "message.html", user, 403, title="Not allowed", message=message)


def render(
    request: Request,
    template: str,
    user: User | None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    """Render ``templates/web/admin/<template>`` with the console's frame and a CSRF token."""
    web = context_of(request)
    nonce, fresh = web.csrf.nonce_for(request)
    values.setdefault("notice", NOTICES.get(request.query_params.get("done", "")))
    values.setdefault("title", "Console")
    values.setdefault("nav", "")
    html = (
        web_environment()
        .get_template("admin/" + template)
        .render(
            site_name=web.settings.site_name,
            language=web.settings.language,
            direction=web.settings.direction,
            csrf_token=web.csrf.form_token(nonce),
            root=site_root(request),
            admin=admin_root(request),
            user=user,
            **values,
        )
    )
    response = HTMLResponse(html, status_code=status_code)
    if fresh:
        web.csrf.set_cookie(response, request, nonce)
    response.headers["Content-Security-Policy"] = ADMIN_CSP
    return response


def login_page(
    request: Request, status_code: int = 200, *, error: str | None = None, next_path: str = ""
) -> HTMLResponse:
    """The sign-in form (the only thing an unauthenticated request ever gets)."""
    response = render(
        request,
        "login.html",
        None,
        status_code,
        title="Sign in",
        error=error,
        next_path=next_path,
    )
    if request.cookies.get(SESSION_COOKIE):
        admin_of(request).sessions.clear_cookie(response)
    return response


def go(request: Request, path: str, notice: str | None = None) -> RedirectResponse:
    """A 303 to ``path`` inside the console, with a notice key for the next page."""
    target = admin_root(request) + path
    if notice:
        target += ("&" if "?" in target else "?") + "done=" + notice
    response = RedirectResponse(target, status_code=303)
    response.headers["Content-Security-Policy"] = ADMIN_CSP
    return response


def _current(request: Request, now: float) -> tuple[User, Session] | None:
    ctx = admin_of(request)
    session = ctx.sessions.loads(request.cookies.get(SESSION_COOKIE), now)
    if session is None:
        return None
    with ctx.engine.connect() as conn:
        try:
            user = get_user(conn, session.user_id)
        except NotFoundError:
            return None
        finally:
            conn.rollback()
    if user.session_epoch != session.epoch:
        return None
    return user, session


async def _read(request: Request, upload: bool) -> tuple[dict[str, list[str]], bytes | None, str]:
    content_type = request.headers.get("content-type", "")
    if upload and content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=20)
        fields: dict[str, list[str]] = {}
        data: bytes | None = None
        name = ""
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read(MAX_UPLOAD_BYTES + 1)
                name = value.filename or ""
                if len(data) > MAX_UPLOAD_BYTES:
                    raise FormError("the file is larger than 20 MB")
            else:
                fields.setdefault(key, []).append(value)
        await form.close()
        return fields, data, name
    return await read_form(request), None, ""


_ERRORS: list[tuple[type[NewsletterError], int, str]] = [
    (NotFoundError, 404, "Not found"),
    (InputError, 400, "Please check what you entered"),
    (StateError, 409, "That cannot be done now"),
    (NewsletterError, 502, "That did not work"),
]

Handler = Callable[[Request, Visit], Awaitable[Response]]


def view(role: Role, *, upload: bool = False) -> Callable[[Handler], Callable[..., Any]]:
    """Guard a console handler: signed in, at least ``role``, CSRF-checked when it posts."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            now = time.time()
            found = await run_in_threadpool(_current, request, now)
            if found is None:
                return login_page(request, 401, next_path=request.url.path)
            user, session = found
            visit = Visit(user)
            if not user.role.at_least(role):
                response: Response = not_allowed(
                    request,
                    user,
                    f"Your role ({user.role.value}) cannot do this; "
                    f"it needs {role.value} or above.",
                )
            else:
                response = await _guarded(request, handler, visit, upload)
            mine = SESSION_COOKIE.encode() + b"="
            already = any(
                k == b"set-cookie" and v.startswith(mine) for k, v in response.raw_headers
            )
            if response.status_code != 401 and not already:
                renewed = Session(session.user_id, session.epoch, session.issued, now)
                admin_of(request).sessions.set_cookie(response, renewed)
            response.headers.setdefault("Content-Security-Policy", ADMIN_CSP)
            return response

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap


async def _guarded(request: Request, handler: Handler, visit: Visit, upload: bool) -> Response:
    if request.method == "POST":
        try:
            visit.form, visit.upload, visit.upload_name = await _read(request, upload)
        except FormError as exc:
            return render(
                request, "message.html", visit.user, 400, title="Bad form", message=str(exc)
            )
        web = context_of(request)
        if not web.csrf.check(request, visit.form):
            return render(
                request,
                "message.html",
                visit.user,
                400,
                title="This form has expired",
                message="Please go back, reload the page and try again.",
            )
        visit.form.pop(CSRF_FIELD, None)
    try:
        return await handler(request, visit)
    except NewsletterError as exc:
        status, title = next((s, t) for cls, s, t in _ERRORS if isinstance(exc, cls))
        message = str(exc)
        if isinstance(exc, InputError) and exc.field and exc.field.startswith("--"):
            message = exc.with_field(exc.field.lstrip("-"))  # the CLI's flag is a form field here
        if status == 502:
            log.warning("console: %s failed: %s", request.url.path, type(exc).__name__)
        return render(request, "message.html", visit.user, status, title=title, message=message)
