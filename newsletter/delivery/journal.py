"""Group commit for the outbox: many connections' state changes, few transactions.

A message may only go out once its row is durably ``sending``, and a row is
``sent`` only after the relay's 250. Writing each change in its own
transaction would cost a commit per message; instead every connection hands
its change to the :class:`Journal`, whose single writer commits everything
pending in one transaction and wakes the
waiters. Results (``sent``, ``deferred``...) ride along with the next commit,
and at the latest after ``flush_interval``.

Because a connection's result for one message is always queued before its
``begin`` for the next, each connection has at most one row in ``sending`` at
any moment: after a kill -9, at most K rows are ``unknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

from newsletter.core.db import utcnow
from newsletter.core.errors import NotFoundError
from newsletter.delivery import outbox
from newsletter.delivery.lease import senders_folder
from subscribers import store

__all__ = ["DatabaseRunner", "Journal", "Result"]

T = TypeVar("T")


class DatabaseRunner:
    """Runs the send's blocking database work: inline for SQLite, on a thread otherwise.

    SQLite work is short and local (a group commit is a fraction of a
    millisecond), so it runs on the event loop itself: a helper thread would
    only add GIL hand-offs, which cost more than the work (measured: 25-30%
    of the send rate). PostgreSQL waits on the network, so its work goes to
    one dedicated thread and the loop keeps talking SMTP meanwhile.

    On an SQLite file, the write transactions of all sending processes are also
    queued on an ``flock``: a waiting process wakes the moment the lock is free,
    where SQLite's own busy handler would poll with sleeps of 1 to 100 ms, which
    ruins the throughput of several senders sharing one outbox.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._inline = engine.dialect.name == "sqlite"
        self._executor = (
            None
            if self._inline
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-db")
        )
        self._lock_fd: int | None = None
        # One connection for the run's life: a pool checkout (and its reset on
        # return) per group commit cost more than the commit itself.
        self._conn: Connection | None = None
        database = engine.url.database
        if self._inline and database and database != ":memory:":
            folder = senders_folder(Path(database))
            folder.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(folder / "write.lock", os.O_RDWR | os.O_CREAT, 0o600)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, inline or on the database thread."""
        if self._executor is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` inside one transaction (inline or on the database thread)."""

        def work() -> T:
            if self._conn is None or self._conn.invalidated:
                self._conn = self.engine.connect()
            conn = self._conn
            if self._lock_fd is None:
                with conn.begin():
                    return fn(conn, *args)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                with conn.begin():
                    return fn(conn, *args)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

        return await self.run(work)

    def close(self) -> None:
        """Stop the thread (if any) once the queued work is done."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


@dataclass(frozen=True, slots=True)
class Result:
    """One attempt's outcome to write, and the bounce to record with it."""

    mark: outbox.Mark
    bounce_reason: str | None = None


class Journal:
    """Collects ``begin`` requests and results and commits them together."""

    def __init__(
        self,
        db: DatabaseRunner,
        edition_id: str,
        worker: str,
        *,
        flush_interval: float = 0.2,
        max_pending: int = 500,
        group: int = 1,
        gather: float = 0.0005,
    ) -> None:
        self._db = db
        self._edition_id = edition_id
        self._worker = worker
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._group = group  # begins worth waiting for before a commit
        self._gather = gather
        self._begins: list[tuple[int, str, asyncio.Future[bool]]] = []
        self._results: list[Result] = []
        self._syncs: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._run(), name="outbox-journal")

    def begin(self, subscriber_id: int, message_id: str) -> Awaitable[bool]:
        """Make the row ``sending`` durably; resolves to False if it must not be sent."""
        if self._task is None or self._task.done():
            raise RuntimeError("the journal is not running")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._begins.append((subscriber_id, message_id, future))
        self._wake.set()
        return future

    def finish(self, result: Result) -> None:
        """Queue a result; it is written with the next commit."""
        self._results.append(result)
        if len(self._results) >= self._max_pending:
            self._wake.set()

    async def sync(self) -> None:
        """Wait until everything handed over so far is committed."""
        if self._task is None or self._task.done():
            raise RuntimeError("the journal is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._syncs.append(future)
        self._wake.set()
        await future

    async def close(self) -> None:
        """Write everything still pending and stop the writer."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not (self._begins or self._syncs or self._closing):
                # Results alone may wait for the next begin, or the interval.
                timer = loop.call_later(self._flush_interval, self._wake.set)
                try:
                    await self._wake.wait()
                finally:
                    timer.cancel()
            # One turn of the loop lets every connection whose reply is already
            # in hand add its request, so that one commit serves them all.
            await asyncio.sleep(0)
            if 0 < len(self._begins) < self._group and not self._closing:
                # A few more connections are about to ask: half a millisecond
                # here halves the commits, and commits are most of the CPU
                # left per message once the SMTP work is done (measured).
                await asyncio.sleep(self._gather)
            self._wake.clear()
            await self._flush()
            if self._closing and not (self._begins or self._results or self._syncs):
                return

    async def _flush(self) -> None:
        begins, self._begins = self._begins, []
        results, self._results = self._results, []
        syncs, self._syncs = self._syncs, []
        moved: set[int] = set()
        if begins or results:
            try:
                moved = await self._db.transaction(self._write, begins, results)
            except BaseException as exc:
                for future in [f for _, _, f in begins] + syncs:
                    if not future.done():
                        future.set_exception(exc)
                raise
            self.commits += 1
        for subscriber_id, _, future in begins:
            if not future.done():
                future.set_result(subscriber_id in moved)
        for waiter in syncs:
            if not waiter.done():
                waiter.set_result(None)

    def _write(
        self,
        conn: Connection,
        begins: list[tuple[int, str, asyncio.Future[bool]]],
        results: list[Result],
    ) -> set[int]:
        now = utcnow()
        outbox.record(conn, self._edition_id, [r.mark for r in results], now)
        for result in results:
            if result.bounce_reason is not None:
                # NotFoundError: erased during the send, nothing left to mark.
                with contextlib.suppress(NotFoundError):
                    store.mark_bounced(conn, result.mark.subscriber_id, result.bounce_reason, now)
        return outbox.mark_sending(
            conn, self._edition_id, self._worker, [(sid, mid) for sid, mid, _ in begins], now
        )
