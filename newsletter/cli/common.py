"""What every command shares: the settings, the database, consoles and error lines.

One database, one key: the database records the fingerprint of the key it is
used with, and :func:`get_engine` refuses a command whose key differs (a cron job
run from another folder would otherwise sign links ``serve`` rejects and miss the
suppressions of erased people). With no key configured, a key is generated into
``.newsletter-secret`` only by a command that writes, on a database that has no
key yet and holds nobody; a command that only reads never creates a secret.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from newsletter.core.config import Settings
from newsletter.core.errors import ConfigError
from newsletter.core.text import plural

__all__ = [
    "READ_ONLY_COMMANDS",
    "ArticleTopics",
    "Printer",
    "err",
    "get_engine",
    "get_settings",
    "out",
    "plural",
    "read_connection",
    "sqlite_file",
    "warn_unknown_topics",
]


class Printer:
    """Plain lines on stdout or stderr: exactly the text given, one ``print`` a line.

    No markup, emoji codes, highlighting or wrapping is applied (a subject holding
    ``[bold]`` or ``:fire:`` prints as written), and nothing from rich is loaded.
    ``markup`` is accepted, and ignored, for calls written for rich's console.
    """

    def __init__(self, stream: str) -> None:
        self._stream = stream

    @property
    def file(self) -> TextIO:
        """The stream written to now (looked up on each write, as pytest swaps it)."""
        found: TextIO = getattr(sys, self._stream)
        return found

    def print(self, *values: object, markup: bool = False, end: str = "\n") -> None:
        """Write ``values`` joined by a space, then ``end``."""
        self.file.write(" ".join(map(str, values)) + end)

    def print_json(self, text: str) -> None:
        """Write the JSON document ``text`` indented by two spaces."""
        self.print(json.dumps(json.loads(text), indent=2, ensure_ascii=False))


out = Printer("stdout")
err = Printer("stderr")

# the same filter in `articles list` and `edition build`: one definition keeps their help alike
ArticleTopics = Annotated[
    list[str] | None,
    typer.Option(
        "--topic",
        metavar="TOPIC",
        help="Only articles with this topic or section (repeatable).",
    ),
]

#: commands that only read: they never create a secret nor record a key
READ_ONLY_COMMANDS = frozenset(
    {
        "articles list",
        "audit",
        "edition list",
        "edition show",
        "newsletters",
        "preview",
        "report",
        "schedule list",
        "schedule show",
        "status",
        "subscribers export",
        "subscribers list",
        "subscribers show",
        "users list",
    }
)


def _command() -> str:
    """The running command's path without the program name ("subscribers list"), or ""."""
    try:  # typer vendors click from 0.20 on; its context stack is the one in use
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - an older typer on plain click
        from click import get_current_context  # type: ignore[no-redef]

    context = get_current_context(silent=True)
    if context is None:
        return ""
    return context.command_path.partition(" ")[2]


def _reads_only() -> bool:
    return _command() in READ_ONLY_COMMANDS


@functools.cache
def get_settings() -> Settings:
    """The settings for this process, built once from the environment and ``newsletter.toml``.

    A key comes from ``NEWSLETTER_SECRET_KEY`` or ``.newsletter-secret``; none is
    generated here (see :func:`get_engine`).
    """
    from newsletter.core.config import load_settings

    return load_settings(Path.cwd(), create_secret=False)


def _adopt_new_secret(settings: Settings, engine: Engine) -> None:
    """Give a fresh working folder its key, or say which key the database needs."""
    from newsletter.core.config import SECRET_FILE, create_secret_file, load_settings
    from newsletter.database import holds_signed_data, recorded_fingerprint

    if recorded_fingerprint(engine) is not None:
        raise ConfigError(
            f"NEWSLETTER_SECRET_KEY is not set and there is no {SECRET_FILE} here, but this "
            "database was used with a key: set NEWSLETTER_SECRET_KEY to it, or run from the "
            f"folder that holds its {SECRET_FILE}"
        )
    if holds_signed_data(engine):
        raise ConfigError(
            f"NEWSLETTER_SECRET_KEY is not set and there is no {SECRET_FILE} here, but this "
            "database holds subscribers: set NEWSLETTER_SECRET_KEY to the key they were "
            "signed with"
        )
    key = create_secret_file(Path.cwd())
    # every holder of the one cached settings object sees the new key
    settings.secret_key = load_settings(Path.cwd(), create_secret=False).secret_key
    if settings.secret_key is None or settings.secret_key.get_secret_value() != key:
        raise ConfigError(f"{SECRET_FILE} could not be read back")


