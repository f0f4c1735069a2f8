"""Real scheduler processes, the real delivery engine, a real SMTP server.

Two schedulers racing, one killed with SIGKILL and restarted, one stopped by a signal.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from newsletter.content.articles import upsert_articles
from newsletter.content.editions import build_edition, get_edition, set_status
from newsletter.content.models import EditionStatus
from newsletter.core.config import Settings
from newsletter.database import open_database
from newsletter.scheduling.claims import (
    RunOutcome,
    RunRecord,
    list_runs,
)
from newsletter.scheduling.scheduler import (
    Scheduler,
    delivery_sender,
)
from newsletter.scheduling.store import (
    add_schedule,
    set_schedule_status,
)
from newsletter.scheduling.timing import Timing
from subscribers import store as subscriber_store
from tests.plugins.smtp import SMTPServer
from tests.support.scheduling import (
    CREATED,
    LONDON_7AM,
    SECOND,
    SECRET,
    Clock,
    article,
    cli_env,
)

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
    env = cli_env(workdir, smtp_url, now)
    env["NEWSLETTER_SEND_CONCURRENCY"] = "1"
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
