"""Shared fixtures. Area fixtures live in tests/plugins/*.py, one module per area."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.core.config import Settings, load_settings
from tests.support.cli import CLIResult

pytest_plugins = [
    "tests.plugins.db",
    "tests.plugins.smtp",
    "tests.plugins.web",
]

# A Python child of a test (the real command line, a server) prints its stack on a
# fatal signal: a test that gives up on a stuck child sends SIGABRT to see where.
os.environ.setdefault("PYTHONFAULTHANDLER", "1")

# A suite started in the background by a non-interactive shell (`make test &`, nohup)
# inherits SIGINT ignored, and so would every command a test starts: Python leaves
# an ignored SIGINT ignored, and the tests that press Ctrl-C on a command would wait
# on it for nothing. They need Ctrl-C as a terminal delivers it to what runs there.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


if os.environ.get("TEST_EVENT_LOOP") == "uvloop":
    # The async tests on uvloop (the loop `newsletter send` uses when the `fast` extra is
    # installed) instead of asyncio's own: TEST_EVENT_LOOP=uvloop pytest ...
    import uvloop

    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
        return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder with no NEWSLETTER_* variables leaking in from outside."""
    for key in list(os.environ):
        if key.startswith("NEWSLETTER_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def settings(workdir: Path) -> Settings:
    """Settings for a fresh SQLite file in the working folder, with a fixed secret key."""
    return load_settings(
        workdir,
        database_url=f"sqlite:///{workdir / 'test.db'}",
        secret_key="test-secret-key-not-for-production",
        base_url="https://news.example.com/newsletter",
    )


@pytest.fixture
def run_cli(workdir: Path) -> Callable[..., CLIResult]:
    """Run ``python -m newsletter ARGS`` in a subprocess in the working folder.

    Extra environment variables may be given as ``env={...}``; the database is
    the working folder's ``test.db`` unless overridden.
    """

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CLIResult:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        full_env.update(
            {
                "NEWSLETTER_DATABASE_URL": f"sqlite:///{workdir / 'test.db'}",
                "NEWSLETTER_SECRET_KEY": "test-secret-key-not-for-production",
                "NEWSLETTER_BASE_URL": "https://news.example.com/newsletter",
                "COLUMNS": "200",
            }
        )
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            cwd=workdir,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CLIResult(proc.returncode, proc.stdout, proc.stderr)

    return run
