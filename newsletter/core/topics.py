"""Topics: the one folding rule that articles, subscribers and the web share."""

from __future__ import annotations

import re

__all__ = ["normalise_topic"]

_TOPIC_RE = re.compile(r"[^a-z0-9]+")


def normalise_topic(topic: str) -> str:
    """Fold a topic to its slug: ``"UK Politics "`` -> ``"uk-politics"``."""
    return _TOPIC_RE.sub("-", topic.strip().lower()).strip("-")
