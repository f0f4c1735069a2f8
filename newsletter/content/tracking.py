"""Signed click-tracking tokens: ``BASE_URL/c/<token>`` for an article link of an edition.

A token binds the edition, the article and the link (a hash of its URL); in
per-subscriber mode also the reader's id. It is signed with the keyring's
current key (checked under retired keys too), so a forged or altered token is
refused and can never send a reader elsewhere: the redirect's target is read
from the stored edition, never from the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from newsletter.core.keys import keys_to_try

__all__ = ["ClickTarget", "click_token", "link_hash", "read_click_token"]

_CONTEXT = b"newsletter click tokens v1"


@dataclass(frozen=True, slots=True)
class ClickTarget:
    """What a genuine token names."""

    edition_id: str
    article_id: str
    link: str  # link_hash(url) of the article's URL when the email was made
    subscriber_id: int | None = None


def link_hash(url: str) -> str:
    """A short hash of a link's URL (binds a token to the link it was made for)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _sign(key: bytes, body: str) -> str:
    derived = hmac.digest(key, _CONTEXT, "sha256")
    return _b64(hmac.digest(derived, body.encode("ascii"), "sha256")[:16])


def click_token(
    secret: bytes, edition_id: str, article_id: str, url: str, subscriber_id: int | None = None
) -> str:
    """The token for ``url`` (article ``article_id`` of ``edition_id``), optionally a reader's."""
    fields = [edition_id, article_id, link_hash(url)]
    if subscriber_id is not None:
        fields.append(f"{subscriber_id:x}")
    body = _b64("\n".join(fields).encode("utf-8"))
    return f"{body}.{_sign(bytes(secret), body)}"


def read_click_token(secret: bytes, token: str) -> ClickTarget | None:
    """What a genuine token names, or None for a malformed, forged or altered one."""
    body, _, signature = token.partition(".")
    if not body or not signature or len(token) > 1000:
        return None
    try:
        genuine = any(
            hmac.compare_digest(_sign(key, body), signature) for key in keys_to_try(secret)
        )
        if not genuine:
            return None
        fields = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    except (ValueError, UnicodeError):
        return None
    parts = fields.split("\n")
    if len(parts) == 3:
        return ClickTarget(parts[0], parts[1], parts[2])
    if len(parts) == 4:
        try:
            return ClickTarget(parts[0], parts[1], parts[2], int(parts[3], 16))
        except ValueError:
            return None
    return None
