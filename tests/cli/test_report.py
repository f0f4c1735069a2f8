"""Clicks end to end: a real send over SMTP, tracked links followed on the running app,
then ``newsletter report`` (JSON, trends, the HTML page), ``subscribers show`` and
``subscribers delete`` through the real CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from newsletter.content.editions import get_edition
from newsletter.core.config import Settings
from newsletter.core.schema import clicks, deliveries
from newsletter.database import open_database
from newsletter.web.app import create_app
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult
from tests.support.sendkit import address, populate
from tests.support.web import path_of, running_server

BROWSER = {"user-agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15"}
TRACKED = re.compile(r"https://news\.example\.com/newsletter/c/[A-Za-z0-9_.-]+")
Run = Callable[..., CLIResult]


def _parts(smtp_server: SMTPServer) -> dict[str, tuple[str, str]]:
    """Each recipient's (text, html) as the relay received them, decoded."""
    got = {}
    for received in smtp_server.received:
        message = received.message()
        text, html = message.get_body(("plain",)), message.get_body(("html",))
        assert text is not None
        assert html is not None
        got[received.rcpt_tos[0]] = (str(text.get_content()), str(html.get_content()))
    return got


@pytest.mark.smtp_misbehave(refuse={address(3): "550 5.1.1 no such user"})
def test_a_real_send_its_clicks_and_the_report(
    settings: Settings, smtp_server: SMTPServer, run_cli: Run, workdir: Path
) -> None:
    engine = open_database(settings.database_url)
    edition_id = populate(engine, settings, 4)
    with engine.connect() as conn:
        edition = get_edition(conn, edition_id)
    stories = {a.id: a for a in edition.articles()}
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_TRACK_CLICKS": "per-subscriber"}
    sent = run_cli("send", edition_id, "--yes", env=env)
    assert sent.code == 0, sent.stderr
    got = _parts(smtp_server)
    assert sorted(got) == [address(0), address(1), address(2)]  # reader 3 refused: 550

    # every article link in both parts is a /c/ token; the footer's links are not
    links: dict[str, list[str]] = {}
    for email, (text, html) in got.items():
        hrefs = re.findall(r'href="([^"]+)"', html)
        tracked = [h for h in hrefs if "/c/" in h]
        assert tracked, email
        assert set(TRACKED.findall(text)) == set(tracked), email
        assert not any(a.url in text or a.url in hrefs for a in stories.values())
        for label in ("View in your browser:", "Unsubscribe:", "Manage your preferences:"):
            link = text.splitlines()[text.splitlines().index(label) + 1]
            assert "/c/" not in link
            assert link.startswith("https://news.example.com/newsletter/")
        links[email] = sorted(set(tracked))
    # the link parts are the variant's; only the reader part differs
    assert {link.split(".")[2] for link in links[address(0)]} == {
        link.split(".")[2] for link in links[address(1)]
    }
    assert links[address(0)] != links[address(1)]

    with engine.begin() as conn:  # the readers open the mail an hour later, not on delivery
        d = deliveries.c
        mine = sa.select(d.subscriber_id, d.sent_at).where(d.edition_id == edition_id)
        for row in conn.execute(mine.where(d.sent_at.is_not(None))).all():
            conn.execute(
                deliveries.update()
                .where(d.edition_id == edition_id, d.subscriber_id == row.subscriber_id)
                .values(sent_at=row.sent_at - timedelta(hours=1))
            )
    app_settings = settings.model_copy(update={"track_clicks": "per-subscriber"})
    app = create_app(app_settings, engine)
    first, second = links[address(0)][0], links[address(0)][1]
    with running_server(app) as base, httpx.Client(base_url=base) as client:
        for link in (first, first, second):  # reader 0: three clicks on two stories
            answer = client.get(path_of(settings, link), headers=BROWSER)
            assert answer.status_code == 302
            target = urlsplit(answer.headers["location"])
            query = parse_qs(target.query)
            assert query["utm_source"] == ["newsletter"]
            assert query["utm_medium"] == ["email"]
            assert query["utm_campaign"] == [edition_id]
            assert target._replace(query="").geturl() in {a.url for a in stories.values()}
        assert client.get(path_of(settings, links[address(1)][0]), headers=BROWSER).is_redirect
        assert client.head(path_of(settings, first), headers=BROWSER).is_redirect  # a scanner
        # an altered reader part (reader 0's link passed off as reader 2's) goes nowhere
        body, signature, _, reader_sig = path_of(settings, first).split(".")
        forged = client.get(f"{body}.{signature}.{2 + 1:x}.{reader_sig}", headers=BROWSER)
        assert forged.status_code == 404
        assert "location" not in forged.headers
    with engine.connect() as conn:
        stored = conn.execute(sa.select(clicks.c.subscriber_id, clicks.c.kind)).all()
    assert sorted((r.subscriber_id, r.kind) for r in stored) == [
        (1, "human"), (1, "human"), (1, "human"), (1, "scanner"), (2, "human")
    ]  # fmt: skip

    assert run_cli("subscribers", "unsubscribe", address(1)).code == 0
    found = run_cli("report", edition_id, "--json")
    assert found.code == 0, found.stderr
    data = json.loads(found.stdout)
    assert {k: data[k] for k in ("recipients", "sent", "failed", "deferred", "skipped")} == {
        "recipients": 4, "sent": 3, "failed": 1, "deferred": 0, "skipped": 0
    }  # fmt: skip
    assert data["bounced"] == 1
    assert data["delivered"] == 3
    assert data["unsubscribes"] == 1
    assert data["complaints"] == 0
    assert data["clicks"] == 4
    assert data["unique_clickers"] == 2
    assert data["scanner_clicks"] == 1
    assert data["click_through_rate"] == round(2 / 3, 4)
    per_article = {a["id"]: a for a in data["articles"]}
    assert list(per_article) == [a.id for a in edition.articles()]
    assert {k: sorted(a) for k, a in per_article.items()}.popitem()[1] == sorted(
        ["id", "url", "section", "clicks", "unique_clicks", "scanner_clicks"]
    )
    clicked = {k: (a["clicks"], a["unique_clicks"]) for k, a in per_article.items() if a["clicks"]}
    # the first story: reader 0 twice, reader 1 once; the second: reader 0 once
    assert sorted(clicked.values()) == [(1, 1), (3, 2)]
    assert sum(a["clicks"] for a in data["articles"]) == 4
    assert all(per_article[k]["url"] == stories[k].url for k in per_article)

    plain = run_cli("report", edition_id)
    assert plain.code == 0
    assert "click-through rate" in plain.stdout
    assert "66.7%" in plain.stdout

    page = workdir / "report.html"
    trend = run_cli("report", "--since", "30d", "--json", "--html", str(page))
    assert trend.code == 0, trend.stderr
    trends = json.loads(trend.stdout)
    assert [e["edition_id"] for e in trends["editions"]] == [edition_id]
    assert trends["editions"][0]["unsubscribes"] == 1
    assert sum(s["clicks"] for s in trends["sections"]) == 4
    assert trends["left"] == 2  # reader 3 bounced (the 550), reader 1 unsubscribed
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 3
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", html)  # nothing loaded

    # the reader's clicks: shown to them, then untied from them when they are erased
    shown = run_cli("subscribers", "show", address(0))
    assert shown.code == 0, shown.stderr
    held = json.loads(shown.stdout)["clicks"]
    assert len(held) == 4
    assert {c["edition_id"] for c in held} == {edition_id}
    assert run_cli("subscribers", "delete", address(0), "--yes").code == 0
    with engine.connect() as conn:
        assert not conn.execute(sa.select(clicks).where(clicks.c.subscriber_id == 1)).all()
        assert conn.execute(sa.select(sa.func.count()).select_from(clicks)).scalar_one() == 5
    after = json.loads(run_cli("report", edition_id, "--json").stdout)
    assert after["clicks"] == 4  # the anonymous count stays


