"""Running the web app with uvicorn: timeouts, no proxy guessing, redacted logs, two listeners.

:func:`serve` runs the public app and, when asked, the editors' preview on a
second listener bound to 127.0.0.1 only. Both use :class:`HeaderTimeout`, so a
client that opens a connection and trickles a request's headers (slowloris)
is cut off after ``header_timeout`` seconds. uvicorn's own ``X-Forwarded-For``
handling is off: the app decides whom to believe (:mod:`newsletter.web.proxies`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from newsletter.web.logs import log_config

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "HeaderTimeout",
    "header_timeout_protocol",
    "serve",
    "server_config",
]

DEFAULT_HEADER_TIMEOUT = 10.0


class HeaderTimeout(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers take too long.

    The clock starts when a connection opens, or when the first byte of a
    further request on a kept-alive connection arrives, and stops when the
    request's headers are complete. Trickling bytes does not reset it.
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's headers."""
        super().connection_made(transport)
        self._start_header_timer()

    def data_received(self, data: bytes) -> None:
        """Feed h11; stop the clock once a request's headers are in."""
        if self._header_timer is None and self.conn.their_state is h11.IDLE:
            self._start_header_timer()  # a further request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._stop_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock with the connection."""
        self._stop_header_timer()
        super().connection_lost(exc)

    def _start_header_timer(self) -> None:
        self._stop_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection whose request headers took too long")
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeout]:
    """A :class:`HeaderTimeout` protocol class with its clock set to ``seconds``."""
    return type("HeaderTimeoutProtocol", (HeaderTimeout,), {"header_timeout": seconds})


def server_config(
    app: ASGIApp, host: str, port: int, *, header_timeout: float = DEFAULT_HEADER_TIMEOUT
) -> uvicorn.Config:
    """How ``serve`` runs uvicorn: no proxy headers, header timeout, redacted logs."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=header_timeout_protocol(header_timeout),
        proxy_headers=False,  # the app believes only NEWSLETTER_TRUSTED_PROXIES
        server_header=False,
        log_config=log_config(),
        log_level="info",
        lifespan="off",
        timeout_keep_alive=5,
    )


class _Companion(uvicorn.Server):
    """A second listener in the same loop; the main server handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(main: uvicorn.Server, companion: uvicorn.Server | None) -> None:
    companion_task = asyncio.create_task(companion.serve()) if companion else None
    try:
        await main.serve()
    finally:
        if companion is not None and companion_task is not None:
            companion.should_exit = True
            await companion_task


def serve(main: uvicorn.Config, preview: uvicorn.Config | None = None) -> None:
    """Run the public listener (and the preview listener) until Ctrl-C or SIGTERM."""
    companion = _Companion(preview) if preview is not None else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(uvicorn.Server(main), companion))
