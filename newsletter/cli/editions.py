"""``newsletter edition ...``: build, show, edit, delete and duplicate digests."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from newsletter.cli.common import (
    ArticleTopics,
    err,
    get_engine,
    get_settings,
    out,
    plural,
    warn_unknown_topics,
)
from newsletter.cli.newsletters import NewsletterOption
from newsletter.cli.prompts import YES_HELP, confirm_or_stop
from newsletter.cli.tables import Column, print_list, terminal_width
from newsletter.content.states import EditionKind
from newsletter.core.errors import InputError
from newsletter.core.times import parse_since, zone_info

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from newsletter.content.models import Edition

__all__ = [
    "app",
    "build",
    "delete_command",
    "duplicate_command",
    "edit_command",
    "list_command",
    "show_command",
]

app = typer.Typer(
    help="Build, list, show, edit, delete and duplicate editions (digests).",
    no_args_is_help=True,
)


@app.command("build")
def build(
    since: Annotated[
        str,
        typer.Option(
            metavar="SPAN|DATE", help="Articles published since: 90m, 24h, 7d, or an ISO date/time."
        ),
    ] = "24h",
    topic: ArticleTopics = None,
    title: Annotated[
        str | None, typer.Option(metavar="TEXT", help="The title; default by date.")
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="The subject line; default from the top story."),
    ] = None,
    preheader: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="The inbox preview line; default from standfirsts."),
    ] = None,
    kind: Annotated[
        EditionKind, typer.Option(case_sensitive=False, help="daily or breaking.")
    ] = EditionKind.DAILY,
    article: Annotated[
        list[str] | None,
        typer.Option(
            "--article", metavar="ID", help="Exactly these article ids, in this order (repeatable)."
        ),
    ] = None,
    lead: Annotated[
        str | None, typer.Option("--lead", metavar="ID", help="The top story (an article id).")
    ] = None,
    intro: Annotated[
        str | None,
        typer.Option(
            "--intro",
            metavar="TEXT",
            help="An editor's note under the masthead (blank lines part paragraphs).",
        ),
    ] = None,
    intro_file: Annotated[
        Path | None,
        typer.Option("--intro-file", metavar="FILE", help="The editor's note, read from FILE."),
    ] = None,
    allow_repeats: Annotated[
        bool,
        typer.Option(
            "--allow-repeats",
            help="Carry stories readers were already sent lately (e.g. a weekly round-up).",
        ),
    ] = False,
    newsletter: NewsletterOption = None,
) -> None:
    """Build and store an edition as a draft; print only its id on stdout.

    A daily edition takes every article in the window (and topics) behind a top
    story, or exactly the --article ids in the order given; a breaking one
    carries one article, the newest breaking one or --article. --lead picks the
    top story; --title heads the email. A reader is not sent a story again within
    NEWSLETTER_REPEAT_WINDOW (default 7d) unless --allow-repeats.

    Example:

        newsletter edition build --article a1 --article a2 --lead a2 --intro "Good morning."
    """
    from newsletter.content.editions import build_edition
    from newsletter.core.db import utcnow

    settings = get_settings()
    now = utcnow()
    note = _note(intro, intro_file)
    with get_engine().begin() as conn:
        warn_unknown_topics(conn, topic)
        edition = build_edition(
            conn,
            now=now,
            since=parse_since(since, now, settings.timezone),
            topics=topic or (),
            title=title,
            subject=subject,
            preheader=preheader,
            kind=kind,
            article_ids=article or None,
            lead=lead,
            intro=note,
            site_name=settings.site_name,
            timezone=settings.timezone,
            allow_repeats=allow_repeats,
            newsletter=settings.newsletter_list.resolve([newsletter] if newsletter else None)[0],
        )
    articles = plural(len(edition.articles()), "article")
    err.print(f"built {edition.kind.value} edition, {articles}: {edition.subject}", markup=False)
    typer.echo(edition.id)


@app.command("list")
def list_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (with article ids) instead of a table.")
    ] = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="Every column in full, however narrow the terminal.")
    ] = False,
) -> None:
    """List stored editions, newest first, with their status (one line each).

    Subjects too long for the terminal end in "…"; the kind and article count
    are shown from 120 columns up, or with --wide.

    Example:

        newsletter edition list --wide
    """
    from newsletter.content.editions import list_editions

    settings = get_settings()
    with get_engine().connect() as conn:
        editions = list_editions(conn)
    if as_json:
        rows = [
            {
                **e.model_dump(
                    mode="json",
                    include={
                        "id",
                        "kind",
                        "status",
                        "status_reason",
                        "title",
                        "subject",
                        "preheader",
                        "topics",
                        "created_at",
                        "scheduled_at",
                        "sent_at",
                    },
                ),
                "article_ids": [a.id for a in e.articles()],
            }
            for e in editions
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    zone = zone_info(settings.timezone)
    # the kind is usually in the id already; the count is nice to have: both need room
    room = terminal_width()
    extras = wide or room is None or room >= 120
    columns = [Column("id", key=True), Column("kind"), Column("status"), Column("created")]
    columns += [Column("articles", right=True), Column("subject", flex=True)]
    lines = [
        [
            e.id,
            e.kind.value,
            e.status.value,
            f"{e.created_at.astimezone(zone):%Y-%m-%d %H:%M}",
            str(len(e.articles())),
            e.subject,
        ]
        for e in editions
    ]
    if not extras:
        columns = [c for c in columns if c.name not in ("kind", "articles")]
        lines = [[r[0], r[2], r[3], r[5]] for r in lines]
    print_list(columns, lines, plural(len(editions), "edition"), wide=wide)


def _note(intro: str | None, intro_file: Path | None) -> str | None:
    if intro is not None and intro_file is not None:
        raise InputError("give --intro or --intro-file, not both", field="--intro-file")
    if intro_file is None:
        return intro
    try:
        return intro_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise InputError(f"cannot read {intro_file} ({reason})", field="--intro-file") from None


def _details(conn: Connection, edition: Edition) -> dict[str, object]:
    """Everything `edition show` tells, as plain data."""
    from newsletter.delivery.compose import variant_counts
    from newsletter.scheduling.store import list_schedules

    counts = variant_counts(conn, edition)
    schedules = [s for s in list_schedules(conn) if s.edition_id == edition.id]
    lead = edition.top_story
    return {
        "id": edition.id,
        "kind": edition.kind.value,
        "status": edition.status.value,
        "status_reason": edition.status_reason,
        "title": edition.title,
        "subject": edition.subject,
        "preheader": edition.preheader,
        "intro": edition.intro,
        "written_by_builder": list(edition.generated),
        "lead": lead.id if lead else None,
        "articles": [
            {"position": n, "id": a.id, "section": a.section, "headline": a.headline}
            for n, a in enumerate(edition.articles(), start=1)
        ],
        "variants": [{"variant": k, "recipients": v} for k, v in sorted(counts.items())],
        "recipients": sum(counts.values()),
        "schedules": [
            {"id": s.id, "status": s.status.value, "run_at": s.run_at, "timing": s.describe()}
            for s in schedules
        ],
        "created_at": edition.created_at,
        "scheduled_at": edition.scheduled_at,
        "sent_at": edition.sent_at,
        "revision": edition.revision,
    }


@app.command("show")
def show_command(
    edition_id: Annotated[str, typer.Argument(metavar="EDITION", help="The edition id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show an edition: its lines, lead, stories in order, variants and who gets each.

    Example:

        newsletter edition show 2026-11-26-daily --json
    """
    from newsletter.content.editions import get_edition

    settings = get_settings()
    with get_engine().connect() as conn:
        edition = get_edition(conn, edition_id)
        data = _details(conn, edition)
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=_json_value))
        return
    zone = zone_info(settings.timezone)
    when = f"{edition.created_at.astimezone(zone):%Y-%m-%d %H:%M}"
    out.print(f"{edition.id}  ({edition.kind.value}, {edition.status.value}, built {when})")
    if edition.status_reason:
        out.print(f"reason:    {edition.status_reason}", markup=False)
    for label, key in (("title", "title"), ("subject", "subject"), ("preheader", "preheader")):
        out.print(f"{label + ':':<10} {data[key]}", markup=False)
    out.print("intro:", markup=False)
    for paragraph in edition.intro.split("\n\n"):
        out.print(f"  {paragraph}", markup=False)
    stories = [
        [f"{n}{'*' if n == 1 else ''}", a.id, a.section, a.headline]
        for n, a in enumerate(edition.articles(), start=1)
    ]
    columns = [
        Column("#", right=True),
        Column("id", key=True),
        Column("section"),
        Column("headline", flex=True),
    ]
    print_list(columns, stories, plural(len(stories), "story", "stories"))
    out.print("* the lead", markup=False)
    variants = data["variants"]
    assert isinstance(variants, list)
    recipients = plural(int(str(data["recipients"])), "recipient")
    out.print(f"variants: {len(variants)}, {recipients}", markup=False)
    for row in variants:
        out.print(f"  {row['variant']}: {row['recipients']:,}", markup=False)
    schedules = data["schedules"]
    assert isinstance(schedules, list)
    for s in schedules:
        out.print(f"schedule {s['id']} ({s['status']}): {s['timing']}", markup=False)


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _moves(values: list[str]) -> list[tuple[str, int]]:
    moves = []
    for value in values:
        article_id, _, position = value.rpartition(":")
        if not article_id or not position.isdigit():
            raise InputError(f"{value!r} is not ID:POSITION (e.g. story-3:1)", field="--move")
        moves.append((article_id, int(position)))
    return moves


