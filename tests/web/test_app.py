"""The web app: signup with double opt-in, confirm, preferences, archive, preview, defences."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import lxml.html
import pytest

from newsletter import privacy
from newsletter.content.editions import build_edition, set_status
from newsletter.content.models import EditionStatus
from newsletter.core.config import Settings
from newsletter.core.db import make_engine
from newsletter.web.app import create_app
from newsletter.web.headers import PAGE_CSP
from newsletter.web.preview import create_editor_preview_app
from newsletter.web.signup import consent_statement
from subscribers import links, store
from subscribers.importer import import_file
from subscribers.model import Subscriber, SubscriberStatus
from subscribers.tokens import Purpose, make_token
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult
from tests.support.sample_editions import NOW as SAMPLE_NOW
from tests.support.web import (
    WebEnv,
    add_confirmed,
    asgi_client,
    csrf_token,
    get,
    make_env,
    path_of,
    running_server,
    wait_for,
)

LINK_RE = re.compile(r"https://news\.example\.com/newsletter/\S+")


async def _signup(client: httpx.AsyncClient, **fields: str | list[str]) -> httpx.Response:
    form = await client.get("/")
    data: dict[str, str | list[str]] = {"csrf_token": csrf_token(form.text), "consent": "yes"}
    data.update(fields)
    return await client.post("/signup", data=data)


def _find(env: WebEnv, email: str) -> Subscriber | None:
    with env.engine.connect() as conn:
        return store.find_by_email(conn, email)


async def test_signup_form_lists_the_stored_topics_and_asks_for_consent(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    # no signup_sections configured: the article sections, not every tag
    for slug in ("crime", "uk", "business"):
        assert f'name="topic" value="{slug}"' in page.text
    for tag in ("policing", "transport", "economy", "housing"):
        assert f'name="topic" value="{tag}"' not in page.text
    assert 'name="consent"' in page.text
    assert consent_statement(env.settings.newsletter_name) in html.unescape(page.text)
    prefilled = await client.get("/?email=%3Cb%3Eme%40example.com")
    assert 'value="&lt;b&gt;me@example.com"' in prefilled.text
    assert "<script" not in page.text
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert "script-src" not in PAGE_CSP
    assert "'unsafe-inline'" not in PAGE_CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["strict-transport-security"] == "max-age=31536000"  # base URL is https
    assert "nl_csrf" in page.cookies


def test_signup_confirm_round_trip_through_a_real_server_and_smtp(
    env: WebEnv, smtp_server: SMTPServer
) -> None:
    with running_server(env.app) as base, httpx.Client(base_url=base) as http:
        form = http.get("/")
        response = http.post(
            "/signup",
            data={
                "csrf_token": csrf_token(form.text),
                "email": "Reader@Example.COM",
                "name": "Ada Reader",
                "topic": ["policing", "economy"],
                "consent": "yes",
            },
        )
        assert response.status_code == 200
        assert "Check your inbox" in response.text
        # the signup is recorded after the answer (so its timing tells nothing)
        wait_for(lambda: _find(env, "reader@example.com") is not None, "the signup")
        pending = _find(env, "reader@example.com")
        assert pending is not None
        assert pending.status is SubscriberStatus.PENDING
        assert pending.topics == frozenset({"policing", "economy"})
        assert pending.consent is not None
        assert pending.consent.source == "web"
        assert pending.consent.ip == "127.0.0.1"
        with env.engine.connect() as conn:
            consent_events = [e for e in store.events(conn, pending.id) if e.kind == "consent"]
        assert consent_events[0].detail["statement"] == consent_statement(
            env.settings.newsletter_name
        )
        assert consent_events[0].detail["ip"] == "127.0.0.1"
        assert abs(pending.consent.at - datetime.now(UTC)) < timedelta(minutes=5)

        wait_for(lambda: len(smtp_server.received) == 1, "the confirmation email")
        received = smtp_server.received[0]
        assert received.rcpt_tos == ["Reader@example.com"]
        message = BytesParser(policy=policy.default).parsebytes(received.data)
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(("plain",))
        assert text is not None
        (confirm,) = [u for u in LINK_RE.findall(text.get_content()) if "/confirm/" in u]

        # following the link (as a mail scanner would) only shows the button
        path = path_of(env.settings, confirm)
        shown = http.get(path)
        assert shown.status_code == 200
        assert "Confirm my subscription" in shown.text
        # the form posts to the link's own public address (under the base URL's path)
        assert f'<form method="post" action="{urlsplit(confirm).path}">' in shown.text
        assert "R•••@example.com" in shown.text
        assert get(env, pending.id).status is SubscriberStatus.PENDING
        confirmed = http.post(path, data={"csrf_token": csrf_token(shown.text)})
        assert confirmed.status_code == 200
        assert "You are subscribed" in confirmed.text
        person = get(env, pending.id)
        assert person.status is SubscriberStatus.CONFIRMED
        assert person.confirmed_at is not None
        assert person.consent is not None
        assert person.consent.ip == "127.0.0.1"
        # following the link again, or pressing the button again, is harmless
        again = http.get(path)
        assert again.status_code == 200
        assert "You are subscribed" in again.text
        assert "Confirm my subscription" not in again.text
        assert http.post(path, data={"csrf_token": csrf_token(shown.text)}).status_code == 200
        assert get(env, pending.id).confirmed_at == person.confirmed_at


async def test_signup_of_a_confirmed_address_reveals_nothing(
    env: WebEnv, client: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    known = add_confirmed(env, "known@example.com", name="Known", topics=["crime"])
    first = await _signup(client, email="known@example.com", name="Mallory", topic="economy")
    second = await _signup(client, email="unknown@example.com", name="Mallory", topic="economy")
    assert first.status_code == second.status_code == 200
    assert first.text.replace("known@", "") == second.text.replace("unknown@", "")
    assert set(first.headers) == set(second.headers)
    # the stranger changed nothing about the confirmed person
    after = get(env, known.id)
    assert after.status is SubscriberStatus.CONFIRMED
    assert after.name == "Known"
    assert after.topics == frozenset({"crime"})
    # the owner of the address hears about it, by email, with no confirm link
    to_known = [r for r in smtp_server.received if r.rcpt_tos == ["known@example.com"]]
    (note,) = to_known
    body = note.message().get_body(("plain",))
    assert body is not None
    assert "/confirm/" not in body.get_content()
    assert "/preferences/" in body.get_content()


async def test_signup_refuses_bad_input_without_storing_anything(
    env: WebEnv, client: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    bad_email = await _signup(client, email="not an address")
    assert bad_email.status_code == 400
    assert "Enter an email address" in bad_email.text
    no_consent = await client.post(
        "/signup",
        data={"csrf_token": csrf_token((await client.get("/")).text), "email": "a@example.com"},
    )
    assert no_consent.status_code == 400
    assert "Tick the box" in no_consent.text
    unknown_topic = await _signup(client, email="b@example.com", topic="astrology")
    assert unknown_topic.status_code == 400
    line_break = await _signup(client, email="c@example.com", name="Eve\r\nBcc: victim@example.com")
    assert line_break.status_code == 400
    for address in ("a@example.com", "b@example.com", "c@example.com"):
        assert _find(env, address) is None
    assert smtp_server.received == []


async def test_signup_without_a_valid_csrf_token_is_refused(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    await client.get("/")
    missing = await client.post("/signup", data={"email": "x@example.com", "consent": "yes"})
    assert missing.status_code == 400
    forged = await client.post(
        "/signup", data={"email": "x@example.com", "consent": "yes", "csrf_token": "forged"}
    )
    assert forged.status_code == 400
    # a genuine token but a request the browser marks as cross-site
    token = csrf_token((await client.get("/")).text)
    cross = await client.post(
        "/signup",
        data={"email": "x@example.com", "consent": "yes", "csrf_token": token},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 400
    # the token of another browser (no matching cookie)
    async with asgi_client(env.app) as stranger:
        stolen = await stranger.post(
            "/signup", data={"email": "x@example.com", "consent": "yes", "csrf_token": token}
        )
    assert stolen.status_code == 400
    assert _find(env, "x@example.com") is None


async def test_repeated_signups_of_one_address_send_at_most_three_emails(
    env: WebEnv, client: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    answers = [await _signup(client, email="bombed@example.com") for _ in range(5)]
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1  # the page does not say the limit was hit
    assert len(smtp_server.received) == 3


async def test_a_form_that_is_not_urlencoded_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/signup", files={"email": (None, "x@example.com")})
    assert response.status_code == 400
    assert "This form could not be sent" in response.text
    huge = await client.post(
        "/signup",
        content=b"email=" + b"a" * 20_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 400


async def test_signups_are_rate_limited_per_client(client: httpx.AsyncClient) -> None:
    codes = [(await _signup(client, email=f"r{n}@example.com")).status_code for n in range(11)]
    assert codes[:10] == [200] * 10
    assert codes[10] == 429


async def test_hostile_name_is_escaped_on_the_preferences_page(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    person = add_confirmed(env, "h@example.com", name=hostile)
    page = await client.get(
        path_of(env.settings, links.preferences_url(env.settings, person.id, person.email))
    )
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    # the link never expires and may be forwarded: the page shows the address masked
    assert "h@example.com" not in page.text
    assert "h•••@example.com" in page.text


async def test_preferences_change_topics_and_name(env: WebEnv, client: httpx.AsyncClient) -> None:
    person = add_confirmed(env, "p@example.com", name="Old Name", topics=["crime"])
    path = path_of(env.settings, links.preferences_url(env.settings, person.id, person.email))
    page = await client.get(path)
    assert re.search(r'value="crime" checked', page.text)
    saved = await client.post(
        path,
        data={
            "csrf_token": csrf_token(page.text),
            "action": "save",
            "name": "New Name",
            "topic": ["economy", "transport"],
        },
    )
    assert saved.status_code == 200
    assert "Your preferences are saved" in saved.text
    after = get(env, person.id)
    assert after.name == "New Name"
    assert after.topics == frozenset({"economy", "transport"})
    assert after.status is SubscriberStatus.CONFIRMED
    # a forged form changes nothing
    forged = await client.post(path, data={"action": "save", "name": "Forged", "topic": "crime"})
    assert forged.status_code == 400
    assert get(env, person.id).name == "New Name"
    # no topics at all means everything
    await client.post(path, data={"csrf_token": csrf_token(page.text), "name": "New Name"})
    assert get(env, person.id).topics == frozenset()


async def test_preferences_page_can_unsubscribe(env: WebEnv, client: httpx.AsyncClient) -> None:
    person = add_confirmed(env, "q@example.com")
    path = path_of(env.settings, links.preferences_url(env.settings, person.id, person.email))
    page = await client.get(path)
    left = await client.post(
        path, data={"csrf_token": csrf_token(page.text), "action": "unsubscribe"}
    )
    assert left.status_code == 200
    assert "You are unsubscribed" in left.text
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED


@pytest.mark.parametrize("route", ["confirm", "unsubscribe", "preferences"])
async def test_tampered_and_wrong_purpose_tokens_get_a_friendly_400(
    env: WebEnv, client: httpx.AsyncClient, route: str
) -> None:
    person = add_confirmed(env, "t@example.com")
    genuine = make_token(env.settings.secret(), route, person.id, person.email)
    tampered = genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB")
    other = "preferences" if route != "preferences" else "unsubscribe"
    wrong_purpose = make_token(env.settings.secret(), other, person.id, person.email)
    for token in (tampered, wrong_purpose, "garbage", "a.b.c.d"):
        for method in ("GET", "POST"):
            response = await client.request(method, f"/{route}/{token}")
            assert response.status_code == 400, (method, token)
            assert "This link does not work" in response.text
            assert "Traceback" not in response.text
    assert get(env, person.id).status is SubscriberStatus.CONFIRMED


async def test_an_expired_confirm_link_says_so(env: WebEnv, client: httpx.AsyncClient) -> None:
    with env.engine.begin() as conn:
        person = store.add(conn, "late@example.com", secret=env.settings.secret())
    old = datetime.now(UTC) - timedelta(days=8)
    token = make_token(env.settings.secret(), Purpose.CONFIRM, person.id, person.email, old)
    path = f"/confirm/{token}"
    form = await client.get("/")
    for response in (
        await client.get(path),
        await client.post(path, data={"csrf_token": csrf_token(form.text)}),
    ):
        assert response.status_code == 400
        assert "expired" in response.text
    assert get(env, person.id).status is SubscriberStatus.PENDING


async def test_following_a_confirm_link_changes_nothing(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    with env.engine.begin() as conn:
        person = store.add(conn, "scanned@example.com", secret=env.settings.secret())
        before = store.events(conn, person.id)
    path = path_of(env.settings, links.confirm_url(env.settings, person.id, person.email))
    for _ in range(3):  # a scanner may fetch it more than once, with HEAD too
        assert (await client.get(path)).status_code == 200
        assert (await client.head(path)).status_code == 200
    after = get(env, person.id)
    assert after == person
    with env.engine.connect() as conn:
        assert store.events(conn, person.id) == before


async def test_the_confirm_button_is_csrf_checked(env: WebEnv, client: httpx.AsyncClient) -> None:
    with env.engine.begin() as conn:
        person = store.add(conn, "csrf.confirm@example.com", secret=env.settings.secret())
    path = path_of(env.settings, links.confirm_url(env.settings, person.id, person.email))
    page = await client.get(path)
    token = csrf_token(page.text)
    refused = [
        await client.post(path, data={}),
        await client.post(path, data={"csrf_token": "forged"}),
        await client.post(
            path, data={"csrf_token": token}, headers={"sec-fetch-site": "cross-site"}
        ),
    ]
    async with asgi_client(env.app) as stranger:  # a valid token, but not this browser's cookie
        refused.append(await stranger.post(path, data={"csrf_token": token}))
    for response in refused:
        assert response.status_code == 400
        assert "This form could not be sent" in response.text
    assert get(env, person.id).status is SubscriberStatus.PENDING
    done = await client.post(path, data={"csrf_token": token})
    assert "You are subscribed" in done.text
    assert get(env, person.id).status is SubscriberStatus.CONFIRMED


async def test_confirm_link_of_someone_who_left_does_not_resubscribe(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    person = add_confirmed(env, "gone@example.com")
    with env.engine.begin() as conn:
        store.unsubscribe(conn, person.id)
    path = path_of(env.settings, links.confirm_url(env.settings, person.id, person.email))
    shown = await client.get(path)
    assert shown.status_code == 400
    assert "Confirm my subscription" not in shown.text
    form = await client.get("/")
    pressed = await client.post(path, data={"csrf_token": csrf_token(form.text)})
    assert pressed.status_code == 400
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED


async def test_someone_who_left_signs_up_again_and_is_back_only_after_confirming(
    env: WebEnv, client: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    person = add_confirmed(env, "back@example.com", topics=["crime"])
    with env.engine.begin() as conn:
        store.unsubscribe(conn, person.id)
    answer = await _signup(client, email="back@example.com", topic=["economy"])
    assert "Check your inbox" in answer.text
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED
    text = smtp_server.received[0].message().get_body(("plain",))
    assert text is not None
    assert "Economy" in text.get_content()
    (confirm,) = [u for u in LINK_RE.findall(text.get_content()) if "/confirm/" in u]
    page = await client.get(urlsplit(confirm).path)
    assert "Confirm my subscription" in page.text
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED
    done = await client.post(urlsplit(confirm).path, data={"csrf_token": csrf_token(page.text)})
    assert "You are subscribed" in done.text
    back = get(env, person.id)
    assert (back.status, back.topics) == (SubscriberStatus.CONFIRMED, frozenset({"economy"}))


async def test_an_erased_person_is_suppressed_until_they_confirm_a_signup(
    env: WebEnv, client: httpx.AsyncClient, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    with env.engine.begin() as conn:
        store.add(conn, "erased.web@example.com", secret=env.settings.secret(), confirmed=True)
        privacy.erase(conn, "erased.web@example.com", secret=env.settings.secret())
    await _signup(client, email="erased.web@example.com")
    pending = _find(env, "erased.web@example.com")
    assert pending is not None
    assert pending.status is SubscriberStatus.PENDING
    csv = tmp_path / "old-list.csv"
    csv.write_text("email,status\nerased.web@example.com,confirmed\n")
    refused = import_file(env.engine, csv, secret=env.settings.secret(), confirmed=True)
    assert (refused.skipped, refused.updated) == (1, 0)
    assert get(env, pending.id).status is SubscriberStatus.PENDING
    text = smtp_server.received[0].message().get_body(("plain",))
    assert text is not None
    (confirm,) = [u for u in LINK_RE.findall(text.get_content()) if "/confirm/" in u]
    page = await client.get(urlsplit(confirm).path)
    await client.post(urlsplit(confirm).path, data={"csrf_token": csrf_token(page.text)})
    assert get(env, pending.id).status is SubscriberStatus.CONFIRMED
    accepted = import_file(env.engine, csv, secret=env.settings.secret())
    assert (accepted.skipped, accepted.unchanged) == (0, 1)


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
            assert _find(env, "browser.reader@example.com").status is SubscriberStatus.PENDING  # type: ignore[union-attr]
            page.get_by_role("button", name="Confirm my subscription").click()
            page.wait_for_selector("h1:has-text('You are subscribed')")
            assert not [line for line in console if "Content Security Policy" in line], console
        finally:
            browser.close()
    person = _find(env, "browser.reader@example.com")
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
        assert _find(env, "pg.reader@example.com").status is SubscriberStatus.PENDING  # type: ignore[union-attr]
        pressed = await http.post(
            urlsplit(confirm).path, data={"csrf_token": csrf_token(shown.text)}
        )
        assert pressed.status_code == 200
        person = _find(env, "pg.reader@example.com")
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
