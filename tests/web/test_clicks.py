"""Tracked article links over HTTP: UTM redirect, scanners kept apart, no open redirect."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import sqlalchemy as sa

from newsletter.content.editions import build_edition
from newsletter.content.tracking import click_token
from newsletter.core.config import Settings
from newsletter.core.schema import clicks
from newsletter.web.clicks import with_utm
from tests.plugins.smtp import SMTPServer
from tests.support.web import make_env, running_server


def test_utm_tags_keep_the_links_own_query() -> None:
    assert with_utm("https://n.example/a?x=1#top", "e1") == (
        "https://n.example/a?x=1&utm_source=newsletter&utm_medium=email&utm_campaign=e1#top"
    )


def test_a_click_redirects_to_the_article_and_a_forged_token_gets_404(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    env = make_env(settings, smtp_server.url)
    with env.engine.begin() as conn:
        edition = build_edition(
            conn, now=datetime.now(UTC), since=datetime(2000, 1, 1, tzinfo=UTC), site_name="News"
        )
    article = edition.articles()[0]
    secret = env.settings.secret()
    token = click_token(secret, edition.id, article.id, article.url)
    with running_server(env.app) as base, httpx.Client(base_url=base) as client:
        browser = {"user-agent": "Mozilla/5.0 (Macintosh) Safari/605"}
        answer = client.get(f"/c/{token}", headers=browser)
        assert answer.status_code == 302
        assert answer.headers["location"] == with_utm(article.url, edition.id)
        assert client.head(f"/c/{token}", headers=browser).status_code == 302
        scanner = {"user-agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"}
        assert client.get(f"/c/{token}", headers=scanner).status_code == 302
        body, _, signature = token.partition(".")
        for bad in (
            body + "." + signature[::-1],
            body[:-2] + "AA." + signature,
            click_token(b"another-key-entirely-0123456789abcdef", edition.id, article.id, "x"),
            click_token(secret, edition.id, article.id, "https://evil.example/"),
            "garbage",
        ):
            refused = client.get(f"/c/{bad}", headers=browser)
            assert refused.status_code == 404, bad
            assert "location" not in refused.headers
    with env.engine.connect() as conn:
        kinds = sorted(conn.execute(sa.select(clicks.c.kind)).scalars())
    assert kinds == ["human", "scanner", "scanner"]
