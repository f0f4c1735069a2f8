"""Bounce scores and VERP return paths (subscribers.bounces) on a real database."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from newsletter.core.config import Settings
from newsletter.core.errors import ConfigError, TokenError, TokenExpiredError
from subscribers import store
from subscribers.bounces import (
    SOFT_BOUNCE_LIMIT,
    bounce_address,
    bounce_token,
    bounce_token_owner,
    record_soft_bounce,
    return_paths,
    soft_bounce_score,
    verp_token,
)
from subscribers.model import Subscriber, SubscriberStatus
from subscribers.tokens import Purpose, make_token

START = datetime(2025, 3, 1, 7, 0, tzinfo=UTC)


def reader(engine: Engine, settings: Settings, email: str = "ann@example.org") -> Subscriber:
    with engine.begin() as conn:
        return store.add(conn, email, secret=settings.secret(), confirmed=True, now=START)


def soft(engine: Engine, person: Subscriber, day: float, message_id: str | None = None) -> bool:
    with engine.begin() as conn:
        return record_soft_bounce(
            conn,
            person.id,
            status="4.2.2",
            reason="4.2.2 mailbox full",
            now=START + timedelta(days=day),
            message_id=message_id,
        ).bounced


def status(engine: Engine, person: Subscriber) -> SubscriberStatus:
    with engine.connect() as conn:
        return store.get(conn, person.id).status


def test_the_third_soft_bounce_within_the_window_bounces(
    engine: Engine, settings: Settings
) -> None:
    ann = reader(engine, settings)
    assert SOFT_BOUNCE_LIMIT == 3
    assert [soft(engine, ann, day) for day in (1, 15, 29)] == [False, False, True]
    assert status(engine, ann) is SubscriberStatus.BOUNCED
    with engine.connect() as conn:
        [bounced] = [e for e in store.events(conn, ann.id) if e.kind == "bounced"]
    assert bounced.detail["reason"].startswith("3 soft bounces within 30 days")


def test_old_soft_bounces_fall_out_of_the_window(engine: Engine, settings: Settings) -> None:
    ann = reader(engine, settings)
    assert [soft(engine, ann, day) for day in (1, 20, 40, 55, 80)] == [False] * 5
    assert status(engine, ann) is SubscriberStatus.CONFIRMED
    with engine.connect() as conn:
        assert soft_bounce_score(conn, ann.id, now=START + timedelta(days=80)) == 2


def test_one_returned_message_counts_once(engine: Engine, settings: Settings) -> None:
    ann = reader(engine, settings)
    assert [soft(engine, ann, 1, "<m1@news>") for _ in range(4)] == [False] * 4
    assert soft(engine, ann, 2, "<m2@news>") is False
    assert soft(engine, ann, 3) is True  # no Message-ID known: counted on its own


def test_a_fresh_confirmation_starts_a_fresh_score(engine: Engine, settings: Settings) -> None:
    ann = reader(engine, settings)
    soft(engine, ann, 1)
    soft(engine, ann, 2)
    with engine.begin() as conn:
        store.unsubscribe(conn, ann.id, now=START + timedelta(days=3))
        store.add(
            conn,
            ann.email,
            secret=settings.secret(),
            confirmed=True,
            resubscribe=True,
            now=START + timedelta(days=4),
        )
    assert soft(engine, ann, 5) is False
    assert status(engine, ann) is SubscriberStatus.CONFIRMED


def test_a_return_path_names_its_recipient_only(engine: Engine, settings: Settings) -> None:
    ann = reader(engine, settings)
    bob = reader(engine, settings, "bob@example.org")
    path = return_paths(settings)(ann.id, ann.email)
    assert path.startswith("bounces+b.")
    assert path.endswith("@news.example.com")
    assert bounce_address(settings) == "bounces@news.example.com"
    token = verp_token(path)
    assert token is not None
    people = {ann.id: ann, bob.id: bob}
    assert bounce_token_owner(settings.secret(), token, people.get) == ann.id
    # made for ann's address: worthless under bob's id, or once the address changes
    forged = token.replace(f"b.{ann.id:x}.", f"b.{bob.id:x}.", 1)
    with pytest.raises(TokenError):
        bounce_token_owner(settings.secret(), forged, people.get)
    moved = ann.model_copy(update={"email": "ann@elsewhere.example.org"})
    with pytest.raises(TokenError):
        bounce_token_owner(settings.secret(), token, {ann.id: moved}.get)
    # an unsubscribe link is not a return path
    link = make_token(settings.secret(), Purpose.UNSUBSCRIBE, ann.id, ann.email)
    with pytest.raises(TokenError):
        bounce_token_owner(settings.secret(), link, people.get)
    # an MTA that folds the address's case does not spoil it
    assert path == path.lower()
    assert verp_token(path.upper()) == token
    assert bounce_token_owner(settings.secret(), token.upper(), people.get) == ann.id
    # and a return path proves nothing after the bounce purpose's 30 days
    later = START + timedelta(days=31)
    old = bounce_token(settings.secret(), ann.id, ann.email, now=START)
    with pytest.raises(TokenExpiredError):
        bounce_token_owner(settings.secret(), old, people.get, now=later)


def test_the_bounce_address_can_be_set(settings: Settings) -> None:
    custom = settings.model_copy(update={"bounce_address": "Returns <rp@mail.example.com>"})
    assert bounce_address(custom) == "rp@mail.example.com"
    assert return_paths(custom)(7, "ann@example.org").startswith("rp+b.7.")
    with pytest.raises(ConfigError, match="NEWSLETTER_BOUNCE_ADDRESS"):
        return_paths(settings.model_copy(update={"bounce_address": "no-at-sign"}))


def test_return_paths_cost_one_hmac_each_to_make_and_to_check(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made per recipient per send and checked per bounce: after the first, each costs
    one ``hmac.digest`` (C) and no key derivation. Counted, not timed: a busy CI
    machine makes a timed bound fail for nothing, and the count is what keeps it fast."""
    make = return_paths(settings)
    secret = settings.secret()
    ann = Subscriber(
        id=12345,
        email="ann@example.org",
        status=SubscriberStatus.CONFIRMED,
        created_at=START,
        updated_at=START,
    )
    path = make(ann.id, ann.email)
    token = verp_token(path)
    assert token is not None
    assert bounce_token_owner(secret, token, lambda _id: ann) == ann.id  # keys now derived
    calls: list[bytes] = []
    real = hmac.digest

    def counted(key: bytes, msg: bytes, digest: str) -> bytes:
        calls.append(msg)
        return real(key, msg, digest)

    monkeypatch.setattr(hmac, "digest", counted)
    paths = {make(n, f"reader{n}@example.org") for n in range(200)}
    assert len(paths) == 200
    assert len(calls) == 200, "making a return path costs more than one HMAC"
    calls.clear()
    for _ in range(200):
        assert bounce_token_owner(secret, token, lambda _id: ann) == ann.id
    assert len(calls) == 200, "checking a return path costs more than one HMAC"
