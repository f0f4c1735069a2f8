"""Helpers for the subject-line test's end-to-end tests: what the relay received, clicks
on the running app, and CLI commands started side by side as real processes."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx
from sqlalchemy.engine import Engine

from newsletter.core.config import Settings
from newsletter.web.app import create_app
from tests.plugins.smtp import SMTPServer
from tests.support.web import path_of, running_server

TRACKED = re.compile(r"https://news\.example\.com/newsletter/c/[A-Za-z0-9_.-]+")


def received(smtp_server: SMTPServer) -> dict[str, list[tuple[str, str]]]:
    """Per recipient, each message's (subject, text part) as the relay received it."""
    got: dict[str, list[tuple[str, str]]] = {}
    for message_in in smtp_server.received:
        message = message_in.message()
        text = message.get_body(("plain",))
        assert text is not None
        entry = (str(message["Subject"]), str(text.get_content()))
        got.setdefault(message_in.rcpt_tos[0], []).append(entry)
    return got


def click_first_links(
    settings: Settings, engine: Engine, texts: Sequence[str], *, scanned: Sequence[str] = ()
) -> None:
    """Follow each text's first tracked link as a human reader (each their own browser)
    on the running app; fetch each of ``scanned``'s as a link scanner (HEAD) does."""
    app = create_app(settings, engine)
    with running_server(app) as base, httpx.Client(base_url=base) as client:
        for n, text in enumerate(texts):
            link = TRACKED.findall(text)[0]
            browser = {"user-agent": f"Mozilla/5.0 (Macintosh) Safari/605.1.{n}"}
            assert client.get(path_of(settings, link), headers=browser).status_code == 302
        for text in scanned:
            link = TRACKED.findall(text)[0]
            assert client.head(path_of(settings, link)).status_code == 302


def spawn(workdir: Path, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """``python -m newsletter ARGS`` started in ``workdir`` on its ``test.db``, not waited for."""
    full = {
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{workdir / 'test.db'}",
        "NEWSLETTER_SECRET_KEY": "test-secret-key-not-for-production",
        "NEWSLETTER_BASE_URL": "https://news.example.com/newsletter",
        "PATH": "/usr/bin:/bin",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args],
        cwd=workdir,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
