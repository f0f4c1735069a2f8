"""Request limits of the web pages (signups per client, emails per address), in the database.

A :class:`RequestLimiter` counts events per key in a window that opens at the
key's first event: one row per (bucket, key) in ``web_limits``, bumped by one
atomic ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``. Being in the
database, a limit holds across a restart and across several ``serve``
processes on one database. Keys are stored only as a keyed hash: the table
never holds an address. (Not to be confused with the sending pace,
``newsletter.delivery.pacing.RateLimiter``.)
"""

from __future__ import annotations

import hashlib
import hmac
import time

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from newsletter.core.db import is_postgres
from newsletter.core.schema import web_limits

__all__ = ["PRUNE_EVERY", "RequestLimiter"]

#: seconds between two sweeps of the counters whose window is over
PRUNE_EVERY = 60.0


class RequestLimiter:
    """At most ``limit`` events per key in ``window`` seconds, counted in the database.

    Blocking (one short transaction): call :meth:`allow` from a worker thread.
    """

    def __init__(
        self, engine: Engine, secret: bytes, bucket: str, limit: int, window: float
    ) -> None:
        self.engine = engine
        self.bucket = bucket
        self.limit = limit
        self.window = window
        self._hash_key = hashlib.sha256(b"newsletter-web-limits\0" + bytes(secret)).digest()
        self._pruned = 0.0

    def key_hash(self, key: str) -> str:
        """How ``key`` is stored: a keyed hash, so no address sits in the table."""
        message = f"{self.bucket}\0{key}".encode()
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()[:40]

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count one event for ``key``; False when it is over the limit."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            hits = self._bump(conn, self.key_hash(key), now)
            if now - self._pruned >= PRUNE_EVERY:
                self._pruned = now
                conn.execute(
                    web_limits.delete().where(
                        web_limits.c.bucket == self.bucket,
                        web_limits.c.window_start <= now - self.window,
                    )
                )
        return hits <= self.limit

    def _bump(self, conn: Connection, key: str, now: float) -> int:
        insert = postgresql.insert if is_postgres(conn) else sqlite.insert
        upsert = insert(web_limits).values(bucket=self.bucket, key=key, window_start=now, hits=1)
        expired = web_limits.c.window_start <= now - self.window
        stmt = upsert.on_conflict_do_update(
            index_elements=[web_limits.c.bucket, web_limits.c.key],
            set_={
                "hits": sa.case((expired, 1), else_=web_limits.c.hits + 1),
                "window_start": sa.case((expired, now), else_=web_limits.c.window_start),
            },
        ).returning(web_limits.c.hits)
        return int(conn.execute(stmt).scalar_one())
