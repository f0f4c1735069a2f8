"""The event loop a send runs on: uvloop when installed (the ``fast`` extra), else asyncio.

``NEWSLETTER_EVENT_LOOP`` chooses: ``auto`` (the default) uses uvloop when it can
be imported and falls back to the standard asyncio loop silently otherwise;
``asyncio`` always uses the standard loop. The choice changes speed only: the
same code runs on either loop, with the same results.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = [
    "EventLoopChoice",
    "loop_factory",
    "run",
    "running_loop_name",
]

T = TypeVar("T")

EventLoopChoice = Literal["auto", "asyncio"]


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when ``choice`` is ``auto`` and uvloop imports; else None.

    None means asyncio's own default loop (what ``asyncio.run`` would make).
    """
    if choice != "auto":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice = "auto") -> T:
    """Run ``main`` to completion on a fresh loop of ``choice``, like ``asyncio.run``.

    The loop is closed afterwards, async generators and the default executor
    shut down, exactly as ``asyncio.run`` does; Ctrl-C cancels ``main``.
    """
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: the kind of the loop running the caller (inside a coroutine)."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.split(".")[0] == "uvloop" else "asyncio"
