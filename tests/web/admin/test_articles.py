"""The console's articles page: keyset pages, search and filters, imports, and the SSRF guard."""

from __future__ import annotations

import html
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from newsletter.content import loaders
from newsletter.content.articles import upsert_articles
from newsletter.content.loaders import load_many, load_url
from newsletter.core.config import Settings
from newsletter.core.errors import ArticleError
from newsletter.database import open_database
from newsletter.web.admin.article_list import ArticleQuery, article_page
from newsletter.web.admin.audit import list_entries
from newsletter.web.admin.roles import Role
from tests.plugins.smtp import SMTPServer
from tests.support.feed_server import serve_http
from tests.support.feeds import RSS
from tests.support.sample_editions import article, article_data
from tests.support.web import WebEnv, asgi_client
from tests.web.admin.kit import account, console_env, form_token, sign_in, signed_in

NOW = datetime.now(UTC)


def _store(env: WebEnv, count: int) -> None:
    made = [
        article(
            n,
            "UK" if n % 3 else "Crime",
            ("transport",) if n % 5 == 0 else ("politics",),
            headline=f"Story {n}: {'bridge' if n % 7 == 0 else 'council'} news",
            published_at=NOW - timedelta(hours=n),
        )
        for n in range(count)
    ]
    with env.engine.begin() as conn:
        upsert_articles(conn, made, NOW)


def _env(settings: Settings, smtp_url: str, **changes: object) -> WebEnv:
    env = console_env(settings, smtp_url, **changes)
    account(env, "editor@example.com", Role.EDITOR)
    account(env, "viewer@example.com", Role.VIEWER)
    return env


@pytest.fixture
def console(settings: Settings, smtp_server: SMTPServer) -> WebEnv:
    return _env(settings, smtp_server.url)


@pytest.fixture
async def editor(console: WebEnv) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in(console, "editor@example.com") as client:
        yield client


async def _upload(client: httpx.AsyncClient, name: str, body: bytes) -> httpx.Response:
    page = await client.get("/admin/articles/import")
    return await client.post(
        "/admin/articles/import",
        data={"csrf_token": form_token(page.text)},
        files={"file": (name, body, "application/octet-stream")},
    )


async def _fetch(client: httpx.AsyncClient, url: str) -> httpx.Response:
    page = await client.get("/admin/articles/import")
    return await client.post(
        "/admin/articles/import", data={"csrf_token": form_token(page.text), "url": url}
    )


def _count(env: WebEnv) -> int:
    with env.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM articles").scalar_one())


def _headlines(page: str) -> list[str]:
    return [html.unescape(part.split("</label>")[0]) for part in page.split('class="plain">')[1:]]


async def test_pages_walk_every_article_once(console: WebEnv, editor: httpx.AsyncClient) -> None:
    _store(console, 130)
    seen: list[str] = []
    url = "/admin/articles"
    for _ in range(5):
        page = await editor.get(url)
        assert page.status_code == 200
        seen += _headlines(page.text)
        if 'rel="next"' not in page.text:
            break
        href = page.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
        url = html.unescape(href)
    assert len(seen) == 130
    assert len(set(seen)) == 130
    assert seen[0].startswith("Story 0:")  # newest first


