"""Unsubscribe: the reader's one-button page and the RFC 8058 one-click POST of mail clients."""

from __future__ import annotations

import html
import re
import socket
from email import policy
from email.parser import BytesParser
from urllib.parse import urlsplit

import httpx

from newsletter.content.editions import build_edition
from newsletter.content.preview import build_preview, subscriber_recipient
from subscribers import links, store
from subscribers.model import SubscriberStatus
from tests.support.sample_editions import NOW as SAMPLE_NOW
from tests.support.web import (
    WebEnv,
    add_confirmed,
    asgi_client,
    get,
    path_of,
    running_server,
)


def _events(env: WebEnv, subscriber_id: int) -> list[tuple[str, dict[str, object]]]:
    with env.engine.connect() as conn:
        return [(e.kind, e.detail) for e in store.events(conn, subscriber_id)]


def _raw_request(base: str, request: bytes) -> bytes:
    """Send ``request`` byte for byte to the server at ``base`` and read the whole answer."""
    parts = urlsplit(base)
    assert parts.hostname is not None
    assert parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_one_click_post_exactly_as_gmail_sends_it(env: WebEnv) -> None:
    person = add_confirmed(env, "gmail.reader@example.com")
    url = links.unsubscribe_url(env.settings, person.id, person.email)
    path = path_of(env.settings, url)
    body = b"List-Unsubscribe=One-Click"
    # no cookie, no CSRF token, no Origin, no JavaScript: just the POST of RFC 8058
    request = (
        f"POST {path} HTTP/1.1\r\n"
        "Host: news.example.com\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode("ascii") + body
    with running_server(env.app) as base:
        answer = _raw_request(base, request)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 200 OK", answer[:300]
    assert b"You are unsubscribed" in answer
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED
    kind, detail = _events(env, person.id)[-1]
    assert kind == "unsubscribed"
    assert detail["source"] == "one-click"


async def test_one_click_post_in_the_rfc_multipart_form(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    person = add_confirmed(env, "rfc.reader@example.com")
    path = path_of(env.settings, links.unsubscribe_url(env.settings, person.id, person.email))
    response = await client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED
    assert _events(env, person.id)[-1][1]["source"] == "one-click"


async def test_the_page_shows_one_button_and_changes_nothing_until_pressed(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    person = add_confirmed(env, "button@example.com")
    path = path_of(env.settings, links.unsubscribe_url(env.settings, person.id, person.email))
    page = await client.get(path)
    assert page.status_code == 200
    assert page.text.count("<button") == 1
    assert f'<form method="post" action="/newsletter{path}">' in page.text
    assert "b•••@example.com" in page.text  # recognisable, not the whole address
    assert "button@example.com" not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    # a link scanner fetching the page must not unsubscribe anyone
    assert get(env, person.id).status is SubscriberStatus.CONFIRMED
    # the button posts back without any CSRF field and works with no cookie at all
    async with asgi_client(env.app) as fresh:
        pressed = await fresh.post(path)
    assert pressed.status_code == 200
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED


async def test_unsubscribing_twice_or_after_erasure_still_answers_200(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    person = add_confirmed(env, "twice@example.com")
    path = path_of(env.settings, links.unsubscribe_url(env.settings, person.id, person.email))
    first = await client.post(path, content=b"List-Unsubscribe=One-Click")
    second = await client.post(path, content=b"List-Unsubscribe=One-Click")
    assert first.status_code == second.status_code == 200
    kinds = [kind for kind, _ in _events(env, person.id)]
    assert kinds.count("unsubscribed") == 1
    with env.engine.begin() as conn:
        store.add(conn, "gone@example.com", secret=env.settings.secret(), confirmed=True)
        gone = store.get_by_email(conn, "gone@example.com")
        from newsletter.privacy import erase

        assert erase(conn, "gone@example.com", secret=env.settings.secret())
    gone_path = path_of(env.settings, links.unsubscribe_url(env.settings, gone.id, gone.email))
    assert (await client.post(gone_path, content=b"List-Unsubscribe=One-Click")).status_code == 200
    assert (await client.get(gone_path)).status_code == 200


async def test_a_tampered_one_click_link_unsubscribes_no_one(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    person = add_confirmed(env, "victim@example.com")
    other = add_confirmed(env, "other@example.com")
    path = path_of(env.settings, links.unsubscribe_url(env.settings, person.id, person.email))
    # swap the subscriber id inside the token, keeping the signature
    prefix, _, rest = path.rpartition("/")
    code, _, issued, signature = rest.split(".")
    forged = f"{prefix}/{code}.{other.id:x}.{issued}.{signature}"
    response = await client.post(forged, content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 400
    assert "This link does not work" in response.text
    assert get(env, person.id).status is SubscriberStatus.CONFIRMED
    assert get(env, other.id).status is SubscriberStatus.CONFIRMED
    # a preferences token is not an unsubscribe token
    prefs = path_of(env.settings, links.preferences_url(env.settings, person.id, person.email))
    token = prefs.rpartition("/")[2]
    wrong = await client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
    assert wrong.status_code == 400
    assert get(env, person.id).status is SubscriberStatus.CONFIRMED


async def test_the_links_in_a_real_digest_message_work(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    person = add_confirmed(env, "digest.reader@example.com", name="Dee")
    with env.engine.begin() as conn:
        edition = build_edition(conn, now=SAMPLE_NOW, site_name=env.settings.site_name)
        recipient = subscriber_recipient(env.settings, conn, "digest.reader@example.com")
    # the very bytes a send would hand to the relay for this reader
    eml = build_preview(env.settings, edition, recipient).eml
    message = BytesParser(policy=policy.default).parsebytes(eml)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https = [
        u for u in re.findall(r"<([^>]+)>", message["List-Unsubscribe"]) if u.startswith("https")
    ]
    (one_click,) = https
    html_part = message.get_body(("html",))
    assert html_part is not None
    prefs = re.findall(r'href="([^"]*/preferences/[^"]*)"', html_part.get_content())
    assert prefs
    page = await client.get(urlsplit(html.unescape(prefs[0])).path)
    assert page.status_code == 200
    assert "d•••@example.com" in page.text
    assert "digest.reader@example.com" not in page.text  # the link never expires: masked
    response = await client.post(
        urlsplit(one_click).path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED
