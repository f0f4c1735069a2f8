"""Render an edition into HTML and text, once per variant.

A *variant* is what differs in content between recipients: the subscriber's
chosen topics intersected with the edition's (no topics chosen = everything),
less the stories they were already sent. It has one type, :class:`Variant`, and
one key format (``all``, ``topics:a,b``, ``none``, each optionally followed by
``|minus:<hex>``, a bitmask of the left-out positions in ``Edition.articles()``),
stored on each outbox row. Its stages are
:class:`Variant` -> :class:`RenderedVariant` (HTML and text, here) ->
:class:`newsletter.content.message.MessageTemplate` (the MIME bytes).
:class:`Renderer` runs Jinja2 and then premailer once per variant and caches the
result by :attr:`Variant.key`. Per-recipient values (the reader's name, the
unsubscribe and preferences links) are left as placeholder slots such as
``NLPH7name7``, which :mod:`newsletter.content.message` fills by cheap substitution.
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup
from premailer import Premailer

from newsletter.content.filters import clean, paragraphs_html, paragraphs_text, wrap
from newsletter.content.lines import variant_lines
from newsletter.content.models import Article, Edition, EditionKind, Section
from newsletter.content.templates import email_environment
from newsletter.content.tracking import click_links
from newsletter.core.config import Settings
from newsletter.core.errors import RenderError, StateError
from newsletter.core.text import one_line
from newsletter.core.times import zone_info
from newsletter.core.topics import normalise_topic

__all__ = [
    "BODY_SLOTS",
    "MAX_GREETING_NAME",
    "MAX_HTML_BYTES",
    "SLOT_RE",
    "RenderedVariant",
    "Renderer",
    "Variant",
    "greeting",
    "greeting_name",
    "inline_css",
    "select_articles",
    "slot",
]

BODY_SLOTS = ("greeting", "unsubscribe_url", "preferences_url", "click")
SLOT_RE = re.compile(r"NLPH7([a-z_]+)7")
# Gmail clips a message whose HTML passes about 102 KB; stay clear of it.
MAX_HTML_BYTES = 100_000
_FORBIDDEN = re.compile(rb"<\s*(script|form|iframe|object|embed)\b", re.IGNORECASE)


_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "rev"})
# A "first name" longer than this is not one (a pasted note, a hostile cell): not shown.
MAX_GREETING_NAME = 40


def _shown(value: str) -> str:
    """``value`` on one line without control or format characters (line breaks, bidi
    overrides); "" when longer than :data:`MAX_GREETING_NAME`. HTML escaping is the caller's."""
    if not value.isprintable():
        value = "".join(
            c if c.isprintable() else ("" if unicodedata.category(c) == "Cf" else " ")
            for c in value
        )
    value = " ".join(value.split())
    return value if len(value) <= MAX_GREETING_NAME else ""


def greeting_name(name: str | None, first_name: str | None = None) -> str:
    """The name a greeting uses: ``first_name`` when given and usable, else the first
    name of ``name`` ("James" from "James Okafor" or "Okafor, James"), else "" (no name):
    one line of at most :data:`MAX_GREETING_NAME` printable characters."""
    given = _shown(first_name) if first_name else ""
    if given:
        return given
    full = (name or "").strip()
    if "," in full:  # "Last, First"
        last, _, first = full.partition(",")
        full = first.strip() or last.strip()
    words = full.split()
    if len(words) > 2 and words[0].lower().rstrip(".") in _TITLES:
        words = words[1:]  # "Dr Ada King" -> "Ada"; "Dr King" stays whole
    elif len(words) == 2 and words[0].lower().rstrip(".") in _TITLES:
        return _shown(full)
    return _shown(words[0]) if words else ""


def greeting(name: str | None, first_name: str | None = None) -> str:
    """The greeting line: "Hello Ada," or, with no usable name, "Hello,"."""
    shown = greeting_name(name, first_name)
    return f"Hello {shown}," if shown else "Hello,"


def slot(name: str) -> str:
    """The placeholder token for the per-recipient value ``name`` (ASCII, never QP-encoded)."""
    return f"NLPH7{name}7"


# The send loop asks for the same edition object once per recipient: remember the
# last one's topics (by identity, holding it, so the id cannot be reused).
_last_topics: tuple[Edition, frozenset[str]] | None = None


