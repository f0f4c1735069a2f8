"""Editions: pick the articles, order them behind a top story, name it, and store it.

An edition is a snapshot: it holds copies of its articles, so re-importing or
editing an article later never changes an edition that was built (or sent).
The mutable parts of an edition (status, reason, scheduled and sent times)
live in their own columns and are the truth over the stored snapshot.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from newsletter.content.articles import get_articles, list_articles
from newsletter.content.lines import (
    clean_note,
    default_title,
    derive_preheader,
    derive_subject,
    machine_intro,
)
from newsletter.content.models import (
    Article,
    Edition,
    EditionKind,
    EditionStatus,
    GeneratedLine,
    Section,
)
from newsletter.core.errors import (
    InputError,
    NotFoundError,
    StateError,
)
from newsletter.core.newsletters import DEFAULT_NEWSLETTER_ID
from newsletter.core.schema import editions as editions_table
from newsletter.core.text import one_line, single_line
from newsletter.core.times import zone_info
from newsletter.core.topics import normalise_topic

__all__ = [
    "DEFAULT_WINDOW",
    "MAX_ARTICLES",
    "SECTION_ORDER",
    "arrange",
    "build_edition",
    "choose_top_story",
    "get_edition",
    "latest_edition",
    "list_editions",
    "order_sections",
    "save_edition",
    "set_status",
    "store_new",
]

DEFAULT_WINDOW = timedelta(hours=24)
MAX_ARTICLES = 30  # beyond this a digest passes Gmail's 100 KB clipping point

# The portal's running order; sections it does not know follow, alphabetically.
SECTION_ORDER = (
    "UK",
    "World",
    "Politics",
    "Crime",
    "Business",
    "Money",
    "Health",
    "Science",
    "Technology",
    "Environment",
    "Education",
    "Sport",
    "Culture",
    "Entertainment",
    "Lifestyle",
    "Travel",
    "Opinion",
)
_RANK = {normalise_topic(name): rank for rank, name in enumerate(SECTION_ORDER)}

# A sent or cancelled edition is history; these are the only ways out of each.
_FINAL_EXITS: dict[EditionStatus, frozenset[EditionStatus]] = {
    EditionStatus.SENT: frozenset({EditionStatus.SENT, EditionStatus.SENDING}),
    EditionStatus.CANCELLED: frozenset({EditionStatus.CANCELLED}),
}


def _newest_key(article: Article) -> tuple[float, str]:
    # newest first; the id breaks ties so the same input always gives the same order
    return (-article.published_at.timestamp(), article.id)


def choose_top_story(articles: Collection[Article]) -> Article | None:
    """The lead: the newest breaking story, else the newest with an image, else the newest."""
    ordered = sorted(articles, key=_newest_key)
    for wanted in (lambda a: a.breaking, lambda a: a.image is not None, lambda a: True):
        for article in ordered:
            if wanted(article):
                return article
    return None


def order_sections(articles: Collection[Article]) -> list[Section]:
    """Group articles by section, in the portal's running order, newest first within each."""
    groups: dict[str, list[Article]] = {}
    names: dict[str, str] = {}
    for article in sorted(articles, key=_newest_key):
        key = normalise_topic(article.section)
        groups.setdefault(key, []).append(article)
        names.setdefault(key, article.section)
    keys = sorted(groups, key=lambda k: (_RANK.get(k, len(_RANK)), k))
    return [Section(name=names[k], articles=groups[k]) for k in keys]


def _override(value: str | None, name: str, *, header: bool) -> str | None:
    if value is None:
        return None
    if header:
        single_line(value, name)
    value = one_line(value)
    if not value:
        raise InputError("must not be empty", field=name)
    return value


def _window_text(since: datetime, topics: Collection[str], zone: ZoneInfo) -> str:
    text = f"since {since.astimezone(zone):%Y-%m-%d %H:%M %Z}"
    if topics:
        text += " matching topics " + ", ".join(sorted(topics))
    return text


def _pick(
    conn: Connection,
    *,
    now: datetime,
    since: datetime,
    topics: frozenset[str],
    kind: EditionKind,
    article_ids: Collection[str] | None,
    zone: ZoneInfo,
) -> list[Article]:
    if article_ids:
        picked = get_articles(conn, article_ids)
        if kind is EditionKind.BREAKING and len(picked) != 1:
            raise InputError(
                f"a breaking edition carries exactly one article, {len(picked)} were given",
                field="article",
            )
        return picked
    found = list_articles(conn, since=since, topics=topics, until=now)
    if kind is EditionKind.BREAKING:
        found = [a for a in found if a.breaking][:1]
        if not found:
            raise StateError(f"no breaking articles published {_window_text(since, topics, zone)}")
        return found
    if not found:
        raise StateError(f"no articles published {_window_text(since, topics, zone)}")
    return sorted(found, key=_newest_key)[:MAX_ARTICLES]


