"""The security headers every response carries (CSP, no-sniff, no-referrer, no-store)."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "EMAIL_CSP",
    "PAGE_CSP",
    "SecurityHeaders",
    "security_headers",
]

# No script at all; styles from our own stylesheet; images from anywhere over https
# (article pictures in the archive); forms only back to us; never framed.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# An archived edition is email HTML: its CSS is inline by design, but still no script.
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "form-action 'none'; frame-ancestors 'self'; base-uri 'none'"
)


def security_headers(csp: str = PAGE_CSP) -> dict[str, str]:
    """The headers every response carries (a route may narrow or widen the CSP)."""
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY" if "frame-ancestors 'none'" in csp else "SAMEORIGIN",
        "Cache-Control": "no-store",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


class SecurityHeaders:
    """ASGI middleware adding CSP, no-sniff, no-referrer and no-store to every response.

    ``Referrer-Policy: no-referrer`` keeps the tokens in our URLs from leaking to
    any site a page links to; ``Cache-Control: no-store`` keeps token pages out
    of shared caches. A route may set its own CSP (the archive does).
    """

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        # only when the public address is https: browsers then refuse plain http for a year
        self.extra = {"Strict-Transport-Security": "max-age=31536000"} if hsts else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                csp = headers.get("Content-Security-Policy", PAGE_CSP)
                for name, value in {**security_headers(csp), **self.extra}.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
