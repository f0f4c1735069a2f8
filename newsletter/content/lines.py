"""What an edition says about itself: subject, preheader, intro and title lines.

The builder writes these lines when an editor does not; a variant writes its
own again from its own stories (see ``Edition.generated``). Generated subjects
stay within SUBJECT_MAX, about what a phone's inbox shows before cutting.
An editor's note (the intro) is kept as written, cleaned to short plain paragraphs.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from newsletter.content.models import Article, Edition, EditionKind, Section
from newsletter.core.errors import InputError
from newsletter.core.text import one_line, plural

__all__ = [
    "INTRO_MAX",
    "PREHEADER_MAX",
    "SUBJECT_MAX",
    "clean_note",
    "default_title",
    "derive_preheader",
    "derive_subject",
    "machine_intro",
    "variant_lines",
]

SUBJECT_MAX = 60  # what a phone's inbox shows before cutting it
PREHEADER_MAX = 140
INTRO_MAX = 1200  # an editor's note: a few short paragraphs
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _trim(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters at a word boundary, marking the cut with an ellipsis."""
    text = one_line(text)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:—-") + "…"


def derive_subject(top: Article, others: int, kind: EditionKind = EditionKind.DAILY) -> str:
    """``"<top headline> and N more stories"`` (or ``"Breaking: ..."``), within SUBJECT_MAX."""
    if kind is EditionKind.BREAKING:
        return _trim(f"Breaking: {one_line(top.headline)}", SUBJECT_MAX)
    if others == 0:
        return _trim(top.headline, SUBJECT_MAX)
    tail = f" and {plural(others, 'more story', 'more stories')}"
    return _trim(top.headline, SUBJECT_MAX - len(tail)) + tail


def derive_preheader(articles: list[Article]) -> str:
    """The inbox preview line: standfirsts in reading order, cut at PREHEADER_MAX."""
    parts: list[str] = []
    for article in articles:
        text = one_line(article.standfirst) or one_line(article.headline)
        if text:
            parts.append(text)
        if sum(len(p) + 1 for p in parts) >= PREHEADER_MAX:
            break
    return _trim(" ".join(parts), PREHEADER_MAX)


def machine_intro(
    count: int,
    kind: EditionKind,
    *,
    site_name: str,
    since: datetime,
    now: datetime,
    zone: ZoneInfo,
) -> str:
    """The builder's own intro line, naming the article window as a reader would.

    ``"3 stories from <site> since 06:30 today."``, or, when the window began on
    another day, ``"... since Tuesday 24 November."``.
    """
    if kind is EditionKind.BREAKING:
        return f"Breaking news from {site_name}."
    start, today = since.astimezone(zone), now.astimezone(zone)
    if start.date() == today.date():
        when = f"{start:%H:%M} today"
    else:
        when = f"{start:%A} {start.day} {start:%B}"
        when += f" {start.year}" if start.year != today.year else ""
    return f"{plural(count, 'story', 'stories')} from {site_name} since {when}."


def default_title(kind: EditionKind, local: datetime) -> str:
    day = f"{local:%A} {local.day} {local:%B %Y}"
    if kind is EditionKind.BREAKING:
        return f"Breaking News — {day}"
    part = "Morning" if local.hour < 12 else "Afternoon" if local.hour < 18 else "Evening"
    return f"The {part} Briefing — {day}"


def clean_note(text: str, field: str = "intro") -> str:
    """An editor's note as short plain paragraphs (blank-line separated, each on one line).

    Control and bidi-override characters are dropped; HTML is not interpreted
    (the templates escape it), URLs stay plain text. Raises :class:`InputError`
    naming ``field`` when the note is empty or longer than INTRO_MAX.
    """
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    paragraphs = [one_line(p) for p in re.split(r"\n\s*\n", text)]
    note = "\n\n".join(p for p in paragraphs if p)
    if not note:
        raise InputError("must not be empty", field=field)
    if len(note) > INTRO_MAX:
        raise InputError(f"is {len(note)} characters; keep it under {INTRO_MAX}", field=field)
    return note


def variant_lines(
    edition: Edition, top: Article, sections: list[Section], *, site_name: str, zone: ZoneInfo
) -> tuple[str, str, str]:
    """Subject, preheader and intro for a variant holding ``top`` and ``sections``.

    The lines the builder wrote (``edition.generated``) are written again from
    the variant's own stories, so a reader is not promised a story their topics
    left out; lines an editor wrote are kept as written.
    """
    everything = edition.articles()
    mine = [top, *(a for s in sections for a in s.articles)]
    subject, preheader, intro = edition.subject, edition.preheader, edition.intro
    if [a.id for a in mine] == [a.id for a in everything]:
        return subject, preheader, intro
    if "subject" in edition.generated:
        subject = derive_subject(top, len(mine) - 1, edition.kind)
    if "preheader" in edition.generated:
        preheader = derive_preheader(mine)
    if "intro" in edition.generated and edition.window_start is not None:
        intro = machine_intro(
            len(mine),
            edition.kind,
            site_name=site_name,
            since=edition.window_start,
            now=edition.created_at,
            zone=zone,
        )
    return subject, preheader, intro
