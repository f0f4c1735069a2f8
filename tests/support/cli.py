"""Running the real ``newsletter`` entry point from tests: where things are, what a run did."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EXAMPLES", "ROOT", "CLIResult", "interrupt"]

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples"


@dataclass
class CLIResult:
    """What one run of the real ``newsletter`` entry point did."""

    code: int
    stdout: str
    stderr: str


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
