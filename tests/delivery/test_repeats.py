"""Never the same story twice: each reader's copy leaves out what they were sent lately.

Through the real CLI and a real SMTP server: a breaking alert goes to some
readers, then the daily digest leaves its story out of their copies (the lead
falls to the next story), skips a reader who had everything (recorded, with the
reason), carries it with ``--allow-repeats`` and again once the window has passed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from newsletter.content.editions import get_edition
from newsletter.content.render import Variant
from newsletter.core.config import Settings
from newsletter.core.schema import deliveries
from newsletter.database import open_database
from subscribers import store
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult
from tests.support.sendkit import EXAMPLES

BREAKING = "met-police-live-facial-recognition-expansion"
FLU = "flu-jab-demand-over-65s"
DAILY = [BREAKING, FLU, "hedgehogs-towns-survey", "ofcom-age-checks-deadline"]
READERS = {
    "only-policing@example.org": ["policing"],
    "policing-nhs@example.org": ["policing", "nhs"],
    "everything@example.org": [],
    "nhs@example.org": ["nhs"],
}


def test_a_variant_key_with_stories_left_out_round_trips() -> None:
    for key in ("all|minus:1", "topics:nhs,uk|minus:5", "none|minus:ff"):
        assert Variant.parse(key).key == key
    assert Variant.parse("topics:a|minus:5") == Variant(frozenset({"a"}), frozenset({0, 2}))
    for bad in ("all|minus:", "all|minus:0", "all|minus:xyz", "topics:|minus:1"):
        with pytest.raises(ValueError, match="not a variant key"):
            Variant.parse(bad)


def _by_address(server: SMTPServer) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in server.received:
        message = item.message()
        text = message.get_body(("plain",))
        assert text is not None
        found[item.rcpt_tos[0]] = str(text.get_content())
    return found


def test_a_reader_is_not_sent_a_story_twice_within_the_window(
    settings: Settings,
    smtp_server: SMTPServer,
    run_cli: Callable[..., CLIResult],
) -> None:
    # article URLs as written, not /c/ tokens: the test finds stories by their URL
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_TRACK_CLICKS": "off"}
    assert run_cli("articles", "import", str(EXAMPLES / "articles")).code == 0
    engine = open_database(settings.database_url)
    with engine.begin() as conn:
        for email, topics in READERS.items():
            store.add(conn, email, secret=settings.secret(), topics=topics, confirmed=True)

    alert = run_cli("edition", "build", "--kind", "breaking", "--article", BREAKING)
    assert alert.code == 0, alert.stderr
    sent = run_cli("send", alert.stdout.strip(), "--yes", env=env)
    assert sent.code == 0, sent.stderr
    assert sorted(_by_address(smtp_server)) == sorted(
        ["only-policing@example.org", "policing-nhs@example.org", "everything@example.org"]
    )
    smtp_server.received.clear()

    articles = [x for a in DAILY for x in ("--article", a)]
    daily = run_cli("edition", "build", *articles, "--lead", BREAKING)
    assert daily.code == 0, daily.stderr
    daily_id = daily.stdout.strip()
    sent = run_cli("send", daily_id, "--yes", env=env)
    assert sent.code == 0, sent.stderr
    assert "skipped 1" in sent.stdout
    got = _by_address(smtp_server)
    assert sorted(got) == sorted(
        ["policing-nhs@example.org", "everything@example.org", "nhs@example.org"]
    )
    for email in ("policing-nhs@example.org", "everything@example.org"):
        assert BREAKING not in got[email], email  # had it at breaking time
    assert BREAKING in got["nhs@example.org"] or FLU in got["nhs@example.org"]
    with engine.connect() as conn:
        edition = get_edition(conn, daily_id)
        rows = {
            r.email: r
            for r in conn.execute(sa.select(deliveries).where(deliveries.c.edition_id == daily_id))
        }
    assert edition.top_story is not None
    assert edition.top_story.id == BREAKING
    # the lead fell to the next story: it comes first in the copy of a reader who had the alert
    urls = {a.url: a.id for a in edition.articles()}
    text = got["everything@example.org"]
    first = min((text.index(url), url) for url in urls if url in text)[1]
    assert urls[first] == edition.articles()[1].id
    assert len([u for u in urls if u in text]) == len(DAILY) - 1
    skipped = rows["only-policing@example.org"]
    assert skipped.status == "skipped"
    assert skipped.last_error == "already sent every story of it in the last 7d"
    assert Variant.parse(rows["everything@example.org"].variant).minus == {0}

    status = run_cli("status", daily_id, "--json")
    assert status.code == 0, status.stderr
    assert '"skipped": 1' in status.stdout
    assert "already sent" not in status.stdout  # a skip is not an error

    # a weekly round-up carries them
    smtp_server.received.clear()
    weekly = run_cli("edition", "build", *articles, "--allow-repeats")
    assert weekly.code == 0, weekly.stderr
    assert run_cli("send", weekly.stdout.strip(), "--yes", env=env).code == 0
    got = _by_address(smtp_server)
    assert len(got) == 4
    assert BREAKING in got["only-policing@example.org"]

    # once the window has passed, the story is fair game again
    smtp_server.received.clear()
    with engine.begin() as conn:
        for edition_id, subscriber_id, at in conn.execute(
            sa.select(deliveries.c.edition_id, deliveries.c.subscriber_id, deliveries.c.sent_at)
        ).all():
            if at is not None:
                conn.execute(
                    deliveries.update()
                    .where(
                        deliveries.c.edition_id == edition_id,
                        deliveries.c.subscriber_id == subscriber_id,
                    )
                    .values(sent_at=at - timedelta(hours=3))
                )
    again = run_cli("edition", "build", "--article", BREAKING, "--article", FLU)
    assert again.code == 0, again.stderr
    sent = run_cli(
        "send", again.stdout.strip(), "--yes", env={**env, "NEWSLETTER_REPEAT_WINDOW": "2h"}
    )
    assert sent.code == 0, sent.stderr
    got = _by_address(smtp_server)
    assert BREAKING in got["only-policing@example.org"]
