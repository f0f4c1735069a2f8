"""Who is alive: one worker identity and one lease concept for senders and schedulers.

Every worker (a ``send`` run, a scheduler) is named ``host:pid:random`` by
:func:`new_worker_id` and stamps that id on what it claims (outbox rows,
schedule runs). A sender holds a lease named by its id for as long as it runs;
at the start of a run, rows claimed by a worker whose lease is free were left by
a dead process. A scheduler's claims carry a time lease in the database, and
:func:`owner_is_gone` lets a restart on the same host take over at once from a
process that no longer exists. The lease is released by the operating system or the database
when the process dies, however it dies (kill -9 included):

* SQLite: an exclusive ``flock`` on a small file next to the database;
* PostgreSQL: a session-level advisory lock on a connection held for the run.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import socket
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.core.db import is_postgres

__all__ = [
    "FileLease",
    "PostgresLease",
    "is_this_process",
    "new_worker_id",
    "owner_is_gone",
    "senders_folder",
    "take_lease",
]


# The host part never holds a colon (``_host`` replaces it), so an all-digit random
# suffix ("vm:1666:93833518") cannot be read as the pid of a host named "vm:1666".
_WORKER = re.compile(r"(?P<host>[^:]+):(?P<pid>\d+)(?::[0-9a-f]+)?")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:40] or "host"


def new_worker_id() -> str:
    """A worker id unique across hosts and runs: ``host:pid:random``."""
    return f"{_host()}:{os.getpid()}:{secrets.token_hex(4)}"


def is_this_process(worker: str) -> bool:
    """True when ``worker`` names this very process (its host and pid)."""
    match = _WORKER.fullmatch(worker)
    return (
        match is not None
        and match["host"] in (_host(), socket.gethostname())
        and int(match["pid"]) == os.getpid()
    )


def owner_is_gone(worker: str) -> bool:
    """True when ``worker`` names a process on this host that no longer exists.

    Another host's worker (or an id that is not ``host:pid[:random]``) is never
    "gone" by this test: only its lease can tell.
    """
    match = _WORKER.fullmatch(worker)
    if match is None or match["host"] not in (_host(), socket.gethostname()):
        return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


class FileLease:
    """An exclusive ``flock`` on ``<database>.senders/<worker>.lock``."""

    def __init__(self, folder: Path, worker: str) -> None:
        self.worker = worker
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._path = self._file(worker)
        self._fd: int | None = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _file(self, worker: str) -> Path:
        return self.folder / (re.sub(r"[^A-Za-z0-9.-]", "_", worker) + ".lock")

    def is_alive(self, other: str) -> bool:
        """True while another process (or this one) holds ``other``'s lock file."""
        if other == self.worker:
            return True
        path = self._file(other)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            # Nobody holds it: that worker is gone; tidy its file away.
            path.unlink(missing_ok=True)
            return False
        finally:
            os.close(fd)

    def close(self) -> None:
        """Unlock and remove the lock file."""
        if self._fd is not None:
            self._path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def _key(worker: str) -> int:
    return int.from_bytes(hashlib.blake2b(worker.encode(), digest_size=8).digest(), signed=True)


class PostgresLease:
    """A session-level advisory lock keyed by the worker id, on a connection kept open."""

    def __init__(self, engine: Engine, worker: str) -> None:
        self.worker = worker
        self._conn: Connection | None = engine.connect()
        self._conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _key(worker)})
        self._conn.commit()

    def is_alive(self, other: str) -> bool:
        """True while another session holds ``other``'s advisory lock."""
        if other == self.worker:
            return True
        assert self._conn is not None
        got = self._conn.execute(
            sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(other)}
        ).scalar_one()
        if got:
            self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _key(other)})
        self._conn.commit()
        return not got

    def close(self) -> None:
        """Release the lock (a dead process's session releases it by ending)."""
        if self._conn is not None:
            self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _key(self.worker)})
            self._conn.commit()
            self._conn.close()
            self._conn = None


def senders_folder(database: Path) -> Path:
    """The folder next to an SQLite database where its senders keep their lock files."""
    return database.resolve().with_name(database.name + ".senders")


def take_lease(engine: Engine, worker: str | None = None) -> FileLease | PostgresLease:
    """Take a lease for a new worker on the database behind ``engine``."""
    worker = worker or new_worker_id()
    if is_postgres(engine):
        return PostgresLease(engine, worker)
    database = engine.url.database
    if database and database != ":memory:":
        folder = senders_folder(Path(database))
    else:
        folder = Path(tempfile.gettempdir()) / "newsletter-senders"
    return FileLease(folder, worker)
