"""The welcome email after a reader confirms: over HTTP, through a real aiosmtpd server.

Sent once, by the press that confirms (never by a second press), with the reader's
own preferences and unsubscribe links and List-Unsubscribe; off with
``NEWSLETTER_WELCOME_EMAIL=false``; a relay that is down leaves the reader confirmed.
"""

from __future__ import annotations

import logging
import re
from email.message import EmailMessage

import httpx
import pytest

from newsletter.core.config import Settings
from subscribers import links, store
from subscribers.model import Subscriber, SubscriberStatus
from subscribers.tokens import Purpose, verify_token
from tests.plugins.smtp import SMTPServer
from tests.support.web import (
    LINK_RE,
    WebEnv,
    asgi_client,
    csrf_token,
    find_person,
    get,
    make_env,
    path_of,
    running_server,
    wait_for,
)

MAILTO_RE = re.compile(r"<(mailto:[^>]+)>")


def _pending(env: WebEnv, email: str, **fields: object) -> tuple[Subscriber, str]:
    """A pending reader and the path of their confirmation link."""
    with env.engine.begin() as conn:
        person = store.add(conn, email, secret=env.settings.secret(), **fields)  # type: ignore[arg-type]
    url = links.confirm_url(env.settings, person.id, person.email)
    return person, path_of(env.settings, url)


def _welcomes(smtp_server: SMTPServer) -> list[EmailMessage]:
    found = [r.message() for r in smtp_server.received]
    return [m for m in found if str(m["Subject"]).startswith("Welcome to ")]


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def _is_link_of(env: WebEnv, url: str, purpose: Purpose, person: Subscriber) -> None:
    """``url`` is ``person``'s own link for ``purpose``."""
    token = url.rsplit("/", 1)[1]
    with env.engine.connect() as conn:
        found = verify_token(env.settings.secret(), purpose, token, lambda i: store.find(conn, i))
    assert found == person.id


def test_confirming_over_http_sends_one_welcome_with_the_readers_links(
    env: WebEnv, smtp_server: SMTPServer
) -> None:
    person, path = _pending(env, "ada@example.com", name="Ada Lovelace", topics=["policing"])
    with running_server(env.app) as base, httpx.Client(base_url=base) as http:
        shown = http.get(path)
        confirmed = http.post(path, data={"csrf_token": csrf_token(shown.text)})
        assert confirmed.status_code == 200
        assert "You are subscribed" in confirmed.text
        wait_for(lambda: len(_welcomes(smtp_server)) == 1, "the welcome email")
        (received,) = smtp_server.received
        assert received.rcpt_tos == ["ada@example.com"]
        welcome = received.message()
        assert welcome["Subject"] == f"Welcome to {env.settings.newsletter_name}"
        assert welcome.get_content_type() == "multipart/alternative"
        text = _text(welcome)
        html_part = welcome.get_body(("html",))
        assert html_part is not None
        html = html_part.get_content()
        assert "Hello Ada Lovelace," in text
        assert "every morning" in text  # what they will get, and when
        assert "on the topics you chose: Policing." in " ".join(text.split())
        found = LINK_RE.findall(text)
        (preferences,) = [u for u in found if "/preferences/" in u]
        (unsubscribe,) = [u for u in found if "/unsubscribe/" in u]
        _is_link_of(env, preferences, Purpose.PREFERENCES, person)
        _is_link_of(env, unsubscribe, Purpose.UNSUBSCRIBE, person)
        assert f'href="{preferences}"' in html
        assert f'href="{unsubscribe}"' in html
        # RFC 8058: the same unsubscribe link in the header, one click, and the mailto form
        header = str(welcome["List-Unsubscribe"])
        assert f"<{unsubscribe}>" in header
        (mailto,) = MAILTO_RE.findall(header)
        assert mailto.startswith("mailto:unsubscribe@news.example.com?subject=unsubscribe%20")
        assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert b"=?utf-8?" not in received.data.split(b"\r\n\r\n", 1)[0]  # links never encoded
        assert all(len(line) <= 998 for line in received.data.split(b"\r\n"))
        # the links work: the preferences page opens, and the unsubscribe link unsubscribes
        assert http.get(path_of(env.settings, preferences)).status_code == 200
        # pressing the button again, or following the link again, sends nothing more
        assert http.post(path, data={"csrf_token": csrf_token(shown.text)}).status_code == 200
        assert http.get(path).status_code == 200
        # as a mail client's one-click POST from the header
        one_click = {"List-Unsubscribe": "One-Click"}
        assert http.post(path_of(env.settings, unsubscribe), data=one_click).status_code == 200
        assert get(env, person.id).status is SubscriberStatus.UNSUBSCRIBED
    assert len(smtp_server.received) == 1


