"""Articles in the console: the stored articles, searched and filtered, and imports.

The list pages by keyset (:mod:`.article_list`); ticking stories and choosing
"Start an edition" opens the edition builder with them preselected. An import
reads an uploaded file (JSON, YAML, RSS/Atom, parsed from memory) or fetches a
feed URL, through the same loaders as ``newsletter articles import``, so its
messages are the command line's: a bad file stores nothing and shows one line
naming the file, the line and the field. A URL is fetched only from a public
address unless ``Settings.feed_allow_private`` allows private ones (SSRF).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.content.articles import ImportResult, known_topics, upsert_articles
from newsletter.content.loaders import display_source, load_bytes, load_url
from newsletter.content.models import Article
from newsletter.core.db import utcnow
from newsletter.core.errors import ArticleError, InputError
from newsletter.core.text import one_line
from newsletter.core.times import zone_info
from newsletter.web.admin.article_list import ArticleQuery, article_page, sections
from newsletter.web.admin.audit import record
from newsletter.web.admin.context import Visit, admin_of, render, view
from newsletter.web.admin.roles import Role

__all__ = ["article_query", "articles_page", "import_articles", "import_page", "routes"]

_KEEP = ("q", "section", "topic", "from", "to")


def _day(text: str, field: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError("not a date (YYYY-MM-DD)", field=field) from None


def article_query(request: Request, zone: str) -> ArticleQuery:
    """The list's query from ``?q=&section=&topic=&from=&to=&after=``; dates in ``zone``."""
    params = request.query_params
    tz = zone_info(zone)
    start, end = _day(params.get("from", ""), "from"), _day(params.get("to", ""), "to")
    return ArticleQuery(
        q=params.get("q", "")[:200],
        section=params.get("section", "")[:100],
        topic=params.get("topic", "")[:100],
        since=datetime.combine(start, time.min, tzinfo=tz) if start else None,
        until=datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz) if end else None,
        after=params.get("after", "")[:300],
    )


@view(Role.VIEWER)
async def articles_page(request: Request, visit: Visit) -> Response:
    """GET /admin/articles: newest first, 50 a page; search, filters, and picks for an edition."""
    ctx = admin_of(request)
    query = article_query(request, ctx.settings.timezone)

    def load() -> tuple[Any, list[str], dict[str, str]]:
        with ctx.engine.connect() as conn:
            found = article_page(conn, query), sections(conn), known_topics(conn)
            conn.rollback()
        return found

    page, all_sections, topics = await run_in_threadpool(load)
    params = request.query_params
    return render(
        request,
        "articles.html",
        visit.user,
        title="Articles",
        nav="articles",
        page=page,
        query=query,
        sections=all_sections,
        topics=topics,
        shown={k: params.get(k, "") for k in _KEEP},
        keep={k: params[k] for k in _KEEP if params.get(k)},
        zone=zone_info(ctx.settings.timezone),
    )


def _import_form(request: Request, visit: Visit, status: int = 200, **values: Any) -> Response:
    shown: dict[str, Any] = {"error": None, "result": None, "url": "", "source": ""}
    return render(
        request,
        "articles_import.html",
        visit.user,
        status,
        title="Import articles",
        nav="articles",
        **{**shown, **values},
    )


@view(Role.EDITOR)
async def import_page(request: Request, visit: Visit) -> Response:
    """GET /admin/articles/import: upload a file or give a feed URL."""
    return _import_form(request, visit)


def _upload_name(name: str) -> str:
    """The uploaded file's own name (no folders, no control characters), for messages."""
    base = PureWindowsPath(PurePosixPath(name).name).name
    cleaned = one_line("".join(c if c.isprintable() else " " for c in base))[:120]
    return cleaned or "upload"


@view(Role.EDITOR, upload=True)
async def import_articles(request: Request, visit: Visit) -> Response:
    """POST /admin/articles/import: validate everything, then store it all or nothing."""
    ctx = admin_of(request)
    url = visit.value("url")
    try:
        if visit.upload:
            source = _upload_name(visit.upload_name)
            found: list[Article] = await run_in_threadpool(load_bytes, visit.upload, source)
        elif url:
            source = url
            found = await run_in_threadpool(
                lambda: load_url(url, public_only=not ctx.settings.feed_allow_private)
            )
        else:
            raise InputError("give a feed address or choose a file", field="file")
    except InputError as exc:
        return _import_form(request, visit, 400, error=str(exc), url=url)
    if not found:
        raise ArticleError("holds no article", source=source)

    def write() -> ImportResult:
        with ctx.engine.begin() as conn:
            result = upsert_articles(conn, found, utcnow())
            record(conn, visit.user.email, "articles.import", _shown(source), result.summary())
            return result

    result = await run_in_threadpool(write)
    return _import_form(request, visit, result=result, source=_shown(source))


def _shown(source: str) -> str:
    """The source as messages name it (a URL without credentials), on one line."""
    return one_line(display_source(source))[:300]


def routes() -> list[Route]:
    """The article routes (relative to ``/admin``)."""
    return [
        Route("/articles", articles_page, methods=["GET"]),
        Route("/articles/import", import_page, methods=["GET"]),
        Route("/articles/import", import_articles, methods=["POST"]),
    ]
