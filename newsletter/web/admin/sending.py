"""Sending from the console: confirm with the recipient count, then watch, pause, resume, cancel.

A send runs as a task in the ``serve`` process (:class:`SendJobs`), through the
same engine as ``newsletter send``. Its progress is read from the outbox, not
from the task, so the progress page survives a reload and a restart of
``serve`` (after a restart the send waits, ``paused`` or ``sending``, for a
resume). Sending to the list needs an admin, or an editor when
``NEWSLETTER_CONSOLE_EDITORS_MAY_SEND`` is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from newsletter.content.editions import get_edition, set_status
from newsletter.content.models import EditionStatus
from newsletter.core.config import Settings
from newsletter.core.db import utcnow
from newsletter.core.errors import NewsletterError, StateError
from newsletter.delivery import outbox
from newsletter.delivery.compose import variant_counts
from newsletter.delivery.engine import SendOptions, send_edition
from newsletter.delivery.outcomes import DeliveryStatus
from newsletter.web.admin.accounts import User
from newsletter.web.admin.audit import record
from newsletter.web.admin.context import Visit, admin_of, go, not_allowed, render, view
from newsletter.web.admin.lists import names_if_several
from newsletter.web.admin.roles import Role

__all__ = [
    "SendJobs",
    "cancel",
    "confirm_page",
    "may_send",
    "pause",
    "progress",
    "progress_json",
    "resume",
    "routes",
    "send",
]

log = logging.getLogger("newsletter.web.admin")


class SendJobs:
    """The sends this process runs, one task per edition, each with its stop event."""

    def __init__(self, settings: Settings, engine: Engine, options: SendOptions | None = None):
        self.settings = settings
        self.engine = engine
        self.options = options or SendOptions()
        self._jobs: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}

    def running(self, edition_id: str) -> bool:
        """True while this process is sending ``edition_id``."""
        job = self._jobs.get(edition_id)
        return job is not None and not job[0].done()

    def start(self, edition_id: str) -> None:
        """Start (or resume) the send of ``edition_id`` unless it is running already."""
        if self.running(edition_id):
            return
        stop = asyncio.Event()
        task = asyncio.create_task(self._run(edition_id, stop))
        self._jobs[edition_id] = (task, stop)

    async def _run(self, edition_id: str, stop: asyncio.Event) -> None:
        try:
            report = await send_edition(
                self.settings, self.engine, edition_id, options=self.options, stop=stop
            )
            log.info("console send of %s: %s", edition_id, report)
        except NewsletterError as exc:
            log.warning("console send of %s ended: %s", edition_id, exc)
        except Exception:
            log.exception("console send of %s failed", edition_id)

    async def stop(self, edition_id: str, wait: float = 60.0) -> None:
        """Ask the send to stop taking rows and wait for its messages in flight."""
        job = self._jobs.get(edition_id)
        if job is None:
            return
        task, event = job
        event.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), wait)


def may_send(user: User, settings: Settings) -> bool:
    """True when ``user`` may send to the whole list."""
    return user.role is Role.ADMIN or (
        user.role is Role.EDITOR and settings.console_editors_may_send
    )


def _forbidden(request: Request, visit: Visit) -> Response:
    return not_allowed(
        request,
        visit.user,
        "Sending to the whole list needs an admin "
        "(or an editor, when NEWSLETTER_CONSOLE_EDITORS_MAY_SEND is on).",
    )


@view(Role.EDITOR)
async def confirm_page(request: Request, visit: Visit) -> Response:
    """GET /admin/editions/{id}/send: how many people it goes to (its newsletter's
    confirmed readers whose topics meet it), and a button to confirm."""
    ctx = admin_of(request)
    if not may_send(visit.user, ctx.settings):
        return _forbidden(request, visit)
    edition_id = str(request.path_params["edition_id"])

    def load() -> tuple[object, int, int]:
        with ctx.engine.connect() as conn:
            edition = get_edition(conn, edition_id)
            counts = variant_counts(conn, edition)
            conn.rollback()
        return edition, sum(counts.values()), len(counts)

    edition, recipients, variants = await run_in_threadpool(load)
    return render(
        request,
        "send_confirm.html",
        visit.user,
        title="Send to the list",
        nav="editions",
        edition=edition,
        recipients=recipients,
        variants=variants,
        newsletters=names_if_several(ctx.settings),
    )


@view(Role.EDITOR)
async def send(request: Request, visit: Visit) -> Response:
    """POST /admin/editions/{id}/send: start sending, after the confirmation."""
    ctx = admin_of(request)
    if not may_send(visit.user, ctx.settings):
        return _forbidden(request, visit)
    edition_id = str(request.path_params["edition_id"])
    if visit.value("confirm") != "yes":
        return go(request, f"/editions/{edition_id}/send")

    def check() -> None:
        with ctx.engine.begin() as conn:
            edition = get_edition(conn, edition_id)
            if edition.status in {EditionStatus.SENT, EditionStatus.CANCELLED}:
                raise StateError(f"edition {edition_id} is {edition.status.value}")
            record(conn, visit.user.email, "edition.send", edition_id, visit.value("count"))

    await run_in_threadpool(check)
    ctx.jobs.start(edition_id)
    return go(request, f"/editions/{edition_id}/progress", "sending")


def _set(ctx_engine: Engine, edition_id: str, status: EditionStatus, who: str, action: str) -> None:
    with ctx_engine.begin() as conn:
        current = get_edition(conn, edition_id)
        if current.status is not status:
            reason = f"{action} in the console by {who}" if status is EditionStatus.PAUSED else None
            set_status(conn, edition_id, status, reason, now=utcnow())
        record(conn, who, f"edition.{action}", edition_id)


@view(Role.EDITOR)
async def pause(request: Request, visit: Visit) -> Response:
    """POST /admin/editions/{id}/pause: stop taking rows; what is in flight finishes."""
    return await _stop_as(request, visit, EditionStatus.PAUSED, "pause")


@view(Role.EDITOR)
async def resume(request: Request, visit: Visit) -> Response:
    """POST /admin/editions/{id}/resume: carry on where the send stopped."""
    ctx = admin_of(request)
    if not may_send(visit.user, ctx.settings):
        return _forbidden(request, visit)
    edition_id = str(request.path_params["edition_id"])

    def write() -> None:
        with ctx.engine.begin() as conn:
            edition = get_edition(conn, edition_id)
            if edition.status in {EditionStatus.SENT, EditionStatus.CANCELLED}:
                raise StateError(f"edition {edition_id} is {edition.status.value}")
            record(conn, visit.user.email, "edition.resume", edition_id)

    await run_in_threadpool(write)
    ctx.jobs.start(edition_id)
    return go(request, f"/editions/{edition_id}/progress", "resumed")


@view(Role.EDITOR)
async def cancel(request: Request, visit: Visit) -> Response:
    """POST /admin/editions/{id}/cancel: stop for good; nobody else gets this edition."""
    return await _stop_as(request, visit, EditionStatus.CANCELLED, "cancel")


async def _stop_as(request: Request, visit: Visit, status: EditionStatus, action: str) -> Response:
    """Stop the send in this process and record ``status``; the progress page says so."""
    ctx = admin_of(request)
    if not may_send(visit.user, ctx.settings):
        return _forbidden(request, visit)
    edition_id = str(request.path_params["edition_id"])
    await ctx.jobs.stop(edition_id)
    await run_in_threadpool(_set, ctx.engine, edition_id, status, visit.user.email, action)
    done = "paused" if status is EditionStatus.PAUSED else "cancelled"
    return go(request, f"/editions/{edition_id}/progress", done)


def _progress(engine: Engine, edition_id: str, running: bool) -> dict[str, object]:
    with engine.connect() as conn:
        edition = get_edition(conn, edition_id)
        state = outbox.status(conn, edition_id, errors=5)
        conn.rollback()
    counts = {s.value: state.counts[s] for s in DeliveryStatus}
    done = state.total - state.open
    eta = round(state.open / state.rate) if state.rate and state.open else None
    return {
        "edition": edition_id,
        "status": edition.status.value,
        "reason": edition.status_reason,
        "running": running,
        "total": state.total,
        "done": done,
        "percent": round(100 * done / state.total, 1) if state.total else 0.0,
        "counts": counts,
        "rate": round(state.rate, 1) if state.rate else None,
        "eta_seconds": eta,
        "errors": [f"{e.status.value} {e.code or ''} {e.error}".strip() for e in state.last_errors],
    }


@view(Role.VIEWER)
async def progress_json(request: Request, visit: Visit) -> Response:
    """GET /admin/editions/{id}/progress.json: sent/deferred/failed/unknown, rate, ETA."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])
    data = await run_in_threadpool(_progress, ctx.engine, edition_id, ctx.jobs.running(edition_id))
    return JSONResponse(data)


@view(Role.VIEWER)
async def progress(request: Request, visit: Visit) -> Response:
    """GET /admin/editions/{id}/progress: the live progress page (its script polls the JSON)."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])
    data = await run_in_threadpool(_progress, ctx.engine, edition_id, ctx.jobs.running(edition_id))
    return render(
        request,
        "progress.html",
        visit.user,
        title="Sending",
        nav="editions",
        p=data,
        edition_id=edition_id,
        can_send=may_send(visit.user, ctx.settings),
    )


def routes() -> list[Route]:
    """The send routes (relative to ``/admin``)."""
    base = "/editions/{edition_id}"
    return [
        Route(base + "/send", confirm_page, methods=["GET"]),
        Route(base + "/send", send, methods=["POST"]),
        Route(base + "/pause", pause, methods=["POST"]),
        Route(base + "/resume", resume, methods=["POST"]),
        Route(base + "/cancel", cancel, methods=["POST"]),
        Route(base + "/progress", progress, methods=["GET"]),
        Route(base + "/progress.json", progress_json, methods=["GET"]),
    ]
