"""Group commit for the outbox: many connections' state changes, few transactions.

A message may only go out once its row is durably ``sending``, and a row is
``sent`` only after the relay's 250. Writing each change in its own
transaction would cost a commit per message; instead every connection hands
its change to the :class:`Journal`, whose single writer commits everything
pending in one transaction (on a dedicated database thread) and wakes the
waiters. Results (``sent``, ``deferred``...) ride along with the next commit,
and at the latest after ``flush_interval``.

Because a connection's result for one message is always queued before its
``begin`` for the next, each connection has at most one row in ``sending`` at
any moment: after a kill -9, at most K rows are ``unknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

from newsletter import outbox
from newsletter.db import utcnow
from newsletter.errors import NotFoundError
from subscribers import store

__all__ = ["DatabaseThread", "Journal", "Result"]

T = TypeVar("T")


class DatabaseThread:
    """Runs blocking database work on one dedicated thread, off the event loop."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-db")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` inside one transaction on the database thread."""

        def work() -> T:
            with self.engine.begin() as conn:
                return fn(conn, *args)

        return await self.run(work)

    def close(self) -> None:
        """Stop the thread once the queued work is done."""
        self._executor.shutdown(wait=True)


@dataclass(frozen=True, slots=True)
class Result:
    """One attempt's outcome to write, and the bounce to record with it."""

    mark: outbox.Mark
    bounce_reason: str | None = None


class Journal:
    """Collects ``begin`` requests and results and commits them together."""

    def __init__(
        self,
        db: DatabaseThread,
        edition_id: str,
        worker: str,
        *,
        flush_interval: float = 0.2,
        max_pending: int = 500,
    ) -> None:
        self._db = db
        self._edition_id = edition_id
        self._worker = worker
        self._flush_interval = flush_interval
        self._max_pending = max_pending
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
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)
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
