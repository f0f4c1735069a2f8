"""An erased person's links never act on anyone else (issue 9, item 3).

The attack: the newest subscriber is erased, the next signup would get the same
id on SQLite, and the erased person's never-expiring unsubscribe and preferences
links (and a confirm link, and a late bounce) would act on the newcomer.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.engine import Connection, Engine

from newsletter import privacy
from newsletter.core.config import Settings
from newsletter.core.errors import TokenError, TokenOwnerGoneError
from subscribers import links, store
from subscribers.model import SubscriberStatus
from subscribers.schema import subscribers
from subscribers.tokens import Purpose, make_token
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult
from tests.support.web import WebEnv, asgi_client, csrf_token, make_env, path_of

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CONFIRM_RE = re.compile(r"(https://\S+/confirm/\S+)")


def _all_links(settings: Settings, subscriber_id: int, address: str) -> dict[Purpose, str]:
    secret = settings.secret()
    return {
        Purpose.CONFIRM: links.confirm_url(settings, subscriber_id, address, NOW),
        Purpose.UNSUBSCRIBE: links.unsubscribe_url(settings, subscriber_id, address, NOW),
        Purpose.PREFERENCES: links.preferences_url(settings, subscriber_id, address, NOW),
        # a VERP return path's tag, as a late bounce brings it back
        Purpose.BOUNCE: "x/" + make_token(secret, Purpose.BOUNCE, subscriber_id, address, NOW),
    }


def _check(conn: Connection, secret: bytes, purpose: Purpose, url: str, now: datetime) -> int:
    return links.verify_link(conn, secret, purpose, url.rsplit("/", 1)[1], now)


def test_an_erased_id_is_never_given_to_the_next_person(engine: Engine, settings: Settings) -> None:
    secret = settings.secret()
    with engine.begin() as conn:
        store.add(conn, "first@example.com", secret=secret, confirmed=True, now=NOW)
        newest = store.add(conn, "newest@example.com", secret=secret, confirmed=True, now=NOW)
    old = _all_links(settings, newest.id, newest.email)
    with engine.begin() as conn:
        assert privacy.erase(conn, "newest@example.com", secret=secret, now=NOW)
        newcomer = store.add(conn, "newcomer@example.com", secret=secret, now=NOW)
    assert newcomer.id > newest.id
    later = NOW + timedelta(hours=1)
    with engine.begin() as conn:
        for purpose, url in old.items():
            with pytest.raises(TokenOwnerGoneError):
                _check(conn, secret, purpose, url, later)
        assert store.get(conn, newcomer.id).status is SubscriberStatus.PENDING


def test_a_link_never_acts_on_a_later_holder_of_its_id(engine: Engine, settings: Settings) -> None:
    # Should an id come back all the same (a restored backup, a sequence reset by
    # hand), the token is bound to the address it was made for and refuses.
    secret = settings.secret()
    with engine.begin() as conn:
        gone = store.add(conn, "gone@example.com", secret=secret, confirmed=True, now=NOW)
    old = _all_links(settings, gone.id, gone.email)
    with engine.begin() as conn:
        privacy.erase(conn, "gone@example.com", secret=secret, now=NOW)
        conn.execute(
            subscribers.insert().values(
                id=gone.id,
                email="newcomer@example.com",
                email_key="newcomer@example.com",
                status="pending",
                topics=[],
                attributes={},
                created_at=NOW,
                updated_at=NOW,
            )
        )
    with engine.begin() as conn:
        for purpose, url in old.items():
            with pytest.raises(TokenError, match="not genuine"):
                _check(conn, secret, purpose, url, NOW)
        assert store.get(conn, gone.id).status is SubscriberStatus.PENDING


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, settings: Settings) -> str:
    """The CLI's and the web app's one database: SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return settings.database_url
    url: str = request.getfixturevalue("postgresql_url")
    return url


@pytest.fixture
async def web(
    settings: Settings, database_url: str, smtp_server: SMTPServer
) -> AsyncIterator[tuple[WebEnv, httpx.AsyncClient]]:
    """The readers' pages over the same database as the CLI."""
    env = make_env(settings, smtp_server.url, database_url=database_url)
    async with asgi_client(env.app) as client:
        yield env, client
    env.engine.dispose()


async def test_the_erased_persons_links_do_nothing_to_the_next_signup(
    run_cli: Callable[..., CLIResult],
    database_url: str,
    web: tuple[WebEnv, httpx.AsyncClient],
    smtp_server: SMTPServer,
) -> None:
    env, client = web
    cli_env = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_SMTP_URL": smtp_server.url}
    assert run_cli("subscribers", "add", "early@example.com", "--confirmed", env=cli_env).code == 0
    added = run_cli("subscribers", "add", "old@example.com", "--name", "Olive Old", env=cli_env)
    assert added.code == 0, added.stderr
    assert "/confirm/" not in added.stdout + added.stderr  # a link token is never printed
    [mail] = smtp_server.received
    text = email.message_from_bytes(mail.data, policy=email.policy.default)
    body = text.get_body(preferencelist=("plain",))
    assert body is not None
    found = CONFIRM_RE.search(body.get_content())
    assert found
    confirm = path_of(env.settings, found.group(1))
    with env.engine.connect() as conn:
        old = store.get_by_email(conn, "old@example.com")
    unsubscribe = path_of(env.settings, links.unsubscribe_url(env.settings, old.id, old.email))
    preferences = path_of(env.settings, links.preferences_url(env.settings, old.id, old.email))

    erased = run_cli("subscribers", "delete", "old@example.com", env=cli_env)
    assert erased.code == 0, erased.stderr
    joined = run_cli("subscribers", "add", "new@example.com", "--name", "Nina New", env=cli_env)
    assert joined.code == 0, joined.stderr
    with env.engine.connect() as conn:
        newcomer = store.get_by_email(conn, "new@example.com")
    assert newcomer.id != old.id

    page = await client.get(preferences)
    assert "new@example.com" not in page.text
    assert "Nina" not in page.text
    shown = await client.get(confirm)
    assert "n•••@example.com" not in shown.text
    form = await client.get("/")
    await client.post(confirm, data={"csrf_token": csrf_token(form.text)})
    await client.post(unsubscribe, content=b"List-Unsubscribe=One-Click")
    with env.engine.connect() as conn:
        assert store.get(conn, newcomer.id).status is SubscriberStatus.PENDING
        assert [e.kind for e in store.events(conn, newcomer.id)] == ["created"]
