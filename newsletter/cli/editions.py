"""``newsletter edition ...``: build a digest (daily or breaking) from stored articles."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli.common import err, get_engine, get_settings, out
from newsletter.db import utcnow
from newsletter.durations import parse_since, zone_info
from newsletter.editions import build_edition, list_editions
from newsletter.models import EditionKind

__all__ = ["app"]

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
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            metavar="TOPIC",
            help="Only articles with this topic or section (repeatable).",
        ),
    ] = None,
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
    count = len(edition.articles())
    noun = "article" if count == 1 else "articles"
    err.print(
        f"built {edition.kind.value} edition, {count} {noun}: {edition.subject}", markup=False
    )
    typer.echo(edition.id)


@app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List stored editions, newest first, with their status.

    Example:

        newsletter edition list --json
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
    table = Table(title=f"{len(editions)} editions", title_justify="left")
    for name in ("ID", "Kind", "Status", "Created", "Articles"):
        table.add_column(name, no_wrap=True)
    table.add_column("Subject", overflow="fold")
    for edition in editions:
        table.add_row(
            edition.id,
            edition.kind.value,
            edition.status.value,
            f"{edition.created_at.astimezone(zone):%Y-%m-%d %H:%M}",
            str(len(edition.articles())),
            edition.subject,
        )
    out.print(table, markup=False)
