"""SMTP fixtures: real aiosmtpd servers on port 0 with recording and misbehaving handlers.

``smtp_server`` is a real aiosmtpd server on 127.0.0.1 that records every
message; ``@pytest.mark.smtp_misbehave(...)`` makes it misbehave (see
:class:`Misbehaviour`). ``smtp_server_factory`` starts more (TLS, several at
once); ``closed_port`` is a port on which nothing listens ("server down").

Run as a module it is a standalone server process for crash tests and the
benchmarks' misbehaving relays (see ``--help``)::

    python -m tests.plugins.smtp --port-file PORT --log received.jsonl --delay 0.02
    python -m tests.plugins.smtp --port-file PORT --log received.jsonl \
        --refuse-every 50 --session-limit 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.tls import make_tls_certificate

__all__ = [
    "Misbehaviour",
    "Received",
    "RecordingHandler",
    "SMTPServer",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "smtp_misbehave(**kwargs): make the smtp_server fixture misbehave (see Misbehaviour)",
    )


@dataclass
class Received:
    """One message as the server got it: envelope, raw bytes and the session it came on."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: tuple[str, int]
    tls: bool
    mail_options: list[str] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)  # when it arrived (monotonic seconds)

    def message(self) -> EmailMessage:
        """The bytes parsed back into a message."""
        parsed = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Misbehaviour:
    """How the server misbehaves; every field defaults to "behave".

    refuse: address -> permanent reply at RCPT (e.g. "550 5.1.1 no such user").
    soft_fail: address -> how many times to answer RCPT with 450 before accepting.
    reply_421_after: after this many accepted messages, answer the next RCPT with
        421 and close the connection (``times_421`` times in all).
    disconnect_at_rcpt: addresses whose first RCPT drops the connection (no reply).
    drop_after_data: addresses whose message is stored and then the connection
        dropped before the 250 (the sender cannot know it arrived).
    delay_rcpt / delay_data: seconds to sleep before answering (slower than a timeout);
        ``slow_times`` limits how many answers are slow (None: all).
    refuse_all: a reply for every RCPT (e.g. "550 blocked"), to trip the failure threshold.

    Like real relays under load (all counted per connection, numbered from 1 at EHLO):
    refuse_every_nth_connection: every Nth connection is answered ``421 4.7.0 closing``
        at EHLO and hung up on (before it could deliver anything).
    drop_every_nth_connection: every Nth connection is dropped, without a reply, at its
        first RCPT.
    session_limit: a session that has delivered this many messages is answered
        ``421 4.7.0 closing`` at its next MAIL and hung up on (a per-session cap).
    faulty_connections: the two connection faults above hit only the first N
        connections; after that the relay is healthy (None: for ever).
    tempfail_share: this share of RCPTs, at random (``seed``), get ``451 4.7.1``.
    pipelining: advertise PIPELINING (RFC 2920) in the EHLO reply.
    """

    refuse: dict[str, str] = field(default_factory=dict)
    soft_fail: dict[str, int] = field(default_factory=dict)
    reply_421_after: int | None = None
    times_421: int = 1
    disconnect_at_rcpt: set[str] = field(default_factory=set)
    drop_after_data: set[str] = field(default_factory=set)
    delay_rcpt: float = 0.0
    delay_data: float = 0.0
    slow_times: int | None = None
    refuse_all: str | None = None
    refuse_every_nth_connection: int | None = None
    drop_every_nth_connection: int | None = None
    session_limit: int | None = None
    faulty_connections: int | None = None
    tempfail_share: float = 0.0
    seed: int = 0
    pipelining: bool = False


def _counts(session: Session) -> list[int]:
    """[this connection's number, messages it delivered], kept on the session itself
    ([0, 0] before its EHLO)."""
    found: list[int] = getattr(session, "misbehaviour_counts", [0, 0])
    return found


def _every(n: int | None, number: int) -> bool:
    return n is not None and number % n == 0


