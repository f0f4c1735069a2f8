"""The web app's defences: security headers, CSRF tokens, form parsing, a rate limit.

CSRF uses a signed double-submit token: a random nonce in a ``SameSite=Strict``
cookie, and the same nonce signed (with a timestamp) in the form. A POST whose
form token does not unsign to the cookie's nonce, or that a browser marks as
cross-site (``Sec-Fetch-Site``), is refused. The RFC 8058 one-click endpoint
is deliberately outside this: a mail client posts it with no cookie at all, and
the signed unsubscribe token in its URL is the whole authentication.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from urllib.parse import parse_qs

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.core.config import keys_to_try

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_MAX_AGE",
    "MAX_FORM_BYTES",
    "Csrf",
    "FormError",
    "RateLimiter",
    "SecurityHeaders",
    "read_form",
    "security_headers",
]

CSRF_COOKIE = "nl_csrf"
CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE = 6 * 3600  # a form left open for an afternoon still submits
MAX_FORM_BYTES = 16 * 1024

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


class FormError(ValueError):
    """The request body is not a small URL-encoded form."""


async def read_form(request: Request) -> dict[str, list[str]]:
    """The URL-encoded form in the body (at most 16 KB), as field -> values."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormError("expected an application/x-www-form-urlencoded form")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError("form too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("form is not UTF-8") from None
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=100, strict_parsing=False)
    except ValueError:
        raise FormError("form has too many fields") from None


class Csrf:
    """Issues and checks the signed double-submit tokens of the app's forms."""

    def __init__(self, secret: bytes) -> None:
        # itsdangerous signs with the last key and accepts any: forms open across
        # a key rotation still post.
        keys = list(reversed(keys_to_try(secret)))
        self._serializer = URLSafeTimedSerializer(keys, salt="newsletter-csrf")

    def nonce_for(self, request: Request) -> tuple[str, bool]:
        """The request's cookie nonce, or a fresh one; True when it must be set."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if 20 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum():
            return nonce, False
        return secrets.token_urlsafe(24), True

    def form_token(self, nonce: str) -> str:
        """The hidden-field value that proves a form came from one of our pages."""
        return self._serializer.dumps(nonce)

    def set_cookie(self, response: Response, request: Request, nonce: str) -> None:
        """Attach the nonce cookie (HttpOnly, SameSite=Strict, Secure over https)."""
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            max_age=CSRF_MAX_AGE,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def check(self, request: Request, form: dict[str, list[str]]) -> bool:
        """True when the POST carries a valid token matching its cookie and is not cross-site."""
        if request.headers.get("sec-fetch-site", "same-origin") == "cross-site":
            return False
        cookie = request.cookies.get(CSRF_COOKIE)
        token = (form.get(CSRF_FIELD) or [""])[0]
        if not cookie or not token:
            return False
        try:
            nonce = self._serializer.loads(token, max_age=CSRF_MAX_AGE)
        except BadSignature:
            return False
        return isinstance(nonce, str) and secrets.compare_digest(nonce, cookie)


class RateLimiter:
    """At most ``limit`` events per key in any ``window`` seconds, held in memory.

    Enough for one process behind one address; several workers each keep their own.
    """

    def __init__(self, limit: int, window: float, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Record one event for ``key``; False when it is over the limit (not recorded then)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._events.get(key)
            if events is None:
                if len(self._events) >= self._max_keys:
                    self._prune(now)
                events = self._events[key] = deque()
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True

    def _prune(self, now: float) -> None:
        # memory stays bounded under a flood of distinct keys: forget idle ones, then the oldest
        for key in [k for k, ev in self._events.items() if not ev or ev[-1] <= now - self.window]:
            del self._events[key]
        while len(self._events) >= self._max_keys:
            del self._events[next(iter(self._events))]


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
