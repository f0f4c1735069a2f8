"""Variants: one key format, the stories each holds, and the lines each writes for itself."""

from __future__ import annotations

import pytest

from newsletter.content.models import Edition
from newsletter.content.render import (
    Renderer,
    Variant,
    select_articles,
)
from newsletter.core.errors import StateError
from newsletter.core.text import one_line
from tests.support.html_checks import (
    parse,
)
from tests.support.sample_editions import daily_edition


def test_variant_key() -> None:
    edition = daily_edition()
    assert Variant.of(edition, None).key == "all"
    assert Variant.of(edition, []).key == "all"
    assert Variant.of(edition, ["Housing", "sport"]).key == "topics:housing"
    assert Variant.of(edition, ["uk", "economy"]).key == "topics:economy,uk"
    assert Variant.of(edition, ["sport"]).key == "none"
    assert Variant.of(edition, ["sport"]).is_empty


def test_a_variant_key_round_trips_and_refuses_garbage() -> None:
    for key in ("all", "none", "topics:economy,uk"):
        assert Variant.parse(key).key == key
    for bad in ("", "topics:", "topics:a,,b", "everything"):
        with pytest.raises(ValueError, match="not a variant key"):
            Variant.parse(bad)


def test_a_variant_holds_only_its_topics(renderer: Renderer, edition: Edition) -> None:
    variant = renderer.render(edition, {"economy"})
    assert variant.article_ids == ("story-5", "story-6")
    top, sections = select_articles(edition, frozenset({"economy"}))
    assert top is not None
    assert top.id == "story-5"
    assert [s.name for s in sections] == ["Business"]
    root = parse(variant.html)
    assert root.xpath("//h1")[0].text_content().strip() == top.headline
    assert "story-1" not in variant.html
    assert "Topics in this edition for you: economy." in one_line(variant.text)
    with pytest.raises(StateError):
        renderer.render(edition, {"sport"})


def test_a_variant_derives_its_own_subject_preheader_and_intro(renderer: Renderer) -> None:
    from newsletter.content.lines import derive_preheader, derive_subject

    everything = daily_edition().articles()
    edition = daily_edition(
        id="derived",
        preheader=derive_preheader(everything),
        generated=["subject", "preheader", "intro"],
    )
    variant = renderer.render(edition, {"economy"})
    mine = [a for a in everything if a.id in {"story-5", "story-6"}]
    assert variant.subject == derive_subject(mine[0], 1)
    assert variant.subject.endswith(" and 1 more story")
    assert variant.preheader == derive_preheader(mine)
    root = parse(variant.html)
    assert root.find("body")[0][0].text_content().startswith(variant.preheader)
    assert "2 stories from Britain's News Portal" in variant.text
    # the whole edition keeps its own lines
    assert renderer.render(edition).subject == edition.subject


def test_an_editors_own_lines_are_kept_in_every_variant(renderer: Renderer) -> None:
    edition = daily_edition(id="edited", subject="Your Thursday briefing", intro="Good morning.")
    variant = renderer.render(edition, {"economy"})
    assert variant.subject == "Your Thursday briefing"
    assert "Good morning." in variant.text