@app.command("edit")
def edit_command(
    edition_id: Annotated[str, typer.Argument(metavar="EDITION", help="The edition id.")],
    subject: Annotated[str | None, typer.Option(metavar="TEXT", help="A new subject.")] = None,
    preheader: Annotated[
        str | None, typer.Option(metavar="TEXT", help="A new inbox preview line.")
    ] = None,
    intro: Annotated[str | None, typer.Option(metavar="TEXT", help="A new editor's note.")] = None,
    intro_file: Annotated[
        Path | None, typer.Option("--intro-file", metavar="FILE", help="The note, from FILE.")
    ] = None,
    lead: Annotated[str | None, typer.Option(metavar="ID", help="A new top story.")] = None,
    add: Annotated[
        list[str] | None, typer.Option("--add", metavar="ID", help="Add a story at the end.")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", metavar="ID", help="Take a story out.")
    ] = None,
    move: Annotated[
        list[str] | None,
        typer.Option("--move", metavar="ID:POSITION", help="Move a story; position 1 leads."),
    ] = None,
    listed: Annotated[
        bool | None,
        typer.Option("--list/--unlist", help="Show it in the public archive, or not (any status)."),
    ] = None,
) -> None:
    """Change a draft or scheduled edition; a sending or sent one refuses, saying why.

    Lines you give are kept as written; lines the builder wrote follow the new stories.
    --unlist keeps any edition out of the archive's list (its page still answers).

    Example:

        newsletter edition edit 2026-11-26-daily --remove story-4 --move story-7:1
    """
    from newsletter.content.editing import edit_edition
    from newsletter.content.editions import get_edition, save_edition

    settings = get_settings()
    changes = (subject, preheader, intro, intro_file, lead, add, remove, move)
    with get_engine().begin() as conn:
        if listed is not None and all(c is None for c in changes):
            edition = get_edition(conn, edition_id)
            save_edition(conn, edition.model_copy(update={"unlisted": not listed}))
            out.print(f"{edition.id}: {'listed' if listed else 'unlisted'}", markup=False)
            return
        edition = edit_edition(
            conn,
            edition_id,
            site_name=settings.site_name,
            timezone=settings.timezone,
            subject=subject,
            preheader=preheader,
            intro=_note(intro, intro_file),
            lead=lead,
            add=add or (),
            remove=remove or (),
            moves=_moves(move or []),
        )
        if listed is not None:
            edition = save_edition(conn, edition.model_copy(update={"unlisted": not listed}))
    stories = plural(len(edition.articles()), "story", "stories")
    out.print(f"edited {edition.id}: {stories}, lead {edition.articles()[0].id}", markup=False)
    out.print(f"subject: {edition.subject}", markup=False)


