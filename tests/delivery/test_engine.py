"""Sending an edition end to end against a real aiosmtpd server; every message parsed back."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import re
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from sqlalchemy.engine import Engine

from newsletter.content.editions import get_edition
from newsletter.content.models import EditionStatus
from newsletter.core.config import Settings
from newsletter.core.schema import deliveries
from newsletter.database import open_database
from newsletter.delivery import outbox
from newsletter.delivery.engine import SendOptions, send_edition
from newsletter.delivery.outcomes import DeliveryStatus
from subscribers import store
from subscribers.bounces import bounce_token_owner, verp_token
from subscribers.tokens import Purpose, verify_token
from tests.plugins.smtp import Received, SMTPServer
from tests.support.cli import CLIResult
from tests.support.sendkit import address, populate, with_smtp

UNSUBSCRIBE_RE = re.compile(r"<(https://[^>]+/unsubscribe/([^>]+))>, <mailto:[^>]+>")


@pytest.fixture
def engine(settings: Settings) -> Engine:
    """The migrated database of the ``settings`` fixture (the one run_cli uses too)."""
    return open_database(settings.database_url)


def _plain(message: email.message.EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def by_recipient(server: SMTPServer) -> dict[str, Received]:
    found: dict[str, Received] = {}
    for item in server.received:
        [rcpt] = item.rcpt_tos
        assert rcpt not in found, f"{rcpt} received two copies"
        found[rcpt] = item
    return found


async def test_every_message_is_built_right_and_sent_once(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 12)
    config = with_smtp(settings, smtp_server.url)
    report = await send_edition(config, engine, edition_id, options=SendOptions(concurrency=3))

    assert (report.sent, report.failed, report.deferred, report.unknown) == (12, 0, 0, 0)
    received = by_recipient(smtp_server)
    assert sorted(received) == sorted(address(n) for n in range(12))
    with engine.connect() as conn:
        held = {s.id: s for s in store.list_subscribers(conn)}
        ids = {s.email: s.id for s in held.values()}
        rows = {r.email: r for r in conn.execute(deliveries.select()).all()}
        assert get_edition(conn, edition_id).status is EditionStatus.SENT
    message_ids = set()
    for rcpt, item in received.items():
        message = item.message()
        # VERP: the envelope sender is this recipient's own signed return path
        tag = verp_token(item.mail_from)
        assert tag is not None, item.mail_from
        assert bounce_token_owner(config.secret(), tag, held.get) == ids[rcpt]
        assert rcpt in message["To"]
        assert message["Subject"]
        assert message["Date"]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["List-Id"].endswith(f"<{config.effective_list_id}>")
        # folded between its entries (and after the name when the link is long): unfold
        link = UNSUBSCRIBE_RE.fullmatch(str(message["List-Unsubscribe"]).strip())
        assert link, message["List-Unsubscribe"]
        # The token is this recipient's own, signed with the secret key.
        assert (
            verify_token(config.secret(), Purpose.UNSUBSCRIBE, link.group(2), held.get) == ids[rcpt]
        )
        assert message.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        text, html = (p.get_content() for p in message.iter_parts())
        assert link.group(1) in text
        assert link.group(1) in html
        assert message["Message-ID"].endswith(f"@{config.sender_domain}>")
        assert rows[rcpt].message_id == message["Message-ID"]
        assert rows[rcpt].status == "sent"
        assert rows[rcpt].sent_at is not None
        assert all(len(line) <= 998 for line in item.data.split(b"\r\n"))
        # CRLF only (the sender relies on it and does not re-check each message)
        assert item.data.count(b"\n") == item.data.count(b"\r\n")
        assert item.data.count(b"\r") == item.data.count(b"\r\n")
        message_ids.add(message["Message-ID"])
    assert len(message_ids) == 12
    # Connections were reused: 12 messages on at most 3 sessions.
    assert len({r.peer for r in smtp_server.received}) <= 3

    again = await send_edition(config, engine, edition_id)
    assert again.sent == 0
    assert len(smtp_server.received) == 12


async def test_the_outbox_is_written_before_the_first_message(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 8)
    database = settings.database_url.removeprefix("sqlite:///")
    seen: list[int] = []

    def count_rows(_: Received) -> None:
        if not seen:
            with sqlite3.connect(database) as db:
                seen.append(db.execute("SELECT count(*) FROM deliveries").fetchone()[0])

    smtp_server.handler._on_message = count_rows
    await send_edition(with_smtp(settings, smtp_server.url), engine, edition_id)
    assert seen == [8]


async def test_recipients_are_confirmed_subscribers_whose_topics_match(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    topics = {0: [], 1: ["crime"], 2: ["knitting"], 3: ["sport", "crime"]}
    edition_id = populate(engine, settings, 4, topics=lambda n: topics[n])
    with engine.begin() as conn:
        store.add(conn, "pending@example.org", secret=settings.secret())
        gone = store.add(conn, "gone@example.org", secret=settings.secret(), confirmed=True)
        store.unsubscribe(conn, gone.id)
    report = await send_edition(with_smtp(settings, smtp_server.url), engine, edition_id)

    received = by_recipient(smtp_server)
    # reader 2 chose a topic no article has: no row, no message
    assert sorted(received) == [address(0), address(1), address(3)]
    assert report.enqueued == 3
    with engine.connect() as conn:
        variants = dict(conn.execute(deliveries.select().with_only_columns(
            deliveries.c.email, deliveries.c.variant
        )).all())  # fmt: skip
    assert variants == {
        address(0): "all",
        address(1): "topics:crime",
        address(3): "topics:crime,sport",
    }
    everything = _plain(received[address(0)].message())
    crime_only = _plain(received[address(1)].message())
    assert "Met Police" in crime_only or "facial recognition" in crime_only.lower()
    assert len(crime_only) < len(everything)


async def test_dry_run_builds_everything_and_changes_nothing(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 5)
    report = await send_edition(
        with_smtp(settings, smtp_server.url), engine, edition_id, options=SendOptions(dry_run=True)
    )
    assert report.built == 5
    assert report.built_bytes > 5 * 5000
    assert report.variants == 1
    assert smtp_server.received == []
    with engine.connect() as conn:
        assert outbox.status(conn, edition_id).total == 0
        assert get_edition(conn, edition_id).status is EditionStatus.DRAFT


async def test_test_to_sends_one_message_and_leaves_the_outbox_alone(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 3)
    report = await send_edition(
        with_smtp(settings, smtp_server.url),
        engine,
        edition_id,
        options=SendOptions(test_to="editor@example.org"),
    )
    assert report.sent == 1
    [item] = smtp_server.received
    assert item.rcpt_tos == ["editor@example.org"]
    assert "editor@example.org" in item.message()["To"]
    with engine.connect() as conn:
        assert outbox.status(conn, edition_id).total == 0
        assert get_edition(conn, edition_id).status is EditionStatus.DRAFT


def _dkim_key(folder: Path) -> tuple[Path, bytes]:
    """A fresh RSA key (openssl) and the DNS TXT record publishing its public half."""
    key = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


async def test_dkim_signature_verifies_and_covers_the_unsubscribe_headers(
    settings: Settings, engine: Engine, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    key, record = _dkim_key(tmp_path)
    config = with_smtp(
        settings,
        smtp_server.url,
        dkim_selector="news2026",
        dkim_domain="news.example.com",
        dkim_key_path=key,
    )
    edition_id = populate(engine, settings, 2)
    await send_edition(config, engine, edition_id)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news2026._domainkey.news.example.com."
        return record

    assert len(smtp_server.received) == 2
    for item in smtp_server.received:
        assert dkim.verify(item.data, dnsfunc=dnsfunc)
        assert item.data.count(b"\n") == item.data.count(b"\r\n")
        signature = item.message()["DKIM-Signature"]
        found = re.search(r"h=([^;]+)", signature.replace(" ", "").replace("\r\n", ""))
        assert found is not None
        signed = found.group(1)
        names = signed.lower().split(":")
        assert "list-unsubscribe" in names
        assert "list-unsubscribe-post" in names
        # Tampering with the unsubscribe link breaks the signature.
        forged = item.data.replace(b"/unsubscribe/", b"/unsubscrib3/", 1)
        assert not dkim.verify(forged, dnsfunc=dnsfunc)


def test_cli_send_then_status_json(
    settings: Settings,
    engine: Engine,
    smtp_server: SMTPServer,
    run_cli: Callable[..., CLIResult],
) -> None:
    edition_id = populate(engine, settings, 6)
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url}
    sent = run_cli("send", edition_id, "--concurrency", "2", env=env)
    assert sent.code == 0, sent.stderr
    assert f"{edition_id}: sent 6" in sent.stdout
    assert len(smtp_server.received) == 6
    shown = run_cli("status", edition_id, "--json", env=env)
    assert shown.code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["edition_status"] == "sent"
    assert data["counts"]["sent"] == 6
    assert data["total"] == 6
    table = run_cli("status", edition_id, env=env)
    assert "sent" in table.stdout
    assert "6" in table.stdout
    again = run_cli("send", edition_id, env=env)
    assert again.code == 0
    assert "nothing to send" in again.stdout
    test = run_cli("send", edition_id, "--test-to", "editor@example.org", env=env)
    assert test.code == 0
    assert "sent to editor@example.org" in test.stdout
    assert len(smtp_server.received) == 7
    # the test copy says so, in the subject and in both parts, and counts for nothing
    copy = email.message_from_bytes(smtp_server.received[-1].data, policy=email.policy.default)
    assert str(copy["Subject"]).startswith("[TEST] ")
    for part in ("plain", "html"):
        body = copy.get_body(preferencelist=(part,))
        assert body is not None
        assert "TEST COPY for editor@example.org" in body.get_content()
    assert json.loads(run_cli("status", edition_id, "--json").stdout)["counts"]["sent"] == 6
    # a dry run of an edition that went out says what a real send would do now
    dry = run_cli("send", edition_id, "--dry-run", env=env)
    assert dry.code == 0
    assert f"dry run of {edition_id}: 6 already sent, 0 still to send" in dry.stdout
    assert "built" not in dry.stdout
    assert len(smtp_server.received) == 7


def test_cli_dry_run_before_a_send_builds_every_message(
    settings: Settings, engine: Engine, smtp_server: SMTPServer, run_cli: Callable[..., CLIResult]
) -> None:
    edition_id = populate(engine, settings, 4)
    dry = run_cli("send", edition_id, "--dry-run", env={"NEWSLETTER_SMTP_URL": smtp_server.url})
    assert dry.code == 0, dry.stderr
    assert "built 4 messages" in dry.stdout
    assert smtp_server.received == []


def test_cli_unknown_edition_is_one_clean_line(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("send", "no-such-edition")
    assert result.code == 1
    assert result.stderr.strip() == "error: no edition with id 'no-such-edition'"
    assert DeliveryStatus.SENT.value == "sent"


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def test_several_workers_share_one_edition_and_send_each_message_once(
    backend: str, request: pytest.FixtureRequest, settings: Settings, smtp_server: SMTPServer
) -> None:
    url = (
        settings.database_url if backend == "sqlite" else request.getfixturevalue("postgresql_url")
    )
    config = with_smtp(settings, smtp_server.url, database_url=url)
    engines = [open_database(url) for _ in range(3)]
    try:
        edition_id = populate(engines[0], config, 60)
        options = SendOptions(concurrency=2, claim_batch=8)
        reports = await asyncio.gather(
            *(send_edition(config, e, edition_id, options=options) for e in engines)
        )
        assert sum(r.sent for r in reports) == 60
        assert sum(1 for r in reports if r.sent) >= 2  # the work really was shared
        by_recipient(smtp_server)  # raises on a second copy
        assert len(smtp_server.received) == 60
        with engines[0].connect() as conn:
            assert get_edition(conn, edition_id).status is EditionStatus.SENT
            assert outbox.counts(conn, edition_id)[DeliveryStatus.SENT] == 60
    finally:
        for engine in engines:
            engine.dispose()
