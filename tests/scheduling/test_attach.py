"""An edition attached to a recurring schedule: its next run sends it, and only that run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from newsletter.content.articles import upsert_articles
from newsletter.content.editions import build_edition, get_edition, set_status
from newsletter.content.models import EditionStatus
from newsletter.core.config import Settings
from newsletter.core.errors import ScheduleError, StateError
from newsletter.database import open_database
from newsletter.scheduling.claims import RunOutcome, list_runs
from newsletter.scheduling.store import (
    add_schedule,
    attach_edition,
    attached_to,
    detach_edition,
    get_schedule,
    set_schedule_status,
)
from newsletter.scheduling.timing import Timing
from subscribers import store as subscriber_store
from tests.plugins.smtp import SMTPServer
from tests.support.scheduling import (
    CREATED,
    FIRST,
    LONDON_7AM,
    SECOND,
    SECRET,
    Clock,
    MemorySender,
    article,
    cli_env,
    memory_scheduler,
    new_schedule,
)


def _draft(db: Engine, title: str = "Hand-made") -> str:
    with db.begin() as conn:
        return build_edition(conn, now=CREATED, site_name="News", title=title).id


def _attached(db: Engine, store: Callable[..., None]) -> tuple[str, int]:
    """One stored article, and a draft of it attached to a new 07:00 London schedule:
    (edition id, schedule id)."""
    store(article("a", "2026-03-27T10:00Z"))
    chosen = _draft(db)
    schedule_id = new_schedule(db)
    with db.begin() as conn:
        attach_edition(conn, schedule_id, chosen, CREATED)
    return chosen, schedule_id


async def test_the_next_run_sends_the_attached_edition_and_the_one_after_builds(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-27T10:00Z"))
    chosen = _draft(db)
    schedule_id = new_schedule(db)
    with db.begin() as conn:
        attached = attach_edition(conn, schedule_id, chosen, CREATED)
        assert attached.describe_what().startswith(f"edition {chosen} at the next run")
        edition = get_edition(conn, chosen)
        assert edition.status is EditionStatus.SCHEDULED
        assert edition.scheduled_at == FIRST  # the next occurrence, 07:00 London
    clock, sender = Clock(FIRST), MemorySender()
    scheduler = memory_scheduler(settings, db, clock, sender)
    [first] = await scheduler.run_once()
    assert (first.outcome, first.edition_id) == ("sent", chosen)
    with db.connect() as conn:
        assert get_schedule(conn, schedule_id).edition_id is None  # that run only
        assert attached_to(conn, chosen) is None
    store(article("b", "2026-03-28T20:00Z"))
    clock.now = SECOND
    [second] = await scheduler.run_once()
    assert second.outcome == "sent"
    assert second.edition_id not in (None, chosen)  # built automatically again
    assert sender.sent == [chosen, second.edition_id]
    with db.connect() as conn:
        runs = list_runs(conn, schedule_id)
    assert [(r.edition_id, r.outcome) for r in reversed(runs)] == [
        (chosen, RunOutcome.SENT),
        (second.edition_id, RunOutcome.SENT),
    ]


async def test_detaching_puts_the_edition_back_to_draft_and_the_run_builds(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    chosen, schedule_id = _attached(db, store)
    with db.begin() as conn:
        assert detach_edition(conn, schedule_id, CREATED) == chosen
        assert get_edition(conn, chosen).status is EditionStatus.DRAFT
        with pytest.raises(StateError, match="no edition attached"):
            detach_edition(conn, schedule_id, CREATED)
    sender = MemorySender()
    [run] = await memory_scheduler(settings, db, Clock(FIRST), sender).run_once()
    assert run.outcome == "sent"
    assert run.edition_id != chosen


async def test_an_edition_sent_by_hand_meanwhile_is_not_sent_again(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    chosen, _ = _attached(db, store)
    with db.begin() as conn:
        set_status(conn, chosen, EditionStatus.SENT, now=CREATED)
    sender = MemorySender()
    [run] = await memory_scheduler(settings, db, Clock(FIRST), sender).run_once()
    assert run.edition_id != chosen
    assert chosen not in sender.sent


def test_what_cannot_be_attached(db: Engine, store: Callable[..., None]) -> None:
    store(article("a", "2026-03-27T10:00Z"))
    chosen, other = _draft(db), _draft(db, "Another")
    recurring = new_schedule(db)
    once = new_schedule(db, Timing(kind="once", tz="Europe/London", run_at=FIRST))
    with db.begin() as conn:
        with pytest.raises(ScheduleError, match="runs once") as caught:
            attach_edition(conn, once, chosen, CREATED)
        assert caught.value.field == "schedule"
        for status in (EditionStatus.SENT, EditionStatus.SENDING):
            set_status(conn, other, status, now=CREATED)
            with pytest.raises(StateError, match=f"is {status.value}; only a draft"):
                attach_edition(conn, recurring, other, CREATED)
        attach_edition(conn, recurring, chosen, CREATED)
        with pytest.raises(StateError, match="attached to schedule"):  # no one-off for it too
            add_schedule(
                conn,
                timing=Timing(kind="once", tz="Europe/London", run_at=SECOND),
                now=CREATED,
                edition_id=chosen,
            )
        set_schedule_status(conn, recurring, "pause", CREATED)
        with pytest.raises(StateError, match="is paused"):
            attach_edition(conn, recurring, chosen, CREATED)
        set_schedule_status(conn, recurring, "cancel", CREATED)
        assert get_edition(conn, chosen).status is EditionStatus.DRAFT  # cancel frees it


def test_an_edition_attaches_only_to_its_own_newsletters_schedule(
    db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-27T10:00Z"))
    with db.begin() as conn:
        breaking = build_edition(conn, now=CREATED, site_name="News", newsletter="breaking").id
        daily_schedule = add_schedule(conn, timing=LONDON_7AM, now=CREATED).id
        own = add_schedule(conn, timing=LONDON_7AM, now=CREATED, newsletter="breaking").id
        with pytest.raises(StateError, match="for newsletter 'breaking' and schedule"):
            attach_edition(conn, daily_schedule, breaking, CREATED)
        assert get_edition(conn, breaking).status is EditionStatus.DRAFT  # nothing changed
        assert get_schedule(conn, daily_schedule).edition_id is None
        assert attach_edition(conn, own, breaking, CREATED).edition_id == breaking


def test_attaching_another_frees_the_first(db: Engine, store: Callable[..., None]) -> None:
    store(article("a", "2026-03-27T10:00Z"))
    first, second = _draft(db), _draft(db, "Second")
    schedule_id = new_schedule(db)
    with db.begin() as conn:
        attach_edition(conn, schedule_id, first, CREATED)
        attach_edition(conn, schedule_id, first, CREATED)  # again: nothing changes
        attach_edition(conn, schedule_id, second, CREATED)
        assert get_edition(conn, first).status is EditionStatus.DRAFT
        assert get_edition(conn, second).status is EditionStatus.SCHEDULED
        assert get_schedule(conn, schedule_id).edition_id == second


def _cli(workdir: Path, smtp_url: str, now: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=workdir,
        env=cli_env(workdir, smtp_url, now),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_the_real_scheduler_sends_an_attached_edition(
    workdir: Path, smtp_server: SMTPServer
) -> None:
    engine = open_database(f"sqlite:///{workdir / 'test.db'}")
    with engine.begin() as conn:
        upsert_articles(conn, [article("a", "2026-03-29T05:00Z")], CREATED)
        subscriber_store.add(conn, "reader@example.org", secret=SECRET, confirmed=True, now=CREATED)
        chosen = build_edition(
            conn, now=CREATED, site_name="News", article_ids=["a"], subject="Editor's pick"
        ).id
        schedule_id = add_schedule(
            conn, timing=LONDON_7AM, now=datetime.fromisoformat("2026-03-29T00:00Z")
        ).id
    engine.dispose()
    url = smtp_server.url
    bad = _cli(workdir, url, "2026-03-29T01:00:00Z", "schedule", "attach", str(schedule_id))
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr
    assert "--detach" in bad.stderr
    done = _cli(
        workdir, url, "2026-03-29T01:00:00Z", "schedule", "attach", str(schedule_id), chosen
    )
    assert done.returncode == 0, done.stderr
    assert f"edition {chosen} at the next run" in done.stdout
    ran = _cli(workdir, url, "2026-03-29T06:00:00Z", "scheduler", "--once")
    assert ran.returncode == 0, ran.stderr
    assert f"sent {chosen}" in ran.stdout
    [message] = smtp_server.received
    assert "Subject: Editor's pick" in message.data.decode()