@app.command("delete")
def delete_command(
    edition_id: Annotated[str, typer.Argument(metavar="EDITION", help="The edition id.")],
    yes: Annotated[bool, typer.Option("--yes", help=YES_HELP)] = False,
) -> None:
    """Delete a draft (asks on a terminal); a scheduled or sent edition refuses.

    Example:

        newsletter edition delete 2026-11-26-daily-2 --yes
    """
    from newsletter.content.editing import delete_edition
    from newsletter.content.editions import get_edition

    with get_engine().connect() as conn:
        edition = get_edition(conn, edition_id)
    confirm_or_stop(f'Delete draft {edition.id} "{edition.subject}"?', yes=yes)
    with get_engine().begin() as conn:
        delete_edition(conn, edition_id)
    out.print(f"deleted {edition_id}", markup=False)


@app.command("duplicate")
def duplicate_command(
    edition_id: Annotated[str, typer.Argument(metavar="EDITION", help="The edition id.")],
) -> None:
    """Copy an edition (of any status) into a new draft; print the new id on stdout.

    Example:

        newsletter edition duplicate 2026-11-26-daily
    """
    from newsletter.content.editing import duplicate_edition
    from newsletter.core.db import utcnow

    settings = get_settings()
    with get_engine().begin() as conn:
        copy = duplicate_edition(conn, edition_id, now=utcnow(), timezone=settings.timezone)
    err.print(f"duplicated {edition_id} as a draft", markup=False)
    typer.echo(copy.id)
