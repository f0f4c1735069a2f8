"""A local SMTP server that stores whatever it receives in a Maildir.

For demos and previews: point ``NEWSLETTER_SMTP_URL`` at it and every message
lands, byte for byte, as one file in ``DIR/new``, with ``Return-Path`` and
``Delivered-To`` lines in front as a local delivery agent would add. One line per
message is reported: time, sender, recipients, subject and size.
"""

from __future__ import annotations

import asyncio
import mailbox
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.core.errors import ConfigError

__all__ = ["MaildirHandler", "run_sink", "start_sink"]

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
# The sink is for demos; 50 MB is far beyond any digest.
_MAX_MESSAGE = 50 * 1024 * 1024


def _printable(value: str) -> str:
    return _UNPRINTABLE.sub(" ", value)


class MaildirHandler:
    """An aiosmtpd handler: each message becomes one Maildir file and one reported line."""

    def __init__(self, maildir: Path, emit: Callable[[str], None] = print) -> None:
        self.maildir = mailbox.Maildir(maildir, create=True)
        self.path = maildir
        self.emit = emit
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the message and report it; answers 250 once it is on disk."""
        content = envelope.original_content or b""
        if isinstance(content, str):  # only with decode_data=True, which we never set
            content = content.encode("utf-8", "surrogateescape")
        sender = envelope.mail_from or ""
        recipients = list(envelope.rcpt_tos)
        trace = f"Return-Path: <{sender}>\r\n" + "".join(
            f"Delivered-To: {rcpt}\r\n" for rcpt in recipients
        )
        self.maildir.add(trace.encode("utf-8", "replace") + content)
        self.count += 1
        headers = BytesHeaderParser(policy=policy.default).parsebytes(content)
        subject = str(headers.get("Subject", ""))
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.emit(
            _printable(
                f"{when} from=<{sender}> to={','.join(f'<{r}>' for r in recipients)} "
                f"subject={subject!r} size={len(content)}"
            )
        )
        return "250 Message accepted for delivery"


async def start_sink(
    handler: MaildirHandler, host: str = "127.0.0.1", port: int = 1025
) -> asyncio.Server:
    """Start listening (port 0 picks a free port); raises :class:`ConfigError` if it cannot."""

    def factory() -> Any:
        # a fixed hostname: aiosmtpd would otherwise look up the machine's FQDN
        return SMTP(
            handler,
            hostname="newsletter-sink",
            enable_SMTPUTF8=True,
            data_size_limit=_MAX_MESSAGE,
        )

    loop = asyncio.get_running_loop()
    try:
        return await loop.create_server(factory, host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


async def run_sink(
    maildir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 1025,
    emit: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or the task is cancelled), reporting each message."""
    handler = MaildirHandler(maildir, emit)
    server = await start_sink(handler, host, port)
    bound = server.sockets[0].getsockname()
    emit(f"sink listening on {bound[0]}:{bound[1]}, storing messages in {maildir}")
    async with server:
        if stop is None:
            await server.serve_forever()
        else:
            await stop.wait()
