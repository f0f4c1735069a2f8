"""Who the client is: the peer, or what a trusted reverse proxy says it is.

The app works the client's address (and scheme) out itself, from
``NEWSLETTER_TRUSTED_PROXIES``: ``X-Forwarded-For`` and ``X-Forwarded-Proto``
count only when the connection comes from one of those addresses or networks
(none by default), and then the client is the right-most address in
``X-Forwarded-For`` that is not itself a trusted proxy. ``newsletter serve``
turns uvicorn's own proxy handling off, so nothing else rewrites the client
first. The walking of the header is uvicorn's ``ProxyHeadersMiddleware``.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

__all__ = ["FORWARDING_HEADERS", "TrustedProxies", "is_forwarded"]

#: request headers a proxy adds; the loopback-only preview listener refuses them all
FORWARDING_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-real-ip")


def is_forwarded(scope: Scope) -> bool:
    """True when the request carries any header a forwarding proxy adds."""
    return any(
        name in FORWARDING_HEADERS or name.startswith(b"x-forwarded-")
        for name, _ in scope.get("headers", ())
    )


class TrustedProxies:
    """ASGI middleware: the client address and scheme, believing only ``proxies``."""

    def __init__(self, app: ASGIApp, proxies: Iterable[str] = ()) -> None:
        trusted = [p for p in proxies if p.strip() and p.strip() != "*"]
        # an empty list trusts nobody: the peer's own address is the client
        self.app = app
        if trusted:
            self.app = ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type,assignment]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