async def test_a_second_press_of_the_confirm_button_sends_no_second_welcome(
    env: WebEnv, smtp_server: SMTPServer
) -> None:
    person, path = _pending(env, "grace@example.com")
    # in process: the response comes back once its background work (the email) is done
    async with asgi_client(env.app) as client:
        shown = await client.get(path)
        token = csrf_token(shown.text)
        first = await client.post(path, data={"csrf_token": token})
        assert "You are subscribed" in first.text
        assert len(_welcomes(smtp_server)) == 1
        for _ in range(2):
            again = await client.post(path, data={"csrf_token": token})
            assert again.status_code == 200
            assert "You are subscribed" in again.text
    assert len(_welcomes(smtp_server)) == 1
    assert get(env, person.id).status is SubscriberStatus.CONFIRMED


async def test_no_welcome_when_the_setting_is_off(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    env = make_env(settings.model_copy(update={"welcome_email": False}), smtp_server.url)
    person, path = _pending(env, "off@example.com")
    async with asgi_client(env.app) as client:
        shown = await client.get(path)
        confirmed = await client.post(path, data={"csrf_token": csrf_token(shown.text)})
    assert "You are subscribed" in confirmed.text
    assert get(env, person.id).status is SubscriberStatus.CONFIRMED
    assert smtp_server.received == []


def test_the_setting_reads_from_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.core.config import load_settings

    assert settings.welcome_email is True  # on unless switched off
    monkeypatch.setenv("NEWSLETTER_WELCOME_EMAIL", "false")
    assert load_settings(create_secret=False).welcome_email is False


async def test_a_relay_that_is_down_leaves_the_reader_confirmed_and_logs_one_line(
    settings: Settings, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env(settings, f"smtp://127.0.0.1:{closed_port}")
    person, path = _pending(env, "down@example.com")
    caplog.set_level(logging.INFO)
    async with asgi_client(env.app) as client:
        shown = await client.get(path)
        confirmed = await client.post(path, data={"csrf_token": csrf_token(shown.text)})
    assert confirmed.status_code == 200
    assert "You are subscribed" in confirmed.text
    assert get(env, person.id).status is SubscriberStatus.CONFIRMED
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("newsletter")]
    lines = [line for line in ours if "welcome" in line]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"welcome email not sent to subscriber {person.id}: ")
    assert "\n" not in lines[0]
    token = path.rsplit("/", 1)[1]
    assert not any(token in line for line in ours)  # (httpx's own request log has it)
    assert "down@example.com" not in lines[0]
    assert find_person(env, "down@example.com") is not None


def test_hostile_names_are_escaped_or_refused(settings: Settings) -> None:
    from newsletter.core.errors import HeaderInjectionError
    from newsletter.delivery.confirmation import Welcome, build_welcome

    links_of = ("https://news.example.com/newsletter/preferences/p.1", "https://x/u/1", "mailto:u")
    hostile = Welcome("ada@example.com", "<script>alert(1)</script>", *links_of)
    message, header = build_welcome(settings, hostile)
    html_part = message.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert header == b"List-Unsubscribe:\r\n <https://x/u/1>,\r\n <mailto:u>\r\n"
    with pytest.raises(HeaderInjectionError):
        build_welcome(settings, Welcome("ada@example.com", "Ada\r\nBcc: x@evil.example", *links_of))
    with pytest.raises(HeaderInjectionError):
        build_welcome(
            settings, Welcome("ada@example.com", "Ada", "p", "https://x/u/1\r\nX: y", "m")
        )
