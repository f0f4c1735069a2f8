"""The List-Unsubscribe line with real signed links: folded between its entries at 78
characters, never inside a URL, never over 998; unfolded it is exactly the two links;
DKIM still verifies; the RFC 8058 one-click header stays as it was."""

from __future__ import annotations

import base64
import subprocess
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import dkim
import pytest

from newsletter.content.message import MessageTemplate, Personal
from newsletter.content.render import Renderer
from newsletter.core.config import Settings, load_settings
from newsletter.core.errors import HeaderInjectionError
from newsletter.delivery.dkim import DKIMSigner
from subscribers.links import preferences_url, unsubscribe_links
from tests.support.sample_editions import daily_edition

SECRET = "test-secret-key-not-for-production"
LONG_BASE = "https://newsletters.britainsnewsportal.co.uk"
# the default (the demo's) base URL; a short real one; a long real one
BASES = [None, "https://news.example.com", LONG_BASE, LONG_BASE + "/newsletter"]
IDS = [1, 70_000, 16**6 - 1]  # one, seventy thousand and 16.7 million readers


def _settings(folder: Path, base_url: str | None, **more: object) -> Settings:
    options: dict[str, Any] = {"secret_key": SECRET, **more}
    if base_url is not None:
        options["base_url"] = base_url
        options["sender"] = f"News <news@{base_url.split('//')[1].split('/')[0]}>"
    return load_settings(folder, **options)


def _message(settings: Settings, subscriber_id: int) -> tuple[bytes, str, str]:
    """One personalised message with this reader's real links, and the two links."""
    email = f"reader{subscriber_id}@example.org"
    url, mailto = unsubscribe_links(settings, subscriber_id, email)
    template = MessageTemplate.from_variant(Renderer(settings).render(daily_edition()), settings)
    raw = template.personalise(
        Personal(
            email=email,
            name="Reader",
            unsubscribe_url=url,
            preferences_url=preferences_url(settings, subscriber_id, email),
            message_id=f"<{subscriber_id}@news.example.com>",
            unsubscribe_mailto=mailto,
        )
    )
    return raw, url, mailto


def _field(raw: bytes, name: str) -> list[str]:
    """The lines of header ``name`` as written (its first line and continuations)."""
    lines = raw.partition(b"\r\n\r\n")[0].decode("ascii").split("\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
    end = start + 1
    while end < len(lines) and lines[end][:1] in (" ", "\t"):
        end += 1
    return lines[start:end]


@pytest.mark.parametrize("base_url", BASES)
@pytest.mark.parametrize("subscriber_id", IDS)
def test_folded_between_entries_within_78_where_a_url_allows(
    tmp_path: Path, base_url: str | None, subscriber_id: int
) -> None:
    settings = _settings(tmp_path, base_url)
    raw, url, mailto = _message(settings, subscriber_id)
    lines = _field(raw, "List-Unsubscribe")
    # unfolded (RFC 5322: remove each CRLF before white space) it is the two links
    unfolded = "".join(lines).removeprefix("List-Unsubscribe:").strip()
    assert unfolded == f"<{url}>, <{mailto}>"
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert str(parsed["List-Unsubscribe"]).strip() == unfolded
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert all(len(line) <= 998 for line in lines)
    # the mailto entry always has a line of its own
    assert lines[-1] == f" <{mailto}>"
    for line in lines:
        if len(line) > 78:  # only an entry alone on its line, too long for any line
            assert line.strip().rstrip(",") in (f"<{url}>", f"<{mailto}>"), line
            assert len(line.strip().rstrip(",")) > 76, line
    https_line = next(line for line in lines if f"<{url}>" in line)
    if len(url) + 4 <= 78:
        assert len(https_line) <= 78, https_line
    if base_url is None:  # the default base URL: the https link fits a line
        assert len(https_line) <= 78, https_line


def test_a_short_link_stays_on_the_name_line(tmp_path: Path) -> None:
    settings = _settings(tmp_path, None)
    template = MessageTemplate.from_variant(Renderer(settings).render(daily_edition()), settings)
    raw = template.personalise(
        Personal(
            email="a@example.org",
            name="A",
            unsubscribe_url="https://n.example/u/1",
            preferences_url="https://n.example/p/1",
            message_id="<1@n.example>",
            unsubscribe_mailto="mailto:u@n.example?subject=unsubscribe%201",
        )
    )
    assert _field(raw, "List-Unsubscribe") == [
        "List-Unsubscribe: <https://n.example/u/1>,",
        " <mailto:u@n.example?subject=unsubscribe%201>",
    ]


def test_no_line_over_998_even_with_a_very_long_base_url(tmp_path: Path) -> None:
    base = "https://news.example.com/" + "n" * 900
    raw, url, _ = _message(_settings(tmp_path, base), 70_000)
    lines = _field(raw, "List-Unsubscribe")
    assert f" <{url}>," in lines
    assert all(len(line) <= 998 for line in raw.partition(b"\r\n\r\n")[0].split(b"\r\n"))
    with pytest.raises(HeaderInjectionError, match="unsubscribe link"):
        _message(_settings(tmp_path, base + "n" * 100), 70_000)


def test_dkim_verifies_the_folded_header_and_oversigns_it(tmp_path: Path) -> None:
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    settings = _settings(
        tmp_path,
        LONG_BASE,
        dkim_selector="s1",
        dkim_domain="britainsnewsportal.co.uk",
        dkim_key_path=key,
    )
    signer = DKIMSigner.from_settings(settings)
    assert signer is not None
    raw, _, _ = _message(settings, 70_000)
    assert _field(raw, "List-Unsubscribe")[0] == "List-Unsubscribe:"  # folded after the name
    signed = signer.sign(raw)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    assert dkim.verify(signed, dnsfunc=dnsfunc)
    cut = signed.index(b"\r\nDate: ") + 2
    forged = signed[:cut] + b"List-Unsubscribe: <https://evil.example/u>\r\n" + signed[cut:]
    assert not dkim.verify(forged, dnsfunc=dnsfunc)
    # the signed List-Unsubscribe unfolds to the same value a receiver acts on
    tampered = signed.replace(b"\r\n <mailto:", b"\r\n <mailto:x")
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)
