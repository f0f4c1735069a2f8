"""Rendering: every HTML and text property a message must have, checked by parsing the output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import newsletter.content.render as render_module
from newsletter.content.models import Edition
from newsletter.content.render import (
    MAX_HTML_BYTES,
    RenderedVariant,
    Renderer,
    slot,
)
from newsletter.core.config import Settings
from newsletter.core.errors import RenderError
from tests.support.html_checks import (
    background_of,
    color_of,
    contrast,
    font_size_of,
    is_hidden,
    parse,
    style_of,
    text_elements,
)
from tests.support.sample_editions import article, breaking_edition, daily_edition

VALUES = {
    "name": "Ada",
    "unsubscribe_url": "https://news.example.com/newsletter/unsubscribe/TOKEN-U",
    "preferences_url": "https://news.example.com/newsletter/preferences/TOKEN-P",
}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_document_head(variant: RenderedVariant, edition: Edition) -> None:
    assert variant.html.startswith("<!DOCTYPE html>")
    root = parse(variant.html)
    assert root.get("lang") == "en"
    assert root.get("dir") == "ltr"
    assert root.findtext(".//title") == edition.title
    metas = {m.get("name"): m.get("content") for m in root.iter("meta")}
    assert metas["color-scheme"] == "light dark"
    assert "width=device-width" in metas["viewport"]


def test_direction_and_language_follow_settings(settings: Settings, edition: Edition) -> None:
    rtl = settings.model_copy(update={"language": "ar", "direction": "rtl"})
    root = parse(Renderer(rtl).render(edition).html)
    assert (root.get("lang"), root.get("dir")) == ("ar", "rtl")
    assert root.xpath("//td[@class='masthead']")[0].get("align") == "right"


def test_hidden_preheader_comes_first(variant: RenderedVariant, edition: Edition) -> None:
    body = parse(variant.html).find("body")
    # webmail drops <html>: the content's own wrapper carries the language and direction
    wrapper = body[0]
    assert (wrapper.tag, wrapper.get("role"), wrapper.get("aria-roledescription")) == (
        "div",
        "article",
        "email",
    )
    assert (wrapper.get("lang"), wrapper.get("dir")) == ("en", "ltr")
    assert wrapper.get("aria-label") == edition.title
    first = wrapper[0]
    assert first.tag == "div"
    assert is_hidden(first)
    assert first.text_content().startswith(edition.preheader)


def test_layout_tables_are_presentation_and_container_is_600px(variant: RenderedVariant) -> None:
    root = parse(variant.html)
    tables = root.xpath("//table")
    assert tables
    assert all(t.get("role") == "presentation" for t in tables)
    containers = [t for t in tables if "container" in (t.get("class") or "")]
    assert len(containers) == 2  # the "View in browser" line, then the card
    for container in containers:
        assert container.get("width") == "600"
        assert style_of(container)["max-width"] == "600px"
    # Outlook's conditional wrapper opens and closes around the container
    opening = re.search(r"<!--\[if mso\]>(.*?)<!\[endif\]-->", variant.html.split("<body")[1])
    assert opening
    assert 'width="600"' in opening.group(1)
    assert "<!--[if mso]></td></tr></table><![endif]-->" in variant.html


def test_media_queries_keep_important_and_dark_mode(variant: RenderedVariant) -> None:
    root = parse(variant.html)
    css = "\n".join(s.text or "" for s in root.iter("style"))
    blocks = re.split(r"@media", css)[1:]
    assert len(blocks) >= 2
    for block in blocks:
        rules = block.split("}")
        declarations = [r for r in rules if ":" in r and "{" in r]
        assert declarations, block
        assert all("!important" in r for r in declarations), block
    assert re.search(r"@media\s*\(prefers-color-scheme:\s*dark\)", css)
    assert re.search(r"@media only screen and \(max-width:\s*620px\)", css)


def test_premailer_inlined_the_styles(variant: RenderedVariant) -> None:
    root = parse(variant.html)
    h1 = root.xpath("//h1")[0]
    assert style_of(h1)["font-size"] == "28px"
    # keep_style_tags: the <style> block is still there for clients that read it
    assert root.xpath("//head/style")


def test_images(variant: RenderedVariant) -> None:
    images = parse(variant.html).xpath("//img")
    assert images
    for img in images:
        assert img.get("alt")
        assert img.get("src", "").startswith("https://")
        assert (img.get("width") or "").isdigit()
        assert int(img.get("width")) <= 600


def test_exactly_one_h1_and_nothing_active(variant: RenderedVariant) -> None:
    root = parse(variant.html)
    assert len(root.xpath("//h1")) == 1
    for tag in ("script", "form", "iframe", "object", "embed", "input"):
        assert not root.xpath(f"//{tag}"), tag
    assert not [a for e in root.iter() for a in e.attrib if a.lower().startswith("on")]


def test_size_under_gmail_clipping_even_with_thirty_articles(renderer: Renderer) -> None:
    stories = [article(n, ("UK", "Crime", "Business")[n % 3], image=(n == 1)) for n in range(1, 31)]
    html = renderer.render(daily_edition(stories, id="thirty")).html
    assert len(html.encode("utf-8")) < MAX_HTML_BYTES <= 100_000


def test_oversized_html_is_refused(renderer: Renderer) -> None:
    huge = [article(n, headline="word " * (2000 if n == 7 else 1000)) for n in range(1, 20)]
    with pytest.raises(RenderError, match="Gmail clips") as caught:
        renderer.render(daily_edition(huge, id="huge"))
    # the cause is named: how many articles, and which is the longest
    assert "19 articles" in str(caught.value)
    assert "the longest 'story-7'" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_footer_has_visible_unsubscribe_preferences_and_address(
    variant: RenderedVariant, settings: Settings
) -> None:
    root = parse(variant.fill_html(VALUES))
    links = {a.text_content().strip(): a for a in root.xpath("//a")}
    unsubscribe = links["Unsubscribe"]
    assert unsubscribe.get("href") == VALUES["unsubscribe_url"]
    assert not is_hidden(unsubscribe)
    assert links["Manage your preferences"].get("href") == VALUES["preferences_url"]
    visible = " ".join(e.text_content() for e in text_elements(root))
    assert settings.postal_address in visible
    assert "You are receiving this because you subscribed" in visible


def test_long_words_wrap_in_every_cell(variant: RenderedVariant) -> None:
    for td in parse(variant.html).xpath("//td"):
        style = style_of(td)
        assert style.get("overflow-wrap") == "anywhere", td.get("class")
        assert style.get("word-break") == "break-word"


def test_text_contrast_and_size(variant: RenderedVariant) -> None:
    root = parse(variant.fill_html(VALUES))
    checked = 0
    for element in text_elements(root):
        ratio = contrast(color_of(element), background_of(element))
        label = f"<{element.tag} class={element.get('class')}> {element.text_content()[:40]!r}"
        assert ratio >= 4.5, f"{label}: contrast {ratio:.2f}"
        assert font_size_of(element) >= 15, f"{label}: {font_size_of(element)}px"
        checked += 1
    assert checked > 20


def test_digest_reads_well(variant: RenderedVariant, edition: Edition) -> None:
    root = parse(variant.fill_html(VALUES))
    top = edition.top_story
    assert top is not None
    assert top.image is not None
    h1 = root.xpath("//h1")[0]
    assert h1.text_content().strip() == top.headline
    assert root.xpath(f"//img[@src='{top.image.url}']")
    visible = _one_line(" ".join(e.text_content() for e in text_elements(root)))
    for heading in ("Key points", "Why this matters", "What this means for you", "Hello Ada,"):
        assert heading.lower() in visible.lower(), heading
    assert all(p in visible for p in top.key_points)
    headings = [h.text_content().strip() for h in root.xpath("//h2[not(@class='sub')]")]
    assert headings == [s.name for s in edition.sections]
    explainers = [h.text_content().strip() for h in root.xpath("//h2[@class='sub']")]
    assert explainers == ["Key points", "Why this matters", "What this means for you"]
    for section in edition.sections:
        for story in section.articles:
            h3 = root.xpath(f"//h3[a[@href='{story.url}']]")
            assert h3
            assert h3[0].text_content().strip() == story.headline
            assert story.standfirst in visible
            # the headline is the story's one link: no "Read more" beside it
            assert len(root.xpath(f"//a[@href='{story.url}']")) == 1, story.id
    assert "Read more" not in visible
    # every link name leads to one place only
    targets: dict[str, set[str]] = {}
    for a in root.xpath("//a"):
        targets.setdefault(_one_line(a.text_content()), set()).add(a.get("href"))
    assert all(len(hrefs) == 1 for hrefs in targets.values()), targets


def test_text_part_has_every_headline_url_and_the_links(
    variant: RenderedVariant, edition: Edition
) -> None:
    text = variant.fill_text(VALUES)
    flat = _one_line(text)
    lines = text.splitlines()
    for story in edition.articles():
        assert _one_line(story.headline) in flat
        assert any(story.url in line.split() or line.endswith(story.url) for line in lines)
    # links stand on their own line, under their label
    assert lines[lines.index("Unsubscribe:") + 1] == VALUES["unsubscribe_url"]
    assert lines[lines.index("Manage your preferences:") + 1] == VALUES["preferences_url"]
    assert "Why this matters:" in lines
    assert "What this means for you:" in lines
    assert "<" not in text  # its own template, not stripped HTML
    assert "Hello Ada," in lines


def test_placeholders_are_left_for_personalisation(variant: RenderedVariant) -> None:
    for part in (variant.html, variant.text):
        for name in ("greeting", "unsubscribe_url", "preferences_url"):
            assert slot(name) in part
    assert "Hello," in variant.fill_text({**VALUES, "name": " "}).splitlines()


def test_breaking_edition_uses_its_own_template(renderer: Renderer) -> None:
    edition = breaking_edition()
    variant = renderer.render(edition)
    root = parse(variant.html)
    assert len(root.xpath("//h1")) == 1
    assert not root.xpath("//h2[not(@class='sub')]")  # no sections, only the explainers
    assert "breaking news" in root.xpath("//body")[0].text_content().lower()
    assert edition.top_story is not None
    assert edition.top_story.url in variant.text
    assert f"{slot('greeting')}\nHere is breaking news from" in variant.text
    assert "BREAKING NEWS: " in variant.text
    # the badge says "Breaking news" once: no "BREAKING BREAKING NEWS"
    visible = _one_line(root.xpath("//body")[0].text_content()).lower()
    assert "breaking breaking" not in visible
    label = root.xpath("//p[@class='label']")[0]
    assert _one_line(label.text_content()) == "Breaking news"


def test_same_input_same_bytes(settings: Settings, edition: Edition) -> None:
    first = Renderer(settings).render(edition)
    second = Renderer(settings).render(daily_edition())
    assert first.html == second.html
    assert first.text == second.text


def test_render_and_inlining_run_once_per_variant(
    renderer: Renderer, edition: Edition, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = render_module.inline_css

    def counting(document: str) -> str:
        calls.append(1)
        return real(document)

    monkeypatch.setattr(render_module, "inline_css", counting)
    for topics in (None, None, {"economy"}, {"Economy", "nonsense"}, {"economy"}, set()):
        renderer.render(edition, topics)
    assert len(calls) == 2  # "all" and "topics:economy"


def test_template_error_is_one_line(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.html").write_text("{{ no_such_variable }}")
    (tmp_path / "email" / "digest.txt").write_text("x")
    with pytest.raises(RenderError, match="no_such_variable") as caught:
        Renderer(settings, template_dir=tmp_path).render(daily_edition())
    assert "\n" not in str(caught.value)


_DIGEST_SCRIPT = """
import hashlib, sys, tempfile
from datetime import UTC, datetime
from pathlib import Path
from newsletter.core.config import load_settings
from newsletter.content.message import MessageTemplate, Personal
from newsletter.content.render import Renderer
from tests.support.sample_editions import daily_edition, hostile_edition
key = "render-test-Qm4vX9pL2sT7wK1zR8nB5cY3hJ6dF0gA"
settings = load_settings(Path(tempfile.mkdtemp()), secret_key=key)
digest = hashlib.sha256()
who = Personal("a@example.org", "Zoë", "https://x.example/u", "https://x.example/p", "<1@x>",
               date=datetime(2026, 1, 1, tzinfo=UTC))