def sqlite_file(url: str) -> Path | None:
    """The file an ``sqlite:///`` URL names (relative to the working folder), else None."""
    if not url.startswith("sqlite:///") or url in ("sqlite:///:memory:", "sqlite://"):
        return None
    return Path(url.removeprefix("sqlite:///"))


def _refuse_missing(settings: Settings, reads_only: bool) -> None:
    """A command that only reads never creates the SQLite file the settings name."""
    missing = sqlite_file(settings.database_url)
    if reads_only and missing is not None and not missing.exists():
        raise ConfigError(
            f"no database here ({missing}); run 'newsletter init' or set NEWSLETTER_DATABASE_URL"
        )


@functools.cache
def get_engine() -> Engine:
    """The migrated database engine named by the settings, checked against the key.

    Raises :class:`ConfigError` when the key is not the one the database was used with.
    """
    from newsletter.database import check_database_key, open_database

    settings = get_settings()
    reads_only = _reads_only()
    _refuse_missing(settings, reads_only)
    engine = open_database(settings.database_url, durable=settings.durable == "full")
    if settings.secret_key is None and not reads_only:
        _adopt_new_secret(settings, engine)
    if settings.secret_key is not None:
        check_database_key(engine, settings.secret(), record=not reads_only)
    return engine


def _current_sqlite(settings: Settings) -> Any | None:
    """A ``sqlite3`` connection to the settings' SQLite file when it needs nothing
    :func:`get_engine` would do for a command that only reads: every migration is
    applied and the key record accepts the key. Else None (and nothing is changed).

    Raises :class:`ConfigError` for a missing file or another key, as get_engine does.
    """
    import sqlite3

    from newsletter.core.dbapi import execute, migrated, open_sqlite
    from newsletter.core.keys import key_standing

    path = sqlite_file(settings.database_url)
    if path is None:
        return None
    _refuse_missing(settings, reads_only=True)
    try:
        conn = open_sqlite(path, durable=settings.durable == "full")
    except sqlite3.Error:
        return None  # get_engine says why, in its words
    try:
        current = migrated(conn)
        if current and settings.secret_key is not None:
            sql = "SELECT fingerprint FROM database_keys WHERE id = 1"
            found = execute(conn, sql).fetchone()
            key_standing(None if found is None else found[0], settings.secret())
    except sqlite3.Error:
        current = False
    except BaseException:
        conn.close()
        raise
    if not current:
        conn.close()
        return None
    return conn


@contextlib.contextmanager
def read_connection() -> Iterator[Any]:
    """A DB-API connection (plain SQL, see :mod:`newsletter.core.dbapi`) for a command
    that only reads (:data:`READ_ONLY_COMMANDS`), closed after the block.

    On an SQLite file whose schema is current and whose key record accepts the key,
    the bare ``sqlite3`` driver (SQLAlchemy is not loaded); otherwise the driver
    connection of :func:`get_engine`'s (which migrates and checks the key first).
    Errors are get_engine's: no database here, another key.
    """
    fast = _current_sqlite(get_settings())
    if fast is not None:
        try:
            yield fast
        finally:
            fast.close()
        return
    with get_engine().connect() as conn:
        yield conn.connection.dbapi_connection


def warn_unknown_topics(conn: Connection, topics: list[str] | None) -> None:
    """Warn (on stderr) about topics no stored article has, suggesting a close one."""
    import difflib

    from newsletter.content.articles import known_topics
    from newsletter.core.topics import normalise_topic

    if not topics:
        return
    known = known_topics(conn)
    if not known:
        return  # no articles yet: nothing to compare with
    for topic in topics:
        slug = normalise_topic(topic)
        if slug in known:
            continue
        close = difflib.get_close_matches(slug, list(known), n=1, cutoff=0.7)
        hint = f"; did you mean {close[0]}?" if close else ""
        err.print(f"warning: no article has the topic {topic!r}{hint}", markup=False)
