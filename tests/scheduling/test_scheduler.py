"""The scheduler: what runs, what is built, what is recorded, takeovers, stops, processes.

Most tests use an in-memory sender (like anymail's test backend) to pin the
scheduler's own decisions; the last ones run real ``python -m newsletter
scheduler --once`` processes against the real delivery engine and a real
aiosmtpd server: two racing, and one killed with SIGKILL and restarted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from newsletter.content.articles import upsert_articles
from newsletter.content.editions import build_edition, get_edition, set_status
from newsletter.content.models import Article, EditionStatus
from newsletter.core.config import Settings
from newsletter.core.errors import SendPausedError, SMTPUnavailableError
from newsletter.database import open_database
from newsletter.delivery.engine import SendReport
from newsletter.delivery.lease import owner_is_gone
from newsletter.scheduling.claims import (
    RunOutcome,
    RunRecord,
    list_runs,
)
from newsletter.scheduling.scheduler import (
    RunResult,
    Scheduler,
    SendResult,
    delivery_sender,
    describe_result,
    result_of,
)
from newsletter.scheduling.store import (
    BuildOptions,
    ScheduleStatus,
    add_schedule,
    get_schedule,
    set_schedule_status,
)
from newsletter.scheduling.timing import Timing
from subscribers import store as subscriber_store
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult

LONDON_7AM = Timing(kind="cron", tz="Europe/London", cron="0 7 * * *")
CREATED = datetime.fromisoformat("2026-03-27T12:00Z")
FIRST = datetime.fromisoformat("2026-03-28T07:00Z")  # 07:00 GMT
SECOND = datetime.fromisoformat("2026-03-29T06:00Z")  # 07:00 BST, after the change
SECRET = b"test-secret-key-not-for-production"


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class MemorySender:
    """Records each send; the outcome can be scripted, and a send can wait for a stop."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.result = SendResult(RunOutcome.SENT, "3 sent")
        self.wait_for_stop = False
        self.started = asyncio.Event()

    async def __call__(self, edition_id: str, stop: asyncio.Event) -> SendResult:
        self.sent.append(edition_id)
        self.started.set()
        if self.wait_for_stop:
            await stop.wait()
            return SendResult(RunOutcome.RUNNING, "stopped with 2 queued")
        return self.result


def article(
    article_id: str, published: str, section: str = "UK", topics: list[str] | None = None
) -> Article:
    return Article(
        id=article_id,
        url=f"https://news.example.com/{article_id}",
        headline=f"Headline {article_id}",
        standfirst="A standfirst.",
        section=section,
        topics=topics or [],
        published_at=datetime.fromisoformat(published),
    )


@pytest.fixture
def db(settings: Settings) -> Engine:
    return open_database(settings.database_url)


@pytest.fixture
def store(db: Engine) -> Callable[..., None]:
    def put(*articles: Article) -> None:
        with db.begin() as conn:
            upsert_articles(conn, articles, CREATED)

    return put


def add(db: Engine, timing: Timing = LONDON_7AM, **kwargs: object) -> int:
    with db.begin() as conn:
        return add_schedule(conn, timing=timing, now=CREATED, **kwargs).id  # type: ignore[arg-type]


def make(settings: Settings, db: Engine, clock: Clock, sender: MemorySender, worker: str = "w:1"):
    return Scheduler(settings, db, send=sender, clock=clock, worker=worker, is_gone=lambda _: False)


def only_run(db: Engine, schedule_id: int) -> RunRecord:
    """The schedule's one recorded run (the unpacking fails if there are none or several)."""
    with db.connect() as conn:
        [run] = list_runs(conn, schedule_id)
    return run


async def stopped_mid_send(
    settings: Settings, db: Engine, clock: Clock
) -> tuple[MemorySender, RunResult]:
    """A pass stopped while its sender is mid-send: that sender and the pass's one result."""
    sender = MemorySender()
    sender.wait_for_stop = True
    stop = asyncio.Event()
    task = asyncio.create_task(make(settings, db, clock, sender).run_once(stop))
    await sender.started.wait()
    stop.set()
    [result] = await task
    return sender, result


