"""At 07:00 in each reader's own zone: one edition, delivered in waves, across a DST change.

Through the real CLI (``schedule add --subscriber-zone``, ``scheduler --once`` with
``NEWSLETTER_NOW``) and a real SMTP server. London springs forward on 2026-03-29,
so its 07:00 that day is 06:00 UTC; New York is already on EDT (11:00 UTC) and
Tokyo has no DST (22:00 UTC the day before).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from newsletter.core.config import Settings
from newsletter.database import open_database
from newsletter.scheduling.timing import wave_instant
from subscribers import store
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult

READERS = {
    "tokyo@example.org": "Asia/Tokyo",
    "london@example.org": "Europe/London",
    "nozone@example.org": None,  # the schedule's zone: London
    "newyork@example.org": "America/New_York",
}

ARTICLE = {
    "id": "spring-forward",
    "url": "https://news.example.com/uk/spring-forward",
    "headline": "Clocks go forward tonight",
    "standfirst": "An hour less in bed.",
    "section": "UK",
    "topics": ["uk"],
    "published_at": "2026-03-28T20:00:00Z",
}


def test_wave_instants_follow_each_zone_across_the_change() -> None:
    anchor = datetime(2026, 3, 28, 17, 0, tzinfo=UTC)  # 07:00 on the 29th at UTC+14
    assert wave_instant(anchor, "Asia/Tokyo") == datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    assert wave_instant(anchor, "Europe/London") == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert wave_instant(anchor, "America/New_York") == datetime(2026, 3, 29, 11, 0, tzinfo=UTC)
    winter = datetime(2026, 3, 27, 17, 0, tzinfo=UTC)  # the 28th: London still on GMT
    assert wave_instant(winter, "Europe/London") == datetime(2026, 3, 28, 7, 0, tzinfo=UTC)


def test_one_edition_goes_out_in_waves_once_per_reader(
    workdir: Path,
    settings: Settings,
    smtp_server: SMTPServer,
    run_cli: Callable[..., CLIResult],
) -> None:
    (workdir / "a.json").write_text(json.dumps(ARTICLE))
    assert run_cli("articles", "import", "a.json").code == 0
    engine = open_database(settings.database_url)
    with engine.begin() as conn:
        for email, zone in READERS.items():
            store.add(conn, email, secret=settings.secret(), timezone=zone, confirmed=True)
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_NOW": "2026-03-28T12:00Z"}
    added = run_cli(
        "schedule", "add", "--cron", "0 7 * * *", "--tz", "Europe/London", "--subscriber-zone",
        env=env,
    )  # fmt: skip
    assert added.code == 0, added.stderr
    assert "in each subscriber's zone" in added.stdout

    def tick(now: str) -> list[str]:
        before = len(smtp_server.received)
        result = run_cli("scheduler", "--once", env={**env, "NEWSLETTER_NOW": now})
        assert result.code == 0, result.stdout + result.stderr
        return sorted(r.rcpt_tos[0] for r in smtp_server.received[before:])

    assert tick("2026-03-28T21:00Z") == []  # claimed, no zone at 07:00 yet
    assert tick("2026-03-28T22:01Z") == ["tokyo@example.org"]
    assert tick("2026-03-29T05:50Z") == []  # 05:50 UTC is 06:50 BST
    assert tick("2026-03-29T06:01Z") == ["london@example.org", "nozone@example.org"]
    assert tick("2026-03-29T06:30Z") == []  # a restart: nobody twice
    assert tick("2026-03-29T13:30Z") == []  # New York's wave is 2h30 late: skipped

    show = run_cli("schedule", "show", "1", env=env)
    assert show.code == 0, show.stderr
    assert "wave 2026-03-29 07:00 Asia/Tokyo (22:00 UTC) sent to 1" in show.stdout
    assert "wave 2026-03-29 07:00 Europe/London (06:00 UTC) sent to 2" in show.stdout
    assert "America/New_York (11:00 UTC) skipped: missed: 2h30m late (limit 2h00m)" in show.stdout
    data = json.loads(run_cli("schedule", "show", "1", "--json", env=env).stdout)
    (run,) = [r for r in data["runs"] if r["edition_id"]]
    assert run["outcome"] == "sent"
    status = run_cli("status", run["edition_id"], "--json")
    assert status.code == 0, status.stderr
    waves = {w["zone"]: w["status"] for w in json.loads(status.stdout)["waves"]}
    assert waves == {
        "Asia/Tokyo": "sent",
        "Europe/London": "sent",
        "America/New_York": "skipped",
    }
    assert len(smtp_server.received) == 3


TWO_NEWSLETTERS = """
[[newsletters]]
id = "daily"
name = "The Daily Briefing"

[[newsletters]]
id = "weekend"
name = "The Weekend Read"
"""


def test_waves_follow_only_the_schedules_newsletters_readers(
    workdir: Path,
    settings: Settings,
    smtp_server: SMTPServer,
    run_cli: Callable[..., CLIResult],
) -> None:
    """A zone where only another newsletter's readers live makes no wave, and sends nothing."""
    (workdir / "newsletter.toml").write_text(TWO_NEWSLETTERS, encoding="utf-8")
    (workdir / "a.json").write_text(json.dumps(ARTICLE))
    assert run_cli("articles", "import", "a.json").code == 0
    engine = open_database(settings.database_url)
    readers = {
        "tokyo@example.org": ("Asia/Tokyo", ["daily"]),  # not a weekend reader
        "london@example.org": ("Europe/London", ["weekend"]),
        "both@example.org": ("America/New_York", ["daily", "weekend"]),
    }
    with engine.begin() as conn:
        for email, (zone, lists) in readers.items():
            store.add(
                conn, email, secret=settings.secret(), timezone=zone, confirmed=True,
                newsletters=lists,
            )  # fmt: skip
        # unsubscribed from the weekend read: their zone makes no wave either
        left = store.add(
            conn, "left@example.org", secret=settings.secret(), timezone="Australia/Sydney",
            confirmed=True, newsletters=["daily", "weekend"],
        )  # fmt: skip
        store.unsubscribe(conn, left.id, source="test", newsletter="weekend")
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_NOW": "2026-03-28T12:00Z"}
    added = run_cli(
        "schedule", "add", "--cron", "0 7 * * *", "--tz", "Europe/London", "--subscriber-zone",
        "--newsletter", "weekend", env=env,
    )  # fmt: skip
    assert added.code == 0, added.stderr

    def tick(now: str) -> list[str]:
        before = len(smtp_server.received)
        result = run_cli("scheduler", "--once", env={**env, "NEWSLETTER_NOW": now})
        assert result.code == 0, result.stdout + result.stderr
        return sorted(r.rcpt_tos[0] for r in smtp_server.received[before:])

    assert tick("2026-03-28T22:01Z") == []  # Tokyo's 07:00: no weekend reader there
    assert tick("2026-03-29T06:01Z") == ["london@example.org"]
    assert tick("2026-03-29T11:01Z") == ["both@example.org"]
    data = json.loads(run_cli("schedule", "show", "1", "--json", env=env).stdout)
    (run,) = [r for r in data["runs"] if r["edition_id"]]
    waves = {w["zone"]: (w["status"], w["recipients"]) for w in run["waves"]}
    assert waves == {"Europe/London": ("sent", 1), "America/New_York": ("sent", 1)}
    assert run["outcome"] == "sent"  # no wave left waiting for a zone without readers
