"""One open SMTP session and the transactions it carries, pipelined when the relay allows.

aiosmtplib opens the session (greeting, EHLO, STARTTLS, login: see
:class:`newsletter.delivery.smtp.SMTPPool`); then :class:`Replies` takes over
the transport for the transactions. It keeps every complete reply, in order,
so that ``MAIL``, ``RCPT`` and ``DATA`` can go out in one write when the relay
offers PIPELINING (RFC 2920) and their replies be read back one by one, which
aiosmtplib's protocol (one reply per command, later data dropped) cannot do.
That saves two round trips per message, and aiosmtplib's per-command locking
and re-parsing with them.

Each message goes out as the exact bytes it was built (and signed) as, never
re-serialised (which would break a DKIM signature). Whether the payload was
handed over decides what a dead connection means: before, a safe retry
(``deferred``); after, it may have arrived (``unknown``).

Every reply is classified into an :class:`Attempt` with a fixed vocabulary of
outcomes, never a boolean, in the spirit of anymail's per-recipient status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib.protocol import normalize_message_line_endings

from newsletter.core.text import one_line
from newsletter.delivery.outcomes import DeliveryStatus

__all__ = ["Attempt", "Replies", "SMTPConnection", "classify_reply", "needs_smtputf8"]

# Hard bounces: the mailbox does not exist or may not receive (RFC 5321 4.2.3).
_HARD_BOUNCE_CODES = frozenset({550, 551, 553})
_MAX_REPLY = 64 * 1024
# What may not appear in a path: brackets, spaces, control characters.
_UNUSABLE = re.compile(r"[<> \x00-\x1f\x7f]")
_LEADING_DOT = re.compile(rb"\r\n\.")


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result of one delivery attempt for one recipient."""

    outcome: DeliveryStatus
    code: int | None = None
    detail: str = ""
    bounce: bool = False  # a permanent refusal of this recipient's address
    reusable: bool = True  # the connection may carry the next message
    # A 421, a drop or a timeout before the session delivered anything: a
    # slow-down signal for the pacer (only a burst of them lowers the pace).
    slow_down: bool = False

    @property
    def error(self) -> str | None:
        """A one-line description for the outbox, or ``None`` on success."""
        if self.outcome is DeliveryStatus.SENT:
            return None
        prefix = f"{self.code} " if self.code else ""
        return (prefix + self.detail).strip()[:500] or self.outcome.value


def classify_reply(code: int, message: str, *, phase: str) -> Attempt:
    """Turn a non-success SMTP reply in ``phase`` (mail/rcpt/data/payload) into an Attempt.

    421 defers and is a slow-down signal; other 4xx defer on a fresh
    connection; 5xx fails, and counts as a hard bounce only when the relay
    refused the recipient's address itself (RCPT 550/551/553).
    """
    detail = f"{phase}: {one_line(message)}"
    if code == 421:
        return Attempt(DeliveryStatus.DEFERRED, code, detail, reusable=False, slow_down=True)
    if 400 <= code < 500:
        return Attempt(DeliveryStatus.DEFERRED, code, detail, reusable=False)
    if 500 <= code < 600:
        bounce = phase == "rcpt" and code in _HARD_BOUNCE_CODES
        return Attempt(DeliveryStatus.FAILED, code, detail, bounce=bounce)
    # A reply outside 4xx/5xx where a 2xx/3xx was expected: the session is confused.
    return Attempt(DeliveryStatus.DEFERRED, code, f"{detail} (unexpected reply)", reusable=False)


def needs_smtputf8(address: str) -> bool:
    """True when ``address`` has non-ASCII characters and so needs the SMTPUTF8 extension."""
    return not address.isascii()


