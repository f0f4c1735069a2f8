"""Attaching an edition to a recurring schedule from its console page, and taking it off."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from newsletter.content.editions import get_edition
from newsletter.content.models import EditionStatus
from newsletter.core.config import Settings
from newsletter.core.db import utcnow
from newsletter.scheduling.store import add_schedule, get_schedule
from newsletter.scheduling.timing import Timing
from newsletter.web.admin.audit import list_entries
from newsletter.web.admin.roles import Role
from tests.plugins.smtp import SMTPServer
from tests.support.web import WebEnv, asgi_client
from tests.web.admin.kit import account, console_env, fresh_articles, post, sign_in, signed_in


@pytest.fixture
def console(settings: Settings, smtp_server: SMTPServer) -> WebEnv:
    env = console_env(settings, smtp_server.url)
    account(env, "editor@example.com", Role.EDITOR)
    account(env, "viewer@example.com", Role.VIEWER)
    return env


@pytest.fixture
async def editor(console: WebEnv) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in(console, "editor@example.com") as client:
        yield client


async def _draft(client: httpx.AsyncClient, ids: list[str]) -> str:
    response = await post(
        client, "/admin/editions/new", "/admin/editions/new", {"candidate": ids, "pick": ids[:2]}
    )
    assert response.status_code == 303, response.text[:600]
    return str(response.headers["location"]).split("?")[0].rsplit("/", 1)[1]


def _recurring(env: WebEnv) -> int:
    with env.engine.begin() as conn:
        timing = Timing(kind="cron", tz="Europe/London", cron="0 7 * * *")
        return add_schedule(conn, timing=timing, now=utcnow()).id


async def test_attach_and_detach_from_the_edition_page(
    console: WebEnv, editor: httpx.AsyncClient
) -> None:
    schedule_id = _recurring(console)
    edition_id = await _draft(editor, fresh_articles(console))
    page = f"/admin/editions/{edition_id}"
    shown = await editor.get(page)
    assert 'action="/admin/editions/' + edition_id + '/attach"' in shown.text
    attached = await post(editor, page, page + "/attach", {"schedule": str(schedule_id)})
    assert attached.status_code == 303
    with console.engine.connect() as conn:
        assert get_schedule(conn, schedule_id).edition_id == edition_id
        assert get_edition(conn, edition_id).status is EditionStatus.SCHEDULED
    again = await editor.get(page)
    assert f'Goes out at the next run of <a href="/admin/schedules/{schedule_id}"' in again.text
    schedule_page = await editor.get(f"/admin/schedules/{schedule_id}")
    assert f"edition {edition_id} at the next run" in schedule_page.text
    detached = await post(editor, page, page + "/detach")
    assert detached.status_code == 303
    with console.engine.connect() as conn:
        assert get_schedule(conn, schedule_id).edition_id is None
        assert get_edition(conn, edition_id).status is EditionStatus.DRAFT
        actions = [e.action for e in list_entries(conn, limit=10)]
    assert actions[:2] == ["edition.detach", "edition.attach"]


async def test_what_cannot_be_attached_is_a_clear_error(
    console: WebEnv, editor: httpx.AsyncClient
) -> None:
    edition_id = await _draft(editor, fresh_articles(console))
    page = f"/admin/editions/{edition_id}"
    with console.engine.begin() as conn:
        once = add_schedule(
            conn,
            timing=Timing(kind="once", tz="Europe/London", run_at=utcnow().replace(year=2099)),
            now=utcnow(),
        ).id
    refused = await post(editor, page, page + "/attach", {"schedule": str(once)})
    assert refused.status_code == 400
    assert "runs once; attach to a recurring schedule" in refused.text
    missing = await post(editor, page, page + "/attach", {"schedule": "nine"})
    assert missing.status_code == 400
    nothing = await post(editor, page, page + "/detach")
    assert nothing.status_code == 409


async def test_a_viewer_may_not_attach(console: WebEnv) -> None:
    schedule_id = _recurring(console)
    async with asgi_client(console.app) as client:
        await sign_in(client, "editor@example.com")
        edition_id = await _draft(client, fresh_articles(console))
    async with asgi_client(console.app) as client:
        page = f"/admin/editions/{edition_id}"
        assert (await client.post(page + "/attach")).status_code == 401
        await sign_in(client, "viewer@example.com")
        shown = await client.get(page)
        assert "/attach" not in shown.text
        response = await post(client, page, page + "/attach", {"schedule": str(schedule_id)})
        assert response.status_code == 403
        assert (await post(client, page, page + "/detach")).status_code == 403
    with console.engine.connect() as conn:
        assert get_schedule(conn, schedule_id).edition_id is None
