"""Signed link tokens and the links built on them: tampering, expiry, purpose, URL-safety."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from newsletter.core.config import Settings
from newsletter.core.errors import TokenError, TokenExpiredError
from subscribers.links import (
    confirm_url,
    preferences_url,
    unsubscribe_links,
    unsubscribe_mailto,
    unsubscribe_url,
)
from subscribers.tokens import Purpose, make_token, verify_token

SECRET = b"a-secret-key"
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")


@pytest.mark.parametrize("purpose", list(Purpose))
@pytest.mark.parametrize("subscriber_id", [1, 42, 2**40])
def test_a_token_round_trips(purpose: Purpose, subscriber_id: int) -> None:
    token = make_token(SECRET, purpose, subscriber_id, NOW)
    assert URL_SAFE.fullmatch(token)
    assert verify_token(SECRET, purpose, token, NOW + timedelta(minutes=1)) == subscriber_id


def test_every_changed_character_is_detected() -> None:
    token = make_token(SECRET, "unsubscribe", 1234, NOW)
    for i, char in enumerate(token):
        for other in {"0", "a", "Z", "_"} - {char}:
            forged = token[:i] + other + token[i + 1 :]
            with pytest.raises(TokenError):
                verify_token(SECRET, "unsubscribe", forged, NOW)


@pytest.mark.parametrize(
    "bad", ["", "x", "u.1.2", "u.1.2.3.4", "u..2.sig", "ü.1.2.abc", "u.zz.1.AAAAAAAAAAAAAAAAAAAAAA"]
)
def test_malformed_tokens_are_rejected(bad: str) -> None:
    with pytest.raises(TokenError):
        verify_token(SECRET, "unsubscribe", bad, NOW)


def test_another_key_or_another_subscriber_is_rejected() -> None:
    token = make_token(SECRET, "preferences", 7, NOW)
    with pytest.raises(TokenError, match="not genuine"):
        verify_token(b"another-key", "preferences", token, NOW)
    code, _, issued, signature = token.split(".")
    with pytest.raises(TokenError, match="not genuine"):
        verify_token(SECRET, "preferences", f"{code}.8.{issued}.{signature}", NOW)


def test_a_token_for_another_purpose_is_rejected() -> None:
    token = make_token(SECRET, Purpose.PREFERENCES, 7, NOW)
    with pytest.raises(TokenError, match="not a confirm link"):
        verify_token(SECRET, Purpose.CONFIRM, token, NOW)
    forged = "u" + token[1:]  # the purpose letter is signed too
    with pytest.raises(TokenError, match="not genuine"):
        verify_token(SECRET, Purpose.UNSUBSCRIBE, forged, NOW)


def test_confirm_tokens_expire_after_seven_days() -> None:
    token = make_token(SECRET, "confirm", 5, NOW)
    assert verify_token(SECRET, "confirm", token, NOW + timedelta(days=7)) == 5
    with pytest.raises(TokenExpiredError, match="expired"):
        verify_token(SECRET, "confirm", token, NOW + timedelta(days=7, seconds=1))
    with pytest.raises(TokenExpiredError):
        verify_token(SECRET, "confirm", token, NOW + timedelta(hours=2), max_age=timedelta(hours=1))
    assert issubclass(TokenExpiredError, TokenError)


def test_unsubscribe_tokens_never_expire() -> None:
    token = make_token(SECRET, "unsubscribe", 5, NOW)
    assert verify_token(SECRET, "unsubscribe", token, NOW + timedelta(days=3650)) == 5


def test_a_token_from_the_future_is_rejected() -> None:
    token = make_token(SECRET, "unsubscribe", 5, NOW + timedelta(days=1))
    with pytest.raises(TokenError, match="future"):
        verify_token(SECRET, "unsubscribe", token, NOW)


def test_links(settings: Settings) -> None:
    base = "https://news.example.com/newsletter"
    url = unsubscribe_url(settings, 9, NOW)
    assert url.startswith(f"{base}/unsubscribe/")
    token = url.rsplit("/", 1)[1]
    assert verify_token(settings.secret(), "unsubscribe", token) == 9
    assert preferences_url(settings, 9, NOW).startswith(f"{base}/preferences/p.9.")
    assert confirm_url(settings, 9, NOW).startswith(f"{base}/confirm/c.9.")
    mailto = unsubscribe_mailto(settings, 9, NOW)
    assert mailto == f"mailto:unsubscribe@news.example.com?subject=unsubscribe%20{token}"


def test_unsubscribe_links_share_one_token(settings: Settings) -> None:
    url, mailto = unsubscribe_links(settings, 9, NOW)
    assert url == unsubscribe_url(settings, 9, NOW)
    assert mailto == unsubscribe_mailto(settings, 9, NOW)
    assert url.rsplit("/", 1)[1] == mailto.rsplit("%20", 1)[1]
