"""The suppression list: keyed hashes of addresses that must not be added again unasked.

When a person is erased, nothing personal is kept, only an HMAC-SHA256 of their
address key under a key derived from ``NEWSLETTER_SECRET_KEY``. Without that
secret the hash cannot be tested against a guessed address; with it, a later
add or import of the same address is recognised and refused.

Key rotation: new suppressions are hashed under the current key. A check also
hashes under each retired key the secret carries
(:class:`~newsletter.core.keys.SigningSecret`), so an address erased before the
rotation stays refused; a row found under a retired key is re-hashed to the
current key there and then. A retired key removed from the settings forgets the
suppressions only it still covers, so retired keys are kept listed.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.db import rows_in_batches
from newsletter.core.keys import keys_to_try
from subscribers.schema import suppressions

__all__ = [
    "address_hash",
    "has_any",
    "hashers",
    "is_suppressed",
    "lift",
    "suppress",
    "suppressed_among",
]

_HASH = suppressions.c.address_hash


@functools.lru_cache(maxsize=16)
def _key(secret: bytes) -> bytes:
    return hmac.digest(secret, b"newsletter suppression hashes v1", "sha256")


def address_hash(secret: bytes, key: str) -> str:
    """The keyed hash kept for an address key (:attr:`Address.key`), under the current key."""
    return hmac.new(_key(bytes(secret)), key.encode("utf-8"), hashlib.sha256).hexdigest()


def hashers(secret: bytes) -> list[Callable[[str], str]]:
    """One function per accepted key (the current one first), each giving
    :func:`address_hash` of an address key under it: for hashing a whole import.

    The HMAC (RFC 2104) is taken as its two SHA-256 passes with the padded key's
    states computed once: half the cost of ``hmac.HMAC.copy`` per address.
    """

    def under(key: bytes) -> Callable[[str], str]:
        block = _key(key).ljust(hashlib.sha256().block_size, b"\0")
        inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

        def digest(address_key: str) -> str:
            first = inner.copy()
            first.update(address_key.encode("utf-8"))
            second = outer.copy()
            second.update(first.digest())
            return second.hexdigest()

        return digest

    return [under(bytes(key)) for key in keys_to_try(secret)]


def _hashes(secret: bytes, key: str) -> list[str]:
    """The hashes of ``key`` under every accepted key, the current one first."""
    return [address_hash(k, key) for k in keys_to_try(secret)]


def _found(conn: Connection, hashes: Collection[str]) -> set[str]:
    """Which of ``hashes`` are held (in batches: SQLite caps a statement's values)."""
    query = sa.select(_HASH).where(_HASH.in_(sa.bindparam("h", expanding=True)))
    return {row[0] for row in rows_in_batches(conn, query, "h", hashes)}


def _settle(conn: Connection, hashes: list[str], found: set[str]) -> None:
    """Leave one row, under the current hash, for an address whose rows are ``found``."""
    current, stale = hashes[0], [h for h in hashes[1:] if h in found]
    if not stale:
        return
    if current not in found:  # keep one record's reason and date, under the current hash
        kept = suppressions.c.address_hash == stale.pop()
        conn.execute(suppressions.update().where(kept).values(address_hash=current))
    if stale:
        conn.execute(suppressions.delete().where(_HASH.in_(stale)))


def has_any(conn: Connection) -> bool:
    """True when at least one address is suppressed (lets an import skip hashing)."""
    return conn.execute(sa.select(_HASH).limit(1)).first() is not None


def is_suppressed(conn: Connection, secret: bytes, key: str) -> bool:
    """True when the address with this key was erased and not since re-admitted.

    Matches a hash under the current key or any retired key; a match under a
    retired key is re-hashed to the current key.
    """
    hashes = _hashes(secret, key)
    found = _found(conn, hashes)
    _settle(conn, hashes, found)
    return bool(found)


def suppressed_among(conn: Connection, secret: bytes, keys: Collection[str]) -> set[str]:
    """Which of ``keys`` are suppressed, in one query (any accepted key; re-hashed as above)."""
    if not keys:
        return set()
    every = {key: _hashes(secret, key) for key in keys}
    by_hash = {h: key for key, hashes in every.items() for h in hashes}
    found = _found(conn, by_hash)
    hit = {by_hash[h] for h in found}
    for key in hit:
        _settle(conn, every[key], found)
    return hit


def suppress(conn: Connection, secret: bytes, key: str, reason: str, now: datetime) -> None:
    """Record that the address with this key must not be added again unasked (idempotent)."""
    hashes = _hashes(secret, key)
    found = _found(conn, hashes)
    if found:
        _settle(conn, hashes, found)
        return
    row = {"address_hash": hashes[0], "reason": reason, "created_at": now}
    conn.execute(suppressions.insert().values(**row))


def lift(conn: Connection, secret: bytes, key: str) -> bool:
    """Forget the suppression of this address (an explicit re-admission); True if there was one.

    Removes it under the current key and every retired key.
    """
    result = conn.execute(suppressions.delete().where(_HASH.in_(_hashes(secret, key))))
    return bool(result.rowcount)
