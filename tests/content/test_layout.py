"""The digest's layout: brand and masthead, Outlook and dark-mode details, compact items."""

from __future__ import annotations

import re

from newsletter.content.models import Edition
from newsletter.content.render import (
    RenderedVariant,
    Renderer,
)
from newsletter.core.config import Settings
from newsletter.core.text import one_line
from tests.support.html_checks import (
    parse,
    style_of,
)
from tests.support.sample_editions import article, daily_edition

FILLED = {
    "name": "Ada",
    "unsubscribe_url": "https://news.example.com/newsletter/unsubscribe/TOKEN-U",
    "preferences_url": "https://news.example.com/newsletter/preferences/TOKEN-P",
}


def test_brand_masthead_and_web_version(settings: Settings, edition: Edition) -> None:
    from newsletter.core.brand import Brand

    branded = settings.model_copy(
        update={
            "brand": Brand(
                name="The Fleet Street Briefing",
                logo_url="https://news.example.com/logo.png",
                logo_width=180,
                logo_height=40,
                logo_alt="Britain's News Portal",
                colour="#7a1020",
                accent="#0b5a33",
                font="Merriweather, Georgia, serif",
                footer_text="Written by the newsroom in London.",
            ),
            "privacy_url": "https://news.example.com/privacy",
        }
    )
    generated = daily_edition(id="branded", generated=["title"])
    variant = Renderer(branded).render(generated)
    root = parse(variant.fill_html(FILLED))
    masthead = root.xpath("//td[contains(@class, 'masthead')]")[0]
    assert "The Fleet Street Briefing" in masthead.text_content()
    assert "Thursday 26 November 2026" in masthead.text_content()
    assert masthead.get("bgcolor") == "#7a1020"
    logo = masthead.xpath(".//img")[0]
    assert (logo.get("width"), logo.get("height"), logo.get("alt")) == (
        "180",
        "40",
        "Britain's News Portal",
    )
    links = {one_line(a.text_content()): a.get("href") for a in root.xpath("//a")}
    assert links["View in browser"] == f"{settings.base_url}/archive/branded"
    assert links["Sign up to The Fleet Street Briefing"] == f"{settings.base_url}/"
    assert links["Privacy notice"] == "https://news.example.com/privacy"
    visible = one_line(root.text_content())
    assert "Forwarded this?" in visible
    assert "Written by the newsroom in London." in visible
    assert "subscribed to The Fleet Street Briefing." in visible
    contents = one_line(root.xpath("//p[@class='contents']")[0].text_content())
    assert contents == "In this edition: Top story · " + " · ".join(
        s.name for s in generated.sections
    )
    css = "\n".join(s.text or "" for s in root.iter("style"))
    assert "Merriweather, Georgia, serif" in css
    # the editor's own title heads the email instead of the newsletter's name
    titled = parse(Renderer(branded).render(edition).html)
    assert edition.title in titled.xpath("//td[contains(@class, 'masthead')]")[0].text_content()


def test_outlook_and_dark_mode_details(variant: RenderedVariant) -> None:
    root = parse(variant.html)
    css = "\n".join(s.text or "" for s in root.iter("style"))
    assert re.search(r":root\s*\{\s*color-scheme:\s*light dark", css)
    dark = css.partition("prefers-color-scheme: dark")[2]
    assert re.search(r"h1 a[,\s{]", dark)
    assert "<o:PixelsPerInch>96</o:PixelsPerInch>" in variant.html
    h1_link = root.xpath("//h1/a")[0]
    assert style_of(h1_link)["color"] == "#111317"  # explicit: Outlook paints inherit blue
    assert "mso-line-height-rule" in style_of(root.xpath("//td[contains(@class, 'px')]")[0])
    # the button is a padded cell with bgcolor, which Outlook honours
    button = root.xpath("//a[@class='button']")[0]
    cell = button.getparent()
    assert cell.tag == "td"
    assert cell.get("bgcolor")
    assert style_of(cell)["padding"] == "12px 20px"


def test_compact_items_have_thumbnails(renderer: Renderer) -> None:
    stories = [article(1, image=True), article(2, image=True), article(3)]
    root = parse(renderer.render(daily_edition(stories, id="thumbs")).html)
    thumbs = root.xpath("//img[@class='thumb']")
    assert [t.get("src") for t in thumbs] == ["https://img.example.com/2.jpg"]
    assert thumbs[0].get("width") == "96"
    assert thumbs[0].get("height") == "54"
