"""The web app: archive, preview, health, base path, failures, the serve command, whole flows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import lxml.html
import pytest

from newsletter.content.editions import build_edition, set_status
from newsletter.content.models import EditionStatus
from newsletter.core.config import Settings
from newsletter.core.db import make_engine
from newsletter.web.app import create_app
from newsletter.web.headers import PAGE_CSP
from newsletter.web.preview import create_editor_preview_app
from subscribers import links
from subscribers.model import SubscriberStatus
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult
from tests.support.sample_editions import NOW as SAMPLE_NOW
from tests.support.web import (
    LINK_RE,
    WebEnv,
    add_confirmed,
    asgi_client,
    csrf_token,
    find_person,
    get,
    make_env,
    running_server,
    wait_for,
)


async def test_archive_shows_only_sent_editions(env: WebEnv, client: httpx.AsyncClient) -> None:
    now = SAMPLE_NOW
    with env.engine.begin() as conn:
        sent = build_edition(conn, now=now, title="Sent Briefing", site_name="News")
        draft = build_edition(conn, now=now, title="Draft Briefing", site_name="News")
        set_status(conn, sent.id, EditionStatus.SENDING, now=now)
        set_status(conn, sent.id, EditionStatus.SENT, now=now)
    listing = await client.get("/archive")
    assert listing.status_code == 200
    assert "Sent Briefing" in listing.text
    assert "Draft Briefing" not in listing.text
    shown = await client.get(f"/archive/{sent.id}")
    assert shown.status_code == 200
    assert "Story 1: council votes" in shown.text
    assert "NLPH7" not in shown.text  # no unfilled personal slot
    assert "/unsubscribe/" not in shown.text
    assert "/preferences/" not in shown.text
    assert "script-src" not in shown.headers["content-security-policy"]
    assert (await client.get(f"/archive/{draft.id}")).status_code == 404
    assert (await client.get("/archive/no-such-edition")).status_code == 404


async def test_the_public_app_never_previews_and_the_editors_listener_does(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    now = SAMPLE_NOW
    with env.engine.begin() as conn:
        draft = build_edition(conn, now=now, site_name="News")
    assert (await client.get(f"/preview/{draft.id}")).status_code == 404
    assert (await client.get(f"/newsletter/preview/{draft.id}/html")).status_code == 404
    editors = create_editor_preview_app(env.settings, env.engine)
    async with asgi_client(editors) as http:  # type: ignore[arg-type]
        page = await http.get(f"/preview/{draft.id}")
        root = lxml.html.document_fromstring(page.text)
        frames = root.xpath("//iframe")
        # the same side-by-side page as `newsletter preview --serve`, links resolved here
        shown = await http.get(urljoin(str(page.url), frames[0].get("src")))
        text = await http.get(f"/preview/{draft.id}/text")
        eml = await http.get(urljoin(str(page.url), root.xpath("//a/@href")[0]))
        dark = await http.get(urljoin(str(page.url), frames[2].get("src")))
        unknown = await http.get(f"/preview/{draft.id}/nothing")
        missing = await http.get("/preview/no-such-edition")
    assert page.status_code == 200
    # desktop, mobile, and mobile in dark mode (the "dark" view forces the email's dark rules)
    assert sorted(f.get("width") for f in frames) == ["375", "375", "680"]
    assert [f.get("src").rsplit("/", 1)[-1] for f in frames] == ["html", "html", "dark"]
    assert all(f.get("sandbox") is not None for f in frames)
    assert "Story 1: council votes" in root.xpath("//pre")[0].text_content()
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert shown.url.path == f"/preview/{draft.id}/html"
    assert shown.status_code == 200
    assert "Story 1: council votes" in shown.text
    assert "NLPH7" not in shown.text
    assert "script-src" not in shown.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in shown.headers["content-security-policy"]
    assert shown.headers["x-frame-options"] == "SAMEORIGIN"  # the page may frame it
    assert dark.status_code == 200
    assert "Story 1: council votes" in dark.text
    assert "prefers-color-scheme" not in dark.text  # its dark rules always apply
    assert '<meta name="color-scheme" content="dark">' in dark.text
    assert dark.headers["content-security-policy"] == shown.headers["content-security-policy"]
    assert eml.url.path == f"/preview/{draft.id}/message.eml"
    assert unknown.status_code == 404
    assert missing.status_code == 404
    assert text.headers["content-type"].startswith("text/plain")
    assert "Story 1: council votes" in text.text
    assert eml.headers["content-type"] == "message/rfc822"
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in eml.content


async def test_healthz_and_unknown_pages(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok"}
    missing = await client.get("/no/such/page")
    assert missing.status_code == 404
    assert "Page not found" in missing.text
    assert missing.headers["referrer-policy"] == "no-referrer"
    css = await client.get("/static/site.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


async def test_served_under_the_base_url_path_with_or_without_a_stripping_proxy(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    # NEWSLETTER_BASE_URL is https://news.example.com/newsletter in the test settings
    assert (await client.get("/newsletter/healthz")).status_code == 200
    assert (await client.get("/healthz")).status_code == 200
    for path in ("/newsletter/", "/newsletter", "/"):
        page = await client.get(path)
        assert page.status_code == 200, path
        assert 'action="/newsletter/signup"' in page.text
        assert 'href="/newsletter/static/site.css"' in page.text
    person = add_confirmed(env, "prefix@example.com")
    url = links.unsubscribe_url(env.settings, person.id, person.email)
    response = await client.post(urlsplit(url).path, content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 200
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED


async def test_a_failure_inside_is_a_friendly_500_without_a_traceback(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    # an engine over a database that was never migrated: every query fails
    broken = make_engine(settings.database_url + ".never-migrated")
    app = create_app(settings, broken)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://testserver",
    ) as http:
        page = await http.get("/")
        health = await http.get("/healthz")
    assert page.status_code == 500
    assert "Something went wrong on our side" in page.text
    assert "Traceback" not in page.text
    assert "no such table" not in page.text
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert page.headers["referrer-policy"] == "no-referrer"
    assert health.status_code == 200  # SELECT 1 needs no table: the database answers


def test_serve_command_binds_loopback_and_answers(run_cli: Callable[..., CLIResult]) -> None:
    assert "Example:" in run_cli("serve", "--help").stdout
    refused = run_cli("serve", "--host", "0.0.0.0", env={"NEWSLETTER_BASE_URL": "http://x.test"})
    assert refused.code == 1
    assert refused.stderr.count("\n") == 1
    assert "not https" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_serve_command_runs_a_real_server(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=f"sqlite:///{workdir / 'serve.db'}",
        NEWSLETTER_SECRET_KEY="test-secret-key-not-for-production",
    )
    with subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", "0"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            port = None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
                if found:
                    port = int(found.group(1))
                    break
            assert port, "".join(lines)
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
            assert health.json()["status"] == "ok"
            assert "Briefing in your inbox</h1>" in httpx.get(f"http://127.0.0.1:{port}/").text
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.browser
def test_a_reader_signs_up_and_confirms_in_chromium_at_phone_width(
    env: WebEnv, smtp_server: SMTPServer
) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with running_server(env.app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 375, "height": 800})
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(base + "/")
            assert page.evaluate("document.scrollingElement.scrollWidth") <= 375
            assert page.evaluate("getComputedStyle(document.body).fontSize") == "17px"
            page.get_by_label("Email address").fill("browser.reader@example.com")
            page.get_by_label("Your name").fill("Bea")
            page.get_by_label("Only the sections I choose").check()
            page.get_by_label("Crime", exact=True).check()
            page.get_by_label("I agree to receive").check()
            page.get_by_role("button", name="Sign up").click()
            page.wait_for_selector("h1:has-text('Check your inbox')")
            wait_for(lambda: len(smtp_server.received) == 1, "the confirmation email")
            text = smtp_server.received[0].message().get_body(("plain",))
            assert text is not None
            (confirm,) = [u for u in LINK_RE.findall(text.get_content()) if "/confirm/" in u]
            page.goto(base + urlsplit(confirm).path)
            page.wait_for_selector("h1:has-text('Confirm your subscription')")
            assert page.evaluate("document.scrollingElement.scrollWidth") <= 375
            assert find_person(env, "browser.reader@example.com").status is SubscriberStatus.PENDING  # type: ignore[union-attr]
            page.get_by_role("button", name="Confirm my subscription").click()
            page.wait_for_selector("h1:has-text('You are subscribed')")
            assert not [line for line in console if "Content Security Policy" in line], console
        finally:
            browser.close()
    person = find_person(env, "browser.reader@example.com")
    assert person is not None
    assert person.status is SubscriberStatus.CONFIRMED
    assert person.topics == frozenset({"crime"})
    assert person.name == "Bea"


@pytest.mark.postgres
async def test_the_reader_flow_on_postgresql(
    settings: Settings, smtp_server: SMTPServer, postgresql_url: str
) -> None:
    env = make_env(settings, smtp_server.url, database_url=postgresql_url)
    async with asgi_client(env.app) as http:
        form = await http.get("/")
        assert 'value="crime"' in form.text  # the sections query, on PostgreSQL
        answer = await http.post(
            "/signup",
            data={
                "csrf_token": csrf_token(form.text),
                "email": "pg.reader@example.com",
                "topic": ["economy"],
                "consent": "yes",
            },
        )
        assert answer.status_code == 200
        text = smtp_server.received[0].message().get_body(("plain",))
        assert text is not None
        (confirm,) = [u for u in LINK_RE.findall(text.get_content()) if "/confirm/" in u]
        shown = await http.get(urlsplit(confirm).path)
        assert shown.status_code == 200
        assert find_person(env, "pg.reader@example.com").status is SubscriberStatus.PENDING  # type: ignore[union-attr]
        pressed = await http.post(
            urlsplit(confirm).path, data={"csrf_token": csrf_token(shown.text)}
        )
        assert pressed.status_code == 200
        person = find_person(env, "pg.reader@example.com")
        assert person is not None
        assert person.status is SubscriberStatus.CONFIRMED
        prefs = urlsplit(links.preferences_url(env.settings, person.id, person.email)).path
        page = await http.get(prefs)
        saved = await http.post(
            prefs, data={"csrf_token": csrf_token(page.text), "topic": ["crime", "housing"]}
        )
        assert saved.status_code == 200
        assert get(env, person.id).topics == frozenset({"crime", "housing"})
        gone = urlsplit(links.unsubscribe_url(env.settings, person.id, person.email)).path
        assert (await http.post(gone, content=b"List-Unsubscribe=One-Click")).status_code == 200
        assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED
        with env.engine.begin() as conn:
            sent = build_edition(conn, now=SAMPLE_NOW, title="PG Briefing", site_name="News")
            set_status(conn, sent.id, EditionStatus.SENDING, now=SAMPLE_NOW)
            set_status(conn, sent.id, EditionStatus.SENT, now=SAMPLE_NOW)
        assert "PG Briefing" in (await http.get("/archive")).text
        assert (await http.get(f"/archive/{sent.id}")).status_code == 200
    env.engine.dispose()
