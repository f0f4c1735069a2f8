"""``newsletter articles ...``: import articles from files, folders and feeds; list them."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from newsletter.articles import list_articles, upsert_articles
from newsletter.cli.common import get_engine, get_settings, out
from newsletter.db import utcnow
from newsletter.durations import parse_since, zone_info
from newsletter.loaders import load_many

__all__ = ["app"]

app = typer.Typer(
    help="Import articles (JSON, YAML, folders, RSS/Atom feeds) and list the stored ones.",
    no_args_is_help=True,
)


@app.command("import")
def import_articles(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH_OR_URL...",
            help="JSON or YAML files, folders of them, RSS/Atom feed files or http(s) URLs.",
            show_default=False,
        ),
    ],
) -> None:
    """Import articles; every source is checked before anything is stored.

    Re-importing an article (same id) updates it and never duplicates it; the
    counts of inserted, updated and unchanged articles are printed.

    Example:

    \b
        newsletter articles import examples/articles
        newsletter articles import https://news.example.com/feed.xml
    """
    articles = load_many(sources)
    with get_engine().begin() as conn:
        result = upsert_articles(conn, articles, utcnow())
    out.print(f"imported {result.summary()}", markup=False)


@app.command("list")
def list_command(
    since: Annotated[
        str | None,
        typer.Option(
            metavar="SPAN|DATE",
            help="Only articles published since: 90m, 24h, 7d, or an ISO date/time.",
        ),
    ] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            metavar="TOPIC",
            help="Only articles with this topic or section (repeatable).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List stored articles, newest first.

    Example:

        newsletter articles list --since 24h --topic crime
    """
    settings = get_settings()
    start = parse_since(since, utcnow(), settings.timezone) if since else None
    with get_engine().connect() as conn:
        found = list_articles(conn, since=start, topics=topic or ())
    if as_json:
        typer.echo(json.dumps([a.model_dump(mode="json") for a in found], indent=2))
        return
    zone = zone_info(settings.timezone)
    table = Table(title=f"{len(found)} articles", title_justify="left")
    for name in ("Published", "ID", "Section"):
        table.add_column(name, no_wrap=True)
    table.add_column("Headline", overflow="fold", ratio=3)
    table.add_column("Topics", overflow="fold", ratio=1)
    for article in found:
        flag = "BREAKING " if article.breaking else ""
        table.add_row(
            f"{article.published_at.astimezone(zone):%Y-%m-%d %H:%M}",
            article.id,
            article.section,
            flag + article.headline,
            ", ".join(article.topics),
        )
    out.print(table, markup=False)
