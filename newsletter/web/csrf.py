"""CSRF protection for the app's forms: a signed double-submit token.

A random nonce sits in a ``SameSite=Strict`` cookie, and the same nonce signed
(with a timestamp) in the form. A POST whose form token does not unsign to the
cookie's nonce, or that a browser marks as cross-site (``Sec-Fetch-Site``), is
refused. The RFC 8058 one-click endpoint is deliberately outside this: a mail
client posts it with no cookie at all, and the signed unsubscribe token in its
URL is the whole authentication.
"""

from __future__ import annotations

import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.keys import keys_to_try

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_MAX_AGE",
    "Csrf",
]

CSRF_COOKIE = "nl_csrf"
CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE = 6 * 3600  # a form left open for an afternoon still submits


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
