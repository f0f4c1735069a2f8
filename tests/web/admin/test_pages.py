"""The console's pages over HTTP: build, preview, test-send, send and watch, people, import."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator

import httpx
import pytest

from newsletter.core.config import Settings
from newsletter.web.admin.roles import Role
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


@pytest.fixture
def console(settings: Settings, smtp_server: SMTPServer) -> WebEnv:
    env = console_env(settings, smtp_server.url)
    account(env, "admin@example.com", Role.ADMIN)
    return env


@pytest.fixture
async def admin(console: WebEnv) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in(console, "admin@example.com") as client:
        yield client


async def _build(client: httpx.AsyncClient, ids: list[str], **lines: str) -> str:
    data: dict[str, object] = {
        "candidate": ids,
        "pick": ids[:3],
        f"pos-{ids[0]}": "3",
        f"pos-{ids[1]}": "1",
        f"pos-{ids[2]}": "2",
        "lead": ids[2],
        **lines,
    }
    response = await post(client, "/admin/editions/new", "/admin/editions/new", data)
    assert response.status_code == 303, response.text[:800]
    location = response.headers["location"]
    assert location.startswith("/admin/editions/"), location
    return location.removeprefix("/admin/editions/").split("?")[0]


async def test_build_edit_and_preview(console: WebEnv, admin: httpx.AsyncClient) -> None:
    ids = fresh_articles(console)
    page = await admin.get("/admin/editions/new")
    assert ids[0] in page.text
    edition_id = await _build(admin, ids, subject="Morning news", intro="Good morning.")
    shown = await admin.get(f"/admin/editions/{edition_id}")
    assert "Morning news" in shown.text
    headlines = [shown.text.index(f"Story {100 + n}:") for n in (2, 1, 0)]
    assert headlines == sorted(headlines)  # the lead, then the order given
    edited = await post(
        admin,
        f"/admin/editions/{edition_id}",
        f"/admin/editions/{edition_id}/edit",
        {"subject": "Evening news", "preheader": "All of it", "intro": "", "remove": ids[1]},
    )
    assert edited.status_code == 303, edited.text[edited.text.find("<main") :][:600]
    again = await admin.get(f"/admin/editions/{edition_id}")
    assert "Evening news" in again.text
    assert f"Story {100 + 1}:" not in again.text
    preview = await admin.get(f"/admin/editions/{edition_id}/preview")
    assert preview.status_code == 200
    assert 'width="375"' in preview.text
    assert "Evening news" in preview.text  # the inbox row
    html = await admin.get(f"/admin/editions/{edition_id}/preview/html")
    assert "frame-ancestors 'self'" in html.headers["content-security-policy"]
    assert "<!DOCTYPE html>" in html.text or "<!doctype html>" in html.text.lower()
    text = await admin.get(f"/admin/editions/{edition_id}/preview/text")
    assert "Story 102" in text.text
    assert f"/admin/editions/{edition_id}/preview/dark" in preview.text  # light and dark frames
    dark = await admin.get(f"/admin/editions/{edition_id}/preview/dark")
    assert dark.status_code == 200
    assert "prefers-color-scheme: dark" in html.text
    assert "prefers-color-scheme" not in dark.text  # its dark rules apply unconditionally
    assert "#0f1216 !important" in dark.text


async def test_test_send_reaches_the_sink(
    console: WebEnv, admin: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    edition_id = await _build(admin, fresh_articles(console))
    response = await post(
        admin,
        f"/admin/editions/{edition_id}",
        f"/admin/editions/{edition_id}/test",
        {"to": "one@example.net, two@example.net"},
    )
    assert response.status_code == 303
    recipients = sorted(r for m in smtp_server.received for r in m.rcpt_tos)
    assert recipients == ["one@example.net", "two@example.net"]


async def test_send_to_the_list_and_watch_progress(
    console: WebEnv, admin: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    confirmed_people(console, 120)
    edition_id = await _build(admin, fresh_articles(console))
    confirm = await admin.get(f"/admin/editions/{edition_id}/send")
    assert ">120<" in confirm.text
    started = await post(
        admin,
        f"/admin/editions/{edition_id}/send",
        f"/admin/editions/{edition_id}/send",
        {"confirm": "yes", "count": "120"},
    )
    assert started.status_code == 303
    progress: dict[str, object] = {}
    for _ in range(600):
        progress = (await admin.get(f"/admin/editions/{edition_id}/progress.json")).json()
        if progress["status"] == "sent":
            break
        await asyncio.sleep(0.05)
    assert progress["status"] == "sent"
    assert progress["percent"] == 100.0
    counts = progress["counts"]
    assert isinstance(counts, dict)
    assert counts.pop("sent") == 120
    assert set(counts.values()) == {0}
    assert len(smtp_server.received) == 120
    dashboard = await admin.get("/admin/")
    assert edition_id in dashboard.text
    report = await admin.get(f"/admin/editions/{edition_id}")
    assert "<strong>120</strong> sent of 120" in report.text


async def test_search_unsubscribe_and_erase(console: WebEnv, admin: httpx.AsyncClient) -> None:
    confirmed_people(console, 60)
    confirmed_people(console, 2, prefix="zed")
    first = await admin.get("/admin/subscribers")
    assert "reader0059@example.org" in first.text  # newest first
    assert "Next page" in first.text
    found = await admin.get("/admin/subscribers", params={"q": "ZED"})
    assert "zed0000@example.org" in found.text
    assert "reader0001" not in found.text
    by_name = await admin.get("/admin/subscribers", params={"q": "reader 003", "by": "name"})
    assert "reader0030@example.org" in by_name.text
    assert "reader0040@example.org" not in by_name.text
    with console.engine.connect() as conn:
        person_id = conn.exec_driver_sql(
            "SELECT id FROM subscribers WHERE email = 'zed0001@example.org'"
        ).scalar_one()
    page = f"/admin/subscribers/{person_id}"
    assert (await post(admin, page, page + "/unsubscribe")).status_code == 303
    assert "unsubscribed" in (await admin.get(page)).text
    erased = await post(admin, page + "/erase", page + "/erase", {"confirm": "yes"})
    assert erased.status_code == 303
    assert (await admin.get(page)).status_code == 404
    assert "zed0001" not in (await admin.get("/admin/subscribers", params={"q": "zed"})).text


async def test_keyset_pages_walk_the_whole_list(console: WebEnv, admin: httpx.AsyncClient) -> None:
    confirmed_people(console, 130)
    seen: list[str] = []
    url = "/admin/subscribers?q=reader"
    for _ in range(5):
        page = await admin.get(url)
        seen += [line for line in page.text.split(">") if line.endswith("@example.org</a")]
        if 'rel="next"' not in page.text:
            break
        href = page.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
        url = href.replace("&amp;", "&")
    assert len(seen) == 130
    assert len(set(seen)) == 130


async def test_import_with_rejects_and_export(console: WebEnv, admin: httpx.AsyncClient) -> None:
    body = "email,name\nok1@example.org,Ann\nnot-an-address,Bob\nok2@example.org,=HYPERLINK()\n"
    page = await admin.get("/admin/subscribers/import")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    response = await admin.post(
        "/admin/subscribers/import",
        data={"csrf_token": token, "confirmed": "yes"},
        files={"file": ("people.csv", body.encode(), "text/csv")},
    )
    assert response.status_code == 200, response.text[:800]
    assert "imported 2" in response.text
    assert "rejected 1" in response.text
    link = response.text.split('href="')[1:]
    report_url = next(x.split('"')[0] for x in link if x.split('"')[0].endswith("rejects.csv"))
    report = await admin.get(report_url)
    rows = list(csv.reader(io.StringIO(report.text)))
    assert rows[0] == ["line", "kind", "reason"]
    assert rows[1][0] == "3"
    exported = await admin.get("/admin/subscribers/export.csv")
    assert exported.status_code == 200
    assert "ok1@example.org" in exported.text
    assert "'=HYPERLINK()" in exported.text  # formula-safe


async def test_import_needs_csrf(console: WebEnv, admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        "/admin/subscribers/import", files={"file": ("x.csv", b"email\na@example.org\n")}
    )
    assert response.status_code == 400


async def test_schedules_read_cron_aloud(console: WebEnv, admin: httpx.AsyncClient) -> None:
    page = await admin.get(
        "/admin/schedules/new", params={"cron": "0 7 * * 1-5", "tz": "Europe/London"}
    )
    assert "At 07:00, on Monday to Friday (Europe/London)" in page.text
    assert page.text.count("GMT</li>") + page.text.count("BST</li>") == 5
    bad = await admin.get("/admin/schedules/new", params={"cron": "61 * * * *"})
    assert "not a cron expression" in bad.text
    added = await post(
        admin,
        "/admin/schedules/new",
        "/admin/schedules/new",
        {"kind": "cron", "cron": "30 6 * * *", "tz": "Europe/London", "since": "24h"},
    )
    assert added.status_code == 303
    location = added.headers["location"].split("?")[0]
    shown = await admin.get(location)
    assert "At 06:30, every day" in shown.text
    paused = await post(admin, location, location + "/pause")
    assert paused.status_code == 303
    assert "paused" in (await admin.get(location)).text
    listing = await admin.get("/admin/schedules")
    assert "30 6 * * *" in listing.text
    dashboard = await admin.get("/admin/")
    assert dashboard.status_code == 200