async def test_search_and_filters(console: WebEnv, editor: httpx.AsyncClient) -> None:
    _store(console, 60)
    found = _headlines((await editor.get("/admin/articles", params={"q": "BRIDGE"})).text)
    assert found
    assert all("bridge" in h for h in found)
    assert len(found) == len([n for n in range(60) if n % 7 == 0])
    crime = _headlines((await editor.get("/admin/articles?section=Crime")).text)
    assert len(crime) == 20
    transport = (await editor.get("/admin/articles?topic=transport")).text
    assert len(_headlines(transport)) == 12
    today = NOW.astimezone(UTC).date()
    window = await editor.get(
        "/admin/articles",
        params={"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()},
    )
    shown = _headlines(window.text)
    assert 0 < len(shown) < 50
    assert "Story 59:" not in window.text
    percent = await editor.get("/admin/articles", params={"q": "%"})
    assert "No article matches." in percent.text  # LIKE wildcards are text here
    bad = await editor.get("/admin/articles", params={"from": "yesterday"})
    assert bad.status_code == 400
    assert "field &#39;from&#39;: not a date" in bad.text


async def test_start_an_edition_from_ticked_articles(
    console: WebEnv, editor: httpx.AsyncClient
) -> None:
    old = article(900, headline="An old story", published_at=NOW - timedelta(days=40))
    with console.engine.begin() as conn:
        upsert_articles(conn, [old, article(901, published_at=NOW)], NOW)
    listing = await editor.get("/admin/articles")
    assert 'action="/admin/editions/new"' in listing.text
    builder = await editor.get("/admin/editions/new", params=[("pick", "story-900")])
    assert builder.status_code == 200
    assert 'value="story-900" checked' in builder.text  # preselected, though 40 days old
    assert 'value="story-901">' in builder.text  # shown, not ticked


async def test_a_good_file_is_imported_and_audited(
    console: WebEnv, editor: httpx.AsyncClient
) -> None:
    before = _count(console)
    body = json.dumps([article_data(), article_data(id="a2", url="https://news.example.com/a2")])
    response = await _upload(editor, "two.json", body.encode())
    assert response.status_code == 200, response.text[:600]
    assert "two.json: imported 2 articles: 2 inserted, 0 updated, 0 unchanged" in response.text
    rss = await _upload(editor, "feed.xml", RSS.encode())
    assert "2 inserted" in rss.text
    assert _count(console) == before + 4
    with console.engine.connect() as conn:
        entries = [e for e in list_entries(conn, limit=10) if e.action == "articles.import"]
    assert [e.target for e in entries] == ["feed.xml", "two.json"]
    assert entries[1].actor == "editor@example.com"


async def test_a_bad_file_stores_nothing_and_says_what_the_cli_says(
    console: WebEnv, editor: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = article_data()
    before = _count(console)
    bad = article_data(id="a2", url="/relative/a2")
    body = json.dumps([good, bad], indent=2)
    (tmp_path / "bad.json").write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArticleError) as cli:
        load_many(["bad.json"])
    response = await _upload(editor, "../../etc/bad.json", body.encode())
    assert response.status_code == 400
    shown = html.unescape(response.text.split('id="import-error">')[1].split("</p>")[0])
    assert shown == str(cli.value)
    assert shown.startswith("bad.json:")  # the file, then the line and field
    assert "field 'url'" in shown
    assert _count(console) == before
    yaml_bad = await _upload(editor, "x.yaml", b"id: [unclosed\n")
    assert "x.yaml:" in yaml_bad.text
    assert "invalid YAML" in yaml_bad.text
    nothing = await _fetch(editor, "")
    assert nothing.status_code == 400


async def test_a_feed_url_from_a_loopback_server_when_the_setting_allows(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    env = _env(settings, smtp_server.url, feed_allow_private=True)
    before = _count(env)
    with serve_http() as served:
        url = served.add("/feed.xml", RSS.encode())
        async with asgi_client(env.app) as client:
            await sign_in(client, "editor@example.com")
            response = await _fetch(client, url)
    assert response.status_code == 200, response.text[:600]
    assert "imported 2 articles" in response.text
    assert _count(env) == before + 2


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/feed.xml",
        "http://localhost:{port}/feed.xml",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/feed.xml",
        "http://10.0.0.1/feed.xml",
        "http://0.0.0.0:{port}/feed.xml",
        "file:///etc/passwd",
    ],
)
async def test_the_server_refuses_private_addresses(
    console: WebEnv, editor: httpx.AsyncClient, url: str
) -> None:
    before = _count(console)
    with serve_http() as served:
        target = served.add("/feed.xml", RSS.encode())
        port = target.rsplit(":", 1)[1].split("/")[0]
        response = await _fetch(editor, url.format(port=port))
        assert served.requests == []  # the attack never reached the server
    assert response.status_code == 400
    error = html.unescape(response.text.split('id="import-error">')[1].split("</p>")[0])
    assert "refused" in error or "only http and https" in error
    assert _count(console) == before


