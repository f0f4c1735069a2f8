"""The personal links a message and the web pages carry: unsubscribe, preferences, confirm.

``{base_url}/unsubscribe/{token}`` serves both the reader's click and the RFC 8058
one-click POST; the mailto form is the second ``List-Unsubscribe`` entry.
"""

from __future__ import annotations

from datetime import datetime

from newsletter.core.config import Settings
from subscribers.tokens import Purpose, make_token

__all__ = [
    "confirm_url",
    "preferences_url",
    "unsubscribe_links",
    "unsubscribe_mailto",
    "unsubscribe_url",
]


def _page_url(
    settings: Settings, purpose: Purpose, page: str, subscriber_id: int, now: datetime | None
) -> str:
    token = make_token(settings.secret(), purpose, subscriber_id, now)
    return f"{settings.base_url}/{page}/{token}"


def unsubscribe_url(settings: Settings, subscriber_id: int, now: datetime | None = None) -> str:
    """The https link that unsubscribes ``subscriber_id`` (never expires)."""
    return _page_url(settings, Purpose.UNSUBSCRIBE, "unsubscribe", subscriber_id, now)


def preferences_url(settings: Settings, subscriber_id: int, now: datetime | None = None) -> str:
    """The link to the page where ``subscriber_id`` changes topics, name and time zone."""
    return _page_url(settings, Purpose.PREFERENCES, "preferences", subscriber_id, now)


def confirm_url(settings: Settings, subscriber_id: int, now: datetime | None = None) -> str:
    """The double opt-in link for a pending ``subscriber_id`` (expires after 7 days)."""
    return _page_url(settings, Purpose.CONFIRM, "confirm", subscriber_id, now)


def unsubscribe_mailto(settings: Settings, subscriber_id: int, now: datetime | None = None) -> str:
    """The ``mailto:`` entry of List-Unsubscribe: mail to the sending domain naming the token."""
    return unsubscribe_links(settings, subscriber_id, now)[1]


def unsubscribe_links(
    settings: Settings, subscriber_id: int, now: datetime | None = None
) -> tuple[str, str]:
    """Both List-Unsubscribe entries (https link, mailto) from one token: the per-message path."""
    token = make_token(settings.secret(), Purpose.UNSUBSCRIBE, subscriber_id, now)
    return (
        f"{settings.base_url}/unsubscribe/{token}",
        f"mailto:unsubscribe@{settings.sender_domain}?subject=unsubscribe%20{token}",
    )
