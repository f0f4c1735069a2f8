"""SMTP transport: a pool of reused aiosmtplib connections and one-message delivery.

Each message goes out as the exact bytes it was built (and signed) as: the
envelope with ``MAIL``/``RCPT``, then ``DATA`` and the payload, never through
``send_message`` (which would re-serialise the message and break a DKIM
signature). The DATA phase is split so the caller knows whether the payload was
handed over: a connection that dies before that point is a safe retry
(``deferred``), one that dies after it may have delivered (``unknown``).

Every reply is classified into an :class:`Attempt` with a fixed vocabulary of
outcomes, never a boolean, in the spirit of anymail's per-recipient status.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib.protocol import normalize_message_line_endings

from newsletter.core.config import Settings, SMTPEndpoint, is_loopback_host
from newsletter.core.errors import DeliveryError, InsecureTransportError, SMTPUnavailableError
from newsletter.core.text import one_line
from newsletter.delivery.outcomes import DeliveryStatus

__all__ = [
    "Attempt",
    "SMTPConnection",
    "SMTPPool",
    "classify_reply",
    "needs_smtputf8",
    "send_one",
    "smtp_pool",
]

# Hard bounces: the mailbox does not exist or may not receive (RFC 5321 4.2.3).
_HARD_BOUNCE_CODES = frozenset({550, 551, 553})


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result of one delivery attempt for one recipient."""

    outcome: DeliveryStatus
    code: int | None = None
    detail: str = ""
    bounce: bool = False  # a permanent refusal of this recipient's address
    reusable: bool = True  # the connection may carry the next message
    # The relay said 421, or the session died: a slow-down signal for the pacer
    # (only a burst of them lowers the pace; one is just retried).
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

    421 defers and slows the send; other 4xx defer on a fresh connection; 5xx
    fails, and counts as a hard bounce only when the relay refused the
    recipient's address itself (RCPT 550/551/553).
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


def _payload(message: bytes, *, crlf: bool = False) -> bytes:
    """What travels after DATA: CRLF lines, leading dots doubled, then the final dot.

    With ``crlf`` the caller vouches that every line already ends in CRLF (the
    message templates guarantee it) and only the dots are stuffed, with one
    ``bytes.replace``: a regex pass over 40 KB would cost more than the rest
    of the message's CPU. Otherwise the line ends are checked and, if need be,
    fixed by aiosmtplib's own normaliser.
    """
    if not crlf and message.count(b"\n") != message.count(b"\r\n"):
        message = normalize_message_line_endings(message)
    elif not message.endswith(b"\r\n"):
        message += b"\r\n"
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


def _path(address: str, encoding: str) -> bytes:
    """``<address>`` for MAIL FROM / RCPT TO.

    The addresses were validated when stored; aiosmtplib's mail()/rcpt() would
    re-parse each one with the email package, a quarter of a millisecond per
    message, so the path is built directly. execute_command still refuses any
    control character, so nothing can be injected.
    """
    if any(c in address for c in "<> ") or not address:
        raise ValueError(f"not a usable address: {address!r}")
    return b"<" + address.encode(encoding) + b">"


