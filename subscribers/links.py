"""The personal links a message and the web pages carry: unsubscribe, preferences, confirm.

``{base_url}/unsubscribe/{token}`` serves both the reader's click and the RFC 8058
one-click POST; the mailto form is the second ``List-Unsubscribe`` entry. A message's
unsubscribe token names its newsletter: it unsubscribes from that one only. Every
link is made for one subscriber id *and* their address (see :mod:`subscribers.tokens`);
:func:`verify_link` checks one against the subscriber held now.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from newsletter.core.config import Settings
from subscribers import store
from subscribers.tokens import Purpose, make_token, verify_scoped_token

__all__ = [
    "confirm_url",
    "preferences_url",
    "unsubscribe_links",
    "unsubscribe_mailto",
    "unsubscribe_url",
    "verify_link",
    "verify_scoped_link",
]


def _page_url(
    settings: Settings,
    purpose: Purpose,
    page: str,
    subscriber_id: int,
    address: str,
    now: datetime | None,
) -> str:
    token = make_token(settings.secret(), purpose, subscriber_id, address, now)
    return f"{settings.base_url}/{page}/{token}"


def unsubscribe_url(
    settings: Settings,
    subscriber_id: int,
    address: str,
    now: datetime | None = None,
    newsletter: str | None = None,
) -> str:
    """The https link that unsubscribes ``subscriber_id`` at ``address`` (never expires)
    from ``newsletter``, or from every newsletter (None)."""
    return unsubscribe_links(settings, subscriber_id, address, now, newsletter)[0]


def preferences_url(
    settings: Settings, subscriber_id: int, address: str, now: datetime | None = None
) -> str:
    """The link to the page where ``subscriber_id`` changes topics, name and time zone."""
    return _page_url(settings, Purpose.PREFERENCES, "preferences", subscriber_id, address, now)


def confirm_url(
    settings: Settings, subscriber_id: int, address: str, now: datetime | None = None
) -> str:
    """The double opt-in link for a pending ``subscriber_id`` (expires after 7 days)."""
    return _page_url(settings, Purpose.CONFIRM, "confirm", subscriber_id, address, now)


def unsubscribe_mailto(
    settings: Settings, subscriber_id: int, address: str, now: datetime | None = None
) -> str:
    """The ``mailto:`` entry of List-Unsubscribe: mail to the sending domain naming the token."""
    return unsubscribe_links(settings, subscriber_id, address, now)[1]


def unsubscribe_links(
    settings: Settings,
    subscriber_id: int,
    address: str,
    now: datetime | None = None,
    newsletter: str | None = None,
) -> tuple[str, str]:
    """Both List-Unsubscribe entries (https link, mailto) from one token: the per-message
    path; bound to ``newsletter`` when given (else they leave every newsletter)."""
    token = make_token(
        settings.secret(), Purpose.UNSUBSCRIBE, subscriber_id, address, now, newsletter
    )
    return (
        f"{settings.base_url}/unsubscribe/{token}",
        f"mailto:unsubscribe@{settings.sender_domain}?subject=unsubscribe%20{token}",
    )


def verify_link(
    conn: Connection,
    secret: bytes,
    purpose: Purpose | str,
    token: str,
    now: datetime | None = None,
    max_age: timedelta | None = None,
) -> int:
    """The id of the subscriber a genuine ``token`` was made for, checked against the store.

    Raises :class:`~newsletter.core.errors.TokenOwnerGoneError` when nobody holds
    the id any more, and :class:`~newsletter.core.errors.TokenError` as
    :func:`~subscribers.tokens.verify_token` does.
    """
    return verify_scoped_link(conn, secret, purpose, token, now, max_age)[0]


def verify_scoped_link(
    conn: Connection,
    secret: bytes,
    purpose: Purpose | str,
    token: str,
    now: datetime | None = None,
    max_age: timedelta | None = None,
) -> tuple[int, str | None]:
    """(subscriber id, newsletter id or None for every newsletter) of a genuine ``token``,
    checked against the store; raises as :func:`verify_link`."""
    return verify_scoped_token(
        secret, purpose, token, lambda subscriber_id: store.find(conn, subscriber_id), now, max_age
    )
