"""``newsletter send`` asks on a terminal, and ``--yes`` or a pipe does not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine

from newsletter.core.config import Settings
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult
from tests.support.sendkit import populate, states
from tests.support.terminal import on_a_terminal


def test_send_on_a_terminal_asks_with_the_count_and_no_sends_nothing(
    workdir: Path,
    settings: Settings,
    sqlite_engine: Engine,
    sqlite_url: str,
    smtp_server: SMTPServer,
) -> None:
    edition_id = populate(sqlite_engine, settings, 5)
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_DATABASE_URL": sqlite_url}
    code, screen = on_a_terminal(workdir, ["send", edition_id], b"n\n", env)
    assert code == 1
    assert f"Send {edition_id} " in screen
    assert "to 5 recipients? [y/N]" in screen
    assert smtp_server.received == []
    assert states(sqlite_engine, edition_id) == {}  # not even the outbox was written

    code, screen = on_a_terminal(workdir, ["send", edition_id], b"y\n", env)
    assert code == 0, screen
    assert len(smtp_server.received) == 5


def test_send_with_yes_or_off_a_terminal_does_not_ask(
    settings: Settings,
    sqlite_engine: Engine,
    sqlite_url: str,
    smtp_server: SMTPServer,
    run_cli: Callable[..., CLIResult],
) -> None:
    edition_id = populate(sqlite_engine, settings, 3)
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_DATABASE_URL": sqlite_url}
    piped = run_cli("send", edition_id, env=env)  # cron: stdin is no terminal
    assert piped.code == 0, piped.stderr
    assert "[y/N]" not in piped.stdout + piped.stderr
    assert len(smtp_server.received) == 3
    # send and status state the rate the same way, from the same numbers
    said = [line for line in piped.stdout.splitlines() if line.startswith("rate: ")]
    status = run_cli("status", edition_id, env=env)
    shown = [line for line in status.stdout.splitlines() if line.startswith("rate: ")]
    assert said == shown
    assert len(said) <= 1  # none when the relay accepted every message within one tick