def _next_id(conn: Connection, prefix: str) -> str:
    taken = set(
        conn.execute(
            sa.select(editions_table.c.id).where(editions_table.c.id.like(f"{prefix}%"))
        ).scalars()
    )
    if prefix not in taken:
        return prefix
    n = 2
    while f"{prefix}-{n}" in taken:
        n += 1
    return f"{prefix}-{n}"


def _store(conn: Connection, edition: Edition, prefix: str) -> Edition:
    # Two builders on PostgreSQL may pick the same id; the savepoint lets the
    # loser retry with the next free one instead of aborting the transaction.
    for _attempt in range(20):
        edition = edition.model_copy(update={"id": _next_id(conn, prefix)})
        try:
            with conn.begin_nested():
                conn.execute(
                    editions_table.insert().values(
                        id=edition.id,
                        kind=edition.kind.value,
                        status=edition.status.value,
                        title=edition.title,
                        subject=edition.subject,
                        created_at=edition.created_at,
                        scheduled_at=edition.scheduled_at,
                        sent_at=edition.sent_at,
                        status_reason=edition.status_reason,
                        data=edition.model_dump(mode="json"),
                        newsletter_id=edition.newsletter,
                    )
                )
        except IntegrityError:
            continue
        return edition
    raise StateError(f"could not find a free edition id for {prefix!r}")


def save_edition(conn: Connection, edition: Edition) -> Edition:
    """Write ``edition``'s content (not its status or times) over the stored one; return it."""
    conn.execute(
        editions_table.update()
        .where(editions_table.c.id == edition.id)
        .values(
            title=edition.title,
            subject=edition.subject,
            data=edition.model_dump(mode="json"),
        )
    )
    return get_edition(conn, edition.id)


def store_new(conn: Connection, edition: Edition, *, timezone: str) -> Edition:
    """Store ``edition`` as a new draft under a fresh id named by its creation date."""
    local = edition.created_at.astimezone(zone_info(timezone))
    return _store(conn, edition, _prefix(local, edition))


def _prefix(local: datetime, edition: Edition) -> str:
    """``2026-03-01-daily``; another newsletter's: ``2026-03-01-weekly-daily``."""
    if edition.newsletter == DEFAULT_NEWSLETTER_ID:
        return f"{local:%Y-%m-%d}-{edition.kind.value}"
    return f"{local:%Y-%m-%d}-{edition.newsletter}-{edition.kind.value}"


def arrange(lead: Article, articles: Collection[Article]) -> list[Section]:
    """The sections after ``lead``: ``articles`` grouped by section in the order given.

    Sections follow the first appearance of each, and articles keep their order
    within a section: an editor's order survives, and an order from
    :func:`order_sections` is unchanged by it.
    """
    groups: dict[str, list[Article]] = {}
    names: dict[str, str] = {}
    for article in articles:
        if article.id == lead.id:
            continue
        key = normalise_topic(article.section)
        groups.setdefault(key, []).append(article)
        names.setdefault(key, article.section)
    return [Section(name=names[k], articles=v) for k, v in groups.items()]


def _lead(conn: Connection, picked: list[Article], lead: str) -> Article:
    found = next((a for a in picked if a.id == lead), None)
    return found if found is not None else get_articles(conn, [lead])[0]


