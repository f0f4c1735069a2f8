"""Rotating NEWSLETTER_SECRET_KEY: old links keep working, erased people stay erased.

The retired keys go in NEWSLETTER_SECRET_KEYS_PREVIOUS; new tokens and new
suppression hashes use the current key only, checks accept every listed key.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.requests import Request

from newsletter import privacy
from newsletter.core.config import Settings, load_settings
from newsletter.core.errors import ConfigError, SuppressedError, TokenError, TokenExpiredError
from newsletter.core.keys import SigningSecret
from newsletter.web.csrf import CSRF_COOKIE, CSRF_FIELD, Csrf
from subscribers import store
from subscribers import suppressions as supp
from subscribers.importer import import_file
from subscribers.model import Subscriber, SubscriberStatus
from subscribers.schema import suppressions
from subscribers.tokens import Purpose, make_token, verify_token
from tests.support.cli import CLIResult
from tests.support.db import cap_statement_values

OLD = "old-key-Quixotic-7f3a-5b9e1c2d4a6f8e0b"
OLDER = "older-key-Zephyr-91bc-3d5f7a9c1e2b4d6f"
NEW = "new-key-Jubilant-44d0-8c6a4e2f0d1b3c5a"
UNKNOWN = "never-configured-key-c0ffee-9a8b7c6d5e4f"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ADDRESS = "reader@example.com"


def _holder(subscriber_id: int) -> Subscriber:
    return Subscriber(
        id=subscriber_id,
        email=ADDRESS,
        status=SubscriberStatus.CONFIRMED,
        created_at=T0 - timedelta(days=1),
        updated_at=T0,
    )


def make(secret: bytes, purpose: Purpose, subscriber_id: int) -> str:
    return make_token(secret, purpose, subscriber_id, ADDRESS, T0)


def verify(secret: bytes, purpose: Purpose, token: str, now: datetime = T0) -> int:
    return verify_token(secret, purpose, token, _holder, now)


Run = Callable[..., CLIResult]


def _rotated(workdir: Path, previous: str = f"{OLD}, {OLDER}") -> Settings:
    return load_settings(workdir, secret_key=NEW, secret_keys_previous=previous)


def _hashes(engine: Engine) -> list[str]:
    with engine.begin() as conn:
        return sorted(conn.execute(sa.select(suppressions.c.address_hash)).scalars())


@pytest.mark.parametrize("purpose", list(Purpose))
@pytest.mark.parametrize("retired", [OLD, OLDER])
def test_a_link_signed_with_a_retired_key_still_verifies(
    workdir: Path, purpose: Purpose, retired: str
) -> None:
    secret = _rotated(workdir).secret()
    token = make(retired.encode(), purpose, 4321)
    assert verify(secret, purpose, token, T0 + timedelta(minutes=5)) == 4321
    # a plain current key (no rotation configured) does not accept it
    with pytest.raises(TokenError, match="not genuine"):
        verify(NEW.encode(), purpose, token, T0)


def test_new_links_are_signed_with_the_current_key_only(workdir: Path) -> None:
    secret = _rotated(workdir).secret()
    token = make(secret, Purpose.UNSUBSCRIBE, 7)
    assert token == make(NEW.encode(), Purpose.UNSUBSCRIBE, 7)
    assert verify(NEW.encode(), Purpose.UNSUBSCRIBE, token, T0) == 7
    with pytest.raises(TokenError):
        verify(OLD.encode(), Purpose.UNSUBSCRIBE, token, T0)


def test_a_link_signed_with_an_unknown_key_is_refused(workdir: Path) -> None:
    secret = _rotated(workdir).secret()
    for purpose in Purpose:
        token = make(UNKNOWN.encode(), purpose, 99)
        with pytest.raises(TokenError, match="not genuine") as info:
            verify(secret, purpose, token, T0)
        assert UNKNOWN not in str(info.value)
        assert NEW not in str(info.value)


def test_rules_are_unchanged_for_retired_keys(workdir: Path) -> None:
    secret = _rotated(workdir).secret()
    year_later = T0 + timedelta(days=400)
    unsubscribe = make(OLD.encode(), Purpose.UNSUBSCRIBE, 5)
    assert verify(secret, Purpose.UNSUBSCRIBE, unsubscribe, year_later) == 5
    confirm = make(OLD.encode(), Purpose.CONFIRM, 5)
    with pytest.raises(TokenExpiredError):
        verify(secret, Purpose.CONFIRM, confirm, T0 + timedelta(days=8))
    with pytest.raises(TokenError, match="not a preferences link"):
        verify(secret, Purpose.PREFERENCES, unsubscribe, T0)
    forged = unsubscribe.replace("u.5.", "u.6.", 1)
    with pytest.raises(TokenError, match="not genuine"):
        verify(secret, Purpose.UNSUBSCRIBE, forged, T0)


def test_an_erased_address_stays_refused_after_rotation(engine: Engine, workdir: Path) -> None:
    before = load_settings(workdir, secret_key=OLD).secret()
    after = _rotated(workdir, OLD).secret()
    with engine.begin() as conn:
        store.add(conn, "erin@example.com", secret=before, confirmed=True, now=T0)
        privacy.erase(conn, "erin@example.com", secret=before, now=T0)
    old_hash = supp.address_hash(OLD.encode(), "erin@example.com")
    new_hash = supp.address_hash(NEW.encode(), "erin@example.com")
    assert _hashes(engine) == [old_hash]
    # without the retired key listed, the old hash no longer matches: the failure mode fixed
    with engine.begin() as conn:
        assert not supp.is_suppressed(conn, NEW.encode(), "erin@example.com")
    with engine.connect() as conn, pytest.raises(SuppressedError, match="erased"):
        store.add(conn, "Erin@Example.com", secret=after, now=T0)
    assert _hashes(engine) == [old_hash]  # that refusal rolled back
    # a check under the rotated secret re-hashes the row to the current key, keeping its reason
    with engine.begin() as conn:
        assert supp.is_suppressed(conn, after, "erin@example.com")
        reason = conn.execute(sa.select(suppressions.c.reason)).scalar_one()
    assert reason == "erased"
    assert _hashes(engine) == [new_hash]
    # now the retired key may go without forgetting this person
    with engine.begin() as conn, pytest.raises(SuppressedError):
        store.add(conn, "erin@example.com", secret=NEW.encode(), now=T0)


def test_suppress_and_lift_see_rows_under_a_retired_key(engine: Engine, workdir: Path) -> None:
    after = _rotated(workdir).secret()
    with engine.begin() as conn:
        supp.suppress(conn, OLDER.encode(), "fay@example.com", "erased", T0)
        supp.suppress(conn, after, "fay@example.com", "erased", T0 + timedelta(days=1))
    assert _hashes(engine) == [supp.address_hash(NEW.encode(), "fay@example.com")]
    with engine.begin() as conn:
        supp.suppress(conn, OLD.encode(), "gus@example.com", "erased", T0)
        assert supp.lift(conn, after, "gus@example.com") is True
        assert supp.suppressed_among(conn, after, ["gus@example.com", "fay@example.com"]) == {
            "fay@example.com"
        }


def test_suppressed_among_a_chunk_under_three_keys_stays_within_a_statements_values(
    engine: Engine, workdir: Path
) -> None:
    # 2,000 addresses under the current and two retired keys: 6,000 hashes, more values
    # than an SQLite built with the old default takes in one statement
    cap_statement_values(engine, 999)
    after = _rotated(workdir).secret()
    keys = [f"reader{i}@example.com" for i in range(2_000)]
    with engine.begin() as conn:
        supp.suppress(conn, OLDER.encode(), "reader1999@example.com", "erased", T0)
        supp.suppress(conn, after, "reader7@example.com", "erased", T0)
        found = supp.suppressed_among(conn, after, keys)
    assert found == {"reader7@example.com", "reader1999@example.com"}


def test_an_import_after_rotation_skips_the_erased(
    engine: Engine, workdir: Path, tmp_path: Path
) -> None:
    before = load_settings(workdir, secret_key=OLD).secret()
    after = _rotated(workdir).secret()
    with engine.begin() as conn:
        privacy.erase(conn, "hal@example.com", secret=before, now=T0)
    csv = tmp_path / "list.csv"
    csv.write_text("email,name\nhal@example.com,Hal\nivy@example.com,Ivy\n")
    report = import_file(engine, csv, secret=after, confirmed=True)
    assert report.imported == 1
    with engine.begin() as conn:
        assert store.find_by_email(conn, "hal@example.com") is None
        assert store.find_by_email(conn, "ivy@example.com") is not None
    assert _hashes(engine) == [supp.address_hash(NEW.encode(), "hal@example.com")]


def test_the_cli_refuses_an_address_erased_before_rotation(run_cli: Run, workdir: Path) -> None:
    old_env = {"NEWSLETTER_SECRET_KEY": OLD}
    new_env = {"NEWSLETTER_SECRET_KEY": NEW, "NEWSLETTER_SECRET_KEYS_PREVIOUS": f"{OLD},{OLDER}"}
    assert run_cli("subscribers", "add", "jo@example.com", "--no-email", env=old_env).code == 0
    assert run_cli("subscribers", "delete", "jo@example.com", env=old_env).code == 0
    refused = run_cli("subscribers", "add", "jo@example.com", env=new_env)
    assert refused.code == 1
    assert "was erased at their request" in refused.stderr
    csv = workdir / "list.csv"
    csv.write_text("email\njo@example.com\n")
    imported = run_cli("subscribers", "import", str(csv), env=new_env)
    assert imported.code == 0, imported.stderr
    assert "skipped 1" in imported.stdout
    for result in (refused, imported):
        for key in (OLD, OLDER, NEW):
            assert key not in result.stdout + result.stderr


def test_secrets_never_appear_in_repr_or_errors(workdir: Path) -> None:
    settings = _rotated(workdir)
    secret = settings.secret()
    assert secret == NEW.encode()
    assert secret.previous == (OLD.encode(), OLDER.encode())
    shown = [repr(settings), str(settings), repr(secret), str(secret), f"{secret}", repr([secret])]
    for text in shown:
        for key in (OLD, OLDER, NEW):
            assert key not in text
    # it survives a trip to another process intact
    assert pickle.loads(pickle.dumps(secret)).previous == secret.previous
    (workdir / "newsletter.toml").write_text(f'secret_keys_previous = ["{OLD}", "a,b"]\n')
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEYS_PREVIOUS") as info:
        load_settings(workdir, secret_key=NEW)
    assert OLD not in str(info.value)
    assert "\n" not in str(info.value)


def test_previous_keys_from_toml_list_and_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "newsletter.toml").write_text(f'secret_keys_previous = ["{OLD}", "{OLDER}"]\n')
    assert load_settings(workdir, secret_key=NEW).secret().previous == (
        OLD.encode(),
        OLDER.encode(),
    )
    monkeypatch.setenv("NEWSLETTER_SECRET_KEYS_PREVIOUS", f" {OLDER} ,,{NEW}")
    secret = load_settings(workdir, secret_key=NEW).secret()
    # blanks dropped; the current key listed again is not a retired key
    assert secret.previous == (OLDER.encode(),)
    assert isinstance(secret, SigningSecret)
    assert load_settings(workdir, secret_key=NEW, secret_keys_previous=None).secret().previous == ()


def _post(cookie: str) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/preferences/x",
        "headers": [(b"cookie", f"{CSRF_COOKIE}={cookie}".encode())],
        "query_string": b"",
        "scheme": "https",
        "server": ("news.example.com", 443),
    }
    return Request(scope)


def test_form_token_issued_before_rotation_still_posts() -> None:
    nonce = "n" * 32
    old_token = Csrf(b"old-key").form_token(nonce)
    rotated = Csrf(SigningSecret(b"new-key", [b"old-key"]))
    assert rotated.check(_post(nonce), {CSRF_FIELD: [old_token]})
    assert not Csrf(b"new-key").check(_post(nonce), {CSRF_FIELD: [old_token]})
    # new forms are signed with the new key alone
    fresh = rotated.form_token(nonce)
    assert Csrf(b"new-key").check(_post(nonce), {CSRF_FIELD: [fresh]})
