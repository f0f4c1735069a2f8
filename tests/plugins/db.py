"""Database fixtures: SQLite files, and a real PostgreSQL server when one can be started.

``postgresql_server`` (session) starts a throwaway PostgreSQL cluster with
Debian's binaries (``/usr/lib/postgresql/*/bin``): initdb into a temporary
folder owned by a non-root user (``postgres`` when running as root), listening
only on 127.0.0.1 on a free port, its unix socket in that folder, trust auth for
loopback, durability off (it is thrown away). It yields the URL of a migrated
database ``newsletter_test`` and removes everything at the end of the session.
When no server can be started, the tests that need it skip and say why; in CI
(``CI`` or ``NEWSLETTER_REQUIRE_POSTGRESQL`` set) they fail instead, so CI cannot
pass without having run them.

``engine`` is parametrised over SQLite and PostgreSQL, so a store test written
once runs on both; each test gets a fresh schema (a new SQLite file; on
PostgreSQL every table is emptied and its identities reset).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from newsletter.core.db import make_engine, metadata, migrations_table
from newsletter.database import migrate

__all__ = [
    "engine",
    "postgresql_engine",
    "postgresql_server",
    "postgresql_url",
    "sqlite_engine",
    "sqlite_url",
]

_DATABASE = "newsletter_test"


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    try:
        return int(Path(path).parent.parent.name)
    except ValueError:
        return 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _runner() -> tuple[list[str], str | None]:
    """The command prefix that runs a PostgreSQL binary as a non-root user, and that user."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "postgres"], check=True, capture_output=True
        )
    return ["runuser", "-u", "postgres", "--"], "postgres"


class _Server:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.prefix, self.user = _runner()
        self.folder = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        if self.user is not None:
            shutil.chown(self.folder, self.user, self.user)
            os.chmod(self.folder, 0o700)

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [*self.prefix, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{Path(args[0]).name} failed: {' | '.join(tail)}")

    def start(self) -> str:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        admin = sa.create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE {_DATABASE}"))
        finally:
            admin.dispose()
        return f"postgresql://postgres@127.0.0.1:{self.port}/{_DATABASE}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"
                )
        shutil.rmtree(self.folder, ignore_errors=True)


def _cannot(reason: str) -> NoReturn:
    """Skip, saying why; in CI (``CI`` or ``NEWSLETTER_REQUIRE_POSTGRESQL`` set) fail instead."""
    if os.environ.get("CI") or os.environ.get("NEWSLETTER_REQUIRE_POSTGRESQL"):
        pytest.fail(f"PostgreSQL is required here: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[str]:
    """The URL of a migrated database on a throwaway PostgreSQL server (skips when impossible)."""
    bindir = _binaries()
    if bindir is None:
        _cannot(
            "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb); "
            "`make test` installs Debian's postgresql when run as root"
        )
    server = _Server(bindir)
    try:
        url = server.start()
        engine = make_engine(url)
        try:
            migrate(engine)
        finally:
            engine.dispose()
    except (RuntimeError, OSError, subprocess.SubprocessError, sa.exc.SQLAlchemyError) as exc:
        server.stop()
        _cannot(f"could not start a PostgreSQL server here: {exc}")
    try:
        yield url
    finally:
        server.stop()


def _empty_all_tables(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            names = ", ".join(
                f'"{table.name}"'
                for table in metadata.sorted_tables
                if table is not migrations_table and sa.inspect(conn).has_table(table.name)
            )
            if names:
                conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture
def postgresql_url(postgresql_server: str) -> str:
    """The PostgreSQL test database, migrated and emptied for this test (e.g. for ``run_cli``)."""
    _empty_all_tables(postgresql_server)
    return postgresql_server


@pytest.fixture
def postgresql_engine(postgresql_url: str) -> Iterator[Engine]:
    """A migrated engine on the emptied PostgreSQL test database."""
    engine = make_engine(postgresql_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a fresh SQLite file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """A migrated engine on a fresh SQLite file."""
    engine = make_engine(sqlite_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """A migrated, empty database: each test using it runs on SQLite and on PostgreSQL."""
    name = "sqlite_engine" if request.param == "sqlite" else "postgresql_engine"
    value: Engine = request.getfixturevalue(name)
    return value


@pytest.fixture(params=["thread", "child"])
def import_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each import test runs with rows parsed in a thread and in a forked child process.

    Without it a test's small CSV is always parsed in a thread (a child is for files
    of a few megabytes): this makes every such test hold the child's path to the same answers.
    """
    from subscribers import importchild

    mode: str = request.param
    monkeypatch.setattr(importchild, "worth_a_child", lambda stream: mode == "child")
    return mode
