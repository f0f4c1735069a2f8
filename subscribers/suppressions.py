"""The suppression list: keyed hashes of addresses that must not be added again unasked.

When a person is erased, nothing personal is kept, only an HMAC-SHA256 of their
address key under a key derived from ``NEWSLETTER_SECRET_KEY``. Without that
secret the hash cannot be tested against a guessed address; with it, a later
add or import of the same address is recognised and refused. (Rotating the
secret therefore forgets the suppressions: keep it.)
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.schema import suppressions

__all__ = ["address_hash", "has_any", "is_suppressed", "lift", "suppress", "suppressed_among"]


@functools.lru_cache(maxsize=16)
def _key(secret: bytes) -> bytes:
    return hmac.digest(secret, b"newsletter suppression hashes v1", "sha256")


def address_hash(secret: bytes, key: str) -> str:
    """The keyed hash kept for an address key (:attr:`Address.key`)."""
    return hmac.new(_key(secret), key.encode("utf-8"), hashlib.sha256).hexdigest()


def has_any(conn: Connection) -> bool:
    """True when at least one address is suppressed (lets an import skip hashing)."""
    return conn.execute(sa.select(suppressions.c.address_hash).limit(1)).first() is not None


def is_suppressed(conn: Connection, secret: bytes, key: str) -> bool:
    """True when the address with this key was erased and not since re-admitted."""
    query = sa.select(suppressions.c.reason).where(
        suppressions.c.address_hash == address_hash(secret, key)
    )
    return conn.execute(query).first() is not None


def suppressed_among(conn: Connection, secret: bytes, keys: Collection[str]) -> set[str]:
    """Which of ``keys`` are suppressed, in one query."""
    if not keys:
        return set()
    by_hash = {address_hash(secret, key): key for key in keys}
    query = sa.select(suppressions.c.address_hash).where(
        suppressions.c.address_hash.in_(list(by_hash))
    )
    return {by_hash[h] for h in conn.execute(query).scalars()}


def suppress(conn: Connection, secret: bytes, key: str, reason: str, now: datetime) -> None:
    """Record that the address with this key must not be added again unasked (idempotent)."""
    digest = address_hash(secret, key)
    exists = conn.execute(
        sa.select(suppressions.c.address_hash).where(suppressions.c.address_hash == digest)
    ).first()
    if exists is None:
        conn.execute(
            suppressions.insert().values(address_hash=digest, reason=reason, created_at=now)
        )


def lift(conn: Connection, secret: bytes, key: str) -> bool:
    """Forget the suppression of this address (an explicit re-admission); True if there was one."""
    result = conn.execute(
        suppressions.delete().where(suppressions.c.address_hash == address_hash(secret, key))
    )
    return bool(result.rowcount)