@contextmanager
def _redirector(target: str) -> Iterator[str]:
    """A loopback server whose every answer is a redirect to ``target``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/start"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_redirect_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # No public host exists here: 127.0.0.1 stands in for one (the redirector's address),
    # and the redirect goes to another loopback address, which must still be refused.
    real = loaders._is_public
    monkeypatch.setattr(loaders, "_is_public", lambda a: str(a) == "127.0.0.1" or real(a))
    with serve_http() as inside:
        secret = inside.add(
            "/latest/meta-data/", json.dumps(article_data()).encode(), "application/json"
        )
        hidden = secret.replace("127.0.0.1", "127.0.0.2")
        with _redirector(hidden) as start:
            with pytest.raises(ArticleError, match="refused") as caught:
                load_url(start, public_only=True)
            assert caught.value.source == start
            with (
                _redirector("http://169.254.169.254/latest/meta-data/") as metadata,
                pytest.raises(ArticleError, match="refused"),
            ):
                load_url(metadata, public_only=True)
        assert inside.requests == []
        # the same chain is followed when private hosts are allowed (the CLI's way)
        with _redirector(secret) as start:
            assert [a.id for a in load_url(start, public_only=False)] == ["a1"]


async def test_viewers_see_but_may_not_import(console: WebEnv) -> None:
    _store(console, 3)
    before = _count(console)
    async with asgi_client(console.app) as client:
        anonymous = await client.get("/admin/articles")
        assert anonymous.status_code == 401
        assert "Story 1:" not in anonymous.text
        await sign_in(client, "viewer@example.com")
        listing = await client.get("/admin/articles")
        assert listing.status_code == 200
        assert "Story 1:" in listing.text
        assert "Import articles" not in listing.text
        assert 'name="pick"' not in listing.text
        assert (await client.get("/admin/articles/import")).status_code == 403
        token = form_token(listing.text)
        posted = await client.post(
            "/admin/articles/import",
            data={"csrf_token": token},
            files={"file": ("a.json", json.dumps(article_data()).encode())},
        )
        assert posted.status_code == 403
    assert _count(console) == before


async def test_an_import_without_csrf_is_refused(
    console: WebEnv, editor: httpx.AsyncClient
) -> None:
    before = _count(console)
    response = await editor.post(
        "/admin/articles/import", files={"file": ("a.json", json.dumps(article_data()).encode())}
    )
    assert response.status_code == 400
    assert _count(console) == before


@pytest.fixture(params=["sqlite", "postgresql"])
def article_engine(request: pytest.FixtureRequest, sqlite_url: str) -> Engine:
    if request.param == "postgresql":
        engine: Engine = request.getfixturevalue("postgresql_engine")
        return engine
    return open_database(sqlite_url)


@pytest.mark.parametrize(
    "query",
    [
        ArticleQuery(size=7),
        ArticleQuery(q="BRIDGE", size=4),
        ArticleQuery(section="Crime", size=9),
        ArticleQuery(topic="Transport", size=5),
        ArticleQuery(q="council", topic="politics", section="UK", size=11),
        ArticleQuery(since=NOW - timedelta(hours=40), until=NOW - timedelta(hours=10), size=6),
    ],
)
def test_keyset_pages_match_a_plain_filter_on_both_databases(
    article_engine: Engine, query: ArticleQuery
) -> None:
    made = [
        article(
            n,
            "UK" if n % 3 else "Crime",
            ("transport",) if n % 5 == 0 else ("politics",),
            headline=f"Story {n}: {'bridge' if n % 7 == 0 else 'council'} news",
            # pairs of stories share a time: the cursor's tie-break on id is walked too
            published_at=NOW - timedelta(hours=n // 2),
        )
        for n in range(90)
    ]
    with article_engine.begin() as conn:
        upsert_articles(conn, made, NOW)
    expected = sorted(
        (
            a
            for a in made
            if query.q.lower() in a.headline.lower()
            and (not query.section or a.section == query.section)
            and (not query.topic or query.topic.lower() in a.topic_set)
            and (query.since is None or a.published_at >= query.since)
            and (query.until is None or a.published_at < query.until)
        ),
        key=lambda a: (-a.published_at.timestamp(), a.id),
    )
    seen: list[str] = []
    cursor = ""
    with article_engine.connect() as conn:
        for _ in range(100):
            page = article_page(conn, replace(query, after=cursor))
            seen += [row.id for row in page.rows]
            if page.next_after is None:
                break
            cursor = page.next_after
    assert seen == [a.id for a in expected]
