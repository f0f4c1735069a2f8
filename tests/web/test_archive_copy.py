"""The archive's web copy of an edition: no greeting, no personal links, a signup line."""

from __future__ import annotations

import httpx
import lxml.html

from newsletter.content.editions import build_edition, set_status
from newsletter.content.models import EditionStatus
from tests.support.sample_editions import NOW as SAMPLE_NOW
from tests.support.web import WebEnv


async def test_the_web_copy_has_no_greeting_and_asks_to_sign_up(
    env: WebEnv, client: httpx.AsyncClient
) -> None:
    with env.engine.begin() as conn:
        sent = build_edition(conn, now=SAMPLE_NOW, title="Sent Briefing", site_name="News")
        set_status(conn, sent.id, EditionStatus.SENDING, now=SAMPLE_NOW)
        set_status(conn, sent.id, EditionStatus.SENT, now=SAMPLE_NOW)
    shown = await client.get(f"/archive/{sent.id}")
    assert shown.status_code == 200
    root = lxml.html.document_fromstring(shown.text)
    visible = " ".join(root.text_content().split())
    assert "Hello" not in visible
    assert "View in browser" not in visible  # this is the browser
    assert "Forwarded this?" not in visible
    names = {" ".join(a.text_content().split()): a.get("href") for a in root.xpath("//a")}
    assert "Unsubscribe" not in names
    assert "Manage your preferences" not in names
    signup = f"Sign up to {env.settings.newsletter_name}"
    assert names[signup] == f"{env.settings.base_url}/"
