"""A hostile article (script, CR/LF, 10,000 characters, emoji, right-to-left) renders safely."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from newsletter.content.message import MessageTemplate, Personal
from newsletter.content.models import Edition
from newsletter.content.render import RenderedVariant, Renderer
from newsletter.core.config import Settings
from newsletter.core.errors import HeaderInjectionError
from tests.support.html_checks import parse
from tests.support.sample_editions import (
    HOSTILE_HEADLINE,
    LONG_WORD,
    article,
    daily_edition,
    hostile_edition,
)

CLEAN_HEADLINE = " ".join(HOSTILE_HEADLINE.split())


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def edition() -> Edition:
    return hostile_edition()


@pytest.fixture
def variant(settings: Settings, edition: Edition) -> RenderedVariant:
    return Renderer(settings).render(edition)


def test_markup_in_articles_arrives_as_text(variant: RenderedVariant) -> None:
    root = parse(variant.html)
    for tag in ("script", "iframe", "form", "b"):
        assert not root.xpath(f"//body//{tag}"), tag
    assert not [a for e in root.iter() for a in e.attrib if a.lower().startswith("on")]
    h1s = root.xpath("//h1")
    assert len(h1s) == 1
    assert one_line(h1s[0].text_content()) == CLEAN_HEADLINE
    body_text = root.find("body").text_content()
    assert "<img src=x onerror=alert(1)>" in body_text
    assert "<b>bold?</b> & \"quotes\" 'single'" in body_text
    assert "&lt;script&gt;" in variant.html
    assert "<script" not in variant.html.lower()


def test_emoji_and_right_to_left_text_survive(variant: RenderedVariant) -> None:
    for fragment in ("😀🔥", "خبر عاجل من لندن", "שלום עולם", "🇬🇧", "مرحبا بالعالم"):
        assert fragment in variant.html
        assert fragment in variant.text
    # each story's own text direction is left to the browser, whatever the edition's
    root = parse(variant.html)
    assert root.xpath("//h1")[0].get("dir") == "auto"


def test_line_breaks_and_control_characters_are_neutralised(variant: RenderedVariant) -> None:
    assert "\r" not in variant.html
    assert "\r" not in variant.text
    assert "\x00" not in variant.html
    assert "\x0c" not in variant.text
    headline_lines = [line for line in variant.text.splitlines() if "Breaking news" in line]
    assert headline_lines == [
        'TOP STORY: <script>alert("x")</script> Breaking news 😀🔥 — خبر عاجل من لندن'
    ]


def test_ten_thousand_characters_stay_whole_and_wrappable(variant: RenderedVariant) -> None:
    assert LONG_WORD in variant.html
    assert LONG_WORD in variant.text.replace("\n", "")
    assert len(variant.html.encode()) < 100_000
    for td in parse(variant.html).xpath("//td"):
        assert "overflow-wrap:anywhere" in (td.get("style") or "").replace(" ", "")


def test_a_hostile_message_is_well_formed(
    settings: Settings, variant: RenderedVariant, edition: Edition
) -> None:
    template = MessageTemplate.from_variant(variant, settings, edition)
    raw = template.personalise(
        Personal(
            email="reader@example.org",
            name="</td><script>x</script>",
            unsubscribe_url="https://news.example.com/u/1",
            preferences_url="https://news.example.com/p/1",
            message_id="<1@news.example.com>",
        )
    )
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    message = BytesParser(policy=policy.default).parsebytes(raw)
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None
    assert text_part is not None
    html = html_part.get_content()
    assert "<script" not in html.lower()
    assert "Hello &lt;/td&gt;&lt;script&gt;x&lt;/script&gt;," in html
    assert CLEAN_HEADLINE in one_line(text_part.get_content())


def test_a_headline_with_cr_lf_cannot_become_a_header(settings: Settings) -> None:
    evil = article(1, headline="Hi\r\nBcc: everyone@example.org")
    edition = daily_edition([evil, article(2)], id="evil-subject", subject=evil.headline)
    variant = Renderer(settings).render(edition)
    with pytest.raises(HeaderInjectionError):
        MessageTemplate.from_variant(variant, settings, edition)


@given(headline=st.text(min_size=1, max_size=300).filter(lambda s: s.strip()))
@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_headline_renders_as_its_own_text(settings: Settings, headline: str) -> None:
    lead = article(1, headline=headline)
    edition = daily_edition([lead, article(2)], id="fuzz")
    variant = Renderer(settings).render(edition)
    root = parse(variant.html)
    assert len(root.xpath("//h1")) == 1
    assert not root.xpath("//body//script")
    assert "NLPH7" not in root.xpath("//h1")[0].text_content()