class RecordingHandler:
    """An aiosmtpd handler that accepts, records, and misbehaves as told."""

    def __init__(
        self,
        misbehave: Misbehaviour | None = None,
        on_message: Callable[[Received], None] | None = None,
    ) -> None:
        self.misbehave = misbehave or Misbehaviour()
        self.received: list[Received] = []
        self.rcpt_attempts: Counter[str] = Counter()
        self.replies_421 = 0
        self.slow_answers = 0
        self.peers: set[tuple[str, int]] = set()
        self.connections = 0  # sessions that said EHLO
        self.refused_connections = 0
        self.dropped_connections = 0
        self.tempfails = 0
        self._rng = random.Random(self.misbehave.seed)
        self._on_message = on_message
        self._lock = threading.Lock()

    def _faulty(self, number: int) -> bool:
        limit = self.misbehave.faulty_connections
        return limit is None or number <= limit

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        m = self.misbehave
        session.host_name = hostname
        with self._lock:
            if not hasattr(session, "misbehaviour_counts"):
                self.connections += 1
                session.misbehaviour_counts = [self.connections, 0]  # type: ignore[attr-defined]
            number = _counts(session)[0]
        if self._faulty(number) and _every(m.refuse_every_nth_connection, number):
            with self._lock:
                self.refused_connections += 1
            await server.push("421 4.7.0 closing")
            assert server.transport is not None
            server.transport.close()
            return []
        if m.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        limit = self.misbehave.session_limit
        _, delivered = _counts(session)
        if limit is not None and delivered >= limit:
            await server.push("421 4.7.0 closing")
            assert server.transport is not None
            server.transport.close()
            return "421 4.7.0 closing"  # not sent: the transport is closing
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    def _slow(self) -> bool:
        limit = self.misbehave.slow_times
        if limit is not None and self.slow_answers >= limit:
            return False
        self.slow_answers += 1
        return True

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        m = self.misbehave
        with self._lock:
            self.rcpt_attempts[address] += 1
            attempt = self.rcpt_attempts[address]
            self.peers.add(session.peer)  # type: ignore[arg-type]  # a (host, port) pair at run time
            accepted = len(self.received)
        if m.delay_rcpt and self._slow():
            await asyncio.sleep(m.delay_rcpt)
        number, delivered = _counts(session)
        if (
            delivered == 0
            and self._faulty(number)
            and _every(m.drop_every_nth_connection, number)
            and not envelope.rcpt_tos
        ):
            with self._lock:
                self.dropped_connections += 1
            assert server.transport is not None
            server.transport.abort()  # type: ignore[attr-defined]  # no reply at all: the client sees the connection die
            return "421 4.3.0 gone"  # never sent: the transport is gone
        if m.tempfail_share and self._rng.random() < m.tempfail_share:
            with self._lock:
                self.tempfails += 1
            return "451 4.7.1 try again later"
        if m.refuse_all:
            return m.refuse_all
        if address in m.refuse:
            return m.refuse[address]
        if attempt <= m.soft_fail.get(address, 0):
            return "450 4.2.0 mailbox busy, try later"
        if address in m.disconnect_at_rcpt and attempt == 1:
            assert server.transport is not None
            server.transport.close()
            return "421 4.3.0 gone"  # never reaches the client: the socket is closed
        if (
            m.reply_421_after is not None
            and accepted >= m.reply_421_after
            and self.replies_421 < m.times_421
        ):
            with self._lock:
                self.replies_421 += 1
            await server.push("421 4.7.0 too many messages, slow down")
            assert server.transport is not None
            server.transport.close()
            return "421 4.7.0 closing"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        m = self.misbehave
        if m.delay_data and self._slow():
            await asyncio.sleep(m.delay_data)
        data = envelope.original_content or b""
        item = Received(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            data=data,
            peer=session.peer,  # type: ignore[arg-type]  # a (host, port) pair at run time
            tls=session.ssl is not None
            or (
                server.transport is not None and bool(server.transport.get_extra_info("ssl_object"))
            ),
            mail_options=list(envelope.mail_options),
        )
        with self._lock:
            self.received.append(item)
            _counts(session)[1] += 1
        if self._on_message is not None:
            self._on_message(item)
        if set(envelope.rcpt_tos) & m.drop_after_data:
            m.drop_after_data -= set(envelope.rcpt_tos)
            assert server.transport is not None
            server.transport.close()
            return "421 4.3.0 gone"
        return "250 2.0.0 queued"

    def copies(self) -> Counter[str]:
        """How many messages each recipient address received."""
        with self._lock:
            return Counter(a for r in self.received for a in r.rcpt_tos)


