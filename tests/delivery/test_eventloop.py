"""The loop a send runs on: uvloop when installed (NEWSLETTER_EVENT_LOOP=auto), else asyncio."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine

from newsletter.core.config import Settings
from newsletter.delivery import eventloop
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult
from tests.support.sendkit import populate, states

uvloop = pytest.importorskip("uvloop", reason="the `fast` extra (uvloop) is not installed")


def _loop_lines(result: CLIResult) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("event loop: ")]


@pytest.mark.parametrize(
    ("choice", "expected"), [(None, "uvloop"), ("auto", "uvloop"), ("asyncio", "asyncio")]
)
def test_send_runs_on_uvloop_unless_the_setting_says_asyncio(
    choice: str | None,
    expected: str,
    settings: Settings,
    sqlite_engine: Engine,
    sqlite_url: str,
    smtp_server: SMTPServer,
    run_cli: Callable[..., CLIResult],
) -> None:
    edition_id = populate(sqlite_engine, settings, 4)
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_DATABASE_URL": sqlite_url}
    if choice is not None:
        env["NEWSLETTER_EVENT_LOOP"] = choice
    result = run_cli("send", edition_id, "--yes", env=env)
    assert result.code == 0, result.stderr
    assert _loop_lines(result) == [f"event loop: {expected}"]
    # the same delivery on either loop: each reader once, every row sent
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received) == sorted(
        {m.rcpt_tos[0] for m in smtp_server.received}
    )
    assert len(smtp_server.received) == 4
    assert states(sqlite_engine, edition_id) == {"sent": 4}


def test_an_unknown_event_loop_setting_is_one_clear_error(
    workdir: object, run_cli: Callable[..., CLIResult]
) -> None:
    result = run_cli("send", "2026-11-26-daily", "--yes", env={"NEWSLETTER_EVENT_LOOP": "fast"})
    assert result.code != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "NEWSLETTER_EVENT_LOOP" in lines[0]


def test_run_falls_back_to_asyncio_when_uvloop_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def kind() -> str:
        return eventloop.running_loop_name()

    assert eventloop.run(kind(), "auto") == "uvloop"
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    assert eventloop.loop_factory("auto") is None
    assert eventloop.run(kind(), "auto") == "asyncio"
    assert eventloop.run(kind(), "asyncio") == "asyncio"


def test_run_returns_the_result_and_closes_its_loop() -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def work() -> int:
        seen.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return 42

    assert eventloop.run(work()) == 42
    assert isinstance(seen[0], uvloop.Loop)
    assert seen[0].is_closed()