def _payload(message: bytes, *, clean: bool = False) -> bytes:
    """What travels after DATA: CRLF lines, leading dots doubled, then the final dot.

    With ``clean`` the caller vouches that every line already ends in CRLF and
    none starts with a dot (a :class:`~newsletter.content.message.MessageTemplate`
    writes it "=2E"): the bytes go as they are, since any pass over a 40 KB
    digest, even a search that finds nothing, costs about 60 µs. Otherwise the
    line ends are checked (and fixed by aiosmtplib's normaliser) and the dots
    stuffed in one regex pass (``bytes.replace`` stumbles on every CRLF).
    """
    if not clean and message.count(b"\n") != message.count(b"\r\n"):
        message = normalize_message_line_endings(message)
    elif not message.endswith(b"\r\n"):
        message += b"\r\n"
    stuffed = message if clean else _LEADING_DOT.sub(b"\r\n..", message)
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


def _path(address: str, encoding: str) -> bytes:
    """``<address>`` for MAIL FROM / RCPT TO.

    The addresses were validated when stored; this only refuses what could
    break the command line (brackets, spaces, control characters), without
    re-parsing each address with the email package (a quarter of a
    millisecond per message).
    """
    if not address or _UNUSABLE.search(address):
        raise ValueError(f"not a usable address: {address!r}")
    return b"<" + address.encode(encoding) + b">"


