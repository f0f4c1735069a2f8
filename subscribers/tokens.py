"""Signed, URL-safe tokens for the confirm, unsubscribe, preferences and bounce links.

A token reads ``{purpose}.{subscriber id hex}.{issued unix time hex}.{signature}``
where the signature is the first 16 bytes of an HMAC-SHA256, base64url without
padding, over the other three parts *and the subscriber's address*, under a key
derived from the secret (so a token key never doubles as the suppression-hash
key). The address is not in the token; checking one looks the subscriber up and
signs with the address held now. A token thus binds to the person it was made
for: once they are erased, nobody holds that (id, address) pair again (ids are
never reused either), so an old link can never act on someone else.

The purpose letter is in the clear so that a wrong-purpose token gets a clear
error, and it is signed, so it cannot be swapped. ``confirm`` tokens expire after
7 days, ``bounce`` tokens (VERP) after 30; an unsubscribe link must work from a
year-old email.

Made per recipient per send (twice), so the path is plain stdlib: one
``hmac.digest`` call (C) and a few string operations, about 2 µs.

Key rotation: a token is always made with the current key. When ``secret`` is a
:class:`~newsletter.core.keys.SigningSecret` carrying retired keys, a token that
does not match the current key is checked against each retired key in turn, so
links in old emails keep working; purpose and expiry rules are the same.

An unsubscribe token may name a newsletter (a fifth, signed part:
``u.{id}.{issued}.{newsletter}.{signature}``): it then unsubscribes from that
newsletter only. A token without one (every link made before there were several
newsletters) means "every newsletter": the reader who pressed it asked to stop
receiving mail from us, and that is what it does.

Links made before tokens were bound to the address (signed over the three parts
only) are still honoured for ``unsubscribe`` alone, so one-click unsubscribes in
emails already delivered keep working, and only when issued after the person
holding the id was created: such a link never reaches a later holder of the id.
"""

from __future__ import annotations

import base64
import functools
import hmac
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from newsletter.core.errors import TokenError, TokenExpiredError, TokenOwnerGoneError
from newsletter.core.keys import keys_to_try
from newsletter.core.newsletters import NEWSLETTER_ID_RE
from subscribers.model import Subscriber

__all__ = [
    "DEFAULT_MAX_AGE",
    "Purpose",
    "TokenError",
    "TokenExpiredError",
    "TokenOwnerGoneError",
    "make_token",
    "verify_scoped_token",
    "verify_token",
]


class Purpose(StrEnum):
    """What a token lets its bearer do."""

    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    BOUNCE = "bounce"


_CODE = {
    Purpose.CONFIRM: "c",
    Purpose.UNSUBSCRIBE: "u",
    Purpose.PREFERENCES: "p",
    Purpose.BOUNCE: "b",
}
_PURPOSE = {code: purpose for purpose, code in _CODE.items()}

#: how long a token of each purpose stays valid; None = for ever
DEFAULT_MAX_AGE: dict[Purpose, timedelta | None] = {
    Purpose.CONFIRM: timedelta(days=7),
    Purpose.UNSUBSCRIBE: None,
    Purpose.PREFERENCES: None,
    # a bounce comes back within the relay's retry period (days), never months later
    Purpose.BOUNCE: timedelta(days=30),
}
# a clock a little behind the issuer's must not reject a fresh token
_CLOCK_SKEW = 300


@functools.lru_cache(maxsize=16)
def _key(secret: bytes) -> bytes:
    return hmac.digest(secret, b"newsletter link tokens v1", "sha256")


def _signature(secret: bytes, signed: str) -> str:
    mac = hmac.digest(_key(secret), signed.encode("utf-8"), "sha256")[:16]
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def _timestamp(now: datetime | None) -> int:
    return int(time.time()) if now is None else int(now.timestamp())


def make_token(
    secret: bytes,
    purpose: Purpose | str,
    subscriber_id: int,
    address: str,
    now: datetime | None = None,
    newsletter: str | None = None,
) -> str:
    """A URL-safe token letting its bearer do ``purpose`` for ``subscriber_id`` at ``address``.

    ``address`` is the subscriber's address as stored (``Subscriber.email``): the
    token works only while that id holds that address. ``newsletter`` (an id) binds
    it to one newsletter. Signed with the current key only (retired keys cost nothing).
    """
    body = f"{_CODE[Purpose(purpose)]}.{subscriber_id:x}.{_timestamp(now):x}"
    if newsletter is not None:
        if not NEWSLETTER_ID_RE.fullmatch(newsletter):
            raise ValueError(f"{newsletter!r} is not a newsletter id")
        body += f".{newsletter}"
    return body + "." + _signature(secret, body + "\n" + address)


