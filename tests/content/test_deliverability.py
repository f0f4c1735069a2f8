"""Deliverability, checked on messages really sent through the engine to an SMTP server:
SpamAssassin's local rules, DKIM oversigning, the bulk-mail headers, folding, the
date zone, where bgcolor may appear, and the refusal of dead unsubscribe links."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path

import dkim
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from newsletter.core.config import Settings
from newsletter.core.errors import ConfigError, SMTPUnavailableError
from newsletter.delivery.engine import send_edition
from tests.plugins.smtp import Received, SMTPServer
from tests.support.html_checks import parse
from tests.support.sendkit import populate, with_smtp

SELECTOR = "news2026"
DOMAIN = "news.example.com"
DNSFunc = Callable[..., bytes]


def _dkim_key(folder: Path) -> tuple[Path, bytes]:
    key = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


@pytest.fixture
async def sent(
    settings: Settings, sqlite_engine: Engine, smtp_server: SMTPServer, tmp_path: Path
) -> tuple[list[Received], DNSFunc]:
    """Two messages of the example edition, DKIM-signed, as the relay received them."""
    key, record = _dkim_key(tmp_path)
    config = with_smtp(
        settings,
        smtp_server.url,
        dkim_selector=SELECTOR,
        dkim_domain=DOMAIN,
        dkim_key_path=key,
    )
    edition_id = populate(sqlite_engine, settings, 2)
    await send_edition(config, sqlite_engine, edition_id)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode()
        return record

    assert len(smtp_server.received) == 2
    return smtp_server.received, dnsfunc


def _head(data: bytes) -> list[str]:
    return data.partition(b"\r\n\r\n")[0].decode("ascii").split("\r\n")


def _html(data: bytes) -> str:
    message = BytesParser(policy=policy.default).parsebytes(data)
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("spamassassin") is None, reason="spamassassin not installed")
def test_spamassassin_scores_zero_or_below_with_no_positive_rule(
    sent: tuple[list[Received], DNSFunc],
) -> None:
    received, _ = sent
    report = subprocess.run(
        ["spamassassin", "-L", "-t"],
        input=received[0].data,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode("utf-8", "replace")
    score = float(re.search(r"X-Spam-Status: \w+, score=(-?[\d.]+)", report).group(1))  # type: ignore[union-attr]
    details = report.partition("Content analysis details:")[2]
    positive = [
        line
        for line in details.splitlines()
        if re.match(r"\s*\d+\.\d+ [A-Z_0-9]+", line) and float(line.split()[0]) > 0
    ]
    assert score <= 0.0, report
    assert positive == [], positive
    assert "HTML_FONT_LOW_CONTRAST" not in report


def test_every_signed_header_is_oversigned(sent: tuple[list[Received], DNSFunc]) -> None:
    received, dnsfunc = sent
    data = received[0].data
    assert dkim.verify(data, dnsfunc=dnsfunc)
    message = BytesParser(policy=policy.default).parsebytes(data)
    signature = str(message["DKIM-Signature"]).replace(" ", "")
    names = re.search(r"h=([^;]+)", signature).group(1).lower().split(":")  # type: ignore[union-attr]
    for name in ("from", "subject", "reply-to", "list-unsubscribe", "feedback-id"):
        assert names.count(name) == 2, names
    # a header prepended on the way, even one the message did not have, breaks it
    for extra in (
        b"Subject: You have won\r\n",
        b"Reply-To: thief@evil.example\r\n",
        b"List-Unsubscribe: <https://evil.example/u>\r\n",
        b"Precedence: list\r\n",
    ):
        cut = data.index(b"\r\nDate: ") + 2
        forged = data[:cut] + extra + data[cut:]
        assert not dkim.verify(forged, dnsfunc=dnsfunc), extra


def test_bulk_headers_feedback_id_and_reply_to(
    sent: tuple[list[Received], DNSFunc], settings: Settings
) -> None:
    received, _ = sent
    message = BytesParser(policy=policy.default).parsebytes(received[0].data)
    assert message["Precedence"] == "bulk"
    kind, variant, list_id, sender = str(message["Feedback-ID"]).split(":")
    assert (kind, variant, list_id, sender) == ("daily", "all", "digest." + DOMAIN, DOMAIN)
    # replies reach a read mailbox (the From address by default), never the bounce box
    assert parseaddr(str(message["Reply-To"]))[1] == settings.sender_address
    assert "+" not in str(message["Reply-To"])


def test_date_zone_and_folded_header_lines(sent: tuple[list[Received], DNSFunc]) -> None:
    received, _ = sent
    lines = _head(received[0].data)
    date = next(line for line in lines if line.startswith("Date: "))
    assert date.endswith(" +0000")
    assert "GMT" not in date
    for line in lines:
        if line.startswith("DKIM-Signature") or line.startswith("\t"):
            continue  # dkimpy folds its own header
        # only a link too long to fit any line (beside its header's name) may pass 78
        tokens = line.split()
        assert len(line) <= 78 or (len(tokens) <= 2 and len(tokens[-1]) > 76), line


def test_bgcolor_only_on_body_table_and_td(sent: tuple[list[Received], DNSFunc]) -> None:
    received, _ = sent
    root = parse(_html(received[0].data))
    tags = {element.tag for element in root.iter() if element.get("bgcolor") is not None}
    assert tags <= {"body", "table", "td"}
    assert "td" in tags  # the bulletproof button's cell
    assert "transparent" not in _html(received[0].data)


async def test_send_refuses_dead_links_through_a_real_relay(
    settings: Settings, sqlite_engine: Engine, closed_port: int
) -> None:
    edition_id = populate(sqlite_engine, settings, 1)
    for base in ("http://news.example.com", "https://127.0.0.1:8000", "https://localhost"):
        config = settings.model_copy(
            update={"smtp_url": SecretStr("smtp://relay.example.net:587"), "base_url": base}
        )
        with pytest.raises(ConfigError) as caught:
            await send_edition(config, sqlite_engine, edition_id)
        message = str(caught.value)
        assert "NEWSLETTER_BASE_URL" in message
        assert "\n" not in message
    # a loopback relay (demo, tests) may carry any links: it gets as far as connecting
    local = settings.model_copy(
        update={
            "smtp_url": SecretStr(f"smtp://127.0.0.1:{closed_port}"),
            "base_url": "http://127.0.0.1:8000",
        }
    )
    with pytest.raises(SMTPUnavailableError):
        await send_edition(local, sqlite_engine, edition_id)