def test_off_leaves_links_direct_and_aggregate_tokens_name_no_reader(
    settings: Settings, smtp_server: SMTPServer, run_cli: Run
) -> None:
    engine = open_database(settings.database_url)
    edition_id = populate(engine, settings, 2)
    with engine.connect() as conn:
        urls = {a.url for a in get_edition(conn, edition_id).articles()}
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_TRACK_CLICKS": "off"}
    assert run_cli("send", edition_id, "--yes", env=env).code == 0
    for text, html in _parts(smtp_server).values():
        assert not TRACKED.search(text)
        assert "/c/" not in html
        assert all(url in text and f'href="{url}"' in html for url in urls)

    smtp_server.received.clear()
    again = run_cli("edition", "duplicate", edition_id)
    assert again.code == 0, again.stderr
    copy = again.stdout.strip().split()[-1]
    # the same stories again: no repeat window, so both readers get the copy
    env.update({"NEWSLETTER_TRACK_CLICKS": "aggregate", "NEWSLETTER_REPEAT_WINDOW": "PT0S"})
    assert run_cli("send", copy, "--yes", env=env).code == 0, copy
    got = _parts(smtp_server)
    texts = [sorted(set(TRACKED.findall(text))) for text, _ in got.values()]
    assert texts[0]
    assert texts[0] == texts[1]
    app = create_app(settings, engine)
    with running_server(app) as base, httpx.Client(base_url=base) as client:
        answer = client.get(path_of(settings, texts[0][0]), headers=BROWSER)
        assert answer.status_code == 302
        assert answer.headers["location"].split("?")[0] in urls
    with engine.connect() as conn:
        row = conn.execute(sa.select(clicks)).one()
    assert row.subscriber_id is None
    assert row.kind == "human"
    assert row.edition_id == copy
