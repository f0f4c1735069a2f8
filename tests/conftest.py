"""Shared fixtures. Area fixtures live in tests/plugins/*.py, one module per area."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from newsletter.config import Settings, load_settings

pytest_plugins = [
    "tests.plugins.db",
    "tests.plugins.smtp",
    "tests.plugins.web",
]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@dataclass
class CLIResult:
    """What one run of the real ``newsletter`` entry point did."""

    code: int
    stdout: str
    stderr: str


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


def interrupt(proc: subprocess.Popen[str], timeout: float = 20) -> tuple[str, str]:
    """Press Ctrl-C on a long-running command; its stdout and stderr once it has exited.

    Raises (after killing it) when it does not exit within ``timeout`` seconds.
    """
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
