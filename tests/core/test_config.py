"""Settings: sources and their order, spans, SMTP URLs, and secrets kept out of sight."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from newsletter.core.config import SMTPEndpoint, is_loopback_host, load_settings
from newsletter.core.errors import ConfigError, InsecureTransportError


def test_environment_wins_over_toml(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "newsletter.toml").write_text(
        'from = "Toml <t@toml.example>"\nsend_concurrency = 3\n'
    )
    assert load_settings(workdir).sender == "Toml <t@toml.example>"
    monkeypatch.setenv("NEWSLETTER_FROM", "Env <e@env.example>")
    settings = load_settings(workdir)
    assert settings.sender == "Env <e@env.example>"
    assert settings.send_concurrency == 3
    assert settings.sender_domain == "env.example"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3h", timedelta(hours=3)), ("90m", timedelta(minutes=90)), ("PT2H", timedelta(hours=2))],
)
def test_lateness_accepts_spans(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: timedelta
) -> None:
    monkeypatch.setenv("NEWSLETTER_SCHEDULE_MAX_LATENESS", text)
    assert load_settings(workdir).schedule_max_lateness == expected


def test_bad_value_is_one_line_naming_the_setting(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SEND_CONCURRENCY", "many")
    with pytest.raises(ConfigError, match="NEWSLETTER_SEND_CONCURRENCY") as info:
        load_settings(workdir)
    assert "\n" not in str(info.value)


def test_secret_is_generated_once_and_kept_private(workdir: Path) -> None:
    first = load_settings(workdir).secret()
    assert load_settings(workdir).secret() == first
    assert ((workdir / ".newsletter-secret").stat().st_mode & 0o777) == 0o600
    assert first.decode() not in repr(load_settings(workdir))


def test_smtp_url_password_never_in_repr(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", "smtps://user:hunter2@mail.example.com")
    settings = load_settings(workdir)
    endpoint = settings.smtp()
    assert (endpoint.host, endpoint.port, endpoint.tls) == ("mail.example.com", 465, "implicit")
    assert "hunter2" not in repr(endpoint)
    assert "hunter2" not in repr(settings)


def test_remote_smtp_requires_starttls_unless_allowed() -> None:
    assert SMTPEndpoint.parse("smtp://mail.example.com").tls == "starttls"
    assert SMTPEndpoint.parse("smtp://127.0.0.1:2525").tls == "none"
    assert SMTPEndpoint.parse("smtp://mail.example.com", allow_insecure=True).tls == "none"
    with pytest.raises(ConfigError):
        SMTPEndpoint.parse("http://mail.example.com")
    assert issubclass(InsecureTransportError, ConfigError)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("10.0.0.1", False), ("mail.example.com", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        (
            '[[newsletters]]\nid = "Breaking News"\nname = "B"\n',
            "entry 1, field 'id': must be a slug",
        ),
        (
            '[[newsletters]]\nid = "a"\nname = "A"\nfrequency = 1\n',
            "entry 1: unknown field 'frequency'",
        ),
        ('[[newsletters]]\nid = "a"\n', "entry 1: field 'name' is required"),
        (
            '[[newsletters]]\nid = "a"\nname = "A"\n[[newsletters]]\nid = "a"\nname = "B"\n',
            "the id 'a' is used twice",
        ),
    ],
)
def test_a_bad_newsletter_entry_is_one_line_naming_it(workdir: Path, toml: str, words: str) -> None:
    (workdir / "newsletter.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(workdir, create_secret=False)
    assert str(info.value).startswith("newsletter.toml: [[newsletters]]")
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_no_newsletters_configured_is_one_daily_newsletter_keeping_its_list_id(
    workdir: Path,
) -> None:
    settings = load_settings(workdir, create_secret=False)
    [only] = settings.newsletter_list
    assert (only.id, only.name) == ("daily", settings.newsletter_name)
    assert settings.newsletter_list_id("daily") == settings.effective_list_id
