"""The typed models that cross module boundaries: articles and editions.

An :class:`Article` is one story, with the fields of the portal's article page.
An :class:`Edition` is one digest: a snapshot of its articles, ordered into
sections behind a top story, so that a sent edition never changes afterwards.
Unknown fields are errors, never silently dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from newsletter.content.states import EditionKind, EditionStatus
from newsletter.core.newsletters import DEFAULT_NEWSLETTER_ID
from newsletter.core.topics import normalise_topic

__all__ = [
    "Article",
    "Edition",
    "EditionKind",
    "EditionStatus",
    "GeneratedLine",
    "Image",
    "Section",
]


def _absolute_https(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError("must be an absolute https:// URL")
    if any(ch.isspace() for ch in value):
        raise ValueError("must not contain white space")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Image(_Model):
    """An article's picture: absolute https ``url``, ``alt`` text and pixel ``width``."""

    url: str
    alt: str
    width: int = Field(gt=0, le=4000)
    height: int | None = Field(default=None, gt=0, le=4000)
    caption: str | None = None

    _url = field_validator("url")(_absolute_https)


class Article(_Model):
    """One story, as published on the portal."""

    id: str = Field(min_length=1, max_length=200)
    url: str
    headline: str = Field(min_length=1)
    standfirst: str = ""
    key_points: list[str] = Field(default_factory=list)
    body: list[str] = Field(default_factory=list)
    why_it_matters: str | None = None
    what_it_means_for_you: str | None = None
    section: str = Field(min_length=1, max_length=100)
    topics: list[str] = Field(default_factory=list)
    author: str | None = None
    published_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    image: Image | None = None
    breaking: bool = False

    _url = field_validator("url")(_absolute_https)

    @field_validator("topics")
    @classmethod
    def _fold_topics(cls, value: list[str]) -> list[str]:
        folded = [normalise_topic(t) for t in value]
        if any(not t for t in folded):
            raise ValueError("a topic must contain a letter or digit")
        return list(dict.fromkeys(folded))

    @property
    def topic_set(self) -> frozenset[str]:
        """The article's topics plus its section, folded: what a subscriber's topics match."""
        return frozenset([*self.topics, normalise_topic(self.section)])


GeneratedLine = Literal["title", "subject", "preheader", "intro"]


class Section(_Model):
    """A named group of articles in an edition, in reading order."""

    name: str
    articles: list[Article]


class Edition(_Model):
    """One digest: what it says, in what order, and where it is in its life."""

    id: str
    kind: EditionKind = EditionKind.DAILY
    title: str
    subject: str
    preheader: str
    intro: str = ""
    top_story: Article | None = None
    sections: list[Section] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)  # the filter it was built with; empty = all
    # which of title, subject, preheader and intro the builder wrote (each variant writes
    # its own from its own stories); lines an editor wrote are kept as written
    generated: list[GeneratedLine] = Field(default_factory=list)
    window_start: AwareDatetime | None = None  # the article window began here
    revision: int = 0  # bumped by every edit: a cached render of an older one is stale
    created_at: AwareDatetime
    scheduled_at: AwareDatetime | None = None
    sent_at: AwareDatetime | None = None
    status: EditionStatus = EditionStatus.DRAFT
    status_reason: str | None = None
    # carry stories a reader was already sent lately (a weekly round-up); else each
    # reader's copy leaves them out (NEWSLETTER_REPEAT_WINDOW)
    allow_repeats: bool = False
    # kept out of the public archive's list (a test or a correction); its page still answers
    unlisted: bool = False
    # the newsletter (list) it belongs to: sent to that newsletter's subscribers only
    newsletter: str = DEFAULT_NEWSLETTER_ID

    def articles(self) -> list[Article]:
        """Every article of the edition, top story first, in reading order."""
        head = [self.top_story] if self.top_story else []
        return head + [a for s in self.sections for a in s.articles]

    def site_masthead(self, site_name: str) -> str:
        """What heads the email: the editor's own title, else the site's name."""
        return site_name if "title" in self.generated else self.title

    @property
    def created(self) -> datetime:
        """When it was built (alias kept short for templates)."""
        return self.created_at
