"""The scheduler finishes a subject-line test that ``send`` started: the real CLI
(``send``, ``scheduler --once``), a real aiosmtpd relay, clicks followed on the running
app over HTTP, and ``NEWSLETTER_NOW`` to step past the decision."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from newsletter.content.editions import get_edition
from newsletter.core.config import Settings
from newsletter.core.schema import deliveries, editions, subject_tests
from newsletter.database import open_database
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult
from tests.support.sendkit import address, populate
from tests.support.subjecttests import click_first_links, received, spawn

Run = Callable[..., CLIResult]
B = "Subject B: the budget, in five minutes"
READERS = 40  # 20% of them: 8, four per arm
START = "2026-03-28T12:00:00Z"
TEST = ("--subject-test", B, "--test-share", "20%", "--decide-after", "1h")
AFTER = "2026-03-28T13:00:30Z"  # the test is decided at 13:00


def _env(smtp_server: SMTPServer, now: str) -> dict[str, str]:
    return {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_NOW": now}


def _start_and_click_b(
    settings: Settings, smtp_server: SMTPServer, run_cli: Run
) -> tuple[str, str, list[str]]:
    """Start the test with ``send``, and have two of arm B's readers click: (edition,
    subject A, the test share's addresses)."""
    engine = open_database(settings.database_url)
    edition_id = populate(engine, settings, READERS)
    with engine.connect() as conn:
        subject_a = get_edition(conn, edition_id).subject
    first = run_cli("send", edition_id, "--yes", *TEST, env=_env(smtp_server, START))
    assert first.code == 75, first.stdout + first.stderr
    got = received(smtp_server)
    assert Counter(subject for [(subject, _)] in got.values()) == {subject_a: 4, B: 4}
    arm_b = [email for email, [(subject, _)] in got.items() if subject == B]
    click_first_links(settings, engine, [got[email][0][1] for email in arm_b[:2]])
    return edition_id, subject_a, sorted(got)


def _everyone_got_one(smtp_server: SMTPServer, tested: list[str], subject: str) -> None:
    got = received(smtp_server)
    assert sorted(got) == sorted(address(n) for n in range(READERS))
    assert all(len(messages) == 1 for messages in got.values())  # exactly one each
    rest = [messages[0][0] for email, messages in got.items() if email not in tested]
    assert rest == [subject] * (READERS - len(tested))


def test_the_scheduler_decides_at_the_decision_time_and_sends_the_rest(
    settings: Settings, smtp_server: SMTPServer, run_cli: Run
) -> None:
    edition_id, _, tested = _start_and_click_b(settings, smtp_server, run_cli)

    early = run_cli("scheduler", "--once", env=_env(smtp_server, "2026-03-28T12:59:00Z"))
    assert early.code == 0, early.stderr
    assert early.stdout == ""
    assert len(smtp_server.received) == 8  # before the decision: nothing more
    engine = open_database(settings.database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(subject_tests.c.winner)).scalar_one() is None

    due = run_cli("scheduler", "--once", env=_env(smtp_server, AFTER))
    assert due.code == 0, due.stderr
    assert due.stdout.startswith(
        f"subject-line test due 2026-03-28 13:00 GMT: sent {edition_id} (sent 32, "
    ), due.stdout
    assert due.stdout.rstrip().endswith("; B won: the rest gets subject B)"), due.stdout
    _everyone_got_one(smtp_server, tested, B)
    with engine.connect() as conn:
        test = conn.execute(sa.select(subject_tests)).one()
        status = conn.execute(sa.select(editions.c.status)).scalar_one()
    assert test.winner == "B"
    # decided by the scheduler's clock (NEWSLETTER_NOW), not the machine's
    assert test.decided_at.isoformat().startswith("2026-03-28T13:00:3")
    assert status == "sent"

    again = run_cli("scheduler", "--once", env=_env(smtp_server, "2026-03-28T14:00:00Z"))
    assert (again.code, again.stdout) == (0, "")
    assert len(smtp_server.received) == READERS


def test_schedulers_and_a_send_racing_past_the_decision_send_each_reader_one_message(
    settings: Settings, smtp_server: SMTPServer, run_cli: Run, workdir: Path
) -> None:
    edition_id, _, tested = _start_and_click_b(settings, smtp_server, run_cli)

    env = _env(smtp_server, AFTER)
    commands = [["scheduler", "--once"], ["send", edition_id, "--yes"], ["scheduler", "--once"]]
    workers = [spawn(workdir, command, env) for command in commands]
    outputs = [proc.communicate(timeout=120) for proc in workers]
    assert [proc.returncode for proc in workers] == [0, 0, 0], outputs
    _everyone_got_one(smtp_server, tested, B)
    engine = open_database(settings.database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(subject_tests.c.winner)).scalar_one() == "B"
        variants = Counter(
            key.partition("|subject:")[2]
            for key in conn.execute(sa.select(deliveries.c.variant)).scalars()
        )
    assert variants == {"A": 4, "B": 4, "rest-B": 32}


def test_the_scheduler_sends_what_a_failed_send_left_after_the_decision(
    settings: Settings, smtp_server: SMTPServer, run_cli: Run, closed_port: int
) -> None:
    edition_id, subject_a, tested = _start_and_click_b(settings, smtp_server, run_cli)

    # past the decision, a send decides, then finds the relay down: the rest stays queued
    down = {"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{closed_port}", "NEWSLETTER_NOW": AFTER}
    failed = run_cli("send", edition_id, "--yes", env=down)
    assert failed.code != 0
    engine = open_database(settings.database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(subject_tests.c.winner)).scalar_one() == "B"
        queued = conn.execute(
            sa.select(sa.func.count()).where(deliveries.c.status == "queued")
        ).scalar_one()
    assert queued == 32
    assert len(smtp_server.received) == 8

    later = run_cli("scheduler", "--once", env=_env(smtp_server, "2026-03-28T13:05:00Z"))
    assert later.code == 0, later.stderr
    assert f"sent {edition_id} (sent 32, " in later.stdout
    _everyone_got_one(smtp_server, tested, B)
    assert subject_a != B
