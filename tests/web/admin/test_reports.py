"""Clicks in the console: the dashboard's last editions and an edition's report page."""

from __future__ import annotations

import re
from email import message_from_bytes, policy

import httpx

from newsletter.core.config import Settings
from newsletter.delivery.engine import send_edition
from newsletter.web.admin.roles import Role
from tests.plugins.smtp import SMTPServer
from tests.support.web import WebEnv, asgi_client
from tests.web.admin.kit import (
    account,
    confirmed_people,
    console_env,
    fresh_articles,
    post,
    sign_in,
)

_LINK = re.compile(r'href="(http://testserver/c/[^"]+)"')


def _html_part(data: bytes) -> str:
    message = message_from_bytes(data, policy=policy.default)
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


async def _sent_edition(env: WebEnv, client: httpx.AsyncClient, people: int) -> str:
    confirmed_people(env, people)
    ids = fresh_articles(env)
    built = await post(
        client, "/admin/editions/new", "/admin/editions/new", {"candidate": ids, "pick": ids[:3]}
    )
    assert built.status_code == 303, built.text[:600]
    edition_id = str(built.headers["location"]).split("?")[0].rsplit("/", 1)[1]
    report = await send_edition(env.settings, env.engine, edition_id)
    assert report.remaining == 0
    return edition_id


async def test_clicks_on_the_dashboard_and_the_report(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    env = console_env(settings, smtp_server.url)
    account(env, "viewer@example.com", Role.VIEWER)
    account(env, "editor@example.com", Role.EDITOR)
    async with asgi_client(env.app) as client:
        await sign_in(client, "editor@example.com")
        edition_id = await _sent_edition(env, client, 4)
        links = [_LINK.findall(_html_part(m.data)) for m in smtp_server.received]
        assert all(links), "every message has tracked links"
        # two readers click the lead story, one of them twice; a link checker looks too
        for n, agent in ((0, "Mozilla/5.0 Reader A"), (1, "Mozilla/5.0 Reader B")):
            answer = await client.get(links[n][1], headers={"User-Agent": agent})
            assert answer.status_code in (302, 303, 307), answer.text[:300]
        await client.get(links[0][1], headers={"User-Agent": "Mozilla/5.0 Reader A"})
        await client.head(links[2][1])
    async with asgi_client(env.app) as client:
        anonymous = await client.get(f"/admin/editions/{edition_id}/report")
        assert anonymous.status_code == 401
        assert "Readers per story" not in anonymous.text
        await sign_in(client, "viewer@example.com")
        dashboard = await client.get("/admin/")
        assert "Clicked (CTR)" in dashboard.text
        assert ">2 (50.0%)<" in dashboard.text  # 2 of the 4 sent
        page = await client.get(f"/admin/editions/{edition_id}/report")
        assert page.status_code == 200
        numbers = page.text.split('id="report-numbers"')[1].split("</ul>")[0]
        assert "<strong>2</strong> readers clicked" in numbers
        assert "<strong>50.0%</strong> click-through rate" in numbers
        table = page.text.split('id="story-clicks"')[1].split("</table>")[0]
        rows = [r for r in table.split("<tr>")[2:] if 'class="num">' in r]
        counts = [re.findall(r'class="num">(\d+)<', r) for r in rows]
        assert ["3", "2", "1"] in counts  # 3 clicks by 2 readers, the scanner's HEAD apart
        assert page.text.count('<svg xmlns="http://www.w3.org/2000/svg"') == 2
        assert "Clicks per hour over the first 48 hours" in page.text
        assert "readers (3)" in page.text
        assert "<script" not in page.text.split("</head>")[1]


async def test_no_click_column_when_tracking_is_off(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    env = console_env(settings, smtp_server.url, track_clicks="off")
    account(env, "editor@example.com", Role.EDITOR)
    async with asgi_client(env.app) as client:
        await sign_in(client, "editor@example.com")
        edition_id = await _sent_edition(env, client, 2)
        dashboard = await client.get("/admin/")
        assert edition_id in dashboard.text
        assert "Clicked (CTR)" not in dashboard.text
        report = await client.get(f"/admin/editions/{edition_id}/report")
        assert "Click tracking is off" in report.text
