"""Signing up over HTTP: the form, double opt-in through a real server and SMTP, the defences."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from urllib.parse import urlsplit

import httpx

from newsletter.web.headers import PAGE_CSP
from newsletter.web.signup import consent_statement
from subscribers import store
from subscribers.model import SubscriberStatus
from tests.plugins.smtp import SMTPServer
from tests.support.web import (
    LINK_RE,
    WebEnv,
    add_confirmed,
    asgi_client,
    csrf_token,
    find_person,
    get,
    path_of,
    running_server,
    sign_up,
    wait_for,
)


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
        wait_for(lambda: find_person(env, "reader@example.com") is not None, "the signup")
        pending = find_person(env, "reader@example.com")
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
    first = await sign_up(client, email="known@example.com", name="Mallory", topic="economy")
    second = await sign_up(client, email="unknown@example.com", name="Mallory", topic="economy")
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
    bad_email = await sign_up(client, email="not an address")
    assert bad_email.status_code == 400
    assert "Enter an email address" in bad_email.text
    no_consent = await client.post(
        "/signup",
        data={"csrf_token": csrf_token((await client.get("/")).text), "email": "a@example.com"},
    )
    assert no_consent.status_code == 400
    assert "Tick the box" in no_consent.text
    unknown_topic = await sign_up(client, email="b@example.com", topic="astrology")
    assert unknown_topic.status_code == 400
    line_break = await sign_up(client, email="c@example.com", name="Eve\r\nBcc: victim@example.com")
    assert line_break.status_code == 400
    for address in ("a@example.com", "b@example.com", "c@example.com"):
        assert find_person(env, address) is None
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
    assert find_person(env, "x@example.com") is None


async def test_repeated_signups_of_one_address_send_at_most_three_emails(
    env: WebEnv, client: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    answers = [await sign_up(client, email="bombed@example.com") for _ in range(5)]
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
    codes = [(await sign_up(client, email=f"r{n}@example.com")).status_code for n in range(11)]
    assert codes[:10] == [200] * 10
    assert codes[10] == 429
