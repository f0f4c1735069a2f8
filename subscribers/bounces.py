"""Bounce evidence and bounce scores: VERP return paths and soft-bounce counting.

**VERP.** Every message of a send leaves with its own envelope sender,
``<local>+<token>@<domain>`` (the bounce address, ``NEWSLETTER_BOUNCE_ADDRESS``,
default ``bounces@`` the From address's domain), where the token is signed for that
one subscriber and address. A bounce comes back *to* that address, so the address
proves whom the bounced message was sent to; a report sent anywhere else proves
nothing. The tag is a link token (:mod:`subscribers.tokens`) of the ``bounce``
purpose, so a return path is never an unsubscribe link nor the reverse, and it
expires (a bounce comes back within days); it is spelled in lower case only, so an
MTA that folds case cannot spoil it. :func:`bounce_token` and
:func:`bounce_token_owner` are the only two places that make or check one.

**Scores.** Like Mailman and listmonk, one soft bounce (a 4.x.x failure, a full
mailbox, a policy refusal) is no reason to stop writing to someone; a few within a
window are. :func:`record_soft_bounce` keeps each soft bounce as a ``soft_bounce``
event in the person's history and marks them bounced once
:data:`SOFT_BOUNCE_LIMIT` of them fall within :data:`SOFT_BOUNCE_WINDOW`
(the same returned message counted once). Hard bounces (5.1.x: no such mailbox or
domain) are the caller's to apply at once, through ``store.mark_bounced``.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.config import Settings
from newsletter.core.errors import ConfigError, TokenError
from subscribers import store
from subscribers.model import Subscriber
from subscribers.schema import subscriber_events
from subscribers.tokens import Purpose, make_token, verify_token

__all__ = [
    "SOFT_BOUNCE_EVENT",
    "SOFT_BOUNCE_LIMIT",
    "SOFT_BOUNCE_WINDOW",
    "SoftBounce",
    "bounce_address",
    "bounce_token",
    "bounce_token_owner",
    "record_soft_bounce",
    "return_paths",
    "soft_bounce_score",
    "verp_token",
]

#: soft bounces within :data:`SOFT_BOUNCE_WINDOW` that make a person ``bounced``
SOFT_BOUNCE_LIMIT = 3
SOFT_BOUNCE_WINDOW = timedelta(days=30)
#: the history event one soft bounce leaves
SOFT_BOUNCE_EVENT = "soft_bounce"

# a tag's shape: a token's purpose letter, id hex and issued hex, then its MAC in hex
_TAG_SHAPE = re.compile(r"[a-z]\.[0-9a-f]{1,16}\.[0-9a-f]{1,16}\.(?:[0-9a-f]{2}){8,64}")
# RFC 5321: a local part is at most 64 octets; "+" and the tag take up to 53 of them
_MAX_BASE_LOCAL = 11


# --- the one place that makes and checks a bounce token -----------------------


# Some MTAs fold the case of the address they deliver to (Postfix's Delivered-To is
# lower case), so the tag spells the token's base64url MAC in hex (base32 would be
# shorter, but it is pure Python and costs 5 µs): the tag survives any case folding,
# and turns back into the token to be checked.


def _tag(token: str) -> str:
    head, _, mac = token.rpartition(".")
    return f"{head}.{base64.urlsafe_b64decode(mac + '=' * (-len(mac) % 4)).hex()}"


def _token(tag: str) -> str:
    head, _, mac = tag.lower().rpartition(".")
    try:
        raw = bytes.fromhex(mac)
    except ValueError:
        raise TokenError("the return path is malformed") from None
    return f"{head}.{base64.urlsafe_b64encode(raw).decode('ascii').rstrip('=')}"


def bounce_token(
    secret: bytes, subscriber_id: int, address: str, now: datetime | None = None
) -> str:
    """The signed tag of the return path of ``subscriber_id`` at ``address`` (as stored):
    a ``bounce`` token, spelled in lower case."""
    return _tag(make_token(secret, Purpose.BOUNCE, subscriber_id, address, now))


def bounce_token_owner(
    secret: bytes,
    token: str,
    owner: Callable[[int], Subscriber | None],
    now: datetime | None = None,
) -> int:
    """The subscriber id a genuine return-path tag names (in any letter case).

    ``owner(id)`` loads the subscriber holding the id now (``store.find`` in the
    caller's transaction). Raises
    :class:`~newsletter.core.errors.TokenOwnerGoneError` when that person was
    erased, :class:`~newsletter.core.errors.TokenExpiredError` for a tag older than
    the ``bounce`` purpose allows, and :class:`~newsletter.core.errors.TokenError`
    for a tampered or foreign one.
    """
    return verify_token(secret, Purpose.BOUNCE, _token(token), owner, now)


# --- addresses ----------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _base(configured: str | None, sender_domain: str) -> tuple[str, str]:
    address = parseaddr(configured)[1] if configured else f"bounces@{sender_domain}"
    local, at, domain = address.rpartition("@")
    if (
        not at
        or not local
        or "@" in local
        or not domain
        or not address.isascii()
        or any(c.isspace() or c in '<>"(),;:\\[]' for c in address)
    ):
        raise ConfigError(
            "NEWSLETTER_BOUNCE_ADDRESS must be a plain address like bounces@example.com"
        )
    if len(local) > _MAX_BASE_LOCAL:
        raise ConfigError(
            f"NEWSLETTER_BOUNCE_ADDRESS: the part before @ must be at most {_MAX_BASE_LOCAL}"
            " characters (each message adds a signed tag to it)"
        )
    return local, domain.lower()


def bounce_address(settings: Settings) -> str:
    """The untagged bounce address (``bounces@news.example.com`` by default)."""
    local, domain = _base(settings.bounce_address, settings.sender_domain)
    return f"{local}@{domain}"


def return_paths(settings: Settings) -> Callable[[int, str], str]:
    """A function giving each recipient (subscriber id, address as stored) its VERP
    return path: the ``MAIL FROM`` of their message.

    Everything but the token is worked out once here, so the per-message cost is
    one :func:`bounce_token`. Raises :class:`ConfigError` for an unusable
    ``NEWSLETTER_BOUNCE_ADDRESS``.
    """
    local, domain = _base(settings.bounce_address, settings.sender_domain)
    secret = settings.secret()

    def return_path(subscriber_id: int, address: str) -> str:
        return f"{local}+{bounce_token(secret, subscriber_id, address)}@{domain}"

    return return_path


def verp_token(address: str) -> str | None:
    """The tag of a VERP return path (``local+TAG@domain``), unverified; None for any
    other address."""
    local = address.strip().strip("<>").rpartition("@")[0]
    tag = local.rpartition("+")[2] if "+" in local else ""
    tag = tag.lower()
    return tag if _TAG_SHAPE.fullmatch(tag) else None


# --- soft-bounce scores -------------------------------------------------------


@dataclass(frozen=True)
class SoftBounce:
    """What one soft bounce did: the person's score now, and whether it bounced them."""

    score: int
    bounced: bool


def soft_bounce_score(
    conn: Connection,
    subscriber_id: int,
    *,
    now: datetime,
    window: timedelta = SOFT_BOUNCE_WINDOW,
) -> int:
    """Soft bounces in the person's history within ``window`` before ``now``.

    Counted since their latest confirmation too (a fresh consent starts afresh), and
    two reports about the same returned message (by Message-ID) count once.
    """
    person = store.get(conn, subscriber_id)
    since = now - window
    if person.confirmed_at is not None and person.confirmed_at > since:
        since = person.confirmed_at
    events = subscriber_events.c
    rows = conn.execute(
        sa.select(events.detail).where(
            events.subscriber_id == subscriber_id,
            events.kind == SOFT_BOUNCE_EVENT,
            events.at >= since,
            events.at <= now,
        )
    ).scalars()
    seen: set[str] = set()
    score = 0
    for detail in rows:
        message_id = (detail or {}).get("message_id")
        if message_id:
            if message_id in seen:
                continue
            seen.add(message_id)
        score += 1
    return score


def record_soft_bounce(
    conn: Connection,
    subscriber_id: int,
    *,
    status: str,
    reason: str,
    now: datetime,
    message_id: str | None = None,
    limit: int = SOFT_BOUNCE_LIMIT,
    window: timedelta = SOFT_BOUNCE_WINDOW,
    **detail: str,
) -> SoftBounce:
    """Record one soft bounce (with evidence) and mark the person bounced when it
    brings their score to ``limit`` within ``window``.

    The caller checks the person is still pending or confirmed.
    """
    store.record_event(
        conn,
        subscriber_id,
        SOFT_BOUNCE_EVENT,
        now,
        status=status,
        reason=reason,
        message_id=message_id,
        **detail,
    )
    score = soft_bounce_score(conn, subscriber_id, now=now, window=window)
    if score < limit:
        return SoftBounce(score, bounced=False)
    days = window.days or round(window.total_seconds() / 86400, 2)
    store.mark_bounced(
        conn, subscriber_id, f"{score} soft bounces within {days} days (last: {reason})", now
    )
    return SoftBounce(score, bounced=True)