def build_edition(
    conn: Connection,
    *,
    now: datetime,
    since: datetime | None = None,
    topics: Collection[str] = (),
    title: str | None = None,
    subject: str | None = None,
    preheader: str | None = None,
    intro: str | None = None,
    lead: str | None = None,
    kind: EditionKind = EditionKind.DAILY,
    article_ids: Collection[str] | None = None,
    site_name: str,
    timezone: str = "Europe/London",
    allow_repeats: bool = False,
    newsletter: str = DEFAULT_NEWSLETTER_ID,
) -> Edition:
    """Build, store (as a draft) and return an edition of the articles that match.

    Daily: every article published in ``[since, now]`` (default the last 24 hours)
    sharing a topic with ``topics`` (empty = all), up to MAX_ARTICLES, in the
    portal's running order; or exactly ``article_ids``, in the order given.
    ``lead`` picks the top story (added if it is not among them); else the newest
    breaking story leads, else the newest with an image. ``intro`` is an
    editor's note (see :func:`clean_note`). Breaking: one article, the newest
    breaking one or the one id given. Raises :class:`StateError` when nothing
    matches, :class:`NotFoundError` for an unknown id, :class:`InputError` for an
    empty or multi-line override. It belongs to ``newsletter`` (an id checked by the caller).
    """
    if now.tzinfo is None or (since is not None and since.tzinfo is None):
        raise ValueError("build_edition needs aware datetimes")
    zone = zone_info(timezone)
    since = since if since is not None else now - DEFAULT_WINDOW
    wanted = frozenset(normalise_topic(t) for t in topics if normalise_topic(t))
    title = _override(title, "title", header=False)
    subject = _override(subject, "subject", header=True)
    preheader = _override(preheader, "preheader", header=False)
    note = clean_note(intro) if intro is not None else None

    picked = _pick(
        conn,
        now=now,
        since=since,
        topics=wanted,
        kind=kind,
        article_ids=article_ids,
        zone=zone,
    )
    chosen = choose_top_story(picked) if lead is None else _lead(conn, picked, lead)
    assert chosen is not None  # _pick never returns an empty list
    top = chosen
    rest = [a for a in picked if a.id != top.id]
    sections = arrange(top, rest) if article_ids else order_sections(rest)
    reading_order = [top, *(a for s in sections for a in s.articles)]
    local = now.astimezone(zone)
    given: dict[GeneratedLine, str | None] = {
        "title": title,
        "subject": subject,
        "preheader": preheader,
    }
    generated: list[GeneratedLine] = [line for line, value in given.items() if not value]
    if note is None:
        generated.append("intro")

    edition = Edition(
        id="pending",
        kind=kind,
        title=title or default_title(kind, local),
        subject=subject or derive_subject(top, len(rest), kind),
        preheader=preheader or derive_preheader(reading_order),
        intro=note
        or machine_intro(
            len(reading_order), kind, site_name=site_name, since=since, now=now, zone=zone
        ),
        top_story=top,
        sections=sections,
        topics=sorted(wanted),
        generated=generated,
        window_start=since,
        created_at=now,
        allow_repeats=allow_repeats,
        newsletter=newsletter,
    )
    return _store(conn, edition, _prefix(local, edition))


def _from_row(row: sa.Row[tuple[object, ...]]) -> Edition:
    edition = Edition.model_validate(row.data)
    return edition.model_copy(
        update={
            "status": EditionStatus(row.status),
            "status_reason": row.status_reason,
            "scheduled_at": row.scheduled_at,
            "sent_at": row.sent_at,
            "newsletter": row.newsletter_id,
        }
    )


def _select() -> sa.Select[tuple[object, ...]]:
    t = editions_table.c
    return sa.select(
        t.id, t.status, t.status_reason, t.scheduled_at, t.sent_at, t.data, t.newsletter_id
    )


def get_edition(conn: Connection, edition_id: str) -> Edition:
    """The stored edition with this id; :class:`NotFoundError` when there is none."""
    row = conn.execute(_select().where(editions_table.c.id == edition_id)).one_or_none()
    if row is None:
        raise NotFoundError(f"no edition with id {edition_id!r}")
    return _from_row(row)


def list_editions(conn: Connection) -> list[Edition]:
    """Every stored edition, newest first."""
    query = _select().order_by(editions_table.c.created_at.desc(), editions_table.c.id.desc())
    return [_from_row(row) for row in conn.execute(query)]


def latest_edition(conn: Connection) -> Edition:
    """The most recently built edition; :class:`NotFoundError` when none was built yet."""
    query = (
        _select().order_by(editions_table.c.created_at.desc(), editions_table.c.id.desc()).limit(1)
    )
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFoundError("no edition has been built yet (run: newsletter edition build)")
    return _from_row(row)


def set_status(
    conn: Connection,
    edition_id: str,
    status: EditionStatus,
    reason: str | None = None,
    *,
    now: datetime,
    scheduled_at: datetime | None = None,
) -> Edition:
    """Move an edition to ``status`` (with an optional one-line reason) and return it.

    ``sent`` stamps ``sent_at`` with ``now``; ``scheduled_at`` is recorded when given.
    A cancelled edition stays cancelled and a sent one can only be sent (resumed)
    again: anything else raises :class:`StateError`.
    """
    current = get_edition(conn, edition_id)
    allowed = _FINAL_EXITS.get(current.status)
    if allowed is not None and status not in allowed:
        raise StateError(
            f"edition {edition_id!r} is {current.status.value}; it cannot become {status.value}"
        )
    values: dict[str, object] = {
        "status": status.value,
        "status_reason": one_line(reason) if reason else None,
    }
    if status is EditionStatus.SENT:
        values["sent_at"] = now
    if scheduled_at is not None:
        values["scheduled_at"] = scheduled_at
    conn.execute(editions_table.update().where(editions_table.c.id == edition_id).values(**values))
    return get_edition(conn, edition_id)
