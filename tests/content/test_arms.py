"""A subject-line test's arms as variants: one render, the arm's subject, links naming the arm."""

from __future__ import annotations

import re

import pytest

from newsletter.content.arms import arm_copy, arm_key, split_key
from newsletter.content.render import Renderer
from newsletter.content.tracking import read_click_token
from newsletter.core.config import Settings
from newsletter.core.errors import RenderError
from tests.support.sample_editions import daily_edition

TOKEN = re.compile(r"/c/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+?)(?=NLPH7click7|[^A-Za-z0-9_-])")


def test_keys_carry_the_arm_after_the_content() -> None:
    assert arm_key("topics:a,b|minus:3", "B") == "topics:a,b|minus:3|subject:B"
    assert split_key("topics:a,b|minus:3|subject:rest-A") == ("topics:a,b|minus:3", "rest-A")
    assert split_key("all") == ("all", None)
    with pytest.raises(ValueError, match="not a variant key"):
        split_key("all|subject:C")
    with pytest.raises(ValueError, match="not a subject-test arm"):
        arm_key("all", "winner")


@pytest.mark.parametrize("mode", ["aggregate", "per-subscriber"])
def test_an_arm_gets_its_subject_and_links_that_name_it(settings: Settings, mode: str) -> None:
    tracked = settings.model_copy(update={"track_clicks": mode})
    edition = daily_edition()
    rendered = Renderer(tracked).render(edition)
    plain = TOKEN.findall(rendered.html)
    assert plain
    secret = tracked.secret()
    for arm, subject in (("A", rendered.subject), ("B", "Subject B")):
        copy = arm_copy(rendered, edition, tracked, arm, "Subject B")
        assert copy.subject == subject
        tokens = TOKEN.findall(copy.html)
        assert len(tokens) == len(plain)
        assert set(TOKEN.findall(copy.text)) <= set(tokens)
        for token in tokens:
            found = read_click_token(secret, token)
            assert found is not None
            assert found.arm == arm
        assert ("NLPH7click7" in copy.html) == (mode == "per-subscriber")
        assert TOKEN.sub("", copy.html) == TOKEN.sub("", rendered.html)  # only the links differ
    rest = arm_copy(rendered, edition, tracked, "rest-B", "Subject B")
    assert (rest.subject, rest.html, rest.text) == ("Subject B", rendered.html, rendered.text)
    with pytest.raises(RenderError, match="is not sent"):
        arm_copy(rendered, edition, tracked, "wait", "Subject B")