class SMTPConnection:
    """One open session with the relay, carrying one message at a time."""

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.sent = 0

    @property
    def is_connected(self) -> bool:
        """True while the session is open."""
        return self.client.is_connected

    async def _reset(self) -> bool:
        try:
            reply = await self.client.rset()
        except (aiosmtplib.SMTPException, OSError):
            return False
        return reply.code == 250

    async def _refused(self, code: int, message: str, phase: str) -> Attempt:
        attempt = classify_reply(code, message, phase=phase)
        if attempt.reusable and not await self._reset():
            attempt = Attempt(
                attempt.outcome, attempt.code, attempt.detail, attempt.bounce, reusable=False
            )
        return attempt

    async def deliver(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        *,
        ready: Awaitable[bool] | None = None,
        crlf: bool = False,
    ) -> Attempt:
        """Send ``message`` (bytes, unchanged) to ``recipient``; never raises for SMTP trouble.

        ``ready`` is awaited after the envelope is accepted and before the
        payload goes out: the caller uses it to make "this row is being sent"
        durable while the envelope round trips are in flight. If it yields
        False the envelope is reset and nothing is sent (outcome ``failed``).
        ``crlf`` vouches that ``message`` has CRLF line ends only.
        """
        client = self.client
        utf8 = needs_smtputf8(recipient) or needs_smtputf8(sender)
        encoding = "utf-8" if utf8 else "ascii"
        handed_over = False
        try:
            if utf8 and not client.supports_extension("smtputf8"):
                return Attempt(
                    DeliveryStatus.FAILED, None, "relay does not support SMTPUTF8 for this address"
                )
            options = [b"SMTPUTF8"] if utf8 else []
            reply = await client.execute_command(
                b"MAIL", b"FROM:" + _path(sender, encoding), *options
            )
            if reply.code != 250:
                return await self._refused(reply.code, reply.message, "mail")
            reply = await client.execute_command(b"RCPT", b"TO:" + _path(recipient, encoding))
            if reply.code not in (250, 251):
                return await self._refused(reply.code, reply.message, "rcpt")
            if ready is not None and not await ready:
                reusable = await self._reset()
                return Attempt(
                    DeliveryStatus.FAILED, None, "withdrawn before sending", reusable=reusable
                )
            reply = await client.execute_command(b"DATA")
            if reply.code != 354:
                return await self._refused(reply.code, reply.message, "data")
            protocol = client.protocol
            if protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
            handed_over = True
            protocol.write(_payload(message, crlf=crlf))
            reply = await protocol.read_response(timeout=client.timeout)
        except ValueError as exc:
            # aiosmtplib refuses an address it cannot put on the wire safely.
            return Attempt(DeliveryStatus.FAILED, None, f"address refused: {exc}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            what = one_line(str(exc)) or type(exc).__name__
            if isinstance(exc, aiosmtplib.SMTPResponseException):
                return Attempt(
                    DeliveryStatus.UNKNOWN if handed_over else DeliveryStatus.DEFERRED,
                    exc.code,
                    f"connection: {what}",
                    reusable=False,
                    slow_down=exc.code == 421,
                )
            if handed_over:
                return Attempt(
                    DeliveryStatus.UNKNOWN,
                    None,
                    f"lost after the message was sent: {what}",
                    reusable=False,
                    slow_down=True,
                )
            return Attempt(
                DeliveryStatus.DEFERRED, None, f"connection: {what}", reusable=False, slow_down=True
            )
        if reply.code == 250:
            self.sent += 1
            return Attempt(DeliveryStatus.SENT, 250, one_line(reply.message))
        # The message was refused after it was transmitted (content, size, policy).
        attempt = classify_reply(reply.code, reply.message, phase="data")
        if attempt.reusable and not await self._reset():
            return Attempt(attempt.outcome, attempt.code, attempt.detail, reusable=False)
        return attempt

    async def close(self) -> None:
        """End the session politely (QUIT), or just drop it if that fails."""
        protocol = self.client.protocol
        tls = protocol is not None and protocol.transport is not None
        tls = tls and protocol.transport.get_extra_info("ssl_object") is not None  # type: ignore[union-attr]
        if self.client.is_connected:
            try:
                await asyncio.wait_for(self.client.quit(), timeout=2)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                self.client.close()
        if tls:
            # A TLS transport finishes closing (close_notify) after close()
            # returns; wait for it so no socket outlives the event loop.
            # aiosmtplib exposes no waiter for this, hence the private flag.
            for _ in range(100):
                if getattr(protocol, "_connection_lost", True):
                    break
                await asyncio.sleep(0.01)


class SMTPPool:
    """Up to ``size`` connections to one relay, opened on demand and reused.

    A connection that saw a 4xx, a 421 or a drop is closed, never reused, so a
    retry always runs on a fresh session.
    """

    def __init__(
        self,
        endpoint: SMTPEndpoint,
        *,
        size: int = 8,
        timeout: float = 30.0,
        allow_insecure: bool = False,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("the pool needs at least one connection")
        if endpoint.tls == "none" and not is_loopback_host(endpoint.host) and not allow_insecure:
            # The configuration normally refuses this; a hand-built endpoint must too.
            raise InsecureTransportError(
                f"refusing to send in the clear to {endpoint.host}; use STARTTLS or "
                "set NEWSLETTER_SMTP_ALLOW_INSECURE=true"
            )
        self.endpoint = endpoint
        self.size = size
        self.timeout = timeout
        self._allow_insecure = allow_insecure
        self._tls_context = tls_context
        # gethostname, not getfqdn: the latter may wait seconds on a DNS lookup.
        self._local_hostname = local_hostname or socket.gethostname() or "localhost"
        self._idle: list[SMTPConnection] = []
        self._slots = asyncio.Semaphore(size)
        self._open: set[SMTPConnection] = set()

    @property
    def where(self) -> str:
        """``host:port`` of the relay, for messages (never the credentials)."""
        return f"{self.endpoint.host}:{self.endpoint.port}"

    def _client(self) -> aiosmtplib.SMTP:
        ep = self.endpoint
        context = self._tls_context
        if context is None and ep.tls != "none":
            context = ssl.create_default_context()
        # STARTTLS and the login are done by hand in connect(), so that a relay
        # without STARTTLS, or a login in the clear, is refused by name.
        return aiosmtplib.SMTP(
            hostname=ep.host,
            port=ep.port,
            timeout=self.timeout,
            use_tls=ep.tls == "implicit",
            start_tls=False,
            tls_context=context,
            local_hostname=self._local_hostname,
        )

    async def _handshake(self, client: aiosmtplib.SMTP) -> None:
        ep = self.endpoint
        await client.connect()
        await client.ehlo()
        if ep.tls == "starttls":
            if not client.supports_extension("starttls"):
                raise InsecureTransportError(f"the SMTP relay {self.where} does not offer STARTTLS")
            await client.starttls()
            await client.ehlo()  # the extensions may differ once encrypted
        if ep.username is None:
            return
        secure = ep.tls != "none"
        if not secure and not is_loopback_host(ep.host) and not self._allow_insecure:
            raise InsecureTransportError(
                f"refusing to authenticate without TLS to the SMTP relay {self.where}"
            )
        password = ep.password.get_secret_value() if ep.password else ""
        await client.login(ep.username, password)

    async def connect(self) -> SMTPConnection:
        """Open one new session (TLS and login as configured).

        Raises :class:`SMTPUnavailableError` when the relay cannot be reached,
        :class:`InsecureTransportError` when TLS cannot be had, and
        :class:`DeliveryError` when the login is refused.
        """
        client = self._client()
        try:
            await self._handshake(client)
        except InsecureTransportError:
            client.close()
            raise
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            raise DeliveryError(
                f"the SMTP relay {self.where} refused the login ({exc.code})"
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            reason = one_line(str(exc)) or type(exc).__name__
            raise SMTPUnavailableError(
                f"cannot reach the SMTP relay at {self.where} ({reason})"
            ) from None
        return SMTPConnection(client)

    async def open(self) -> None:
        """Open the first connection now, so that a relay that is down fails fast."""
        connection = await self.connect()
        self._open.add(connection)
        self._idle.append(connection)

    async def acquire(self) -> SMTPConnection:
        """A connection for this task's exclusive use: an idle one, or a new one."""
        await self._slots.acquire()
        try:
            while self._idle:
                connection = self._idle.pop()
                if connection.is_connected:
                    return connection
                self._open.discard(connection)
            connection = await self.connect()
        except BaseException:
            self._slots.release()
            raise
        self._open.add(connection)
        return connection

    async def release(self, connection: SMTPConnection, *, reusable: bool = True) -> None:
        """Give a connection back; one that must not be reused is closed."""
        try:
            if reusable and connection.is_connected:
                self._idle.append(connection)
            else:
                self._open.discard(connection)
                await connection.close()
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Close every connection the pool holds."""
        connections, self._idle = list(self._open), []
        self._open.clear()
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)

    async def __aenter__(self) -> SMTPPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def smtp_pool(settings: Settings, size: int) -> SMTPPool:
    """The pool of ``size`` connections to the relay the settings name."""
    return SMTPPool(
        settings.smtp(),
        size=size,
        timeout=settings.smtp_timeout,
        allow_insecure=settings.smtp_allow_insecure,
    )


async def send_one(pool: SMTPPool, sender: str, recipient: str, message: bytes) -> Attempt:
    """Deliver one message over ``pool`` and close it: the path of test sends and
    confirmation mail, the same session handling, TLS rules and classification as a send.

    Raises :class:`SMTPUnavailableError` when the relay cannot be reached; every
    SMTP answer otherwise comes back as the :class:`Attempt`.
    """
    async with pool:
        connection = await pool.acquire()
        attempt = await connection.deliver(sender, recipient, message)
        await pool.release(connection, reusable=attempt.reusable)
    return attempt
