"""The console in headless Chromium: sign in, build, preview, test-send, send and watch,
search and erase, import with rejects; axe-core finds no WCAG A/AA violation; nothing
scrolls sideways at 375 px."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from newsletter.content.editions import build_edition
from newsletter.core.config import Settings
from newsletter.core.db import utcnow
from newsletter.core.newsletters import Newsletter
from newsletter.delivery.engine import send_edition
from newsletter.scheduling.store import add_schedule
from newsletter.scheduling.timing import Timing
from newsletter.web.admin.roles import Role
from tests.plugins.smtp import SMTPServer
from tests.support.chromium import chromium
from tests.support.web import running_server, wait_for
from tests.web.admin.kit import PASSWORD, account, confirmed_people, console_env, fresh_articles

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / ".axe" / "node_modules" / "axe-core" / "axe.min.js"
PEOPLE = 300


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _violations(page: Any) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page (empty when axe is not installed)."""
    if not AXE.exists():
        return []
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => (await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})).violations"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )
    return list(result)


# what sticks out past the right edge, to name it when the layout test fails
_WIDE = """w => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > w)
  .map(e => e.tagName + '.' + e.className).slice(0, 5)"""


def _check(page: Any, seen: dict[str, list[str]]) -> None:
    """No sideways scrolling at the page's width; axe's findings kept by path."""
    page.wait_for_load_state("load")  # a page just clicked to may still be laying out
    width = page.viewport_size["width"]
    wide = page.evaluate(_WIDE, width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, (page.url, wide)
    seen[re.sub(r"^https?://[^/]+", "", page.url)] = _violations(page)


@contextlib.contextmanager
def _phone_page(browser: Any, **options: Any) -> Iterator[Any]:
    """A page 375 px wide, its https pictures refused (offline), closed afterwards."""
    context = browser.new_context(
        viewport={"width": 375, "height": 800}, bypass_csp=True, **options
    )
    try:
        page = context.new_page()
        page.route(re.compile(r"^https://"), lambda route: route.abort())  # offline pictures
        yield page
    finally:
        context.close()


def _sign_in(page: Any, email: str) -> None:
    """Fill in and send the login form the page shows."""
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def _no_findings(findings: dict[str, list[str]]) -> None:
    """No page had an axe finding; skipped (layout checked) when axe is not installed."""
    bad = {path: found for path, found in findings.items() if found}
    assert not bad, json.dumps(bad, indent=1)
    if not AXE.exists():
        pytest.skip("axe-core is not installed (scripts/system-deps.sh); only layout checked")


def test_an_editors_morning_in_the_console(
    browser: Any, settings: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    env = console_env(settings, smtp_server.url)
    account(env, "admin@example.com", Role.ADMIN)
    ids = fresh_articles(env, 4)
    confirmed_people(env, PEOPLE)
    findings: dict[str, list[str]] = {}
    with running_server(env.app) as base, _phone_page(browser, accept_downloads=True) as page:
        page.goto(base + "/admin/subscribers")
        assert page.locator("input[name=password]").count() == 1  # the login, no data
        assert "reader0001" not in page.content()
        _check(page, findings)
        _sign_in(page, "admin@example.com")
        page.wait_for_url(re.compile(r"/admin/subscribers$"))
        _check(page, findings)

        # build an edition from three chosen articles, the third as lead
        page.goto(base + "/admin/editions/new")
        _check(page, findings)
        for n, article_id in enumerate(ids[:3], 1):
            row = page.locator("li", has=page.locator(f"input[value='{article_id}']"))
            row.locator("input[name=pick]").check()
            row.locator("input[type=number]").fill(str(4 - n))
        page.locator(f"input[name=lead][value='{ids[2]}']").check()
        page.fill("#subject", "Your morning briefing, " + "very " * 12 + "long")
        hint = page.locator("#subject-hint").inner_text()
        assert "of 60 characters" in hint  # the live hint
        page.fill("#subject", "Your morning briefing")
        page.click("text=Build the draft")
        page.wait_for_url(re.compile(r"/admin/editions/[^/]+\?done=built$"))
        edition_url = page.url.split("?")[0]
        _check(page, findings)

        # preview side by side, then a test send to the sink
        page.click("text=Preview")
        page.wait_for_selector("iframe[title='The email at 375 px']")
        assert "Your morning briefing" in page.inner_text("#inbox-row")
        frame = page.frame_locator("iframe[title='The email at 600 px']")
        assert frame.locator("h1").count() == 1
        _check(page, findings)
        page.goto(edition_url)
        page.fill("#to", "desk@example.net")
        page.click("text=Send test")
        page.wait_for_selector("text=The test message was sent.")
        assert [r.rcpt_tos for r in smtp_server.received] == [["desk@example.net"]]

        # send to the list and watch the progress reach 100%
        page.click("text=Send now")
        assert page.inner_text("#recipient-count") == f"{PEOPLE:,}"
        _check(page, findings)
        page.click("button.danger")
        page.wait_for_url(re.compile(r"/progress\?done=sending$"))
        page.wait_for_selector("#progress[data-status=sent]", timeout=120_000)
        assert page.get_attribute("#progress", "data-percent") == "100"
        assert page.inner_text("[data-count=sent]") == str(PEOPLE)
        _check(page, findings)
        wait_for(lambda: len(smtp_server.received) == PEOPLE + 1, "every message")

        # find someone by searching, and erase them
        page.goto(base + "/admin/subscribers")
        page.fill("#q", "reader0123")
        page.click("form[role=search] button")
        page.click("text=reader0123@example.org")
        _check(page, findings)
        page.click("text=Erase…")
        _check(page, findings)
        page.click("text=Erase this person")
        page.wait_for_selector("text=The person was erased")
        page.fill("#q", "reader0123")
        page.click("form[role=search] button")
        page.wait_for_selector("text=Nobody matches.")

        # import a CSV with bad lines and download the report of rejects
        upload = tmp_path / "people.csv"
        upload.write_text(
            "email,name\nnew1@example.org,New One\nbroken-address,Nobody\n"
            "new2@example.org,New Two\n@@@,Worse\n",
            encoding="utf-8",
        )
        page.goto(base + "/admin/subscribers/import")
        _check(page, findings)
        page.set_input_files("#file", str(upload))
        page.click("#import-form button[type=submit]")
        page.wait_for_selector("#import-summary")
        assert "imported 2" in page.inner_text("#import-summary")
        _check(page, findings)
        with page.expect_download() as download:
            page.click("text=Download the report")
        report = Path(download.value.path()).read_text(encoding="utf-8")
        assert [line.split(",")[0] for line in report.splitlines()] == ["line", "3", "5"]

        for path in ("/admin/", "/admin/editions", "/admin/schedules", "/admin/audit"):
            page.goto(base + path)
            _check(page, findings)
        page.goto(base + "/admin/schedules/new?cron=0+7+*+*+1-5&tz=Europe/London")
        assert "Monday to Friday" in page.inner_text("#cron-reading")
        _check(page, findings)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(base + "/admin/")
        _check(page, findings)
    _no_findings(findings)


def test_the_newsletter_controls(browser: Any, settings: Settings, smtp_server: SMTPServer) -> None:
    two = [
        Newsletter(id="daily", name="The Daily Briefing"),
        Newsletter(id="breaking", name="Breaking"),
    ]
    env = console_env(settings, smtp_server.url, newsletters=two)
    account(env, "admin@example.com", Role.ADMIN)
    ids = fresh_articles(env, 3)
    confirmed_people(env, 4)
    confirmed_people(env, 2, prefix="both", newsletters=["daily", "breaking"])
    findings: dict[str, list[str]] = {}
    with running_server(env.app) as base, _phone_page(browser) as page:
        page.goto(base + "/admin/editions/new")
        _sign_in(page, "admin@example.com")
        page.wait_for_url(re.compile(r"/admin/editions/new$"))
        assert page.input_value("#newsletter") == "daily"  # the default
        page.select_option("#newsletter", "breaking")
        page.locator(f"input[name=pick][value='{ids[0]}']").check()
        _check(page, findings)
        page.click("text=Build the draft")
        page.wait_for_url(re.compile(r"/admin/editions/[^/]+\?done=built$"))
        assert page.inner_text("#edition-newsletter") == "Breaking"
        _check(page, findings)
        page.click("text=Send now")
        assert page.inner_text("#recipient-count") == "2"
        _check(page, findings)

        page.goto(base + "/admin/subscribers")
        page.select_option("#newsletter", "breaking")
        page.click("form[role=search] button")
        page.wait_for_url(re.compile(r"newsletter=breaking"))
        assert page.locator("tbody a").count() == 2
        _check(page, findings)
        page.click("text=both0001@example.org")
        page.click("text=Unsubscribe from Breaking")
        page.wait_for_selector("text=unsubscribed from that newsletter")
        assert page.locator("#subscriptions button").count() == 1
        _check(page, findings)

        page.goto(base + "/admin/schedules/new")
        page.fill("#cron", "0 12 * * *")
        page.select_option("#newsletter", "breaking")
        _check(page, findings)
        page.click("text=Add the schedule")
        page.wait_for_selector("#schedule-newsletter")
        for path in ("/admin/schedules", "/admin/editions", "/admin/"):
            page.goto(base + path)
            _check(page, findings)
        assert page.locator("#per-newsletter tbody tr").count() == 2
    _no_findings(findings)


def _rgb(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def test_articles_previews_in_dark_attach_and_reports(
    browser: Any, settings: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    env = console_env(settings, smtp_server.url)
    account(env, "editor@example.com", Role.EDITOR)
    ids = fresh_articles(env, 6)
    confirmed_people(env, 3)
    with env.engine.begin() as conn:
        timing = Timing(kind="cron", tz="Europe/London", cron="0 7 * * *")
        schedule_id = add_schedule(conn, timing=timing, now=utcnow()).id
        sent_id = build_edition(conn, now=utcnow(), article_ids=ids[3:], site_name="News").id
    with ThreadPoolExecutor(1) as pool:  # playwright's loop holds this thread
        sent = pool.submit(asyncio.run, send_edition(env.settings, env.engine, sent_id))
        assert sent.result(timeout=120).remaining == 0
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": "x", "url": "/relative"}]', encoding="utf-8")
    findings: dict[str, list[str]] = {}
    with running_server(env.app) as base, _phone_page(browser) as page:
        page.goto(base + "/admin/articles")
        assert page.locator("input[name=password]").count() == 1  # the login, no data
        assert "Story 101" not in page.content()
        _sign_in(page, "editor@example.com")
        page.wait_for_url(re.compile(r"/admin/articles$"))
        _check(page, findings)
        page.fill("#q", "story 10")
        page.click("form[role=search] button")
        page.wait_for_url(re.compile(r"q=story"))
        for article_id in ids[:2]:
            page.locator(f"input[name=pick][value='{article_id}']").check()
        page.click("text=Start an edition with the ticked stories")
        page.wait_for_url(re.compile(r"/admin/editions/new\?pick="))
        assert page.locator("input[name=pick]:checked").count() == 2
        page.click("text=Build the draft")
        page.wait_for_url(re.compile(r"/admin/editions/[^/]+\?done=built$"))
        edition_url = page.url.split("?")[0]
        _check(page, findings)

        # light and dark previews: the dark frame applies the email's dark rules
        page.goto(edition_url + "/preview")
        page.wait_for_selector("iframe[title='The email at 375 px in dark mode']")
        colours = {}
        for title in ("The email at 375 px", "The email at 375 px in dark mode"):
            frame = page.frame_locator(f"iframe[title='{title}']")
            colours[title] = _rgb(
                frame.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
            )
        assert sum(colours["The email at 375 px"]) > 600, colours
        assert sum(colours["The email at 375 px in dark mode"]) < 150, colours
        _check(page, findings)

        # attach the draft to the recurring schedule's next run
        page.goto(edition_url)
        page.select_option("#attach-schedule", str(schedule_id))
        page.click("#attach button[type=submit]")
        page.wait_for_selector("text=goes out at the schedule's next run")
        assert f"schedule {schedule_id}" in page.inner_text("#attached")
        _check(page, findings)

        page.goto(base + "/admin/articles/import")
        _check(page, findings)
        page.set_input_files("#file", str(bad))
        page.click("text=Import the file")
        page.wait_for_selector("#import-error")
        assert page.inner_text("#import-error").startswith("bad.json:")
        _check(page, findings)

        page.goto(base + f"/admin/editions/{sent_id}/report")
        assert page.locator("svg[role=img]").count() == 2
        _check(page, findings)
        page.goto(base + "/admin/")
        assert "Clicked (CTR)" in page.content()
        _check(page, findings)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(base + f"/admin/editions/{sent_id}/report")
        _check(page, findings)
    _no_findings(findings)