def _edition_topics(edition: Edition) -> frozenset[str]:
    global _last_topics
    last = _last_topics
    if last is not None and last[0] is edition:
        return last[1]
    topics = frozenset().union(*(a.topic_set for a in edition.articles()))
    _last_topics = (edition, topics)
    return topics


@dataclass(frozen=True, slots=True)
class Variant:
    """The content one group of recipients gets: the topics kept (None = everything).

    An empty set means no article of the edition matches: such readers get nothing.
    ``minus`` holds the positions (in ``Edition.articles()``) of stories left out
    because these readers were already sent them.
    """

    topics: frozenset[str] | None
    minus: frozenset[int] = frozenset()

    @classmethod
    def of(cls, edition: Edition, subscriber_topics: Collection[str] | None) -> Variant:
        """The variant a subscriber with these topics gets from ``edition``."""
        wanted = {normalise_topic(t) for t in subscriber_topics or ()} - {""}
        if not wanted:
            return cls(None)
        return cls(frozenset(wanted & _edition_topics(edition)))

    @classmethod
    def parse(cls, key: str) -> Variant:
        """The variant stored as ``key``; :class:`ValueError` for anything else."""
        key, marker, mask = key.partition("|minus:")
        if marker:
            if not re.fullmatch(r"[1-9a-f][0-9a-f]*", mask):
                raise ValueError(f"not a variant key: {key + marker + mask!r}")
            bits = int(mask, 16)
            minus = frozenset(i for i in range(bits.bit_length()) if bits >> i & 1)
            return cls(cls.parse(key).topics, minus)
        if key == "all":
            return cls(None)
        if key == "none":
            return cls(frozenset())
        if key.startswith("topics:") and all(key.removeprefix("topics:").split(",")):
            return cls(frozenset(key.removeprefix("topics:").split(",")))
        raise ValueError(f"not a variant key: {key!r}")

    @property
    def key(self) -> str:
        """``"all"``, ``"topics:a,b"`` (sorted) or ``"none"``, then ``"|minus:<hex>"`` when
        stories are left out: the one stored form."""
        if self.topics is None:
            base = "all"
        else:
            base = "topics:" + ",".join(sorted(self.topics)) if self.topics else "none"
        if not self.minus:
            return base
        return f"{base}|minus:{sum(1 << i for i in self.minus):x}"

    def excluding(self, edition: Edition, article_ids: Collection[str]) -> Variant:
        """This variant less the stories ``article_ids`` (only those it would show count)."""
        kept = self.articles_of(edition)
        gone = {a.id for a in kept if a.id in article_ids}
        if not gone:
            return self
        where = {a.id: i for i, a in reversed(list(enumerate(edition.articles())))}
        return Variant(self.topics, self.minus | {where[i] for i in gone})

    def articles_of(self, edition: Edition) -> list[Article]:
        """The stories of ``edition`` this variant shows, in reading order (top story first)."""
        topics = self.topics
        return [
            a
            for i, a in enumerate(edition.articles())
            if i not in self.minus and (topics is None or a.topic_set & topics)
        ]

    def without(self, edition: Edition) -> Edition:
        """``edition`` less the stories at the ``minus`` positions (the lead falls to the next)."""
        if not self.minus:
            return edition
        gone = {id(a) for i, a in enumerate(edition.articles()) if i in self.minus}
        top = edition.top_story if edition.top_story and id(edition.top_story) not in gone else None
        sections = [
            Section(name=s.name, articles=[a for a in s.articles if id(a) not in gone])
            for s in edition.sections
        ]
        return edition.model_copy(update={"top_story": top, "sections": sections})

    @property
    def is_empty(self) -> bool:
        """True when no article matches: nothing is sent for this variant."""
        return self.topics is not None and not self.topics


def select_articles(
    edition: Edition, topics: frozenset[str] | None
) -> tuple[Article | None, list[Section]]:
    """The lead story and sections of a variant: only articles sharing a topic.

    When the edition's top story is filtered out, the first matching article in
    reading order leads instead; empty sections are dropped.
    """

    def keep(article: Article) -> bool:
        return topics is None or bool(article.topic_set & topics)

    top = edition.top_story if edition.top_story and keep(edition.top_story) else None
    sections: list[Section] = []
    for section in edition.sections:
        kept = [a for a in section.articles if keep(a)]
        if top is None and kept:
            top, kept = kept[0], kept[1:]
        if kept:
            sections.append(Section(name=section.name, articles=kept))
    return top, sections


