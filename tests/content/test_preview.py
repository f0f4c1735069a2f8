"""Preview: files, the real command line, and the live page behind --serve."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
import lxml.html
import pytest

from newsletter.content.articles import upsert_articles
from newsletter.content.editions import build_edition
from newsletter.content.loaders import load_many
from newsletter.content.models import Edition
from newsletter.content.preview import (
    build_preview,
    sample_recipient,
    write_preview,
)
from newsletter.content.templates import templates_dir
from newsletter.core.config import Settings
from newsletter.core.db import utcnow
from newsletter.database import open_database
from newsletter.web.preview import EMAIL_FRAME_CSP, create_preview_app
from subscribers.links import verify_link
from subscribers.tokens import Purpose
from tests.support.cli import EXAMPLES, CLIResult, interrupt
from tests.support.sample_editions import daily_edition

SECRET = b"test-secret-key-not-for-production"


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def _part(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def test_write_preview_files_agree_with_the_message(settings: Settings, tmp_path: Path) -> None:
    edition = daily_edition()
    files = write_preview(
        build_preview(settings, edition, sample_recipient(settings)), tmp_path / "out"
    )
    assert [files.html.name, files.text.name, files.eml.name] == [
        f"{edition.id}.html",
        f"{edition.id}.txt",
        f"{edition.id}.eml",
    ]
    message = _parse(files.eml.read_bytes())
    assert files.html.read_text(encoding="utf-8") == _part(message, "html")
    assert files.text.read_text(encoding="utf-8") == _part(message, "plain")
    assert message["To"] == "Reader <reader@example.com>"
    assert message["List-Unsubscribe"].startswith(f"<{settings.base_url}/unsubscribe/example>")
    assert "Hello Reader," in files.text.read_text(encoding="utf-8")


def _prepare(run_cli: Callable[..., CLIResult]) -> str:
    """Import the example articles and build an edition in the CLI's database.

    Through the library, not the CLI: other tests cover those commands, and each
    subprocess costs a second or two on this machine.
    """
    engine = open_database(f"sqlite:///{Path.cwd() / 'test.db'}")
    try:
        with engine.begin() as conn:
            upsert_articles(conn, load_many([EXAMPLES / "articles"]), utcnow())
            edition = build_edition(
                conn,
                now=utcnow(),
                since=datetime(2020, 1, 1, tzinfo=UTC),
                site_name="Britain's News Portal",
            )
    finally:
        engine.dispose()
    return edition.id


def test_preview_command_writes_three_files(
    run_cli: Callable[..., CLIResult], workdir: Path
) -> None:
    edition_id = _prepare(run_cli)
    result = run_cli("preview", "--out", "out")
    assert result.code == 0, result.stderr
    for suffix in ("html", "txt", "eml"):
        path = workdir / "out" / f"{edition_id}.{suffix}"
        assert path.is_file()
        assert str(Path("out") / path.name) in result.stdout
    message = _parse((workdir / "out" / f"{edition_id}.eml").read_bytes())
    assert message["To"].addresses[0].addr_spec == "reader@example.com"
    root = lxml.html.document_fromstring(_part(message, "html"))
    assert len(root.xpath("//h1")) == 1
    # the same edition named explicitly gives the same bodies
    again = run_cli("preview", edition_id, "--out", "again")
    assert again.code == 0, again.stderr
    assert (workdir / "again" / f"{edition_id}.html").read_bytes() == (
        workdir / "out" / f"{edition_id}.html"
    ).read_bytes()


def test_preview_errors_are_one_line(run_cli: Callable[..., CLIResult]) -> None:
    nothing = run_cli("preview")  # a fresh folder: preview only reads, it creates nothing
    assert nothing.code == 1
    [line] = nothing.stderr.strip().splitlines()
    assert line.startswith("error: no database here (")
    assert "newsletter init" in line
    ok = run_cli("articles", "list")  # still nothing to read
    assert ok.code == 1
    assert run_cli("init").code == 0
    built = run_cli("preview")
    assert built.code == 1
    assert built.stderr.strip().splitlines() == [
        "error: no edition has been built yet (run: newsletter edition build)"
    ]
    _prepare(run_cli)
    unknown = run_cli("preview", "no-such-edition")
    assert unknown.code == 1
    assert unknown.stderr.strip().splitlines() == ["error: no edition with id 'no-such-edition'"]
    stranger = run_cli("preview", "--subscriber", "nobody@example.org")
    assert stranger.code == 1
    assert len(stranger.stderr.strip().splitlines()) == 1
    assert "nobody@example.org" in stranger.stderr
    assert "Traceback" not in stranger.stderr


def test_preview_for_a_subscriber_uses_their_name_topics_and_links(
    run_cli: Callable[..., CLIResult], workdir: Path
) -> None:
    edition_id = _prepare(run_cli)
    added = run_cli(
        "subscribers", "add", "ada@example.org", "--name", "Ada Lovelace", "--topic", "crime",
        "--confirmed",
    )  # fmt: skip
    assert added.code == 0, added.stderr
    result = run_cli("preview", "--subscriber", "ADA@example.org", "--out", "out")
    assert result.code == 0, result.stderr
    message = _parse((workdir / "out" / f"{edition_id}.eml").read_bytes())
    assert message["To"].addresses[0].display_name == "Ada Lovelace"
    assert message["To"].addresses[0].addr_spec == "ada@example.org"
    link = message["List-Unsubscribe"].strip().split(">")[0].lstrip("<")
    assert link.startswith("https://news.example.com/newsletter/unsubscribe/")
    with open_database(f"sqlite:///{workdir / 'test.db'}").connect() as conn:
        subscriber_id = verify_link(conn, SECRET, Purpose.UNSUBSCRIBE, link.rsplit("/", 1)[1])
    assert subscriber_id > 0
    text = _part(message, "plain")
    assert "Hello Ada," in text
    assert "Topics in this edition for you: crime." in " ".join(text.split())
    assert "/politics/" not in text  # only the crime variant
    html = _part(message, "html")
    assert "/preferences/" in html


def test_preview_for_a_subscriber_greets_them_by_their_first_name_as_a_send_does(
    run_cli: Callable[..., CLIResult], workdir: Path
) -> None:
    edition_id = _prepare(run_cli)
    (workdir / "people.csv").write_text(
        "email,name,first_name\njim@example.org,James Okafor,Jim\n", encoding="utf-8"
    )
    imported = run_cli("subscribers", "import", "people.csv", "--confirmed")
    assert imported.code == 0, imported.stderr
    result = run_cli("preview", "--subscriber", "jim@example.org", "--out", "out")
    assert result.code == 0, result.stderr
    message = _parse((workdir / "out" / f"{edition_id}.eml").read_bytes())
    assert "Hello Jim," in _part(message, "plain")
    assert "Hello Jim," in _part(message, "html")


@pytest.fixture
def preview_client(settings: Settings, tmp_path: Path) -> tuple[httpx.AsyncClient, Path]:
    folder = tmp_path / "templates"
    shutil.copytree(templates_dir(), folder)
    edition = daily_edition()

    def load() -> Edition:
        return edition

    app = create_preview_app(settings, load, sample_recipient(settings), template_dir=folder)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://preview")
    return client, folder


async def test_preview_page_shows_desktop_mobile_and_text(
    preview_client: tuple[httpx.AsyncClient, Path],
) -> None:
    client, _ = preview_client
    page = await client.get("/")
    assert page.status_code == 200
    root = lxml.html.document_fromstring(page.text)
    frames = root.xpath("//iframe")
    # the desktop frame leaves room around the 600 px container, below the mobile breakpoint
    # (and the mobile width again, in dark mode)
    assert sorted(f.get("width") for f in frames) == ["375", "375", "680"]
    # relative links, so the web app's /preview/{edition} can serve the same page
    assert [f.get("src") for f in frames] == ["html", "html", "dark"]
    assert all(f.get("sandbox") is not None for f in frames)
    assert root.xpath("//a/@href") == ["message.eml"]
    assert "Hello Reader," in root.xpath("//pre")[0].text_content()
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    html = await client.get(urljoin(str(page.url), frames[0].get("src")))
    assert html.url.path == "/html"
    assert html.headers["content-security-policy"] == EMAIL_FRAME_CSP
    assert html.text.startswith("<!DOCTYPE html>")
    assert "Hello Reader," in (await client.get("/text")).text
    eml = await client.get(urljoin(str(page.url), "message.eml"))
    assert eml.headers["content-type"] == "message/rfc822"
    assert _parse(eml.content)["To"] == "Reader <reader@example.com>"


async def test_preview_page_picks_up_template_edits(
    preview_client: tuple[httpx.AsyncClient, Path],
) -> None:
    client, folder = preview_client
    assert "EDITED-BY-THE-EDITOR" not in (await client.get("/html")).text
    digest = folder / "email" / "digest.html"
    digest.write_text(
        digest.read_text().replace(
            "{% block content %}", "{% block content %}<tr><td>EDITED-BY-THE-EDITOR</td></tr>"
        ),
        encoding="utf-8",
    )
    # jinja2 checks modification times; make sure this edit looks newer
    later = time.time() + 5
    os.utime(digest, (later, later))
    assert "EDITED-BY-THE-EDITOR" in (await client.get("/html")).text


def test_preview_serve_binds_loopback(run_cli: Callable[..., CLIResult], workdir: Path) -> None:
    _prepare(run_cli)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=f"sqlite:///{workdir / 'test.db'}",
        NEWSLETTER_SECRET_KEY=SECRET.decode(),
        NEWSLETTER_BASE_URL="https://news.example.com/newsletter",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "preview", "--serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.text.count("<iframe") == 3
        listening = subprocess.run(
            ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout
        if listening:
            assert f"127.0.0.1:{port}" in listening
            assert f"0.0.0.0:{port}" not in listening
    finally:
        out, err = interrupt(proc)
    assert f"http://127.0.0.1:{port}/" in out
    assert "Traceback" not in err


def test_preview_serve_on_a_busy_port_is_one_line(run_cli: Callable[..., CLIResult]) -> None:
    _prepare(run_cli)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("preview", "--serve", "--port", str(port))
    assert result.code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use)"
    ]


def test_an_unwritable_folder_is_one_clear_error(settings: Settings, tmp_path: Path) -> None:
    from newsletter.core.errors import InputError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    document = build_preview(settings, daily_edition(), sample_recipient(settings))
    with pytest.raises(InputError, match="cannot write the preview") as caught:
        write_preview(document, blocker / "out")
    assert str(blocker / "out") in str(caught.value)
    assert "\n" not in str(caught.value)