class _PortZeroController(Controller):
    """aiosmtpd's Controller, bound to port 0; the real port is read back after binding."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@dataclass
class SMTPServer:
    """A running server: where it listens and what it received."""

    controller: Controller
    handler: RecordingHandler
    host: str
    port: int
    tls: str = "none"  # none | starttls | implicit
    cafile: Path | None = None

    @property
    def url(self) -> str:
        """The NEWSLETTER_SMTP_URL pointing at this server."""
        return f"{'smtps' if self.tls == 'implicit' else 'smtp'}://{self.host}:{self.port}"

    @property
    def received(self) -> list[Received]:
        """Every message received so far."""
        return self.handler.received

    def client_tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        assert self.cafile is not None
        return ssl.create_default_context(cafile=str(self.cafile))

    def stop(self) -> None:
        """Stop listening and close every session."""
        self.controller.stop()


def start_server(
    misbehave: Misbehaviour | None = None,
    *,
    tls: str = "none",
    certs: tuple[Path, Path] | None = None,
    **smtp_kwargs: Any,
) -> SMTPServer:
    """Start a real aiosmtpd server on 127.0.0.1, on a free port."""
    handler = RecordingHandler(misbehave)
    kwargs: dict[str, Any] = {"enable_SMTPUTF8": True, **smtp_kwargs}
    cafile = None
    if tls != "none":
        assert certs is not None
        cert, key = certs
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        cafile = cert
        if tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        else:
            kwargs.update(ssl_context=context)
    controller = _PortZeroController(handler, hostname="127.0.0.1", port=0, **kwargs)
    controller.start()
    return SMTPServer(controller, handler, "127.0.0.1", controller.port, tls, cafile)


@pytest.fixture
def smtp_server_factory(tmp_path: Path) -> Iterator[Callable[..., SMTPServer]]:
    """Start servers on demand (``tls="starttls"|"implicit"``, a Misbehaviour); stopped after."""
    servers: list[SMTPServer] = []

    def factory(misbehave: Misbehaviour | None = None, **kwargs: Any) -> SMTPServer:
        if kwargs.get("tls", "none") != "none":
            kwargs.setdefault("certs", make_tls_certificate(tmp_path))
        server = start_server(misbehave, **kwargs)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(
    request: pytest.FixtureRequest, smtp_server_factory: Callable[..., SMTPServer]
) -> SMTPServer:
    """A recording aiosmtpd server; ``@pytest.mark.smtp_misbehave(...)`` makes it misbehave."""
    marker = request.node.get_closest_marker("smtp_misbehave")
    misbehave = Misbehaviour(**marker.kwargs) if marker else None
    return smtp_server_factory(misbehave)


@pytest.fixture
def closed_port() -> int:
    """A loopback port on which nothing listens: connecting there is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def _serve_forever(args: argparse.Namespace) -> None:
    """The standalone server process: records one JSON line per message, then runs until killed."""
    log = open(args.log, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life

    def record(item: Received) -> None:
        # A regex, not a parse: a benchmark's relay must not be slowed by its log.
        found = _MESSAGE_ID.search(item.data)
        message_id = found.group(1).decode("ascii", "replace") if found else None
        line = {"rcpt": item.rcpt_tos, "message_id": message_id, "at": time.time()}
        log.write(json.dumps(line) + "\n")
        log.flush()

    misbehave = Misbehaviour(
        delay_data=args.delay,
        refuse_every_nth_connection=args.refuse_every,
        drop_every_nth_connection=args.drop_every,
        session_limit=args.session_limit,
        tempfail_share=args.tempfail_share,
        seed=args.seed,
        pipelining=args.pipelining,
    )
    handler = RecordingHandler(misbehave, on_message=record)
    controller = _PortZeroController(handler, hostname="127.0.0.1", port=0, enable_SMTPUTF8=True)
    controller.start()
    Path(args.port_file).write_text(str(controller.port), encoding="ascii")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a recording SMTP server for crash tests")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each DATA reply")
    parser.add_argument("--refuse-every", type=int, help="421 at EHLO on every Nth connection")
    parser.add_argument("--drop-every", type=int, help="drop every Nth connection at its RCPT")
    parser.add_argument("--session-limit", type=int, help="421 at MAIL after N messages")
    parser.add_argument("--tempfail-share", type=float, default=0.0, help="451 this share of RCPTs")
    parser.add_argument("--seed", type=int, default=0, help="for --tempfail-share")
    parser.add_argument("--pipelining", action="store_true", help="advertise PIPELINING")
    _serve_forever(parser.parse_args())
