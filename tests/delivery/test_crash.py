"""A real ``newsletter send`` process killed mid-send: nobody gets the edition twice.

The server is a separate aiosmtpd process (``python -m tests.plugins.smtp``),
slowed a little so that the kill lands mid-send; it logs one JSON line per
message it accepted, so copies are counted by what really arrived.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from newsletter.content.editions import get_edition
from newsletter.content.models import EditionStatus
from newsletter.core.config import Settings
from newsletter.core.schema import deliveries
from newsletter.database import open_database
from newsletter.delivery.outcomes import DeliveryStatus as S
from tests.support.cli import ROOT
from tests.support.sendkit import populate, states

pytestmark = pytest.mark.slow

READERS = 300
K = 4


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def copies(self) -> Counter[str]:
        """How many messages each address received, from the server's log."""
        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        return Counter(rcpt for line in lines for rcpt in json.loads(line)["rcpt"])


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    port_file, log = tmp_path / "port", tmp_path / "received.jsonl"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.plugins.smtp"),
            *("--port-file", str(port_file), "--log", str(log), "--delay", "0.03"),
        ],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            assert proc.poll() is None, "the SMTP server process died"
            assert time.monotonic() < deadline, "the SMTP server process did not start"
            time.sleep(0.05)
        yield ServerProcess(proc, int(port_file.read_text()), log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def environment(settings: Settings, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=settings.database_url,
        NEWSLETTER_SECRET_KEY=settings.secret().decode(),
        NEWSLETTER_BASE_URL=settings.base_url,
        NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{port}",
        PYTHONPATH=str(ROOT),
    )
    return env


def start_send(workdir: Path, env: dict[str, str], edition_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", edition_id, "--concurrency", str(K)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_messages(server: ServerProcess, sender: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + 60
    while sum(server.copies().values()) < count:
        assert sender.poll() is None, "the send finished before it could be interrupted"
        assert time.monotonic() < deadline, "the send made no progress"
        time.sleep(0.02)


def run_to_the_end(workdir: Path, env: dict[str, str], edition_id: str) -> str:
    again = start_send(workdir, env, edition_id)
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    return stdout


def interrupted_send(
    workdir: Path, settings: Settings, server: ServerProcess, signum: signal.Signals
) -> tuple[Engine, str, dict[str, str], subprocess.Popen[str]]:
    """A send of a new edition to READERS people, sent ``signum`` once 40 messages arrived."""
    engine = open_database(settings.database_url)
    edition_id = populate(engine, settings, READERS)
    env = environment(settings, server.port)
    sender = start_send(workdir, env, edition_id)
    wait_for_messages(server, sender, 40)
    sender.send_signal(signum)
    return engine, edition_id, env, sender


def test_kill_9_mid_send_then_resume_sends_nobody_twice(
    workdir: Path, settings: Settings, server_process: ServerProcess
) -> None:
    engine, edition_id, env, sender = interrupted_send(
        workdir, settings, server_process, signal.SIGKILL
    )
    sender.communicate(timeout=30)
    caught = states(engine, edition_id).get(S.SENDING, 0)
    print(f"rows caught in `sending` by the kill: {caught}")
    assert caught <= K  # at most one row in flight per connection

    stdout = run_to_the_end(workdir, env, edition_id)
    found = states(engine, edition_id)
    unknown = found.get(S.UNKNOWN, 0)
    assert unknown == caught
    assert found == {S.SENT: READERS - unknown, **({S.UNKNOWN: unknown} if unknown else {})}
    if unknown:
        assert "'unknown' and were not sent again" in stdout

    with engine.connect() as conn:
        rows = conn.execute(deliveries.select().where(deliveries.c.edition_id == edition_id)).all()
        assert get_edition(conn, edition_id).status is EditionStatus.SENT
    copies = server_process.copies()
    for row in rows:
        if row.status == S.UNKNOWN:
            assert copies[row.email] <= 1, row.email
        else:
            assert copies[row.email] == 1, f"{row.email}: {copies[row.email]} copies"
    assert sum(copies.values()) <= READERS


def test_sigterm_stops_cleanly_and_the_next_run_resumes(
    workdir: Path, settings: Settings, server_process: ServerProcess
) -> None:
    engine, edition_id, env, sender = interrupted_send(
        workdir, settings, server_process, signal.SIGTERM
    )
    stdout, stderr = sender.communicate(timeout=60)
    assert sender.returncode == 143, stderr  # stopped, not finished: cron and scripts see it
    assert f"resume with: newsletter send {edition_id}" in stdout
    assert "SIGTERM: stopping" in stderr
    found = states(engine, edition_id)
    sent = found[S.SENT]
    # Clean stop: in-flight messages finished, nothing in limbo, the rest queued.
    assert set(found) == {S.SENT, S.QUEUED}
    assert found[S.QUEUED] == READERS - sent
    assert sum(server_process.copies().values()) == sent
    with engine.connect() as conn:
        assert get_edition(conn, edition_id).status is EditionStatus.PAUSED

    run_to_the_end(workdir, env, edition_id)
    assert states(engine, edition_id) == {S.SENT: READERS}
    copies = server_process.copies()
    assert len(copies) == READERS
    assert set(copies.values()) == {1}


def test_a_second_ctrl_c_aborts_and_marks_the_messages_in_flight_unknown_at_once(
    workdir: Path, settings: Settings, server_process: ServerProcess
) -> None:
    engine, edition_id, env, sender = interrupted_send(
        workdir, settings, server_process, signal.SIGINT
    )
    time.sleep(0.01)  # two signals at once would merge into one
    sender.send_signal(signal.SIGINT)  # while messages are still in flight
    _, stderr = sender.communicate(timeout=60)
    assert sender.returncode == 130, stderr
    assert "Ctrl-C again: aborting now" in stderr
    assert "Traceback" not in stderr
    found = states(engine, edition_id)
    # nothing is left `sending` for the next run to find: status is true right away
    assert S.SENDING not in found, found
    unknown = found.get(S.UNKNOWN, 0)
    print(f"messages in flight at the abort, now 'unknown': {unknown}")
    assert unknown <= K
    if unknown:
        assert "in flight marked 'unknown'" in stderr

    run_to_the_end(workdir, env, edition_id)
    after = states(engine, edition_id)
    assert after.get(S.UNKNOWN, 0) == unknown  # not sent again without --resend-unknown
    assert after[S.SENT] == READERS - unknown
    assert all(n == 1 for n in server_process.copies().values())