class Replies(asyncio.Protocol):
    """The session's protocol once it is open: every complete reply kept, in order."""

    def __init__(self, transport: asyncio.WriteTransport, timeout: float | None) -> None:
        self.transport = transport
        self.timeout = timeout  # seconds to wait for a reply
        self._buffer = bytearray()
        self._replies: deque[aiosmtplib.SMTPResponse] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: aiosmtplib.SMTPException | None = None
        self.closed = asyncio.get_running_loop().create_future()
        transport.set_protocol(self)

    @property
    def is_open(self) -> bool:
        """True until the connection is lost or closing."""
        return self._lost is None and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        """Queue ``data`` on the transport; raises if the connection is gone."""
        if not self.is_open:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer.extend(data)
        start = 0
        while (end := buffer.find(b"\n", start)) != -1:
            line = bytes(buffer[start : end + 1])
            if line[3:4] == b"-":
                start = end + 1  # a continuation: wait for the reply's last line
                continue
            self._parse(bytes(buffer[: end + 1]))
            del buffer[: end + 1]
            start = 0
        if len(buffer) > _MAX_REPLY:
            self._lose(aiosmtplib.SMTPResponseException(500, "reply too long"))
        self._wake()

    def _parse(self, reply: bytes) -> None:
        lines = reply.split(b"\n")[:-1]
        try:
            code = int(lines[-1][:3])
        except ValueError:
            self._lose(aiosmtplib.SMTPResponseException(500, "malformed reply"))
            return
        text = b"\n".join(line[4:].strip(b" \t\r") for line in lines)
        self._replies.append(aiosmtplib.SMTPResponse(code, text.decode("utf-8", "replace")))

    def eof_received(self) -> bool:
        self._lose(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(aiosmtplib.SMTPServerDisconnected("Connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _lose(self, error: aiosmtplib.SMTPException) -> None:
        if self._lost is None:
            self._lost = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> aiosmtplib.SMTPResponse:
        """The next reply, in order; raises when the connection dies or the timeout passes."""
        timeout = self.timeout
        while not self._replies:
            if self._lost is not None:
                raise self._lost
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            # A timer on the waiter itself: asyncio.wait_for per reply costs more.
            timer = None if timeout is None else loop.call_later(timeout, self._timed_out, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        return self._replies.popleft()

    @staticmethod
    def _timed_out(waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(aiosmtplib.SMTPReadTimeoutError("Timed out waiting for a reply"))


class SMTPConnection:
    """One open session with the relay, carrying one message at a time."""

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.sent = 0
        self.pipelining = client.supports_extension("pipelining")
        self.smtputf8 = client.supports_extension("smtputf8")
        assert client.protocol is not None
        assert client.protocol.transport is not None
        self.replies = Replies(client.protocol.transport, client.timeout)  # type: ignore[arg-type]
        # (sender, recipient) whose MAIL, RCPT and DATA went out behind the last payload
        self._ahead: tuple[str, str] | None = None

    @property
    def is_connected(self) -> bool:
        """True while the session is open."""
        return self.replies.is_open

    async def _command(self, line: bytes) -> aiosmtplib.SMTPResponse:
        self.replies.write(line)
        return await self.replies.read()

    async def _reset(self) -> bool:
        try:
            reply = await self._command(b"RSET\r\n")
        except (aiosmtplib.SMTPException, OSError):
            self.drop()
            return False
        return reply.code == 250

    async def _refused(self, code: int, message: str, phase: str) -> Attempt:
        attempt = classify_reply(code, message, phase=phase)
        if attempt.reusable and not await self._reset():
            attempt = dataclasses.replace(attempt, reusable=False)
        return attempt

    async def deliver(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        *,
        ready: Awaitable[bool] | None = None,
        clean: bool = False,
        then: tuple[str, str] | None = None,
    ) -> Attempt:
        """Send ``message`` (bytes, unchanged) to ``recipient``; never raises for SMTP trouble.

        ``ready`` is awaited after the envelope is accepted and before the
        payload goes out: the caller uses it to make "this row is being sent"
        durable while the envelope round trips are in flight. If it yields
        False nothing is sent (outcome ``failed``). ``clean`` vouches for CRLF line
        ends only and no line starting with a dot. ``then`` names the (sender,
        recipient) of the next message on this connection: when the relay
        pipelines, its envelope rides in the same write as this payload (RFC 2920
        allows the next MAIL after the end of data), one round trip less per message.
        """
        attempt = await self._deliver(sender, recipient, message, ready, clean, then)
        if attempt.outcome is DeliveryStatus.SENT:
            self.sent += 1
        elif attempt.slow_down and self.sent:
            # The session had delivered already: it ended (a per-session cap, an
            # idle timeout), which says nothing about congestion (Postfix's rule).
            attempt = dataclasses.replace(attempt, slow_down=False)
        if not attempt.reusable:
            self.drop()
        return attempt

    async def _deliver(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        ready: Awaitable[bool] | None,
        clean: bool,
        then: tuple[str, str] | None,
    ) -> Attempt:
        utf8 = needs_smtputf8(recipient) or needs_smtputf8(sender)
        if utf8 and not self.smtputf8:
            return Attempt(
                DeliveryStatus.FAILED, None, "relay does not support SMTPUTF8 for this address"
            )
        encoding = "utf-8" if utf8 else "ascii"
        handed_over = False
        try:
            mail = b"MAIL FROM:" + _path(sender, encoding) + (b" SMTPUTF8" if utf8 else b"")
            rcpt = b"RCPT TO:" + _path(recipient, encoding)
            if self.pipelining:
                envelope = mail + b"\r\n" + rcpt + b"\r\nDATA\r\n"
                return await self._pipelined(
                    (sender, recipient), envelope, message, ready, clean, then
                )
            reply = await self._command(mail + b"\r\n")
            if reply.code != 250:
                return await self._refused(reply.code, reply.message, "mail")
            reply = await self._command(rcpt + b"\r\n")
            if reply.code not in (250, 251):
                return await self._refused(reply.code, reply.message, "rcpt")
            if ready is not None and not await ready:
                reusable = await self._reset()
                return Attempt(
                    DeliveryStatus.FAILED, None, "withdrawn before sending", reusable=reusable
                )
            reply = await self._command(b"DATA\r\n")
            if reply.code != 354:
                return await self._refused(reply.code, reply.message, "data")
            handed_over = True
            reply = await self._command(_payload(message, clean=clean))
        except ValueError as exc:
            return Attempt(DeliveryStatus.FAILED, None, f"address refused: {exc}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return self._lost(exc, handed_over)
        return await self._answer(reply)

    def _envelope_ahead(self, then: tuple[str, str] | None) -> bytes:
        """The next message's MAIL, RCPT and DATA, or nothing if it cannot go ahead."""
        if then is None:
            return b""
        sender, recipient = then
        utf8 = needs_smtputf8(recipient) or needs_smtputf8(sender)
        if utf8 and not self.smtputf8:
            return b""
        encoding = "utf-8" if utf8 else "ascii"
        try:
            mail = b"MAIL FROM:" + _path(sender, encoding) + (b" SMTPUTF8" if utf8 else b"")
            return mail + b"\r\nRCPT TO:" + _path(recipient, encoding) + b"\r\nDATA\r\n"
        except ValueError:
            return b""

    async def _pipelined(
        self,
        key: tuple[str, str],
        envelope: bytes,
        message: bytes,
        ready: Awaitable[bool] | None,
        clean: bool,
        then: tuple[str, str] | None,
    ) -> Attempt:
        """MAIL, RCPT and DATA in one write (RFC 2920), then the payload once DATA says 354."""
        handed_over = False
        try:
            if self._ahead != key:
                if self._ahead is not None:
                    # The envelope sent ahead was for another message: the relay
                    # waits for its data, and only hanging up ends that.
                    self.drop()
                    return Attempt(
                        DeliveryStatus.DEFERRED, None, "connection: reset", reusable=False
                    )
                self.replies.write(envelope)
            self._ahead = None
            replies = [await self.replies.read() for _ in range(3)]
            (mail_reply, rcpt_reply, data_reply) = replies
            if data_reply.code == 354 and (
                mail_reply.code != 250
                or rcpt_reply.code not in (250, 251)
                or (ready is not None and not await ready)
            ):
                # In the data phase without a message to send: only hanging up
                # ends it without delivering anything.
                self.drop()
                if mail_reply.code == 250 and rcpt_reply.code in (250, 251):
                    return Attempt(
                        DeliveryStatus.FAILED, None, "withdrawn before sending", reusable=False
                    )
            if mail_reply.code != 250:
                return await self._refused(mail_reply.code, mail_reply.message, "mail")
            if rcpt_reply.code not in (250, 251):
                return await self._refused(rcpt_reply.code, rcpt_reply.message, "rcpt")
            if data_reply.code != 354:
                return await self._refused(data_reply.code, data_reply.message, "data")
            handed_over = True
            ahead = self._envelope_ahead(then)
            self.replies.write(_payload(message, clean=clean) + ahead)
            if ahead:
                self._ahead = then
            reply = await self.replies.read()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return self._lost(exc, handed_over)
        return await self._answer(reply)

    def _lost(self, exc: BaseException, handed_over: bool) -> Attempt:
        self.drop()
        what = one_line(str(exc)) or type(exc).__name__
        if handed_over:
            code = exc.code if isinstance(exc, aiosmtplib.SMTPResponseException) else None
            return Attempt(
                DeliveryStatus.UNKNOWN,
                code,
                f"lost after the message was sent: {what}",
                reusable=False,
                slow_down=True,
            )
        return Attempt(
            DeliveryStatus.DEFERRED, None, f"connection: {what}", reusable=False, slow_down=True
        )

    async def _answer(self, reply: aiosmtplib.SMTPResponse) -> Attempt:
        if reply.code == 250:
            return Attempt(DeliveryStatus.SENT, 250, one_line(reply.message))
        # The message was refused after it was transmitted (content, size, policy).
        if self._ahead is not None:
            # The next envelope's replies are on their way: no RSET can be
            # told apart from them, so the session ends here.
            self.drop()
            return dataclasses.replace(
                classify_reply(reply.code, reply.message, phase="data"), reusable=False
            )
        return await self._refused(reply.code, reply.message, "data")

    def drop(self) -> None:
        """Close the connection at once, without QUIT."""
        self._ahead = None
        self.client.close()
        self.replies.transport.close()

    async def close(self) -> None:
        """End the session politely (QUIT), or just drop it if that fails."""
        replies = self.replies
        tls = replies.transport.get_extra_info("ssl_object") is not None
        if replies.is_open and self._ahead is None:  # (in a data phase, QUIT would be data)
            try:
                replies.write(b"QUIT\r\n")
                await asyncio.wait_for(replies.read(), 2.0)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
        self.drop()
        if tls:
            # A TLS transport finishes closing (close_notify) after close()
            # returns; wait for it so no socket outlives the event loop.
            await asyncio.wait([replies.closed], timeout=1.0)
