"""Helpers for the console tests: an app at http://testserver, accounts, signing in, posting."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from newsletter.core.config import Settings
from newsletter.web.admin.accounts import add_user
from newsletter.web.admin.roles import Role
from tests.support.web import WebEnv, asgi_client, make_env

__all__ = [
    "PASSWORD",
    "account",
    "confirmed_people",
    "console_env",
    "form_token",
    "fresh_articles",
    "post",
    "sign_in",
    "signed_in",
]

PASSWORD = "plover-anchor-velvet-42"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_env(settings: Settings, smtp_url: str, **changes: object) -> WebEnv:
    """The app over a fresh database, served at http://testserver (so cookies travel)."""
    update: dict[str, object] = {"base_url": "http://testserver", **changes}
    return make_env(settings.model_copy(update=update), smtp_url)


def account(env: WebEnv, email: str, role: Role, password: str = PASSWORD) -> None:
    """A console account."""
    with env.engine.begin() as conn:
        add_user(conn, email, role, password)


def form_token(html: str) -> str:
    """The CSRF token in a page."""
    found = _TOKEN.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    """Fill in and post the sign-in form."""
    page = await client.get("/admin/login")
    return await client.post(
        "/admin/login",
        data={"csrf_token": form_token(page.text), "email": email, "password": password},
    )


@asynccontextmanager
async def signed_in(env: WebEnv, email: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``env``'s app signed in as ``email`` (fails unless the sign-in succeeds)."""
    async with asgi_client(env.app) as client:
        assert (await sign_in(client, email)).status_code == 303
        yield client


async def post(
    client: httpx.AsyncClient, page_path: str, action: str, data: dict[str, object] | None = None
) -> httpx.Response:
    """Open ``page_path`` for its CSRF token, then post ``data`` to ``action``."""
    page = await client.get(page_path)
    assert page.status_code == 200, page.text[:500]
    fields = {"csrf_token": form_token(page.text), **(data or {})}
    return await client.post(action, data=fields)


def fresh_articles(env: WebEnv, count: int = 4) -> list[str]:
    """``count`` articles published in the last hours (the build page shows the last days)."""
    from datetime import UTC, datetime, timedelta

    from newsletter.content.articles import upsert_articles
    from tests.support.sample_editions import article

    now = datetime.now(UTC)
    made = [
        article(100 + n, "UK", ("politics",), published_at=now - timedelta(hours=n + 1))
        for n in range(count)
    ]
    with env.engine.begin() as conn:
        upsert_articles(conn, made, now)
    return [a.id for a in made]


def confirmed_people(
    env: WebEnv, count: int, prefix: str = "reader", newsletters: list[str] | None = None
) -> None:
    """``count`` confirmed subscribers, ``reader0001@example.org`` and on (subscribed to
    ``newsletters``; None: the default newsletter)."""
    from subscribers import store

    secret = env.settings.secret()
    with env.engine.begin() as conn:
        for n in range(count):
            store.add(
                conn,
                f"{prefix}{n:04d}@example.org",
                name=f"Reader {n:04d}",
                secret=secret,
                confirmed=True,
                newsletters=newsletters,
            )
