"""The test helpers that drive real commands: a stuck command fails its test clearly."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.cli import interrupt

# a command that ignores Ctrl-C, says it is ready, then sleeps in Python code
_STUCK = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "def stuck_here():\n"
    "    while True:\n"
    "        time.sleep(0.05)\n"
    "stuck_here()\n"
)


def test_a_command_that_ignores_ctrl_c_fails_with_its_stack_and_is_reaped() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _STUCK],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    with pytest.raises(AssertionError) as failed:
        interrupt(proc, timeout=0.5)
    message = str(failed.value)
    assert "did not exit within 0.5 s of Ctrl-C" in message
    assert re.search(r"\(state [RS], waiting in ", message)  # running or asleep, not in D
    assert "in stuck_here" in message  # faulthandler's dump: where it was
    assert proc.returncode is not None  # reaped: no process or pipe left to a later test
    assert proc.stdout.closed
    assert proc.stderr is not None
    assert proc.stderr.closed


def test_a_command_that_stops_on_ctrl_c_gives_its_output() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time\nprint('ready', flush=True)\ntime.sleep(30)\n"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    out, err = interrupt(proc)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err
    assert out == ""
