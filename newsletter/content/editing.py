"""An editor's hand on an edition: edit its lines and stories, delete a draft, duplicate one.

Only a draft or a scheduled edition may change; a sending, paused, sent or
cancelled one is history and refuses, saying why. Every edit bumps the
edition's ``revision``, so a render cached for the old content is never served.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.content.articles import get_articles
from newsletter.content.editions import arrange, get_edition, save_edition, store_new
from newsletter.content.lines import clean_note, derive_preheader, derive_subject, machine_intro
from newsletter.content.models import Article, Edition, EditionKind, EditionStatus, GeneratedLine
from newsletter.core.errors import InputError, StateError
from newsletter.core.schema import deliveries, editions
from newsletter.core.text import one_line, single_line
from newsletter.core.times import zone_info

__all__ = ["EDITABLE", "delete_edition", "duplicate_edition", "edit_edition"]

EDITABLE = frozenset({EditionStatus.DRAFT, EditionStatus.SCHEDULED})


def _editable(edition: Edition, action: str) -> None:
    if edition.status not in EDITABLE:
        raise StateError(
            f"edition {edition.id} is {edition.status.value}; only a draft or a scheduled "
            f"edition can be {action}"
        )


def _reorder(
    order: list[Article],
    *,
    remove: Sequence[str],
    add: Sequence[Article],
    moves: Sequence[tuple[str, int]],
    lead: str | None,
) -> list[Article]:
    ids = [a.id for a in order]
    for article_id in remove:
        if article_id not in ids:
            raise InputError(f"article {article_id!r} is not in this edition", field="remove")
    order = [a for a in order if a.id not in set(remove)]
    for article in add:
        if any(a.id == article.id for a in order):
            raise InputError(f"article {article.id!r} is already in this edition", field="add")
        order.append(article)
    for article_id, position in [*moves, *([(lead, 1)] if lead else [])]:
        found = next((a for a in order if a.id == article_id), None)
        if found is None:
            field = "lead" if article_id == lead else "move"
            raise InputError(f"article {article_id!r} is not in this edition", field=field)
        if not 1 <= position <= len(order):
            raise InputError(f"position {position} is outside 1..{len(order)}", field="move")
        order.remove(found)
        order.insert(position - 1, found)
    return order


def edit_edition(
    conn: Connection,
    edition_id: str,
    *,
    site_name: str,
    timezone: str,
    subject: str | None = None,
    preheader: str | None = None,
    intro: str | None = None,
    lead: str | None = None,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    moves: Sequence[tuple[str, int]] = (),
) -> Edition:
    """Change a draft or scheduled edition and return it; positions count from 1 (the lead).

    Lines given are kept as written; lines the builder wrote are written again
    for the new stories. Raises :class:`StateError` for an edition that is not
    editable or would be left empty (or, for breaking news, with more than one
    story), :class:`InputError` for an unknown story or position.
    """
    edition = get_edition(conn, edition_id)
    _editable(edition, "edited")
    order = _reorder(
        edition.articles(), remove=remove, add=get_articles(conn, add), moves=moves, lead=lead
    )
    if not order:
        raise StateError(f"edition {edition.id} would have no story left")
    if edition.kind is EditionKind.BREAKING and len(order) != 1:
        raise StateError(f"breaking edition {edition.id} carries exactly one story")
    top, rest = order[0], order[1:]
    generated: list[GeneratedLine] = list(edition.generated)
    values: dict[str, object] = {"top_story": top, "sections": arrange(top, rest)}
    for line, given in (("subject", subject), ("preheader", preheader)):
        if given is not None:
            text = one_line(single_line(given, line) if line == "subject" else given)
            if not text:
                raise InputError("must not be empty", field=line)
            values[line] = text
            generated = [g for g in generated if g != line]
    if intro is not None:
        values["intro"] = clean_note(intro)
        generated = [g for g in generated if g != "intro"]
    if "subject" in generated:
        values["subject"] = derive_subject(top, len(rest), edition.kind)
    if "preheader" in generated:
        values["preheader"] = derive_preheader(order)
    if "intro" in generated and edition.window_start is not None:
        values["intro"] = machine_intro(
            len(order),
            edition.kind,
            site_name=site_name,
            since=edition.window_start,
            now=edition.created_at,
            zone=zone_info(timezone),
        )
    values["generated"] = generated
    values["revision"] = edition.revision + 1
    return save_edition(conn, edition.model_copy(update=values))


def delete_edition(conn: Connection, edition_id: str) -> None:
    """Delete a draft that never went out; :class:`StateError` for anything else."""
    edition = get_edition(conn, edition_id)
    if edition.status is not EditionStatus.DRAFT:
        raise StateError(
            f"edition {edition.id} is {edition.status.value}; only a draft can be deleted"
        )
    has_rows = conn.execute(
        sa.select(deliveries.c.edition_id).where(deliveries.c.edition_id == edition.id).limit(1)
    ).first()
    if has_rows is not None:
        raise StateError(f"edition {edition.id} has delivery records; it cannot be deleted")
    conn.execute(editions.delete().where(editions.c.id == edition.id))


def duplicate_edition(
    conn: Connection, edition_id: str, *, now: datetime, timezone: str
) -> Edition:
    """A new draft with the same stories and lines as ``edition_id`` (of any status)."""
    source = get_edition(conn, edition_id)
    copy = source.model_copy(
        update={
            "id": "pending",
            "status": EditionStatus.DRAFT,
            "status_reason": None,
            "scheduled_at": None,
            "sent_at": None,
            "created_at": now,
            "revision": 0,
        }
    )
    return store_new(conn, copy, timezone=timezone)
