"""The console with two newsletters, over HTTP: an edition built for the second reaches only
its readers (the confirmation's count and the real send to aiosmtpd); the subscribers
filter pages through one newsletter's people; a person leaves one newsletter (audited);
schedules and the dashboard name them; a forged id is a 400 that changes nothing; a
viewer gets 403; a one-newsletter site sees none of it."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from newsletter.core.config import Settings
from newsletter.core.newsletters import Newsletter
from newsletter.core.schema import editions, schedules
from newsletter.web.admin.roles import Role
from subscribers.schema import subscriptions
from tests.plugins.smtp import SMTPServer
from tests.support.web import WebEnv
from tests.web.admin.kit import (
    account,
    confirmed_people,
    console_env,
    fresh_articles,
    post,
    signed_in,
)

TWO = [
    Newsletter(id="daily", name="The Daily Briefing"),
    Newsletter(id="breaking", name="Breaking News"),
]


@pytest.fixture
def console(settings: Settings, smtp_server: SMTPServer) -> WebEnv:
    env = console_env(settings, smtp_server.url, newsletters=TWO)
    account(env, "admin@example.com", Role.ADMIN)
    account(env, "viewer@example.com", Role.VIEWER)
    return env


@pytest.fixture
async def admin(console: WebEnv) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in(console, "admin@example.com") as client:
        yield client


def _person(env: WebEnv, email: str) -> int:
    with env.engine.connect() as conn:
        found: int = conn.execute(
            sa.text("SELECT id FROM subscribers WHERE email = :e"), {"e": email}
        ).scalar_one()
    return found


def _count(env: WebEnv, table: sa.Table) -> int:
    with env.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _choices(env: WebEnv, person_id: int) -> dict[str, str]:
    c = subscriptions.c
    with env.engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.newsletter_id, c.status).where(c.subscriber_id == person_id)
        )
        return {str(n): str(s) for n, s in rows}


def _audit(env: WebEnv) -> list[tuple[str, str, str]]:
    with env.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT action, target, detail FROM audit_log ORDER BY id")
        return [(str(a), str(t), str(d)) for a, t, d in rows]


async def _build(client: httpx.AsyncClient, ids: list[str], newsletter: str) -> httpx.Response:
    data: dict[str, object] = {"candidate": ids, "pick": ids[:2], "newsletter": newsletter}
    return await post(client, "/admin/editions/new", "/admin/editions/new", data)


async def test_an_edition_for_the_second_newsletter_reaches_only_its_readers(
    console: WebEnv, admin: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    confirmed_people(console, 4, prefix="day")  # the default newsletter only
    confirmed_people(console, 2, prefix="brk", newsletters=["breaking"])
    confirmed_people(console, 1, prefix="both", newsletters=["daily", "breaking"])
    ids = fresh_articles(console)
    builder = await admin.get("/admin/editions/new")
    select = builder.text.split('<select id="newsletter" name="newsletter">')[1].split("</select>")
    assert '<option value="daily" selected>The Daily Briefing</option>' in select[0]
    assert '<option value="breaking">Breaking News</option>' in select[0]
    built = await _build(admin, ids, "breaking")
    assert built.status_code == 303, built.text[:800]
    edition_id = built.headers["location"].removeprefix("/admin/editions/").split("?")[0]
    page = await admin.get(f"/admin/editions/{edition_id}")
    assert '<strong id="edition-newsletter">Breaking News</strong>' in page.text
    listing = await admin.get("/admin/editions")
    assert "<td>Breaking News</td>" in listing.text
    confirm = await admin.get(f"/admin/editions/{edition_id}/send")
    assert '<strong id="recipient-count">3</strong>' in confirm.text  # not the 5 daily readers
    assert '<strong id="send-newsletter">Breaking News</strong>' in confirm.text
    started = await post(
        admin,
        f"/admin/editions/{edition_id}/send",
        f"/admin/editions/{edition_id}/send",
        {"confirm": "yes", "count": "3"},
    )
    assert started.status_code == 303
    status = ""
    for _ in range(600):
        status = str(
            (await admin.get(f"/admin/editions/{edition_id}/progress.json")).json()["status"]
        )
        if status == "sent":
            break
        await asyncio.sleep(0.05)
    assert status == "sent"
    got = sorted(r for m in smtp_server.received for r in m.rcpt_tos)
    assert got == ["both0000@example.org", "brk0000@example.org", "brk0001@example.org"]
    assert ("edition.build", edition_id, "2 articles, newsletter breaking") in _audit(console)


async def test_the_filter_pages_through_one_newsletters_people(
    console: WebEnv, admin: httpx.AsyncClient
) -> None:
    for block in range(6):  # interleaved, so a page must skip the others
        confirmed_people(console, 11, prefix=f"brk{block}-", newsletters=["breaking"])
        confirmed_people(console, 7, prefix=f"day{block}-")
    left = _person(console, "brk0-0003@example.org")
    with console.engine.begin() as conn:
        conn.execute(
            subscriptions.update()
            .where(subscriptions.c.subscriber_id == left)
            .values(status="unsubscribed")
        )
    page = await admin.get("/admin/subscribers")
    assert '<option value="breaking">Breaking News</option>' in page.text
    seen: list[str] = []
    url = "/admin/subscribers?newsletter=breaking"
    pages = 0
    while url:
        page = await admin.get(url)
        assert page.status_code == 200
        pages += 1
        assert '<option value="breaking" selected>' in page.text
        seen += re.findall(r">([^<>]+@example\.org)</a>", page.text)
        found = re.search(r'href="([^"]+)" rel="next"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else ""
        assert not url or "newsletter=breaking" in url
    assert pages == 2  # 65 people, 50 a page
    assert len(seen) == len(set(seen)) == 65
    assert all(e.startswith("brk") for e in seen)
    assert "brk0-0003@example.org" not in seen  # left that newsletter
    by_prefix = await admin.get("/admin/subscribers", params={"q": "day1", "newsletter": "daily"})
    assert "day1-0006@example.org" in by_prefix.text
    assert "brk" not in by_prefix.text.split("<tbody>")[1]
    forged = await admin.get("/admin/subscribers", params={"newsletter": "weekly"})
    assert forged.status_code == 400
    assert "no newsletter 'weekly'" in html.unescape(forged.text)


async def test_a_person_leaves_one_newsletter(console: WebEnv, admin: httpx.AsyncClient) -> None:
    confirmed_people(console, 1, prefix="both", newsletters=["daily", "breaking"])
    person = _person(console, "both0000@example.org")
    page = f"/admin/subscribers/{person}"
    shown = await admin.get(page)
    table = shown.text.split('<table id="subscriptions"')[1].split("</table>")[0]
    assert "Breaking News" in table
    assert "The Daily Briefing" in table
    assert table.count("subscribed</td>") == 2
    before = _audit(console)
    forged = await post(admin, page, page + "/leave", {"newsletter": "breaking-news"})
    assert forged.status_code == 400
    assert "no newsletter 'breaking-news'" in html.unescape(forged.text)
    assert _choices(console, person) == {"daily": "subscribed", "breaking": "subscribed"}
    assert _audit(console) == before
    left = await post(admin, page, page + "/leave", {"newsletter": "breaking"})
    assert left.status_code == 303
    assert _choices(console, person) == {"daily": "subscribed", "breaking": "unsubscribed"}
    after = await admin.get(page)
    assert "unsubscribed from that newsletter" in (await admin.get(left.headers["location"])).text
    assert "confirmed" in after.text  # the person's status stays
    assert after.text.count("Unsubscribe<span") == 1  # only daily is left to leave
    assert _audit(console)[-1] == (
        "subscriber.leave",
        f"subscriber {person}",
        "newsletter breaking",
    )
    nobody = await post(admin, page, "/admin/subscribers/999999/leave", {"newsletter": "daily"})
    assert nobody.status_code == 404


async def test_forged_ids_are_refused_and_change_nothing(
    console: WebEnv, admin: httpx.AsyncClient
) -> None:
    ids = fresh_articles(console)
    built = await _build(admin, ids, "<script>")
    assert built.status_code == 400
    message = html.unescape(built.text.split("<main")[1])
    assert "field 'newsletter': no newsletter '<script>' (configured: daily, breaking)" in message
    assert "<script>" not in built.text
    assert _count(console, editions) == 0
    added = await post(
        admin,
        "/admin/schedules/new",
        "/admin/schedules/new",
        {"kind": "cron", "cron": "0 7 * * *", "tz": "Europe/London", "newsletter": "weekly"},
    )
    assert added.status_code == 400
    assert "no newsletter 'weekly'" in html.unescape(added.text)
    assert _count(console, schedules) == 0


async def test_schedules_and_the_dashboard_name_the_newsletters(
    console: WebEnv, admin: httpx.AsyncClient
) -> None:
    confirmed_people(console, 3, prefix="day")
    confirmed_people(console, 2, prefix="brk", newsletters=["breaking"])
    form = await admin.get("/admin/schedules/new")
    assert '<option value="daily" selected>The Daily Briefing</option>' in form.text
    added = await post(
        admin,
        "/admin/schedules/new",
        "/admin/schedules/new",
        {"kind": "cron", "cron": "0 12 * * *", "tz": "Europe/London", "newsletter": "breaking"},
    )
    assert added.status_code == 303, added.text[:600]
    with console.engine.connect() as conn:
        assert conn.execute(sa.select(schedules.c.newsletter_id)).scalar_one() == "breaking"
    listing = await admin.get("/admin/schedules")
    assert "<td>Breaking News</td>" in listing.text
    shown = await admin.get(added.headers["location"])
    assert '<span id="schedule-newsletter">Breaking News</span>' in shown.text
    board = await admin.get("/admin/")
    table = board.text.split('<table id="per-newsletter">')[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td>", table)
    assert rows == [("The Daily Briefing", "3"), ("Breaking News", "2")]


async def test_a_viewer_may_look_but_not_change(console: WebEnv) -> None:
    confirmed_people(console, 1, prefix="both", newsletters=["daily", "breaking"])
    person = _person(console, "both0000@example.org")
    ids = fresh_articles(console)
    async with signed_in(console, "viewer@example.com") as viewer:
        page = f"/admin/subscribers/{person}"
        shown = await viewer.get(page)
        assert "Breaking News" in shown.text
        assert "/leave" not in shown.text
        left = await post(viewer, page, page + "/leave", {"newsletter": "breaking"})
        assert left.status_code == 403
        data: dict[str, object] = {"candidate": ids, "pick": ids[:1], "newsletter": "breaking"}
        built = await post(viewer, "/admin/editions", "/admin/editions/new", data)
        assert built.status_code == 403
        cron: dict[str, object] = {
            "kind": "cron",
            "cron": "0 7 * * *",
            "tz": "UTC",
            "newsletter": "breaking",
        }
        added = await post(viewer, "/admin/schedules", "/admin/schedules/new", cron)
        assert added.status_code == 403
    assert _choices(console, person) == {"daily": "subscribed", "breaking": "subscribed"}
    assert _count(console, editions) == 0
    assert _count(console, schedules) == 0


async def test_a_site_with_one_newsletter_sees_no_newsletter_controls(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    env = console_env(settings, smtp_server.url)
    account(env, "admin@example.com", Role.ADMIN)
    confirmed_people(env, 1)
    person = _person(env, "reader0000@example.org")
    fresh_articles(env)
    async with signed_in(env, "admin@example.com") as client:
        for path in (
            "/admin/editions/new",
            "/admin/subscribers",
            f"/admin/subscribers/{person}",
            "/admin/schedules/new",
            "/admin/",
        ):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert 'name="newsletter"' not in page.text, path
            assert "per-newsletter" not in page.text, path
            assert 'id="subscriptions"' not in page.text, path