def inline_css(document: str) -> str:
    """Inline the ``<style>`` rules with premailer, keeping media queries and ``!important``.

    Offline (``allow_network=False``) and quiet (cssutils logging silenced).
    """
    return str(
        Premailer(
            document,
            allow_network=False,
            strip_important=False,
            keep_style_tags=True,
            remove_classes=False,
            disable_validation=True,
            # keep the templates' numeric width/height attributes (Outlook needs them);
            # premailer would otherwise copy "width: 100%" into them
            # and bgcolor, which it would put on <a> and <span> too: the templates give
            # bgcolor themselves, on body, table and td only
            disable_basic_attributes=["width", "height", "bgcolor"],
            cssutils_logging_level=logging.CRITICAL,
        ).transform()
    )


@dataclass(frozen=True)
class RenderedVariant:
    """One variant of an edition: inlined HTML and text, with placeholder slots."""

    variant: Variant
    edition_id: str
    kind: EditionKind
    article_ids: tuple[str, ...]
    subject: str
    preheader: str
    html: str
    text: str
    newsletter: str  # the newsletter (list) id: its List-Id and Feedback-ID

    @property
    def key(self) -> str:
        """The variant's stored key."""
        return self.variant.key

    @property
    def topics(self) -> frozenset[str] | None:
        """The variant's topics (None = everything)."""
        return self.variant.topics

    def fill_html(self, values: Mapping[str, str]) -> str:
        """The HTML with every slot replaced by its HTML-escaped value (for previews).

        ``values`` holds the reader's ``name`` (and ``first_name``, optional) and
        both links; the greeting is made from the name ("Hello," for none).
        """
        filled = _filled(values)
        return SLOT_RE.sub(lambda m: html.escape(filled[m.group(1)], quote=True), self.html)

    def fill_text(self, values: Mapping[str, str]) -> str:
        """The text part with every slot replaced by its value (for previews)."""
        filled = _filled(values)
        return SLOT_RE.sub(lambda m: filled[m.group(1)], self.text)


def _filled(values: Mapping[str, str]) -> dict[str, str]:
    shown = greeting(values.get("name"), values.get("first_name"))
    return {"click": "", **values, "greeting": shown}  # a preview's links: no reader part


def _too_big(edition: Edition, context: Mapping[str, Any], size: int) -> str:
    """Why the HTML would be clipped: its size, the article count and the longest story."""
    stories: list[Article] = [context["top"], *(a for s in context["sections"] for a in s.articles)]

    def weight(article: Article) -> int:
        return len(article.model_dump_json(include=_SHOWN_FIELDS))

    longest = max(stories, key=weight)
    return (
        f"edition {edition.id}: HTML is {size // 1000} KB, over the {MAX_HTML_BYTES // 1000} KB "
        f"at which Gmail clips a message: {len(stories)} articles, the longest "
        f"{longest.id!r} ({weight(longest) // 1000} KB of text); use fewer or shorter articles"
    )


_SHOWN_FIELDS = {
    "headline",
    "standfirst",
    "key_points",
    "why_it_matters",
    "what_it_means_for_you",
    "image",
}