for edition in (daily_edition(), hostile_edition()):
    for topics in (None, {"uk"}, {"uk", "housing"}):
        variant = Renderer(settings).render(edition, topics)
        digest.update(MessageTemplate.from_variant(variant, settings).personalise(who))
print(digest.hexdigest())
"""


def test_same_bytes_across_processes_and_hash_seeds(workdir: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent.parent
    digests = set()
    for seed in ("1", "2"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env.update(PYTHONHASHSEED=seed, PYTHONPATH=str(root))
        done = subprocess.run(
            [sys.executable, "-c", _DIGEST_SCRIPT],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        digests.add(done.stdout.strip())
    assert len(digests) == 1


def test_rendering_is_offline_and_quiet(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import socket

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendering tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    caplog.set_level(logging.DEBUG)
    # mso-* and color-scheme are unknown to cssutils, which would log about them
    html = Renderer(settings).render(daily_edition(id="offline")).html
    assert "mso-hide:all" in html.replace(" ", "")
    assert not [r for r in caplog.records if r.name.startswith(("cssutils", "CSSUTILS"))]


def test_text_part_lines_stay_within_78(renderer: Renderer) -> None:
    long_headline = "A very long headline about the council, the buses and the library " * 2
    stories = [
        article(1, headline=long_headline, breaking=True),
        *(article(n, ("UK", "Crime")[n % 2], headline=long_headline) for n in range(2, 6)),
    ]
    for edition in (daily_edition(stories, id="wrap"), breaking_edition()):
        text = renderer.render(edition).fill_text(VALUES)
        for line in text.splitlines():
            # only a bare URL (or one unbreakable word) may pass 78 characters
            assert len(line) <= 78 or len(line.split()) == 1, line
        lines = text.splitlines()
        # the date is printed once (the title already holds it)
        assert sum("26 November 2026" in line for line in lines) == 1
        for story in edition.articles():
            assert story.url in [line.strip() for line in lines]  # URLs on their own line
