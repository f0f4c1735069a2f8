"""Previews of any edition (drafts too) and test sends, for signed-in editors only.

The page shows the email at 600 and 375 px side by side in sandboxed frames,
in light and in dark mode (the ``dark`` view applies the email's own
``prefers-color-scheme: dark`` rules whatever the viewer's setting; no script
needed, both are always shown), its inbox row (From, subject, preheader) and
its text part; ``?subscriber=EMAIL`` shows the variant that person gets, with
their own links. Renders are cached per edition content and template version
(:class:`~newsletter.web.preview.PreviewCache`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.content.editions import get_edition
from newsletter.content.preview import PreviewRecipient, sample_recipient, subscriber_recipient
from newsletter.core.errors import InputError
from newsletter.delivery.engine import SendOptions, send_edition
from newsletter.web.admin.audit import record
from newsletter.web.admin.context import Visit, admin_of, go, render, view
from newsletter.web.admin.roles import Role
from newsletter.web.preview import preview_response
from subscribers.addresses import normalise_address

__all__ = ["MAX_TEST_ADDRESSES", "preview_page", "preview_view", "routes", "test_send"]

MAX_TEST_ADDRESSES = 5


def _recipient(request: Request, conn: Any) -> tuple[PreviewRecipient, str]:
    settings = admin_of(request).settings
    email = request.query_params.get("subscriber", "").strip()
    if email:
        return subscriber_recipient(settings, conn, email), email
    return sample_recipient(settings), ""


@view(Role.EDITOR)
async def preview_page(request: Request, visit: Visit) -> Response:
    """GET /admin/editions/{id}/preview: 600 and 375 px side by side, inbox row, text part."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])

    def load() -> tuple[Any, Any, str]:
        with ctx.engine.connect() as conn:
            edition = get_edition(conn, edition_id)
            recipient, email = _recipient(request, conn)
        doc = ctx.previews.document(ctx.settings, edition, recipient)
        return edition, doc, email

    edition, doc, email = await run_in_threadpool(load)
    suffix = f"?subscriber={quote(email)}" if email else ""
    return render(
        request,
        "preview.html",
        visit.user,
        title=f"Preview: {edition.subject}",
        nav="editions",
        e=edition,
        text=doc.text,
        sender=ctx.settings.sender,
        subscriber=email,
        suffix=suffix,
        size_kb=f"{len(doc.html.encode()) / 1024:.1f}",
    )


@view(Role.EDITOR)
async def preview_view(request: Request, visit: Visit) -> Response:
    """GET /admin/editions/{id}/preview/{view}: ``html``, ``dark``, ``text`` or ``message.eml``."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])
    name = str(request.path_params["view"])
    if name not in ("html", "dark", "text", "message.eml"):
        return Response("no such view\n", status_code=404, media_type="text/plain")

    def respond() -> Response:
        with ctx.engine.connect() as conn:
            edition = get_edition(conn, edition_id)
            recipient, _ = _recipient(request, conn)
        return preview_response(ctx.settings, edition, recipient, name, cache=ctx.previews)

    return await run_in_threadpool(respond)


def _addresses(text: str) -> list[str]:
    found = [a for a in re.split(r"[\s,;]+", text) if a]
    if not found:
        raise InputError("give at least one address", field="to")
    if len(found) > MAX_TEST_ADDRESSES:
        raise InputError(f"at most {MAX_TEST_ADDRESSES} addresses", field="to")
    return [normalise_address(a).email for a in found]


@view(Role.EDITOR)
async def test_send(request: Request, visit: Visit) -> Response:
    """POST /admin/editions/{id}/test: one message each to a few addresses; no outbox row."""
    ctx = admin_of(request)
    edition_id = str(request.path_params["edition_id"])
    addresses = _addresses(visit.value("to"))
    for address in addresses:
        await send_edition(
            ctx.settings, ctx.engine, edition_id, options=SendOptions(test_to=address)
        )

    def write() -> None:
        with ctx.engine.begin() as conn:
            record(
                conn,
                visit.user.email,
                "edition.test-send",
                edition_id,
                f"to {len(addresses)} address{'es' if len(addresses) > 1 else ''}",
            )

    await run_in_threadpool(write)
    return go(request, f"/editions/{edition_id}", "tested")


def routes() -> list[Route]:
    """The preview and test-send routes (relative to ``/admin``)."""
    base = "/editions/{edition_id}"
    return [
        Route(base + "/preview", preview_page, methods=["GET"]),
        Route(base + "/preview/{view}", preview_view, methods=["GET"]),
        Route(base + "/test", test_send, methods=["POST"]),
    ]
