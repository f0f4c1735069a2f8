"""Running the real ``newsletter`` entry point from tests: where things are, what a run did."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing the plugin here would load it before pytest can rewrite it
    from tests.plugins.smtp import SMTPServer

__all__ = [
    "EXAMPLES",
    "ROOT",
    "CLIResult",
    "Run",
    "interrupt",
    "ok",
    "one_click_path",
    "send_newsletter",
    "serve_env",
]

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples"


@dataclass
class CLIResult:
    """What one run of the real ``newsletter`` entry point did."""

    code: int
    stdout: str
    stderr: str


#: the ``run_cli`` fixture: run the entry point with these arguments (``env=`` adds variables)
Run = Callable[..., CLIResult]


def ok(result: CLIResult) -> CLIResult:
    """``result``, failing the test (with its stderr) unless the run exited 0."""
    assert result.code == 0, result.stderr
    return result


def send_newsletter(run: Run, smtp: SMTPServer, newsletter: str) -> tuple[str, dict[str, bytes]]:
    """Build (repeats allowed, stories of the last ten years) and send one edition of
    ``newsletter`` through ``smtp``: its id, and each recipient's message bytes."""
    build = ("edition", "build", "--since", "3650d", "--allow-repeats", "--newsletter")
    edition = ok(run(*build, newsletter)).stdout.strip()
    before = len(smtp.received)
    ok(run("send", edition, "--yes", env={"NEWSLETTER_SMTP_URL": smtp.url}))
    return edition, {m.rcpt_tos[0]: m.data for m in smtp.received[before:]}


def one_click_path(data: bytes) -> str:
    """The ``/unsubscribe/TOKEN`` path of the https link in a message's List-Unsubscribe."""
    header = str(message_from_bytes(data)["List-Unsubscribe"])
    found = re.search(r"<https://[^>]+/unsubscribe/([^>]+)>", header)
    assert found is not None, header
    return "/unsubscribe/" + found.group(1)


def serve_env(workdir: Path, smtp_url: str) -> dict[str, str]:
    """The settings of a ``newsletter serve`` on ``workdir``'s test.db and ``smtp_url``."""
    return {
        "NEWSLETTER_SMTP_URL": smtp_url,
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{workdir / 'test.db'}",
        "NEWSLETTER_SECRET_KEY": "test-secret-key-not-for-production",
        "NEWSLETTER_BASE_URL": "http://127.0.0.1",
    }


def interrupt(proc: subprocess.Popen[str], timeout: float = 20) -> tuple[str, str]:
    """Press Ctrl-C on a long-running command; its stdout and stderr once it has exited.

    When it does not exit within ``timeout`` seconds the test fails with what the
    command was doing: its process state and, the children of a test run having
    ``PYTHONFAULTHANDLER`` set (tests/conftest.py), the Python stack that SIGABRT
    makes it print. The command is reaped either way, so that no later test
    inherits its open pipes or a still-running process.
    """
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        state = _state(proc.pid)
        proc.send_signal(signal.SIGABRT)
        try:
            _, stderr = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                _, stderr = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:  # stuck in the kernel: do not hang the suite too
                stderr = f"(none: still there 30 s after SIGKILL, state {_state(proc.pid)})"
        raise AssertionError(
            f"{proc.args!r} did not exit within {timeout} s of Ctrl-C (state {state}); "
            f"its stderr after SIGABRT:\n{(stderr or '')[-4000:]}"
        ) from None


def _state(pid: int) -> str:
    """The kernel's state letter and wait channel of ``pid`` (``?`` where unreadable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return "?"
    return f"{stat.rpartition(')')[2].split()[0]}, waiting in {wchan or '-'}"
