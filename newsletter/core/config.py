"""Configuration: one :class:`Settings` object, built at the edge and passed down.

Sources, strongest first: keyword arguments, ``NEWSLETTER_*`` environment
variables, ``newsletter.toml`` in the working folder, then the embedded defaults
(which run the whole product locally on SQLite and a loopback SMTP sink).
Secrets are ``SecretStr`` and never appear in ``repr``, logs or errors.

Key rotation: ``NEWSLETTER_SECRET_KEYS_PREVIOUS`` lists retired keys. New link
tokens and suppression hashes use ``NEWSLETTER_SECRET_KEY`` only; checking a
token or a suppression also tries each retired key (see :mod:`newsletter.core.keys`).
A blank or weak key is refused; so is a blank ``.newsletter-secret``.

``NEWSLETTER_DURABLE``: SQLite commits with ``synchronous=NORMAL`` by default,
which survives a crash of the process or the machine's software but may lose the
last commits on a power loss; ``full`` (``synchronous=FULL``) survives that too,
at the cost of a sync on every commit.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from newsletter.core.brand import Brand, SignupSection
from newsletter.core.errors import ConfigError, InsecureTransportError
from newsletter.core.keys import SigningSecret, check_key_strength, make_key_hint, signing_secret
from newsletter.core.newsletters import DEFAULT_NEWSLETTER_ID, Newsletter, Newsletters
from newsletter.core.problems import describe_problem

__all__ = [
    "SECRET_FILE",
    "Brand",
    "SMTPEndpoint",
    "Settings",
    "SignupSection",
    "create_secret_file",
    "describe_problem",
    "is_loopback_host",
    "load_settings",
]

SECRET_FILE = ".newsletter-secret"  # noqa: S105 - a file name, not a secret
_TOML_FILE: ContextVar[Path] = ContextVar("toml_file", default=Path("newsletter.toml"))


class Settings(BaseSettings):
    """Everything the product can be told; see the README for each variable."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    database_url: str = "sqlite:///newsletter.db"
    smtp_url: SecretStr = SecretStr("smtp://127.0.0.1:1025")
    smtp_allow_insecure: bool = False
    smtp_timeout: float = Field(default=30.0, gt=0)
    sender: str = Field(
        default="Britain's News Portal <newsletter@news.example.com>",
        validation_alias=AliasChoices("from", "NEWSLETTER_FROM", "sender"),
    )
    # where readers' replies go: a real mailbox someone reads (default: the From address)
    reply_to: str | None = None
    # VERP bounce address (MAIL FROM gets "+<signed tag>"); default bounces@ the From domain
    bounce_address: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = None
    # comma-separated retired keys, still accepted when checking (see README: rotation)
    secret_keys_previous: SecretStr | None = None
    postal_address: str = "Britain's News Portal, 1 Fleet Street, London EC4Y 1AA, United Kingdom"
    site_name: str = "Britain's News Portal"
    list_id: str | None = None
    language: str = "en"
    direction: Literal["ltr", "rtl"] = "ltr"
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_key_path: Path | None = None
    timezone: str = "Europe/London"
    schedule_max_lateness: timedelta = timedelta(hours=2)
    # a reader is not sent a story again within this span (edition build --allow-repeats)
    repeat_window: timedelta = timedelta(days=7)
    # article links through BASE_URL/c/<token>: off, counted per edition, or per reader
    track_clicks: Literal["off", "aggregate", "per-subscriber"] = "aggregate"
    send_concurrency: int = Field(default=8, ge=1, le=256)
    send_rate: float | None = Field(default=None, gt=0)
    send_max_attempts: int = Field(default=5, ge=1, le=50)
    send_failure_threshold: int = Field(default=50, ge=1)
    # sends run on uvloop when installed (the `fast` extra) unless this says "asyncio"
    event_loop: Literal["auto", "asyncio"] = "auto"
    # SQLite: "normal" survives a process crash, "full" also a power loss (slower commits)
    durable: Literal["normal", "full"] = "normal"
    # reverse proxies whose X-Forwarded-For/-Proto `serve` believes: IPs or CIDRs; none by default
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # the editor's console (/admin): session lifetimes, and whether editors may send to all
    console_idle_timeout: timedelta = timedelta(minutes=30)
    console_session_max: timedelta = timedelta(hours=12)
    console_editors_may_send: bool = False
    # the console's article import may fetch feeds from private, loopback, link-local hosts
    feed_allow_private: bool = False
    # the Maildir `newsletter inbound` reads: the console counts its quarantined messages
    inbound_maildir: Path | None = None
    # the email and the readers' pages: [brand] in newsletter.toml, NEWSLETTER_BRAND__COLOUR...
    brand: Brand = Field(default_factory=Brand)
    greetings: bool = True  # "Hello Ada," at the top of each email; false: no greeting
    # a welcome email once a reader confirms (what they will get, their links); false: none
    welcome_email: bool = True
    # Feedback-ID's sender field (Gmail Postmaster Tools); default: the From domain
    feedback_id_sender: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$")
    privacy_url: str | None = None  # the privacy notice, linked from signup and every footer
    schedule_text: str = "every morning"  # when the digest arrives, in the signup copy
    # the signup page's choices (5-10 topics, each with a one-line description)
    signup_sections: list[SignupSection] = Field(default_factory=list, max_length=10)
    # the newsletters readers choose from ([[newsletters]]); none: one, "daily"
    newsletters: list[Newsletter] = Field(default_factory=list, max_length=50)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment, then ``newsletter.toml``."""
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_TOML_FILE.get())
        return (init_settings, env_settings, toml)

    @field_validator("schedule_max_lateness", "repeat_window", mode="before")
    @classmethod
    def _lateness_span(cls, value: object) -> object:
        # Accept the spans the CLI accepts (90m, 3h, 1d) besides ISO 8601 and seconds.
        from newsletter.core.times import parse_span

        span = parse_span(value) if isinstance(value, str) else None
        return span if span is not None else value

    @field_validator("secret_keys_previous", mode="before")
    @classmethod
    def _previous_keys_list(cls, value: object) -> object:
        # newsletter.toml may give a list; the environment gives "old1,old2"
        if isinstance(value, list | tuple):
            if not all(isinstance(k, str) and "," not in k for k in value):
                raise ValueError("must be a list of keys, none containing a comma")
            return ",".join(value)
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: object) -> object:
        # the environment gives "10.0.0.2,10.1.0.0/16"; newsletter.toml may give a list
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list | tuple):
            for item in value:
                ipaddress.ip_network(str(item).strip(), strict=False)  # ValueError names it
            return [str(item).strip() for item in value]
        return value

    @field_validator("newsletters")
    @classmethod
    def _one_of_each(cls, value: list[Newsletter]) -> list[Newsletter]:
        seen: set[str] = set()
        for entry in value:
            if entry.id in seen:
                raise ValueError(f"the id {entry.id!r} is used twice")
            seen.add(entry.id)
        defaults = [entry.id for entry in value if entry.default]
        if len(defaults) > 1:
            raise ValueError(f"only one may be the default ({', '.join(defaults)} say so)")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_absolute(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("sender", "reply_to")
    @classmethod
    def _address_has_at(cls, value: str | None) -> str | None:
        if value is not None and "@" not in parseaddr(value)[1]:
            raise ValueError("must be an address such as 'News <news@example.com>'")
        if value is not None and ("\r" in value or "\n" in value):
            raise ValueError("must not contain a line break")
        return value

    @field_validator("privacy_url")
    @classmethod
    def _privacy_absolute(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError("must be an absolute http(s) URL")
        return value

    @property
    def newsletter_name(self) -> str:
        """The newsletter's own name (``[brand] name``), else the site's name + " Briefing"."""
        return self.brand.name or f"{self.site_name} Briefing"

    @cached_property
    def newsletter_list(self) -> Newsletters:
        """The configured newsletters; with none, the site's one newsletter ``daily``."""
        if self.newsletters:
            return Newsletters(self.newsletters)
        return Newsletters(
            [Newsletter(id=DEFAULT_NEWSLETTER_ID, name=self.newsletter_name, default=True)],
            implicit=True,
        )

    def newsletter_list_id(self, newsletter_id: str) -> str:
        """The List-Id value of one newsletter: its own ``list_id``, else ``<id>.<namespace>``
        (the namespace is ``NEWSLETTER_LIST_ID`` or the From domain). The one newsletter of
        a site that configures none keeps :attr:`effective_list_id`, as before."""
        entry = self.newsletter_list.get(newsletter_id)
        if entry.list_id:
            return entry.list_id
        if self.newsletter_list.implicit:
            return self.effective_list_id
        return f"{entry.id}.{self.list_id or self.sender_domain}"

    @property
    def reply_address(self) -> str:
        """The Reply-To value: ``reply_to``, else the From address (never the bounce box)."""
        return self.reply_to or self.sender

    def check_links_reachable(self) -> None:
        """Refuse to send links readers cannot open: an ``http://`` or loopback base URL
        while the relay is not loopback. A loopback relay (demos, tests) may use any.

        Raises :class:`ConfigError` naming ``NEWSLETTER_BASE_URL``.
        """
        if is_loopback_host(self.smtp().host):
            return
        parts = urlsplit(self.base_url)
        if parts.scheme != "https" or is_loopback_host(parts.hostname or ""):
            raise ConfigError(
                f"NEWSLETTER_BASE_URL is {self.base_url}: unsubscribe links must be a "
                "public https:// address when sending through a relay that is not loopback"
            )

    @cached_property
    def sender_address(self) -> str:
        """The bare address of ``sender`` (``news@example.com``)."""
        return parseaddr(self.sender)[1]

    @cached_property
    def sender_domain(self) -> str:
        """The domain of the sender: Message-IDs and the default List-Id live on it."""
        return self.sender_address.rpartition("@")[2].lower()

    @property
    def effective_list_id(self) -> str:
        """The List-Id value (RFC 2919), derived from the sender's domain unless set."""
        return self.list_id or f"digest.{self.sender_domain}"

    def smtp(self) -> SMTPEndpoint:
        """The parsed SMTP relay, refusing clear text to a non-loopback host unless allowed."""
        return SMTPEndpoint.parse(self.smtp_url.get_secret_value(), self.smtp_allow_insecure)

    def secret(self) -> SigningSecret:
        """The key that signs tokens, carrying the retired keys that checks still accept.

        Raises :class:`ConfigError` when no key is configured or the key is weak.
        """
        if self.secret_key is None:
            raise ConfigError(
                f"NEWSLETTER_SECRET_KEY is not set and there is no {SECRET_FILE} here; "
                f"set it to the key this database was used with, or {make_key_hint()}"
            )
        previous = self.secret_keys_previous
        return signing_secret(
            self.secret_key.get_secret_value(),
            previous.get_secret_value() if previous is not None else None,
        )


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and any address in 127.0.0.0/8 or ::1."""
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class SMTPEndpoint:
    """Where and how to reach the relay. ``repr`` hides the password."""

    host: str
    port: int
    tls: Literal["starttls", "implicit", "none"]
    username: str | None = None
    password: SecretStr | None = None

    def __repr__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"SMTPEndpoint(smtp://{user}{self.host}:{self.port}, tls={self.tls})"

    @classmethod
    def parse(cls, url: str, allow_insecure: bool = False) -> SMTPEndpoint:
        """Parse ``smtp://[user:pass@]host[:port]`` (STARTTLS) or ``smtps://`` (implicit TLS).

        ``smtp://`` to a loopback host may run in the clear; to any other host
        STARTTLS is required unless ``allow_insecure`` is set explicitly.
        """
        # An unescaped / # or ? in the password ends the authority early: the
        # rest of the password would land in the host or port, and in errors.
        rest = url.partition("://")[2]
        cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        if "@" in rest[cut:]:
            raise ConfigError(
                "NEWSLETTER_SMTP_URL: the user name or password holds a '/', '#' or '?'; "
                "the password must be URL-encoded (e.g. %2F for /)"
            )
        try:
            parts = urlsplit(url)
            host = parts.hostname
            port = parts.port
        except ValueError:
            # the message of the ValueError may quote part of the password
            raise ConfigError(
                "NEWSLETTER_SMTP_URL is not a valid URL (check the port; "
                "the password must be URL-encoded)"
            ) from None
        if parts.scheme not in {"smtp", "smtps"} or not host:
            raise ConfigError(
                "NEWSLETTER_SMTP_URL must look like smtp://host:587 or smtps://host:465"
            )
        username = unquote(parts.username) if parts.username else None
        password = SecretStr(unquote(parts.password)) if parts.password else None
        if parts.scheme == "smtps":
            return cls(host, port or 465, "implicit", username, password)
        if is_loopback_host(host):
            tls: Literal["starttls", "implicit", "none"] = "none"
        elif allow_insecure:
            tls = "none"
        else:
            tls = "starttls"
        if tls == "none" and username and not is_loopback_host(host) and not allow_insecure:
            raise InsecureTransportError("refusing to authenticate without TLS")
        return cls(host, port or (25 if tls == "none" else 587), tls, username, password)


def create_secret_file(folder: Path) -> str:
    """Generate a strong key into ``folder/.newsletter-secret`` (mode 0600) and return it.

    Refuses to overwrite an existing file.
    """
    key = secrets.token_urlsafe(32)
    fd = os.open(folder / SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


def _read_secret_file(path: Path) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read ({type(exc).__name__})") from None
    check_key_strength(key, str(path))
    return key


def _with_secret(settings: Settings, folder: Path, create: bool) -> Settings:
    if settings.secret_key is not None:
        settings.secret()  # refuse a blank or weak key now, not at the first link
        return settings
    path = folder / SECRET_FILE
    if path.exists():
        key = _read_secret_file(path)
    elif create:
        key = create_secret_file(folder)
    else:
        return settings
    return settings.model_copy(update={"secret_key": SecretStr(key)})


def load_settings(
    folder: Path | None = None, *, create_secret: bool = True, **overrides: object
) -> Settings:
    """Build the settings from the environment and ``newsletter.toml`` in ``folder``.

    When no secret key is configured, the key in ``.newsletter-secret`` in that
    folder is used; if there is none and ``create_secret`` is true, a strong one
    is generated there (mode 0600). A blank or weak key (under 32 bytes) is refused.
    Raises :class:`ConfigError` with one line per problem, never echoing a secret.
    """
    folder = folder or Path.cwd()
    token = _TOML_FILE.set(folder / "newsletter.toml")
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_problem(exc.errors()[0])) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"newsletter.toml: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError("newsletter.toml: not UTF-8 text") from None
    finally:
        _TOML_FILE.reset(token)
    return _with_secret(settings, folder, create_secret)
