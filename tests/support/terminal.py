"""Running the real command with a pseudo-terminal, to answer its questions as a person would."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

__all__ = ["on_a_terminal", "output_on_a_terminal"]


def _environment(workdir: Path, extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=f"sqlite:///{workdir / 'test.db'}",
        NEWSLETTER_SECRET_KEY="test-secret-key-not-for-production",
        NEWSLETTER_BASE_URL="https://news.example.com/newsletter",
    )
    env.update(extra or {})
    return env


def output_on_a_terminal(
    workdir: Path, args: list[str], extra: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run the command with a pseudo-terminal for stdin, stdout and stderr; all it wrote."""
    return _on_a_terminal(workdir, args, None, extra)


def on_a_terminal(
    workdir: Path, args: list[str], answer: bytes, extra: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run the command with a pseudo-terminal for stdin/stdout and type ``answer``."""
    return _on_a_terminal(workdir, args, answer, extra)


def _on_a_terminal(
    workdir: Path, args: list[str], answer: bytes | None, extra: dict[str, str] | None
) -> tuple[int, str]:
    """The command on a pseudo-terminal: ``answer`` typed at its [y/N] question, if given."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args],
        cwd=workdir,
        env=_environment(workdir, extra),
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    try:
        while answer is not None and b"[y/N]" not in seen:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the command exited (EIO) before asking
                chunk = b""
            if not chunk:
                raise AssertionError(f"the command never asked: {seen.decode(errors='replace')}")
            seen += chunk
        if answer is not None:
            os.write(leader, answer)
        while True:  # all it writes, until it exits (EIO once the terminal's other end closes)
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(leader)
    return code, seen.decode(errors="replace")
