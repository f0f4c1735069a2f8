"""Helpers for the web tests: an app over a fresh database, CSRF tokens, a real uvicorn,
and a real ``newsletter serve`` process."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from starlette.applications import Starlette

from newsletter.content.articles import upsert_articles
from newsletter.core.config import Settings
from newsletter.database import open_database
from newsletter.web.app import create_app
from newsletter.web.server import header_timeout_protocol
from subscribers import store
from subscribers.model import Subscriber
from tests.support.sample_editions import article

__all__ = [
    "LINK_RE",
    "ServeProcess",
    "WebEnv",
    "add_confirmed",
    "asgi_client",
    "csrf_token",
    "find_person",
    "free_port",
    "make_env",
    "path_of",
    "running_server",
    "serve_process",
    "sign_up",
    "wait_for",
]

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
# a reader's link in a message sent by the test settings (base URL news.example.com/newsletter)
LINK_RE = re.compile(r"https://news\.example\.com/newsletter/\S+")


@dataclass
class WebEnv:
    """An app with its settings and database."""

    settings: Settings
    engine: Engine
    app: Starlette


def make_env(
    settings: Settings,
    smtp_url: str,
    *,
    database_url: str | None = None,
) -> WebEnv:
    """An app over ``settings`` whose confirmation emails go to ``smtp_url``, with articles."""
    update: dict[str, object] = {"smtp_url": SecretStr(smtp_url)}
    if database_url is not None:
        update["database_url"] = database_url
    settings = settings.model_copy(update=update)
    engine = open_database(settings.database_url)
    with engine.begin() as conn:
        upsert_articles(
            conn,
            [
                article(1, "Crime", ("policing",)),
                article(2, "UK", ("transport",)),
                article(3, "Business", ("economy", "housing")),
            ],
            datetime.now(UTC),
        )
    return WebEnv(settings, engine, create_app(settings, engine))


def add_confirmed(env: WebEnv, email: str, **fields: object) -> Subscriber:
    """A confirmed subscriber, added as the CLI would."""
    with env.engine.begin() as conn:
        return store.add(
            conn,
            email,
            secret=env.settings.secret(),
            confirmed=True,
            **fields,  # type: ignore[arg-type]
        )


def get(env: WebEnv, subscriber_id: int) -> Subscriber:
    """The subscriber as stored now."""
    with env.engine.connect() as conn:
        return store.get(conn, subscriber_id)


def csrf_token(html: str) -> str:
    """The CSRF token of the first form in ``html``."""
    found = CSRF_RE.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def path_of(settings: Settings, url: str) -> str:
    """The path of a link under NEWSLETTER_BASE_URL (the app serves it at the root)."""
    assert url.startswith(settings.base_url + "/"), url
    return url[len(settings.base_url) :]


def wait_for(condition: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Block until ``condition()`` holds (a bound on waiting, not a timing assertion)."""
    event = threading.Event()
    waited = 0.0
    while not condition():
        if waited >= limit:
            raise AssertionError(f"gave up waiting for {what}")
        event.wait(0.02)
        waited += 0.02


def asgi_client(app: Starlette) -> httpx.AsyncClient:
    """An httpx client calling ``app`` in process, as 127.0.0.1 (cookies kept)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@contextmanager
def running_server(app: Starlette) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1, a free port, set up as ``serve`` does; its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        proxy_headers=False,
        http=header_timeout_protocol(10.0),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, "uvicorn to start")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ServeProcess:
    """A running ``newsletter serve``: its base URL, and its log so far."""

    url: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serve_process(
    workdir: Path, env: dict[str, str], *args: str, wait_path: str = "/healthz"
) -> Iterator[ServeProcess]:
    """``python -m newsletter serve --port FREE ARGS`` in ``workdir``, stopped afterwards.

    ``env`` adds to the environment (with no other NEWSLETTER_* variables).
    """
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    full_env.update(env)
    log_path = workdir / f"serve-{port}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--port", str(port), *args],
            cwd=workdir,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    running = ServeProcess(f"http://127.0.0.1:{port}", log_path, proc)
    try:

        def answers() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited {proc.returncode}: {running.log()}")
            try:
                return httpx.get(running.url + wait_path, timeout=5).status_code < 500
            except httpx.TransportError:
                return False

        wait_for(answers, "newsletter serve to answer", limit=60)
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def sign_up(client: httpx.AsyncClient, **fields: str | list[str]) -> httpx.Response:
    """Post the signup form (with a fresh CSRF token and consent) with ``fields``."""
    form = await client.get("/")
    data: dict[str, str | list[str]] = {"csrf_token": csrf_token(form.text), "consent": "yes"}
    data.update(fields)
    return await client.post("/signup", data=data)


def find_person(env: WebEnv, email: str) -> Subscriber | None:
    """The subscriber with ``email`` in the app's database, or None."""
    with env.engine.connect() as conn:
        return store.find_by_email(conn, email)
