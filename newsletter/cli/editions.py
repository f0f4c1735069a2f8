"""``newsletter edition ...``: build a digest (daily or breaking) from stored articles."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from newsletter.cli.common import ArticleTopics, err, get_engine, get_settings, out, plural
from newsletter.cli.tables import compact_table, print_table, rest_of_line
from newsletter.content.editions import build_edition, list_editions
from newsletter.content.models import EditionKind
from newsletter.core.db import utcnow
from newsletter.core.times import parse_since, zone_info

__all__ = [
    "app",
    "build",
    "list_command",
]

app = typer.Typer(
    help="Build editions (digests) from the stored articles and list them.",
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
        typer.Option("--article", metavar="ID", help="Exactly these article ids (repeatable)."),
    ] = None,
) -> None:
    """Build and store an edition as a draft; print only its id on stdout.

    A daily edition takes every article in the window (and topics) behind a top
    story; a breaking one carries one article, the newest breaking one or --article.

    Example:

        newsletter edition build --since 24h --topic crime --topic politics
    """
    settings = get_settings()
    now = utcnow()
    with get_engine().begin() as conn:
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
            site_name=settings.site_name,
            timezone=settings.timezone,
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
    extras = wide or out.width >= 120
    table = compact_table(plural(len(editions), "edition"))
    ident = max((len(e.id) for e in editions), default=2)
    table.add_column("ID", no_wrap=True, min_width=ident)
    if extras:
        table.add_column("Kind", no_wrap=True)
    status = max((len(e.status.value) for e in editions), default=6)
    table.add_column("Status", no_wrap=True, min_width=status)
    table.add_column("Created", no_wrap=True, min_width=16)
    if extras:
        table.add_column("Articles", no_wrap=True, justify="right")
    if wide:
        table.add_column("Subject", no_wrap=True)
    else:
        fixed = [ident, max(status, 6), 16] + ([8, 8] if extras else [])
        subject = rest_of_line(out, *fixed)
        table.add_column("Subject", no_wrap=True, overflow="ellipsis", width=subject)
    for edition in editions:
        cells = [edition.id]
        if extras:
            cells.append(edition.kind.value)
        cells += [edition.status.value, f"{edition.created_at.astimezone(zone):%Y-%m-%d %H:%M}"]
        if extras:
            cells.append(str(len(edition.articles())))
        cells.append(edition.subject)
        table.add_row(*cells)
    print_table(out, table, wide=wide)
