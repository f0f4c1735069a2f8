"""Signed click-tracking tokens: ``BASE_URL/c/<token>`` for an article link of an edition.

A token binds the edition, the article and the link (a hash of its URL): the
*link part*, ``<body>.<signature>``, made once per variant at render time; in a
subject-line test's arm it binds the arm (``A`` or ``B``) too. In
per-subscriber mode a *reader part* follows, ``.<subscriber id, hex>.<signature>``,
whose signature binds the reader to the edition: one HMAC per recipient, made in
:meth:`newsletter.content.message.MessageTemplate.personalise` and shared by every
link of their message (the link parts stay the variant's). Both are signed with
the keyring's current key (checked under retired keys too), so a forged or
altered token is refused and can never send a reader elsewhere: the redirect's
target is read from the stored edition, never from the token.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jinja2
from markupsafe import Markup, escape

from newsletter.core.config import Settings
from newsletter.core.keys import keys_to_try

__all__ = [
    "CLICK_SLOT",
    "ClickTarget",
    "ReaderSigner",
    "click_links",
    "click_token",
    "link_hash",
    "read_click_token",
]

_CONTEXT = b"newsletter click tokens v1"
#: the per-recipient slot after a link part in per-subscriber mode
#: (``newsletter.content.render.slot("click")``; render imports this module)
CLICK_SLOT = "NLPH7click7"
_ARMS = ("A", "B")  # a subject-line test's arms (newsletter.content.arms)

TrackMode = Literal["off", "aggregate", "per-subscriber"]


@dataclass(frozen=True, slots=True)
class ClickTarget:
    """What a genuine token names."""

    edition_id: str
    article_id: str
    link: str  # link_hash(url) of the article's URL when the email was made
    subscriber_id: int | None = None
    arm: str | None = None  # a subject-line test's arm (A or B) the message was in


def link_hash(url: str) -> str:
    """A short hash of a link's URL (binds a token to the link it was made for)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


@functools.lru_cache(maxsize=8)
def _derived(key: bytes) -> bytes:
    # the click tokens' own key, derived once per key (not once per token)
    return hmac.digest(bytes(key), _CONTEXT, "sha256")


def _sign(key: bytes, body: str) -> str:
    return _b64(hmac.digest(_derived(bytes(key)), body.encode("ascii"), "sha256")[:16])


def _reader_body(edition_id: str, subscriber_hex: str) -> bytes:
    return f"reader\n{edition_id}\n{subscriber_hex}".encode()


def _reader_sign(key: bytes, edition_id: str, subscriber_hex: str) -> str:
    digest = hmac.digest(_derived(bytes(key)), _reader_body(edition_id, subscriber_hex), "sha256")
    return _b64(digest[:16])


class ReaderSigner:
    """Makes the reader part of an edition's tokens: one HMAC per recipient."""

    __slots__ = ("_base",)

    def __init__(self, secret: bytes, edition_id: str) -> None:
        # the HMAC state after the edition's prefix; each reader only adds their id
        self._base = hmac.new(_derived(bytes(secret)), _reader_body(edition_id, ""), "sha256")

    def suffix(self, subscriber_id: int) -> str:
        """``.<id hex>.<signature>``: appended to every link part of this reader's message."""
        mark = f"{subscriber_id:x}"
        state = self._base.copy()
        state.update(mark.encode("ascii"))
        return f".{mark}.{_b64(state.digest()[:16])}"


def click_token(
    secret: bytes,
    edition_id: str,
    article_id: str,
    url: str,
    subscriber_id: int | None = None,
    *,
    arm: str | None = None,
) -> str:
    """The token for ``url`` (article ``article_id`` of ``edition_id``), optionally a reader's
    and a subject-line test arm's (``A`` or ``B``)."""
    fields = (edition_id, article_id, link_hash(url), *((arm,) if arm else ()))
    body = _b64("\n".join(fields).encode("utf-8"))
    token = f"{body}.{_sign(bytes(secret), body)}"
    if subscriber_id is None:
        return token
    return token + ReaderSigner(secret, edition_id).suffix(subscriber_id)


def read_click_token(secret: bytes, token: str) -> ClickTarget | None:
    """What a genuine token names, or None for a malformed, forged or altered one."""
    parts = token.split(".")
    if len(parts) not in (2, 4) or not all(parts) or len(token) > 1000:
        return None
    body, signature = parts[0], parts[1]
    keys = keys_to_try(secret)
    try:
        if not any(hmac.compare_digest(_sign(key, body), signature) for key in keys):
            return None
        fields = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    except (ValueError, UnicodeError):
        return None
    found = fields.split("\n")
    if len(found) not in (3, 4) or (len(found) == 4 and found[3] not in _ARMS):
        return None
    arm = found[3] if len(found) == 4 else None
    if len(parts) == 2:
        return ClickTarget(found[0], found[1], found[2], arm=arm)
    mark, reader_signature = parts[2], parts[3]
    try:
        subscriber_id = int(mark, 16)
        genuine = any(
            hmac.compare_digest(_reader_sign(key, found[0], mark), reader_signature) for key in keys
        )
    except (ValueError, UnicodeError):
        return None
    if not genuine or mark != f"{subscriber_id:x}":
        return None
    return ClickTarget(found[0], found[1], found[2], subscriber_id, arm)


def click_links(settings: Settings, edition_id: str, *, web: bool = False) -> Callable[..., Any]:
    """The templates' ``track(article)``: the link an email gives for an article.

    ``NEWSLETTER_TRACK_CLICKS=off`` or ``web`` (the archive's copy): the article's
    own URL. Otherwise ``base_url/c/<link part>``, made once per article and variant;
    ``per-subscriber`` adds :data:`CLICK_SLOT`, which personalisation fills with the
    reader part. Never for "View in browser", unsubscribe, preferences or signup
    links: the templates call it for article links only.
    """
    mode: TrackMode = "off" if web else settings.track_clicks
    base_url, secret = settings.base_url, settings.secret()
    made: dict[str, str] = {}

    @jinja2.pass_eval_context
    def track(eval_ctx: jinja2.nodes.EvalContext, article: Any) -> Any:
        url = str(article.url)
        if mode == "off":
            return url
        token = made.get(article.id)
        if token is None:
            token = made[article.id] = click_token(secret, edition_id, article.id, url)
        base = str(escape(base_url)) if eval_ctx.autoescape else base_url
        tail = CLICK_SLOT if mode == "per-subscriber" else ""
        # the token and the slot are ASCII letters, digits, "-", "_" and ".": nothing to escape
        return Markup(f"{base}/c/{token}{tail}")  # noqa: S704

    return track
