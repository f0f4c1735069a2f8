"""The sink: a real aiosmtpd server storing every message in a Maildir, one line each."""

from __future__ import annotations

import mailbox
import os
import selectors
import smtplib
import socket
import subprocess
import sys
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import aiosmtplib
import pytest

from newsletter.core.errors import ConfigError
from newsletter.delivery.sink import MaildirHandler, start_sink
from tests.support.cli import CLIResult, interrupt


def _message(subject: str, to: str = "reader@example.org") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "News <news@example.com>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Hello\nfrom the sink test.\n")
    return message


async def test_stores_each_message_and_reports_it(tmp_path: Path) -> None:
    lines: list[str] = []
    handler = MaildirHandler(tmp_path / "maildir", lines.append)
    server = await start_sink(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        first = _message("Daily digest: Zoë's café")
        raw_first = first.as_bytes(policy=policy.SMTP)
        await aiosmtplib.send(
            raw_first,
            sender="bounces@example.com",
            recipients=["a@example.org", "b@example.org"],
            hostname="127.0.0.1",
            port=port,
        )
        await aiosmtplib.send(_message("Second"), hostname="127.0.0.1", port=port)
    finally:
        server.close()
        await server.wait_closed()

    box = mailbox.Maildir(tmp_path / "maildir", create=False)
    stored = sorted((bytes(box.get_bytes(key)) for key in box.iterkeys()), key=len)
    assert len(stored) == 2
    biggest = next(s for s in stored if b"Delivered-To: a@example.org" in s)
    trace, _, rest = biggest.partition(b"Delivered-To: b@example.org\r\n")
    assert trace == b"Return-Path: <bounces@example.com>\r\nDelivered-To: a@example.org\r\n"
    assert rest.replace(b"\r\n", b"\n") == raw_first.replace(b"\r\n", b"\n")
    parsed = BytesParser(policy=policy.default).parsebytes(biggest)
    assert parsed["Subject"] == "Daily digest: Zoë's café"

    assert len(lines) == 2
    assert "from=<bounces@example.com>" in lines[0]
    assert "to=<a@example.org>,<b@example.org>" in lines[0]
    assert 'subject="Daily digest: Zoë\'s café"' in lines[0]
    assert lines[0].endswith(f"size={len(rest)}")
    assert lines[0][:4].isdigit()
    assert "subject='Second'" in lines[1]
    assert handler.count == 2


async def test_a_busy_port_is_one_clear_error(tmp_path: Path) -> None:
    handler = MaildirHandler(tmp_path / "maildir", lambda line: None)
    server = await start_sink(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            await start_sink(handler, "127.0.0.1", port)
    finally:
        server.close()
        await server.wait_closed()


def _read_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            proc.kill()
            raise AssertionError(f"no output from the sink within {timeout}s")
    return proc.stdout.readline().strip()


def test_sink_command(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "sink", "--port", "0", "--maildir", "mail"],
        cwd=workdir,
        env={**env, "NEWSLETTER_SECRET_KEY": "test-secret-key-not-for-production"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = _read_line(proc)
        assert banner.startswith("sink listening on 127.0.0.1:"), banner
        port = int(banner.split("127.0.0.1:")[1].split(",")[0])
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.send_message(_message("Through the CLI"))
        line = _read_line(proc)
        assert "subject='Through the CLI'" in line
        assert "to=<reader@example.org>" in line
    finally:
        _, stderr = interrupt(proc)
    assert "Traceback" not in stderr
    box = mailbox.Maildir(workdir / "mail", create=False)
    assert len(box) == 1


def test_sink_busy_port_from_the_command_line(
    workdir: Path, run_cli: Callable[..., CLIResult]
) -> None:

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("sink", "--port", str(port), "--maildir", "mail")
    assert result.code == 1
    assert (
        result.stderr.strip().splitlines()
        == [f"error: cannot listen on 127.0.0.1:{port} (address already in use)"]
        or "cannot listen" in result.stderr
    )
    assert "Traceback" not in result.stderr
