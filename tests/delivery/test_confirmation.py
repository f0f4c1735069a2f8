"""The double opt-in email: its shape, its refusals, and its delivery to a real SMTP server."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest
from pydantic import SecretStr

from newsletter.core.config import Settings
from newsletter.core.errors import HeaderInjectionError, SMTPUnavailableError
from newsletter.delivery.confirmation import Confirmation, build_confirmation, send_confirmation
from tests.plugins.smtp import SMTPServer

CONFIRM = "https://news.example.com/newsletter/confirm/c.1.abc.SIG"
PREFS = "https://news.example.com/newsletter/preferences/p.1.abc.SIG"


def _parts(raw: bytes) -> tuple[str, str]:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert message.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"]  # text first: clients show the last they can
    text, html = (part.get_content() for part in message.iter_parts())
    return text, html


def test_confirmation_message_has_the_link_in_both_parts(settings: Settings) -> None:
    message = build_confirmation(
        settings, Confirmation("reader@example.com", "Ada Lovelace", CONFIRM)
    )
    raw = message.as_bytes()
    assert message["To"] == "Ada Lovelace <reader@example.com>"
    assert message["From"] == settings.sender
    assert "confirm" in message["Subject"].lower()
    assert message["Message-ID"].endswith(f"@{settings.sender_domain}>")
    assert message["Auto-Submitted"] == "auto-generated"
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF everywhere
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    text, html = _parts(raw)
    assert CONFIRM in text
    assert f'href="{CONFIRM}"' in html
    assert "Ada Lovelace" in text
    assert settings.postal_address in text


def test_the_chosen_topics_are_listed(settings: Settings) -> None:
    confirmation = Confirmation("t@example.com", None, CONFIRM, topics=("Crime", "Economy & Money"))
    text, html = _parts(build_confirmation(settings, confirmation).as_bytes())
    assert "Topics you chose: Crime, Economy & Money" in text
    assert "Topics you chose: Crime, Economy &amp; Money" in html


def test_a_confirmed_address_gets_a_note_without_a_confirm_link(settings: Settings) -> None:
    message = build_confirmation(settings, Confirmation("known@example.com", None, None, PREFS))
    text, html = _parts(message.as_bytes())
    assert "/confirm/" not in text + html
    assert PREFS in text
    assert "already" in message["Subject"]


@pytest.mark.parametrize("name", ["Eve\r\nBcc: victim@example.com", "Eve\nX: y", "Eve\rX"])
def test_a_line_break_in_the_name_is_refused(settings: Settings, name: str) -> None:
    with pytest.raises(HeaderInjectionError, match="line break"):
        build_confirmation(settings, Confirmation("eve@example.com", name, CONFIRM))


def test_a_hostile_name_is_escaped_in_the_html(settings: Settings) -> None:
    hostile = '<script>alert("x")</script>'
    message = build_confirmation(settings, Confirmation("h@example.com", hostile, CONFIRM))
    text, html = _parts(message.as_bytes())
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert hostile in text  # the text part is text: no entities for the reader to see


async def test_it_is_delivered_to_the_configured_relay(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    settings = settings.model_copy(update={"smtp_url": SecretStr(smtp_server.url)})
    message = build_confirmation(settings, Confirmation("Zoë@example.com", "Zoë", CONFIRM))
    await send_confirmation(settings, message)
    (received,) = smtp_server.received
    assert received.rcpt_tos == ["Zoë@example.com"]
    assert received.mail_from == settings.sender_address
    text, _ = _parts(received.data)
    assert CONFIRM in text


async def test_an_unreachable_relay_is_one_clear_error(
    settings: Settings, closed_port: int
) -> None:
    settings = settings.model_copy(
        update={"smtp_url": SecretStr(f"smtp://user:hunter2@127.0.0.1:{closed_port}")}
    )
    message = build_confirmation(settings, Confirmation("a@example.com", None, CONFIRM))
    with pytest.raises(SMTPUnavailableError) as caught:
        await send_confirmation(settings, message)
    assert "hunter2" not in str(caught.value)
    assert "\n" not in str(caught.value)
