"""SMTP transport: a pool of reused sessions with the relay, and one-message delivery.

:class:`SMTPPool` opens sessions with aiosmtplib (greeting, EHLO, STARTTLS,
login, with the TLS rules enforced by name) and hands them out for one task's
exclusive use; what travels over an open session, and how its replies are
classified, is :mod:`newsletter.delivery.session`'s (re-exported here).
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiosmtplib

from newsletter.core.config import Settings, SMTPEndpoint, is_loopback_host
from newsletter.core.errors import DeliveryError, InsecureTransportError, SMTPUnavailableError
from newsletter.core.text import one_line
from newsletter.delivery.session import Attempt, SMTPConnection, classify_reply, needs_smtputf8

__all__ = [
    "Attempt",  # Attempt, SMTPConnection, classify_reply, needs_smtputf8: from delivery.session
    "SMTPConnection",
    "SMTPPool",
    "classify_reply",
    "needs_smtputf8",
    "send_one",
    "smtp_pool",
]


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
