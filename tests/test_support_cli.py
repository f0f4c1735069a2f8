"""The test helpers that drive real commands: a stuck command fails its test clearly."""

from __future__ import annotations

import re
import signal
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


def test_ctrl_c_reaches_commands_of_a_suite_started_with_sigint_ignored() -> None:
    # as `make test &` or nohup in a script starts it: SIGINT ignored, inherited by all
    # it starts unless tests/conftest.py gives it back its default
    here = f"{__file__}::test_a_command_that_stops_on_ctrl_c_gives_its_output"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", here],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 passed" in done.stdout