def _genuine(secret: bytes, signed: str, signature: str) -> bool:
    try:
        # each comparison is constant-time; which key matched is no secret
        return any(
            hmac.compare_digest(_signature(key, signed), signature) for key in keys_to_try(secret)
        )
    except (UnicodeEncodeError, TypeError):
        return False


def verify_token(
    secret: bytes,
    purpose: Purpose | str,
    token: str,
    owner: Callable[[int], Subscriber | None],
    now: datetime | None = None,
    max_age: timedelta | None = None,
) -> int:
    """The subscriber id in a genuine ``token`` (see :func:`verify_scoped_token`)."""
    return verify_scoped_token(secret, purpose, token, owner, now, max_age)[0]


def verify_scoped_token(
    secret: bytes,
    purpose: Purpose | str,
    token: str,
    owner: Callable[[int], Subscriber | None],
    now: datetime | None = None,
    max_age: timedelta | None = None,
) -> tuple[int, str | None]:
    """(subscriber id, newsletter id or None) of a genuine ``token``; None: every newsletter.

    The subscriber id in a genuine, unexpired ``token`` made for ``purpose`` and that person.

    ``owner(id)`` loads the subscriber holding the id now (``store.find`` in the
    caller's transaction); the token must have been made for their address.
    Genuine means signed with the current key or, after a rotation, with one of
    the retired keys ``secret`` carries. Raises :class:`TokenOwnerGoneError` when
    nobody holds the id (erased: the token cannot be checked and acts on no one),
    :class:`TokenError` for a malformed, tampered or wrong-purpose token (or one
    signed with an unknown key, or for someone else) and :class:`TokenExpiredError`
    for a genuine one older than ``max_age`` (default: :data:`DEFAULT_MAX_AGE`).
    """
    wanted = Purpose(purpose)
    parts = token.split(".")
    if len(parts) not in (4, 5) or not all(parts):
        raise TokenError("the link is malformed (it may have been cut short)")
    newsletter = parts.pop(3) if len(parts) == 5 else None
    if newsletter is not None and not NEWSLETTER_ID_RE.fullmatch(newsletter):
        raise TokenError("the link is malformed (it may have been cut short)")
    code, id_hex, issued_hex, signature = parts
    try:
        subscriber_id, issued = int(id_hex, 16), int(issued_hex, 16)
    except ValueError:
        raise TokenError("the link is malformed (it may have been cut short)") from None
    if code not in _PURPOSE:
        raise TokenError("the link is malformed (it may have been cut short)")
    if _PURPOSE[code] is not wanted:
        raise TokenError(f"the link is not a {wanted.value} link")
    person = owner(subscriber_id)
    if person is None:
        raise TokenOwnerGoneError(subscriber_id)
    body = f"{code}.{id_hex}.{issued_hex}" + (f".{newsletter}" if newsletter else "")
    genuine = _genuine(secret, body + "\n" + person.email, signature)
    unbound = newsletter is None and code == _CODE[Purpose.UNSUBSCRIBE]
    if not genuine and unbound and wanted is Purpose.UNSUBSCRIBE:
        # an unbound link from before tokens named the address: only if it was
        # issued to the person who holds the id now
        made = int(person.created_at.timestamp())
        genuine = issued >= made and _genuine(secret, body, signature)
    if not genuine:
        raise TokenError("the link is not genuine (it was altered or signed with another key)")
    if _PURPOSE.get(code) is not wanted:
        raise TokenError(f"the link is not a {wanted.value} link")
    limit = max_age if max_age is not None else DEFAULT_MAX_AGE[wanted]
    current = _timestamp(now)
    if issued > current + _CLOCK_SKEW:
        raise TokenError("the link was issued in the future")
    if limit is not None and current - issued > limit.total_seconds():
        raise TokenExpiredError(f"the {wanted.value} link has expired; ask for a new one")
    return subscriber_id, newsletter
