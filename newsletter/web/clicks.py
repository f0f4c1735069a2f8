"""``GET /c/<token>``: count a click on an article link and redirect to the article.

The target is the article's URL in the stored edition, with UTM tags added
(``utm_source=newsletter&utm_medium=email&utm_campaign=<edition id>``, the
link's own query kept); a token that is forged, altered or names a link the
edition does not hold gets a 404, never a redirect elsewhere. HEAD requests,
known link scanners and clicks within seconds of the delivery are recorded as
``scanner`` clicks, apart from the readers' ``human`` ones. No IP address is
stored: unique clicks count a keyed hash of (address, user agent, edition).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from newsletter.content.editions import get_edition
from newsletter.content.tracking import link_hash, read_click_token
from newsletter.core.db import utcnow
from newsletter.core.errors import NotFoundError
from newsletter.core.schema import clicks, deliveries
from newsletter.web.pages import client_ip, context_of

__all__ = ["SCANNER_AGENTS", "click", "is_scanner_agent", "routes", "with_utm"]

#: user agents of link checkers that open every link of a message on delivery
SCANNER_AGENTS = re.compile(
    r"safelinks|barracuda|proofpoint|mimecast|urldefense|symantec|trendmicro|"
    r"forcepoint|sophos|bot\b|crawler|spider|scanner|preview|google-safety|"
    r"microsoft office|ms-office|python-requests",
    re.IGNORECASE,
)
_SOON = timedelta(seconds=10)  # a click this soon after delivery is a scanner's


def is_scanner_agent(user_agent: str) -> bool:
    """True for the user agent of a known link scanner (or none at all)."""
    return not user_agent.strip() or bool(SCANNER_AGENTS.search(user_agent))


def with_utm(url: str, edition_id: str) -> str:
    """``url`` with the newsletter's UTM tags added (its own query and fragment kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    tags = {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": edition_id}
    query = [(k, v) for k, v in query if k not in tags] + list(tags.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


async def click(request: Request) -> Response:
    """GET or HEAD /c/{token}: record the click and redirect; 404 for a bad token."""
    ctx = context_of(request)
    settings = ctx.settings
    target = read_click_token(settings.secret(), str(request.path_params["token"]))
    if target is None:
        return PlainTextResponse("Not found", status_code=404)
    agent = request.headers.get("user-agent", "")
    address = client_ip(request)
    head = request.method == "HEAD"

    def record() -> str | None:
        now = utcnow()
        with ctx.engine.begin() as conn:
            try:
                edition = get_edition(conn, target.edition_id)
            except NotFoundError:
                return None
            found = [a for a in edition.articles() if a.id == target.article_id]
            if not found or link_hash(found[0].url) != target.link:
                return None
            scanner = head or is_scanner_agent(agent)
            if target.subscriber_id is not None and not scanner:
                sent_at = conn.execute(
                    sa.select(deliveries.c.sent_at).where(
                        deliveries.c.edition_id == edition.id,
                        deliveries.c.subscriber_id == target.subscriber_id,
                    )
                ).scalar_one_or_none()
                scanner = sent_at is not None and now - sent_at < _SOON
            seen = f"{address}\n{agent}\n{edition.id}".encode()
            visitor = hmac.digest(bytes(settings.secret()), seen, hashlib.sha256).hex()[:32]
            conn.execute(
                clicks.insert().values(
                    edition_id=edition.id,
                    article_id=target.article_id,
                    subscriber_id=(
                        target.subscriber_id if settings.track_clicks == "per-subscriber" else None
                    ),
                    visitor=visitor,
                    kind="scanner" if scanner else "human",
                    at=now,
                    arm=target.arm,  # a subject-line test's arm, counted per arm
                )
            )
            return with_utm(found[0].url, edition.id)

    url = await run_in_threadpool(record)
    if url is None:
        return PlainTextResponse("Not found", status_code=404)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    """The click route."""
    return [Route("/c/{token}", click, methods=["GET", "HEAD"])]
