"""The keyring: the current secret key, the retired ones still honoured, and their checks.

New link tokens and suppression hashes use the current key only; checking a
token or a suppression also tries each retired key (``NEWSLETTER_SECRET_KEYS_PREVIOUS``).
A key must hold at least 32 bytes of entropy: a short or blank key makes every
link forgeable and every suppression hash guessable, so it is refused.

A database records the :func:`fingerprint` of the key it is used with (a keyed
hash, never the key), so a command run with another key is refused instead of
signing links the web rejects and missing the suppressions of erased people.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Iterable

from newsletter.core.errors import ConfigError

__all__ = [
    "MIN_KEY_BYTES",
    "SigningSecret",
    "check_key_strength",
    "fingerprint",
    "key_standing",
    "keys_to_try",
    "make_key_hint",
    "signing_secret",
]

#: the shortest key accepted, in bytes (an HMAC-SHA256 key of full strength)
MIN_KEY_BYTES = 32
# a key of 32 characters drawn from fewer symbols than this is a pattern, not a key
_MIN_DISTINCT = 8


class SigningSecret(bytes):
    """The current secret key, as ``bytes``, carrying the retired keys still honoured.

    Every caller that signs treats it as the plain current key, so signing costs
    what it did before rotation. Code that *checks* a token or a suppression hash
    tries :attr:`previous` too, through :func:`keys_to_try`. ``repr`` and ``str``
    hide every key.
    """

    previous: tuple[bytes, ...]

    def __new__(cls, current: bytes, previous: Iterable[bytes] = ()) -> SigningSecret:
        """The current key plus the retired ones (blanks and repeats of current dropped)."""
        made = super().__new__(cls, current)
        made.previous = tuple(k for k in dict.fromkeys(previous) if k and k != current)
        return made

    def __repr__(self) -> str:
        return f"SigningSecret('**********', previous={len(self.previous)} hidden)"

    __str__ = __repr__


def keys_to_try(secret: bytes) -> tuple[bytes, ...]:
    """The keys a check should accept, the current one first (retired ones only for a
    :class:`SigningSecret`)."""
    if isinstance(secret, SigningSecret):
        return (bytes(secret), *secret.previous)
    return (secret,)


def make_key_hint() -> str:
    """How to make a good key, for error messages and the README."""
    return "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def check_key_strength(key: str, setting: str) -> None:
    """Refuse a blank, short (under :data:`MIN_KEY_BYTES`) or patterned key, naming ``setting``.

    The message never contains the key.
    """
    if not key.strip():
        raise ConfigError(f"{setting} is empty; {make_key_hint()}")
    if len(key.encode("utf-8")) < MIN_KEY_BYTES or len(set(key)) < _MIN_DISTINCT:
        raise ConfigError(
            f"{setting} is too weak (at least {MIN_KEY_BYTES} random bytes are needed); "
            f"{make_key_hint()}"
        )


@functools.lru_cache(maxsize=8)
def signing_secret(current: str, previous: str | None) -> SigningSecret:
    """The :class:`SigningSecret` for a current key and comma-separated retired keys.

    Built once per key set, not per call: it is on the per-recipient path (two
    signed links a message). Raises :class:`ConfigError` for a weak current key.
    """
    check_key_strength(current, "NEWSLETTER_SECRET_KEY")
    listed = previous.split(",") if previous else []
    return SigningSecret(current.encode(), tuple(k.strip().encode() for k in listed if k.strip()))


def fingerprint(key: bytes) -> str:
    """A keyed hash naming ``key`` without revealing it (what a database records)."""
    return hmac.digest(bytes(key), b"newsletter database key fingerprint v1", "sha256").hex()[:32]


def key_standing(recorded: str | None, secret: bytes) -> str | None:
    """How the fingerprint a database ``recorded`` stands to ``secret``: ``"current"``
    (the current key's), ``"retired"`` (a retired key's, during a rotation), None (none
    recorded yet). Raises :class:`ConfigError` naming the setting, never a key, for any
    other key's fingerprint.
    """
    if recorded is None:
        return None
    prints = [fingerprint(key) for key in keys_to_try(secret)]
    if recorded == prints[0]:
        return "current"
    if recorded in prints[1:]:
        return "retired"
    raise ConfigError(
        "NEWSLETTER_SECRET_KEY is not the key this database was used with; set it to that "
        "key (or, to rotate, list that key in NEWSLETTER_SECRET_KEYS_PREVIOUS)"
    )
