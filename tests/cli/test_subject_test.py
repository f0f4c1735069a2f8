"""A subject-line test end to end: the real CLI, a real aiosmtpd relay, clicks followed on
the running app over HTTP, and ``NEWSLETTER_NOW`` to step past the decision."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.content.editions import get_edition
from newsletter.core.config import Settings
from newsletter.core.schema import clicks, deliveries, subject_tests
from newsletter.database import open_database
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult
from tests.support.sendkit import address, populate
from tests.support.subjecttests import click_first_links, received, spawn

Run = Callable[..., CLIResult]
B = "Subject B: the budget, in five minutes"
READERS = 40  # 20% of them: 8, four per arm
START = "2026-03-28T12:00:00Z"


def _send(
    run_cli: Run, smtp_server: SMTPServer, edition_id: str, now: str, *args: str
) -> CLIResult:
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_NOW": now}
    return run_cli("send", edition_id, "--yes", *args, env=env)


def test_the_arms_the_clicks_the_decision_and_the_rest(
    settings: Settings, smtp_server: SMTPServer, run_cli: Run, workdir: Path
) -> None:
    engine = open_database(settings.database_url)
    edition_id = populate(engine, settings, READERS)
    with engine.connect() as conn:
        subject_a = get_edition(conn, edition_id).subject
    test = ("--subject-test", B, "--test-share", "20%", "--decide-after", "1h")

    planned = _send(run_cli, smtp_server, edition_id, START, "--dry-run", *test)
    assert planned.code == 0, planned.stderr
    assert "4 in arm A, 4 in arm B, 32 in the rest, decided at 2026-03-28 13:00:00 UTC" in (
        planned.stdout
    )
    assert not smtp_server.received

    first = _send(run_cli, smtp_server, edition_id, START, *test)
    assert first.code == 75, first.stdout + first.stderr  # the rest waits: EX_TEMPFAIL
    assert "32 wait for the subject-line test's decision at 2026-03-28 13:00:00 UTC" in (
        first.stdout
    )
    got = received(smtp_server)
    assert len(got) == 8
    assert Counter(subject for [(subject, _)] in got.values()) == {subject_a: 4, B: 4}

    # a restart before the decision sends nothing more
    early = _send(run_cli, smtp_server, edition_id, "2026-03-28T12:59:00Z")
    assert early.code == 75, early.stderr
    assert len(smtp_server.received) == 8
    status = json.loads(run_cli("status", edition_id, "--json").stdout)
    assert status["reason"].startswith("subject-line test: 32 wait for the decision")

    # arm B's readers follow a tracked link (each their own browser); an arm A message's
    # link is only fetched by a link scanner (HEAD), which is not a click
    arm_b = [email for email, [(subject, _)] in got.items() if subject == B]
    arm_a = [email for email, [(subject, _)] in got.items() if subject == subject_a]
    click_first_links(
        settings, engine, [got[email][0][1] for email in arm_b[:2]], scanned=[got[arm_a[0]][0][1]]
    )
    with engine.connect() as conn:
        arms = Counter(conn.execute(sa.select(clicks.c.arm, clicks.c.kind)).all())
    assert arms == {("B", "human"): 2, ("A", "scanner"): 1}

    # past the decision: two workers at once; B is decided once and the rest gets B
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_NOW": "2026-03-28T13:00:30Z"}
    workers = [spawn(workdir, ["send", edition_id, "--yes"], env) for _ in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in workers]
    assert [proc.returncode for proc in workers] == [0, 0], outputs
    assert any("B won: the rest gets subject B" in stdout for stdout, _ in outputs), outputs
    got = received(smtp_server)
    assert sorted(got) == sorted(address(n) for n in range(READERS))
    assert all(len(messages) == 1 for messages in got.values())  # exactly one each
    rest = [got[email][0][0] for email in got if email not in arm_a and email not in arm_b]
    assert rest == [B] * 32
    with engine.connect() as conn:
        decided = conn.execute(sa.select(subject_tests)).one()
        variants = Counter(
            key.partition("|subject:")[2]
            for key in conn.execute(sa.select(deliveries.c.variant)).scalars()
        )
    assert decided.winner == "B"
    assert decided.decision == {
        "A": {"sent": 4, "unique_clicks": 0},
        "B": {"sent": 4, "unique_clicks": 2},
    }
    assert variants == {"A": 4, "B": 4, "rest-B": 32}

    again = _send(run_cli, smtp_server, edition_id, "2026-03-28T14:00:00Z")
    assert again.code == 0, again.stderr
    assert len(smtp_server.received) == READERS

    found = run_cli("report", edition_id, "--json")
    assert found.code == 0, found.stderr
    report = json.loads(found.stdout)["subject_test"]
    assert report["winner"] == "B"
    assert report["decided_at"].startswith("2026-03-28T13:00:3")
    assert report["rest"] == 32
    assert [
        (
            a["arm"],
            a["subject"],
            a["recipients"],
            a["sent"],
            a["unique_clicks"],
            a["rate"],
            a["won"],
        )
        for a in report["arms"]
    ] == [("A", subject_a, 4, 4, 0, 0.0, False), ("B", B, 4, 4, 2, 0.5, True)]
    plain = run_cli("report", edition_id)
    assert "subject-line test on 20% of the recipients: B won, decided 2026-03-28 13:00 UTC" in (
        plain.stdout
    )
    assert re.search(r"^B \(won\)\s+4\s+4\s+2\s+50\.0%\s+Subject B", plain.stdout, re.M)


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (("--subject-test", B, "--test-share", "0%"), {}, "--test-share"),
        (("--subject-test", B, "--test-share", "60%"), {}, "from 1% to 50%"),
        (("--subject-test", B, "--decide-after", "soon"), {}, "--decide-after"),
        (("--subject-test", ""), {}, "--subject-test"),
        (("--subject-test", "one\ntwo"), {}, "one line"),
        (("--subject-test", "x" * 999), {}, "at most 998"),
        (("--test-share", "20%"), {}, "--test-share goes with --subject-test"),
        (("--subject-test", B), {"NEWSLETTER_TRACK_CLICKS": "off"}, "NEWSLETTER_TRACK_CLICKS"),
        (("--subject-test", B, "--test-share", "10%"), {}, "at least one reader in each arm"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_written_or_sent(
    settings: Settings,
    smtp_server: SMTPServer,
    run_cli: Run,
    args: tuple[str, ...],
    env: dict[str, str],
    says: str,
) -> None:
    engine = open_database(settings.database_url)
    edition_id = populate(engine, settings, 5)  # 10% of 5 rounds to 1: too few for two arms
    for dry in ((), ("--dry-run",)):
        found = run_cli(
            "send", edition_id, "--yes", *dry, *args,
            env={"NEWSLETTER_SMTP_URL": smtp_server.url, **env},
        )  # fmt: skip
        assert found.code != 0
        lines = found.stderr.strip().splitlines()
        assert len(lines) == 1, found.stderr
        assert lines[0].startswith("error: ")
        assert says in lines[0]
    assert not smtp_server.received
    with engine.connect() as conn:
        assert not conn.execute(sa.select(deliveries)).all()
        assert not conn.execute(sa.select(subject_tests)).all()


def test_a_test_copy_shows_both_subjects_and_a_begun_send_refuses_a_new_test(
    settings: Settings, smtp_server: SMTPServer, run_cli: Run
) -> None:
    engine = open_database(settings.database_url)
    edition_id = populate(engine, settings, 10)
    with engine.connect() as conn:
        subject_a = get_edition(conn, edition_id).subject
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url}
    to = ("--test-to", "editor@example.org")
    copy = run_cli("send", edition_id, *to, "--subject-test", B, env=env)
    assert copy.code == 0, copy.stderr
    assert sorted(r.message()["Subject"] for r in smtp_server.received) == sorted(
        [f"[TEST] {subject_a}", f"[TEST] {B}"]
    )
    with engine.connect() as conn:
        assert not conn.execute(sa.select(deliveries)).all()

    smtp_server.received.clear()
    assert run_cli("send", edition_id, "--yes", env=env).code == 0  # no test: all 10 at once
    assert len(smtp_server.received) == 10
    late = run_cli("send", edition_id, "--yes", "--subject-test", B, env=env)
    assert late.code == 1
    assert late.stderr.strip() == (
        f"error: edition {edition_id} began sending without this subject-line test; a test "
        f"starts with the first send (resume with: newsletter send {edition_id})"
    )
    assert len(smtp_server.received) == 10
