"""Rendering fixtures: a renderer with article links as written, an edition, its variant."""

from __future__ import annotations

import pytest

from newsletter.content.models import Edition
from newsletter.content.render import RenderedVariant, Renderer
from newsletter.core.config import Settings
from tests.support.sample_editions import daily_edition


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    """A renderer with click tracking off (test_tracked_links.py checks tracked links)."""
    return Renderer(settings.model_copy(update={"track_clicks": "off"}))


@pytest.fixture
def edition() -> Edition:
    """The sample daily edition."""
    return daily_edition()


@pytest.fixture
def variant(renderer: Renderer, edition: Edition) -> RenderedVariant:
    """The edition's everything variant."""
    return renderer.render(edition, None)
