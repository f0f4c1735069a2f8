"""Signed link tokens and the links built on them: tampering, expiry, purpose, URL-safety,
and the binding to the person they were made for."""

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
from subscribers.model import Subscriber, SubscriberStatus
from subscribers.tokens import Purpose, TokenOwnerGoneError, make_token, verify_token

SECRET = b"a-secret-key-for-the-token-tests-only"
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")


def _person(subscriber_id: int, created: datetime = NOW - timedelta(days=30)) -> Subscriber:
    return Subscriber(
        id=subscriber_id,
        email=f"reader{subscriber_id}@example.com",
        status=SubscriberStatus.CONFIRMED,
        created_at=created,
        updated_at=created,
    )


def _held(subscriber_id: int) -> Subscriber | None:
    """The store as these tests see it: everyone holds their own address."""
    return _person(subscriber_id)


def make(purpose: Purpose | str, subscriber_id: int, now: datetime = NOW) -> str:
    return make_token(SECRET, purpose, subscriber_id, _person(subscriber_id).email, now)


def verify(
    purpose: Purpose | str,
    token: str,
    now: datetime = NOW,
    max_age: timedelta | None = None,
    secret: bytes = SECRET,
) -> int:
    return verify_token(secret, purpose, token, _held, now, max_age)


@pytest.mark.parametrize("purpose", list(Purpose))
@pytest.mark.parametrize("subscriber_id", [1, 42, 2**40])
def test_a_token_round_trips(purpose: Purpose, subscriber_id: int) -> None:
    token = make(purpose, subscriber_id, NOW)
    assert URL_SAFE.fullmatch(token)
    assert verify(purpose, token, NOW + timedelta(minutes=1)) == subscriber_id


def test_every_changed_character_is_detected() -> None:
    token = make("unsubscribe", 1234, NOW)
    for i, char in enumerate(token):
        for other in {"0", "a", "Z", "_"} - {char}:
            forged = token[:i] + other + token[i + 1 :]
            with pytest.raises(TokenError):
                verify("unsubscribe", forged, NOW)


@pytest.mark.parametrize(
    "bad", ["", "x", "u.1.2", "u.1.2.3.4", "u..2.sig", "ü.1.2.abc", "u.zz.1.AAAAAAAAAAAAAAAAAAAAAA"]
)
def test_malformed_tokens_are_rejected(bad: str) -> None:
    with pytest.raises(TokenError):
        verify("unsubscribe", bad, NOW)


def test_another_key_or_another_subscriber_is_rejected() -> None:
    token = make("preferences", 7, NOW)
    with pytest.raises(TokenError, match="not genuine"):
        verify("preferences", token, NOW, secret=b"another-key-of-thirty-two-bytes-or-more")
    code, _, issued, signature = token.split(".")
    with pytest.raises(TokenError, match="not genuine"):
        verify("preferences", f"{code}.8.{issued}.{signature}", NOW)


def test_a_token_for_another_purpose_is_rejected() -> None:
    token = make(Purpose.PREFERENCES, 7, NOW)
    with pytest.raises(TokenError, match="not a confirm link"):
        verify(Purpose.CONFIRM, token, NOW)
    forged = "u" + token[1:]  # the purpose letter is signed too
    with pytest.raises(TokenError, match="not genuine"):
        verify(Purpose.UNSUBSCRIBE, forged, NOW)


def test_confirm_tokens_expire_after_seven_days() -> None:
    token = make("confirm", 5, NOW)
    assert verify("confirm", token, NOW + timedelta(days=7)) == 5
    with pytest.raises(TokenExpiredError, match="expired"):
        verify("confirm", token, NOW + timedelta(days=7, seconds=1))
    with pytest.raises(TokenExpiredError):
        verify("confirm", token, NOW + timedelta(hours=2), max_age=timedelta(hours=1))
    assert issubclass(TokenExpiredError, TokenError)


def test_unsubscribe_tokens_never_expire() -> None:
    token = make("unsubscribe", 5, NOW)
    assert verify("unsubscribe", token, NOW + timedelta(days=3650)) == 5


def test_a_token_from_the_future_is_rejected() -> None:
    token = make("unsubscribe", 5, NOW + timedelta(days=1))
    with pytest.raises(TokenError, match="future"):
        verify("unsubscribe", token, NOW)


def test_links(settings: Settings) -> None:
    base = "https://news.example.com/newsletter"
    url = unsubscribe_url(settings, 9, "reader9@example.com", NOW)
    assert url.startswith(f"{base}/unsubscribe/")
    token = url.rsplit("/", 1)[1]
    assert verify_token(settings.secret(), "unsubscribe", token, _held) == 9
    assert preferences_url(settings, 9, "reader9@example.com", NOW).startswith(
        f"{base}/preferences/p.9."
    )
    assert confirm_url(settings, 9, "reader9@example.com", NOW).startswith(f"{base}/confirm/c.9.")
    mailto = unsubscribe_mailto(settings, 9, "reader9@example.com", NOW)
    assert mailto == f"mailto:unsubscribe@news.example.com?subject=unsubscribe%20{token}"


def test_unsubscribe_links_share_one_token(settings: Settings) -> None:
    url, mailto = unsubscribe_links(settings, 9, "reader9@example.com", NOW)
    assert url == unsubscribe_url(settings, 9, "reader9@example.com", NOW)
    assert mailto == unsubscribe_mailto(settings, 9, "reader9@example.com", NOW)
    assert url.rsplit("/", 1)[1] == mailto.rsplit("%20", 1)[1]


@pytest.mark.parametrize("purpose", list(Purpose))
def test_a_token_acts_only_for_the_address_it_was_made_for(purpose: Purpose) -> None:
    token = make_token(SECRET, purpose, 7, "first@example.com", NOW)
    first = _person(7).model_copy(update={"email": "first@example.com"})
    newcomer = _person(7).model_copy(update={"email": "newcomer@example.com"})
    assert verify_token(SECRET, purpose, token, lambda i: first, NOW) == 7
    # the same id now held by someone else (a restored backup, a reused id): refused
    with pytest.raises(TokenError, match="not genuine"):
        verify_token(SECRET, purpose, token, lambda i: newcomer, NOW)
    # nobody holds the id: the token acts on no one, and says which id it named
    with pytest.raises(TokenOwnerGoneError) as gone:
        verify_token(SECRET, purpose, token, lambda i: None, NOW)
    assert gone.value.subscriber_id == 7


def test_an_unbound_unsubscribe_link_from_before_the_binding_still_works() -> None:
    # one-click unsubscribes in emails already delivered were signed over id and time only
    from subscribers.tokens import _signature

    body = f"u.7.{int((NOW - timedelta(days=3)).timestamp()):x}"
    legacy = f"{body}.{_signature(SECRET, body)}"
    assert verify("unsubscribe", legacy) == 7
    # ...but never for a later holder of the id, nor for another purpose
    later = _person(7, created=NOW - timedelta(days=1))
    with pytest.raises(TokenError, match="not genuine"):
        verify_token(SECRET, "unsubscribe", legacy, lambda i: later, NOW)
    prefs = f"p.7.{body.split('.')[2]}"
    with pytest.raises(TokenError, match="not genuine"):
        verify("preferences", f"{prefs}.{_signature(SECRET, prefs)}")