async def test_builds_from_new_articles_and_sends_at_0700_local(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(
        article("old", "2026-03-26T09:00Z"),
        article("a", "2026-03-27T20:00Z"),
        article("b", "2026-03-28T06:30Z", section="Crime"),
    )
    clock, sender = Clock(FIRST - timedelta(seconds=1)), MemorySender()
    scheduler = make(settings, db, clock, sender)
    schedule_id = add(db)
    assert await scheduler.run_once() == []
    assert scheduler.next_occurrence() == FIRST
    clock.now = FIRST + timedelta(seconds=30)
    [result] = await scheduler.run_once()
    assert result.outcome == "sent"
    assert result.reason == "3 sent"
    assert sender.sent == [result.edition_id]
    with db.connect() as conn:
        edition = get_edition(conn, sender.sent[0])
        [run] = list_runs(conn, schedule_id)
    # the first run takes --since (24h) back from the occurrence
    assert sorted(a.id for a in edition.articles()) == ["a", "b"]
    assert run.outcome is RunOutcome.SENT
    assert run.edition_id == edition.id
    assert run.articles_until == clock.now
    assert describe_result(result, "Europe/London").startswith(
        f"schedule {schedule_id} 2026-03-28 07:00 GMT: sent {edition.id}"
    )
    # nothing more is due until the next morning, which is 07:00 BST
    assert await scheduler.run_once() == []
    assert scheduler.next_occurrence() == SECOND


async def test_next_run_takes_articles_since_the_previous_send(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    clock, sender = Clock(FIRST), MemorySender()
    scheduler = make(settings, db, clock, sender)
    schedule_id = add(db)
    await scheduler.run_once()
    store(article("late", "2026-03-28T07:10Z"), article("c", "2026-03-29T05:00Z"))
    clock.now = SECOND + timedelta(minutes=1)
    [result] = await scheduler.run_once()
    assert result.outcome == "sent"
    with db.connect() as conn:
        edition = get_edition(conn, sender.sent[1])
        runs = list_runs(conn, schedule_id)
    assert sorted(a.id for a in edition.articles()) == ["c", "late"]
    assert [r.occurrence_at for r in runs] == [SECOND, FIRST]


async def test_nothing_new_is_skipped_with_the_reason(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("crime", "2026-03-28T06:00Z", section="Crime"))
    clock, sender = Clock(FIRST), MemorySender()
    schedule_id = add(db, build=BuildOptions(topics=["politics"]))
    [result] = await make(settings, db, clock, sender).run_once()
    assert result.outcome == "skipped"
    assert result.reason is not None
    assert result.reason.startswith("nothing new: no articles published since 2026-03-27 07:00 GMT")
    assert "politics" in result.reason
    assert sender.sent == []
    run = only_run(db, schedule_id)
    assert (run.outcome, run.reason) == (RunOutcome.SKIPPED, result.reason)


async def test_topic_filter_applies(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(
        article("crime", "2026-03-28T06:00Z", section="Crime"),
        article("vote", "2026-03-28T06:10Z", section="Politics"),
    )
    clock, sender = Clock(FIRST), MemorySender()
    add(db, build=BuildOptions(topics=["crime"], title="Crime desk"))
    [result] = await make(settings, db, clock, sender).run_once()
    with db.connect() as conn:
        edition = get_edition(conn, result.edition_id or "")
    assert [a.id for a in edition.articles()] == ["crime"]
    assert edition.title == "Crime desk"


async def test_fixed_edition_is_sent_as_is(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-27T10:00Z"))
    with db.begin() as conn:
        fixed = build_edition(conn, now=CREATED, site_name="News").id
    once = Timing(kind="once", tz="Asia/Kolkata", run_at=FIRST)
    schedule_id = add(db, once, edition_id=fixed)
    clock, sender = Clock(FIRST + timedelta(minutes=5)), MemorySender()
    [result] = await make(settings, db, clock, sender).run_once()
    assert (result.outcome, result.edition_id) == ("sent", fixed)
    assert sender.sent == [fixed]
    with db.connect() as conn:
        assert get_schedule(conn, schedule_id).status is ScheduleStatus.DONE


async def test_missing_fixed_edition_fails_with_why(settings: Settings, db: Engine) -> None:
    schedule_id = add(db, edition_id="no-such-edition")
    [result] = await make(settings, db, Clock(FIRST), MemorySender()).run_once()
    assert result.outcome == "failed"
    assert result.reason is not None
    assert "no-such-edition" in result.reason
    with db.connect() as conn:
        assert list_runs(conn, schedule_id)[0].outcome is RunOutcome.FAILED


async def test_a_failed_send_is_recorded(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    sender = MemorySender()
    sender.result = SendResult(RunOutcome.FAILED, "paused: 50 failures in a row")
    add(db)
    [result] = await make(settings, db, Clock(FIRST), sender).run_once()
    assert (result.outcome, result.reason) == ("failed", "paused: 50 failures in a row")


async def test_relay_down_defers_and_a_later_pass_sends_the_same_edition(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    schedule_id = add(db)
    clock = Clock(FIRST)

    class DownThenUp(MemorySender):
        async def __call__(self, edition_id: str, stop: asyncio.Event) -> SendResult:
            if not self.sent:
                self.sent.append(edition_id)
                raise SMTPUnavailableError("cannot reach the relay 127.0.0.1:1")
            return await super().__call__(edition_id, stop)

    sender = DownThenUp()
    scheduler = make(settings, db, clock, sender)
    [deferred] = await scheduler.run_once()
    assert deferred.outcome == "deferred"
    assert deferred.reason == "cannot reach the relay 127.0.0.1:1; will retry"
    run = only_run(db, schedule_id)
    assert (run.outcome, run.reason) == (RunOutcome.RUNNING, deferred.reason)
    clock.now = FIRST + timedelta(minutes=1)
    [sent] = await scheduler.run_once()
    assert sent.outcome == "sent"
    assert sender.sent[0] == sender.sent[1] == sent.edition_id


async def test_a_send_that_paused_itself_fails(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    add(db)

    class Pausing(MemorySender):
        async def __call__(self, edition_id: str, stop: asyncio.Event) -> SendResult:
            raise SendPausedError(f"edition {edition_id} paused: 50 failures in a row")

    [result] = await make(settings, db, Clock(FIRST), Pausing()).run_once()
    assert result.outcome == "failed"
    assert result.reason is not None
    assert "paused: 50 failures in a row" in result.reason


async def test_downtime_past_the_limit_skips_and_records(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    schedule_id = add(db)
    sender = MemorySender()
    teatime = FIRST + timedelta(hours=9)
    [result] = await make(settings, db, Clock(teatime), sender).run_once()
    assert result.outcome == "skipped"
    assert result.reason == "missed: 9h00m late (limit 2h00m)"
    assert sender.sent == []
    run = only_run(db, schedule_id)
    assert run.reason == result.reason


async def test_paused_schedules_do_not_run(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    schedule_id = add(db)
    with db.begin() as conn:
        set_schedule_status(conn, schedule_id, "pause", CREATED)
    assert await make(settings, db, Clock(FIRST), MemorySender()).run_once() == []


async def test_stop_mid_send_then_another_scheduler_resumes_the_same_edition(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    schedule_id = add(db)
    clock = Clock(FIRST)
    first_sender, interrupted = await stopped_mid_send(settings, db, clock)
    assert interrupted.outcome == "interrupted"
    run = only_run(db, schedule_id)
    assert run.outcome is RunOutcome.RUNNING  # not finished: resumable
    second_sender = MemorySender()
    clock.now = FIRST + timedelta(minutes=1)
    [resumed] = await make(settings, db, clock, second_sender, worker="w:2").run_once()
    assert resumed.outcome == "sent"
    # the same edition, not a second one: the delivery engine resumes it
    assert second_sender.sent == first_sender.sent
    run = only_run(db, schedule_id)
    assert (run.outcome, run.claimed_by) == (RunOutcome.SENT, "w:2")


async def test_a_scheduler_whose_lease_lapsed_gives_the_run_up(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    schedule_id = add(db)
    slow_sender = MemorySender()
    slow_sender.wait_for_stop = True
    stalled = Scheduler(
        settings,
        db,
        send=slow_sender,
        clock=Clock(FIRST),
        worker="stalled:1",
        lease=timedelta(seconds=0.2),
        is_gone=lambda _: False,
    )
    task = asyncio.create_task(stalled.run_once())
    await slow_sender.started.wait()
    # a minute later by its clock, another scheduler finds the lease lapsed and takes over
    rescuer_sender = MemorySender()
    rescuer = make(settings, db, Clock(FIRST + timedelta(minutes=1)), rescuer_sender, "r:2")
    [rescued] = await rescuer.run_once()
    assert rescued.outcome == "sent"
    assert rescuer_sender.sent == slow_sender.sent  # the same edition, resumed
    [given_up] = await asyncio.wait_for(task, timeout=30)
    assert given_up.outcome == "interrupted"
    assert given_up.reason == "taken over by another scheduler (this one's lease lapsed)"
    run = only_run(db, schedule_id)
    assert (run.outcome, run.claimed_by) == (RunOutcome.SENT, "r:2")


async def test_a_stale_takeover_is_not_sent_at_teatime(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    schedule_id = add(db)
    clock = Clock(FIRST)
    first_sender, _ = await stopped_mid_send(settings, db, clock)
    clock.now = FIRST + timedelta(hours=8)
    second_sender = MemorySender()
    [result] = await make(settings, db, clock, second_sender, worker="w:2").run_once()
    assert second_sender.sent == []
    assert result.outcome == "failed"
    assert result.reason is not None
    assert f"newsletter send {first_sender.sent[0]}" in result.reason
    with db.connect() as conn:
        assert list_runs(conn, schedule_id)[0].outcome is RunOutcome.FAILED


async def test_run_forever_stops_when_asked(
    settings: Settings, db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-28T06:30Z"))
    add(db)
    stop = asyncio.Event()
    seen: list[RunResult] = []

    def on_result(result: RunResult) -> None:
        seen.append(result)
        stop.set()

    scheduler = make(settings, db, Clock(FIRST), MemorySender())
    await asyncio.wait_for(scheduler.run_forever(stop, on_result=on_result), timeout=30)
    assert [r.outcome for r in seen] == ["sent"]


async def test_a_database_error_fails_one_pass_not_the_loop(settings: Settings, db: Engine) -> None:
    add(db)
    with db.begin() as conn:
        conn.exec_driver_sql("DROP TABLE schedule_runs")  # every pass now fails in the database
    stop = asyncio.Event()
    errors: list[str] = []

    def on_error(line: str) -> None:
        errors.append(line)
        if len(errors) == 2:
            stop.set()

    scheduler = make(settings, db, Clock(FIRST), MemorySender())
    await asyncio.wait_for(
        scheduler.run_forever(stop, poll=timedelta(seconds=0.01), on_error=on_error), timeout=30
    )
    assert errors == ["database error (no such table: schedule_runs); retrying in 0.01s"] * 2


def test_result_of_reads_the_delivery_report() -> None:
    sent = result_of(SendReport("e", sent=3, failed=1))
    assert (sent.outcome, sent.interrupted) == (RunOutcome.SENT, False)
    assert sent.reason is not None
    assert sent.reason.startswith("sent 3, deferred 0, failed 1")
    stopped = result_of(SendReport("e", sent=1, stopped=True, remaining=2))
    assert (stopped.outcome, stopped.interrupted) == (RunOutcome.RUNNING, True)
    left = result_of(SendReport("e", sent=1, remaining=2))
    assert left.outcome is RunOutcome.FAILED
    assert left.reason is not None
    assert left.reason.endswith("2 still to send")


def test_owner_is_gone_only_for_dead_local_processes() -> None:
    import os
    import socket
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    host = socket.gethostname()
    assert owner_is_gone(f"{host}:{proc.pid}")
    assert not owner_is_gone(f"{host}:{os.getpid()}")
    assert not owner_is_gone(f"elsewhere.example:{proc.pid}")
    assert not owner_is_gone("garbage")
    assert owner_is_gone(f"{host}:{proc.pid}:0a1b2c3d")  # the sender's form, too
    assert not owner_is_gone(f"{host}:{os.getpid()}:0a1b2c3d")


# --- the commands, through the real entry point, at an injected clock ----------


def write_articles(folder: Path, *articles: Article) -> Path:
    path = folder / "articles.json"
    path.write_text(json.dumps([a.model_dump(mode="json") for a in articles]), encoding="utf-8")
    return path


def test_schedule_commands_and_once_at_an_injected_clock(
    run_cli: Callable[..., CLIResult], workdir: Path
) -> None:
    source = write_articles(workdir, article("a", "2026-03-29T05:00Z", section="Crime"))
    assert run_cli("articles", "import", str(source)).code == 0
    before = {"NEWSLETTER_NOW": "2026-03-28T12:00:00Z"}
    added = run_cli("schedule", "add", "--cron", "0 7 * * *", "--topic", "politics", env=before)
    assert added.code == 0, added.stderr
    assert added.stdout.strip() == (
        "schedule 1: cron '0 7 * * *' Europe/London, build daily (politics); "
        "next run 2026-03-29 07:00 BST"
    )
    gap = run_cli("schedule", "add", "--at", "2026-03-29 01:30", env=before)
    assert gap.code == 0, gap.stderr
    assert "does not exist in Europe/London" in gap.stderr
    assert "next run 2026-03-29 02:30 BST" in gap.stdout
    assert run_cli("schedule", "pause", "2", env=before).stdout.strip() == "schedule 2: paused"
    twice = run_cli("schedule", "add", "--at", "2026-10-25 01:30", env=before)
    assert twice.stderr.strip() == (
        "note: 2026-10-25 01:30 happens twice in Europe/London (clocks go back); "
        "it runs once, at 2026-10-25 01:30 BST"
    )
    assert run_cli("schedule", "cancel", "3", env=before).code == 0

    early = run_cli("scheduler", "--once", env={"NEWSLETTER_NOW": "2026-03-29T05:59:00Z"})
    assert (early.code, early.stdout) == (0, "")
    due = run_cli("scheduler", "--once", env={"NEWSLETTER_NOW": "2026-03-29T06:00:05Z"})
    assert due.code == 0, due.stderr
    assert due.stdout.startswith("schedule 1 2026-03-29 07:00 BST: skipped (nothing new: ")
    again = run_cli("scheduler", "--once", env={"NEWSLETTER_NOW": "2026-03-29T06:30:00Z"})
    assert (again.code, again.stdout) == (0, "")

    shown = run_cli("schedule", "show", "1", env={"NEWSLETTER_NOW": "2026-03-29T07:00:00Z"})
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[:4] == [
        "schedule 1 (active)",
        "  when: cron '0 7 * * *' Europe/London",
        "  what: build daily (politics)",
        "  next run: 2026-03-30 07:00 BST",
    ]
    assert lines[4].startswith("  2026-03-29 07:00 BST  skipped  nothing new: no articles")
    data = json.loads(run_cli("schedule", "show", "1", "--json").stdout)
    assert [r["outcome"] for r in data["runs"]] == ["skipped"]
    listed = json.loads(run_cli("schedule", "list", "--json").stdout)
    assert [(s["id"], s["status"]) for s in listed] == [
        (1, "active"),
        (2, "paused"),
        (3, "cancelled"),
    ]


def test_a_fixed_edition_is_scheduled_and_cancelling_returns_it_to_draft(
    run_cli: Callable[..., CLIResult], workdir: Path
) -> None:
    source = write_articles(workdir, article("a", "2026-03-28T05:00Z"))
    now = {"NEWSLETTER_NOW": "2026-03-28T12:00:00Z"}
    assert run_cli("articles", "import", str(source)).code == 0
    built = run_cli("edition", "build", "--since", "2026-03-28", env=now)
    assert built.code == 0, built.stderr
    edition_id = built.stdout.strip()
    added = run_cli("schedule", "add", "--at", "2026-03-29 07:00", "--edition", edition_id, env=now)
    assert added.code == 0, added.stderr
    assert f"once 2026-03-29 07:00 BST, edition {edition_id}" in added.stdout

    def status() -> tuple[str, str | None]:
        engine = open_database(f"sqlite:///{workdir / 'test.db'}")
        with engine.connect() as conn:
            edition = get_edition(conn, edition_id)
        engine.dispose()
        scheduled = edition.scheduled_at.isoformat() if edition.scheduled_at else None
        return edition.status.value, scheduled

    assert status() == ("scheduled", "2026-03-29T06:00:00+00:00")
    assert run_cli("schedule", "cancel", "1").stdout.strip() == "schedule 1: cancelled"
    assert status()[0] == "draft"
    again = run_cli("schedule", "cancel", "1")
    assert (again.code, again.stderr.strip()) == (
        1,
        "error: schedule 1 is cancelled; cannot cancel it",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 7 * * *", "--at", "2026-12-01 07:00"], "exactly one of --at"),
        (["--cron", "61 7 * * *"], "field '--cron': '61 7 * * *' is not a cron expression"),
        (["--at", "2026-03-29 07:00", "--tz", "Mars/Olympus"], "unknown time zone"),
        (["--at", "2026-03-20 07:00"], "2026-03-20 07:00 GMT is in the past"),
        (["--cron", "0 7 * * *", "--edition", "x", "--topic", "uk"], "takes no build options"),
        (["--at", "2026-12-01 07:00", "--edition", "missing"], "missing"),
        (["--cron", "0 7 * * *", "--edition", "x"], "--edition goes with --at"),
        (["--cron", "0 7 * * *", "--since", "soon"], "field '--since'"),
        (["--cron", "0 7 * * *", "--title", "a\nBcc: x@example.org"], "field '--title'"),
    ],
)
def test_schedule_add_errors_are_one_line(
    run_cli: Callable[..., CLIResult], args: list[str], message: str
) -> None:
    result = run_cli("schedule", "add", *args, env={"NEWSLETTER_NOW": "2026-03-28T12:00:00Z"})
    assert result.code == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_bad_injected_clock_is_one_line(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("scheduler", "--once", env={"NEWSLETTER_NOW": "soon"})
    assert result.code == 1
    assert result.stderr.strip().startswith("error: NEWSLETTER_NOW must be")


# --- real scheduler processes, the real delivery engine, a real SMTP server ------

OCCURS = "2026-03-29T06:00:00Z"  # 07:00 BST on the day the clocks go forward


def prepare_send(workdir: Path, subscribers: int) -> tuple[str, int]:
    """A database with one article, confirmed subscribers and a 07:00 London schedule."""
    url = f"sqlite:///{workdir / 'test.db'}"
    engine = open_database(url)
    with engine.begin() as conn:
        upsert_articles(conn, [article("a", "2026-03-29T05:00Z")], CREATED)
        for number in range(subscribers):
            subscriber_store.add(
                conn, f"reader{number}@example.org", secret=SECRET, confirmed=True, now=CREATED
            )
        midnight = datetime.fromisoformat("2026-03-29T00:00Z")
        schedule_id = add_schedule(conn, timing=LONDON_7AM, now=midnight).id
    engine.dispose()
    return url, schedule_id


def scheduler_process(
    workdir: Path, smtp_url: str, now: str, *extra: str, once: bool = True
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        {
            "NEWSLETTER_DATABASE_URL": f"sqlite:///{workdir / 'test.db'}",
            "NEWSLETTER_SECRET_KEY": SECRET.decode(),
            "NEWSLETTER_BASE_URL": "https://news.example.com/newsletter",
            "NEWSLETTER_SMTP_URL": smtp_url,
            "NEWSLETTER_NOW": now,
            "NEWSLETTER_SEND_CONCURRENCY": "1",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "scheduler", *(["--once"] if once else []), *extra],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def runs_of(url: str, schedule_id: int) -> list[RunRecord]:
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            return list_runs(conn, schedule_id)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_two_schedulers_racing_deliver_one_copy(workdir: Path, smtp_server: SMTPServer) -> None:
    url, schedule_id = prepare_send(workdir, subscribers=5)
    racers = [scheduler_process(workdir, smtp_server.url, OCCURS) for _ in range(2)]
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], outputs
    lines = [out.strip() for out, _ in outputs if out.strip()]
    assert len(lines) == 1, outputs  # one of them ran it, the other found it claimed
    assert lines[0].startswith(
        "schedule 1 2026-03-29 07:00 BST: sent 2026-03-29-daily (sent 5, deferred 0, failed 0"
    )
    copies = smtp_server.handler.copies()
    assert copies == {f"reader{n}@example.org": 1 for n in range(5)}
    [run] = runs_of(url, schedule_id)
    assert (run.outcome, run.edition_id) == (RunOutcome.SENT, "2026-03-29-daily")


@pytest.mark.slow
@pytest.mark.smtp_misbehave(delay_data=0.05)
def test_killed_scheduler_is_resumed_without_running_twice(
    workdir: Path, smtp_server: SMTPServer
) -> None:
    url, schedule_id = prepare_send(workdir, subscribers=30)
    victim = scheduler_process(workdir, smtp_server.url, OCCURS)
    deadline = time.monotonic() + 120
    while len(smtp_server.received) < 5:  # wait until it is mid-send
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "the scheduler never started sending"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    before = len(smtp_server.received)
    assert before < 30
    [run] = runs_of(url, schedule_id)
    assert run.outcome is RunOutcome.RUNNING
    assert run.edition_id == "2026-03-29-daily"

    # 30 s later, well within the dead scheduler's 2-minute lease: the claim is taken
    # over because its owner process is gone, and the send resumes from the outbox
    later = "2026-03-29T06:00:30Z"
    rescuer = scheduler_process(workdir, smtp_server.url, later)
    out, errors = rescuer.communicate(timeout=120)
    assert rescuer.returncode == 0, errors
    assert out.startswith("schedule 1 2026-03-29 07:00 BST: sent 2026-03-29-daily"), out
    copies = smtp_server.handler.copies()
    assert max(copies.values()) == 1  # nobody got it twice
    # at most the one message in flight at the kill is 'unknown' (it may have arrived)
    assert len(copies) >= 29
    [run] = runs_of(url, schedule_id)
    assert run.outcome is RunOutcome.SENT
    # and a third pass runs nothing
    idle = scheduler_process(workdir, smtp_server.url, later)
    assert idle.communicate(timeout=120)[0] == ""


@pytest.mark.slow
@pytest.mark.smtp_misbehave(delay_data=0.05)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_stops_the_loop_cleanly_and_the_next_pass_resumes(
    workdir: Path, smtp_server: SMTPServer, signum: signal.Signals
) -> None:
    url, schedule_id = prepare_send(workdir, subscribers=30)
    loop = scheduler_process(workdir, smtp_server.url, OCCURS, "--poll", "0.2", once=False)
    assert loop.stderr is not None
    assert "running" in loop.stderr.readline()
    deadline = time.monotonic() + 120
    while len(smtp_server.received) < 5:
        assert loop.poll() is None
        assert time.monotonic() < deadline, "the scheduler never started sending"
        time.sleep(0.02)
    loop.send_signal(signum)
    out, errors = loop.communicate(timeout=60)
    assert loop.returncode == 0, errors
    assert "scheduler stopped" in errors
    assert "Traceback" not in errors
    assert out.startswith("schedule 1 2026-03-29 07:00 BST: interrupted 2026-03-29-daily"), out
    stopped_at = len(smtp_server.received)
    assert stopped_at < 30
    [run] = runs_of(url, schedule_id)
    assert run.outcome is RunOutcome.RUNNING
    # the stop released the claim: the next pass resumes at once, nobody twice, nobody missed
    rescuer = scheduler_process(workdir, smtp_server.url, "2026-03-29T06:00:20Z")
    out, errors = rescuer.communicate(timeout=120)
    assert rescuer.returncode == 0, errors
    assert "sent 2026-03-29-daily" in out
    assert smtp_server.handler.copies() == {f"reader{n}@example.org": 1 for n in range(30)}


async def test_a_scheduled_fixed_edition_goes_through_the_real_delivery_engine(
    workdir: Path, settings: Settings, smtp_server: SMTPServer
) -> None:
    url, daily = prepare_send(workdir, subscribers=3)
    settings = settings.model_copy(update={"database_url": url})
    settings = settings.model_copy(update={"smtp_url": SecretStr(smtp_server.url)})
    engine = open_database(url)
    with engine.begin() as conn:
        fixed = build_edition(conn, now=SECOND - timedelta(minutes=30), site_name="N")
        set_status(conn, fixed.id, EditionStatus.SCHEDULED, now=CREATED, scheduled_at=SECOND)
        once = Timing(kind="once", tz="Europe/London", run_at=SECOND)
        add_schedule(conn, timing=once, now=CREATED, edition_id=fixed.id)
        set_schedule_status(conn, daily, "cancel", CREATED)
    scheduler = Scheduler(
        settings, engine, send=delivery_sender(settings, engine), clock=Clock(SECOND)
    )
    [result] = await scheduler.run_once()
    assert (result.outcome, result.edition_id) == ("sent", fixed.id)
    assert smtp_server.handler.copies() == {f"reader{n}@example.org": 1 for n in range(3)}
    with engine.connect() as conn:
        assert get_edition(conn, fixed.id).status is EditionStatus.SENT