class Renderer:
    """Renders editions with the email templates; one render and one inlining per variant."""

    def __init__(self, settings: Settings, *, template_dir: Path | None = None) -> None:
        self.settings = settings
        self.env = email_environment(template_dir)
        self.env.finalize = clean
        self.env.filters["oneline"] = lambda value: one_line(str(value))
        self.env.filters["para"] = wrap
        self.env.filters["paragraphs"] = paragraphs_html
        self.env.filters["text_paragraphs"] = paragraphs_text
        self._cache: dict[tuple[str, int, str], RenderedVariant] = {}

    def render(
        self,
        edition: Edition,
        topics: Variant | Collection[str] | None = None,
        *,
        web: bool = False,
    ) -> RenderedVariant:
        """The ``Variant`` of ``edition`` (or the one for subscribers with ``topics``).

        ``web`` renders the archive's copy: no greeting, no personal links, a signup
        line instead. Cached by (edition id, revision, variant key, web). Raises
        :class:`StateError` when no article matches and :class:`RenderError` when a
        template fails or the result breaks a rule (size, forbidden element).
        """
        variant = topics if isinstance(topics, Variant) else Variant.of(edition, topics)
        cache_key = (edition.id, edition.revision, variant.key + ("/web" if web else ""))
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        rendered = self._render(edition, variant, web)
        self._cache[cache_key] = rendered
        return rendered

    def _context(self, edition: Edition, variant: Variant, web: bool) -> dict[str, Any]:
        topics = variant.topics
        top, sections = select_articles(variant.without(edition), topics)
        if top is None:
            raise StateError(f"no article of edition {edition.id} matches the chosen topics")
        settings = self.settings
        zone = zone_info(settings.timezone)
        subject, preheader, intro = variant_lines(
            edition, top, sections, site_name=settings.site_name, zone=zone
        )
        local = edition.created_at.astimezone(zone)
        breaking = edition.kind is EditionKind.BREAKING
        name = settings.newsletter_name
        badge = "Breaking news" if breaking else ("Breaking" if top.breaking else "")
        label = "" if breaking else "Top story"
        rtl = settings.direction == "rtl"
        return {
            "lang": settings.language,
            "dir": settings.direction,
            "start": "right" if rtl else "left",
            "end": "left" if rtl else "right",
            "title": edition.title,
            # the editor's title heads the email; a generated one leaves the newsletter's name
            "masthead": edition.site_masthead(name),
            "newsletter_name": name,
            "brand": settings.brand,
            "web": web,
            "show_greeting": settings.greetings and not web,
            "web_url": f"{settings.base_url}/archive/{quote(edition.id, safe='')}",
            "signup_url": f"{settings.base_url}/",
            "privacy_url": settings.privacy_url,
            "schedule_text": settings.schedule_text,
            "subject": subject,
            "preheader": preheader,
            "intro": intro,
            "note": "" if "intro" in edition.generated else intro,  # the editor's own words
            "site_name": settings.site_name,
            "postal_address": settings.postal_address,
            "date_line": f"{local:%A} {local.day} {local:%B %Y}",
            "why_line": f"You are receiving this because you subscribed to {name}.",
            "topic_names": sorted(topics) if topics else [],
            "top": top,
            "track": click_links(settings, edition.id, web=web),  # article links, tracked or not
            "sections": sections,
            "lead_label": label,  # a breaking edition's badge says it all
            "breaking_badge": badge,
            "lead_text_label": " - ".join(filter(None, (badge.upper(), label.upper()))),
            # the tokens are fixed ASCII letters and digits: nothing to escape
            "slots": {name: Markup(slot(name)) for name in BODY_SLOTS},  # noqa: S704
        }

    def _render(self, edition: Edition, variant: Variant, web: bool) -> RenderedVariant:
        context = self._context(edition, variant, web)
        stem = "breaking" if edition.kind is EditionKind.BREAKING else "digest"
        try:
            raw_html = self.env.get_template(f"{stem}.html").render(context)
            text = self.env.get_template(f"{stem}.txt").render(context)
        except jinja2.TemplateError as exc:
            filename, line = getattr(exc, "filename", None), getattr(exc, "lineno", None)
            where = f"{filename}:{line}" if filename else stem
            raise RenderError(f"template {where}: {exc}") from None
        document = inline_css(raw_html)
        if not document.lstrip().lower().startswith("<!doctype html>"):
            document = "<!DOCTYPE html>\n" + document
        encoded = document.encode("utf-8")
        if len(encoded) > MAX_HTML_BYTES:
            raise RenderError(_too_big(edition, context, len(encoded)))
        found = _FORBIDDEN.search(encoded)
        if found:
            raise RenderError(f"edition {edition.id}: the HTML contains <{found.group(1)!r}>")
        top: Article = context["top"]
        sections: list[Section] = context["sections"]
        ids = (top.id, *(a.id for s in sections for a in s.articles))
        return RenderedVariant(
            variant=variant,
            edition_id=edition.id,
            kind=edition.kind,
            article_ids=ids,
            subject=context["subject"],
            preheader=context["preheader"],
            html=document,
            text=text.replace("\r\n", "\n").replace("\r", "\n"),
            newsletter=edition.newsletter,
        )
