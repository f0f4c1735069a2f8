"""Tracked article links at render and personalisation time: which links, which tokens."""

from __future__ import annotations

import re

import pytest

from newsletter.content.message import MessageTemplate, Personal
from newsletter.content.render import Renderer, slot
from newsletter.content.tracking import CLICK_SLOT, click_token, read_click_token
from newsletter.core.config import Settings
from tests.support.sample_editions import daily_edition

TOKEN = re.compile(r"/c/([A-Za-z0-9_.-]+?)(?:NLPH7click7)?(?=[\s\"<]|$)", re.MULTILINE)


def test_the_slot_is_the_renderers() -> None:
    assert slot("click") == CLICK_SLOT


@pytest.mark.parametrize("mode", ["aggregate", "per-subscriber"])
def test_article_links_are_tokens_and_nothing_else_is(settings: Settings, mode: str) -> None:
    settings = settings.model_copy(update={"track_clicks": mode})
    edition = daily_edition()
    variant = Renderer(settings).render(edition)
    for part in (variant.html, variant.text):
        tokens = TOKEN.findall(part)
        targets = {read_click_token(settings.secret(), t) for t in tokens}
        assert {t.article_id for t in targets if t} == {a.id for a in edition.articles()}
        assert None not in targets
        assert all(t.subscriber_id is None for t in targets if t)  # the reader comes later
        assert (CLICK_SLOT in part) == (mode == "per-subscriber")
        assert not any(a.url in part for a in edition.articles())
        assert f"{settings.base_url}/archive/" in part  # "View in browser" stays direct
    web = Renderer(settings).render(edition, web=True)  # the archive's copy: never tracked
    assert "/c/" not in web.html
    assert all(a.url in web.html for a in edition.articles())


def test_one_hmac_per_reader_binds_them_and_is_refused_when_altered(settings: Settings) -> None:
    settings = settings.model_copy(update={"track_clicks": "per-subscriber"})
    edition = daily_edition()
    template = MessageTemplate.from_variant(Renderer(settings).render(edition), settings, edition)

    def links(subscriber_id: int | None) -> list[str]:
        who = Personal("a@example.org", "Ann", "https://x.example/u", "https://x.example/p",
                       "<1@x.example>", subscriber_id=subscriber_id)  # fmt: skip
        data = template.personalise(who).replace(b"=\r\n", b"").replace(b"=2E", b".")
        return re.findall(r"/c/([A-Za-z0-9_.-]+)", data.decode("ascii", "replace"))

    mine, theirs, nobody = links(7), links(8), links(None)
    secret = settings.secret()
    assert {read_click_token(secret, t).subscriber_id for t in mine} == {7}  # type: ignore[union-attr]
    assert {read_click_token(secret, t).subscriber_id for t in theirs} == {8}  # type: ignore[union-attr]
    assert {read_click_token(secret, t).subscriber_id for t in nobody} == {None}  # type: ignore[union-attr]
    body, signature, mark, reader = mine[0].split(".")
    assert read_click_token(secret, f"{body}.{signature}.8.{reader}") is None
    assert read_click_token(secret, f"{body}.{signature}.{mark}.{reader[::-1]}") is None
    other = click_token(secret, "another-edition", "a1", "https://news.example.com/a1", 7)
    assert read_click_token(secret, f"{body}.{signature}.{'.'.join(other.split('.')[2:])}") is None
