"""The console's session cookie: signed, HttpOnly, SameSite=Lax, Secure over https, expiring.

The cookie holds ``[user id, session epoch, issued at, last seen]`` signed with
the site's key (itsdangerous, its own salt); nothing secret is in it. A session
ends when it has been idle longer than ``console_idle_timeout``, when it is
older than ``console_session_max`` whatever the activity, or when the account's
epoch moved on (password reset, role change, removal). Each request re-signs it
with a fresh "last seen".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.responses import Response

from newsletter.core.keys import keys_to_try

__all__ = ["SESSION_COOKIE", "Session", "SessionCodec"]

SESSION_COOKIE = "nl_console"


@dataclass(frozen=True)
class Session:
    """What a valid cookie says: whose session, under which epoch, since when."""

    user_id: int
    epoch: int
    issued: float
    seen: float


class SessionCodec:
    """Signs and reads session cookies; judges their age."""

    def __init__(
        self, secret: bytes, *, idle: timedelta, absolute: timedelta, secure: bool, path: str
    ) -> None:
        keys = list(reversed(keys_to_try(secret)))
        self._serializer = URLSafeSerializer(keys, salt="newsletter-console-session")
        self.idle = idle.total_seconds()
        self.absolute = absolute.total_seconds()
        self.secure = secure
        self.path = path

    def dumps(self, session: Session) -> str:
        """The cookie value of ``session``."""
        return self._serializer.dumps(
            [session.user_id, session.epoch, round(session.issued), round(session.seen)]
        )

    def loads(self, value: str | None, now: float) -> Session | None:
        """The session in a cookie value, or None when absent, forged, idle or too old."""
        if not value or len(value) > 512:
            return None
        try:
            data = self._serializer.loads(value)
        except BadSignature:
            return None
        if not (isinstance(data, list) and len(data) == 4 and all(type(v) is int for v in data)):
            return None
        session = Session(data[0], data[1], float(data[2]), float(data[3]))
        if now - session.seen > self.idle or now - session.issued > self.absolute:
            return None
        if session.seen > now + 60:  # signed in the future: a clock gone wrong, not trusted
            return None
        return session

    def set_cookie(self, response: Response, session: Session) -> None:
        """Attach the session; the browser keeps it no longer than its absolute lifetime."""
        remaining = max(1, int(self.absolute - (session.seen - session.issued)))
        response.set_cookie(
            SESSION_COOKIE,
            self.dumps(session),
            max_age=remaining,
            httponly=True,
            samesite="lax",
            secure=self.secure,
            path=self.path,
        )

    def clear_cookie(self, response: Response) -> None:
        """Remove the session cookie (logout, or a session that ended)."""
        response.delete_cookie(
            SESSION_COOKIE, path=self.path, secure=self.secure, httponly=True, samesite="lax"
        )
