"""``newsletter articles ...``: import articles from files, folders and feeds; list them."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from newsletter.cli.common import ArticleTopics, get_engine, get_settings, out, plural
from newsletter.cli.tables import Column, print_list
from newsletter.core.times import parse_since, zone_info

__all__ = [
    "app",
    "import_articles",
    "list_command",
]

app = typer.Typer(
    help="Import articles (JSON, YAML, folders, RSS/Atom feeds) and list the stored ones.",
    no_args_is_help=True,
)


@app.command("import")
def import_articles(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH_OR_URL",
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
    from newsletter.content.articles import upsert_articles
    from newsletter.content.loaders import load_many
    from newsletter.core.db import utcnow

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
    topic: ArticleTopics = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (every field) instead of a table.")
    ] = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="Also show ids and topics; nothing is cut short.")
    ] = False,
) -> None:
    """List stored articles, newest first: when, section and headline (one line each).

    Headlines too long for the terminal end in "…"; --wide adds the id (for
    `edition build --article`) and the topics, in full.

    Example:

        newsletter articles list --since 24h --topic crime --wide
    """
    from newsletter.content.articles import list_articles
    from newsletter.core.db import utcnow

    settings = get_settings()
    start = parse_since(since, utcnow(), settings.timezone) if since else None
    with get_engine().connect() as conn:
        found = list_articles(conn, since=start, topics=topic or ())
    if as_json:
        typer.echo(json.dumps([a.model_dump(mode="json") for a in found], indent=2))
        return
    zone = zone_info(settings.timezone)
    columns = [Column("published")]
    if wide:
        columns.append(Column("id", key=True))
    # one line per article: a headline cut with "…" reads better than one word per line
    columns += [Column("section"), Column("headline", flex=True)]
    if wide:
        columns.append(Column("topics"))
    rows = []
    for article in found:
        flag = "BREAKING: " if article.breaking else ""
        cells = [f"{article.published_at.astimezone(zone):%Y-%m-%d %H:%M}"]
        if wide:
            cells.append(article.id)
        cells += [article.section, flag + article.headline]
        if wide:
            cells.append(", ".join(article.topics))
        rows.append(cells)
    print_list(columns, rows, plural(len(found), "article"), wide=wide)
