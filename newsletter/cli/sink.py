"""``newsletter sink``: a local SMTP server storing what it receives in a Maildir."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "register",
    "sink",
]


def _emit(line: str) -> None:
    # flushed at once: a demo script or a test reads these lines as they come
    print(line, flush=True)


def sink(
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 1025,
    maildir: Annotated[
        Path, typer.Option(metavar="DIR", help="Maildir that receives the messages.")
    ] = Path("maildir"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Run a local SMTP server that stores every message in a Maildir, one line per message.

    Each line shows the time, sender, recipients, subject and size. Stop it with Ctrl-C.

    Example:

        newsletter sink --port 1025 --maildir demo/maildir
    """
    import asyncio

    from newsletter.delivery.sink import run_sink

    asyncio.run(run_sink(maildir, host=host, port=port, emit=_emit))


def register(root: typer.Typer) -> None:
    """Add ``sink`` to ``root``."""
    root.command("sink")(sink)
