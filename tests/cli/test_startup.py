"""The command line starts without loading what a command does not use.

Speed itself is measured by bench/startup.py; these tests pin the cause: which
heavy packages each command imports (``python -X importtime``).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

RENDERING = {"premailer", "cssutils", "lxml"}
SENDING = {"aiosmtplib", "dkim"}
# pydantic itself is loaded by Typer for a subcommand's help (typer._adapters)
STORAGE = {"sqlalchemy", "pydantic_settings"}


def imported_modules(workdir: Path, *args: str) -> set[str]:
    """Every module (full dotted name) ``newsletter ARGS`` imports, from ``-X importtime``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_SECRET_KEY"] = "test-secret-key-not-for-production"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "newsletter", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def imported(workdir: Path, *args: str) -> set[str]:
    """The top-level packages ``newsletter ARGS`` imports."""
    return {name.split(".")[0] for name in imported_modules(workdir, *args)}


def _init(workdir: Path) -> None:
    """A working folder made by ``newsletter init`` (an empty, migrated database)."""
    subprocess.run(
        [sys.executable, "-m", "newsletter", "init"],
        cwd=workdir,
        env={**os.environ, "NEWSLETTER_SECRET_KEY": "test-secret-key-not-for-production"},
        capture_output=True,
        check=True,
    )


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["edition", "--help"], ["subscribers", "list", "--help"]]
)
def test_help_loads_no_library(workdir: Path, args: list[str]) -> None:
    loaded = imported(workdir, *args)
    assert "typer" in loaded  # the measurement works
    assert not loaded & (RENDERING | SENDING | STORAGE)
    if len(args) == 1:
        assert "pydantic" not in loaded


@pytest.mark.parametrize("args", [["subscribers", "list"], ["edition", "list"], ["status", "x"]])
def test_commands_that_do_not_render_never_load_premailer(workdir: Path, args: list[str]) -> None:
    _init(workdir)
    loaded = imported(workdir, *args)
    # it did open the database (a listing on the bare driver, the others through SQLAlchemy)
    assert ("sqlite3" if args[0] == "subscribers" else "sqlalchemy") in loaded
    assert not loaded & (RENDERING | SENDING)


def test_a_read_only_command_creates_no_database(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "subscribers", "list"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: no database here (newsletter.db); run 'newsletter init' or set "
        "NEWSLETTER_DATABASE_URL"
    )
    assert sorted(p.name for p in workdir.iterdir()) == []


def test_init_makes_a_working_folder_and_keeps_what_exists(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}

    def init() -> str:
        return subprocess.run(
            [sys.executable, "-m", "newsletter", "init"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    first = init()
    assert "created database newsletter.db" in first
    assert (workdir / ".newsletter-secret").stat().st_mode & 0o077 == 0
    toml = (workdir / "newsletter.toml").read_text()
    assert all(line.startswith("#") or not line.strip() for line in toml.splitlines())
    key = (workdir / ".newsletter-secret").read_text()
    assert "kept database" in init()
    assert (workdir / ".newsletter-secret").read_text() == key


# What `subscribers list` must not load: it reads one table on SQLite with the bare
# driver and prints lines (bench/startup.py holds it within 2.5x a bare Typer app's start-up).
NOT_FOR_LISTING = {
    "sqlalchemy",  # a current database with the right key needs no engine
    "email_validator",  # only commands that take an address validate one
    "sqlalchemy.dialects.postgresql",  # only a PostgreSQL URL needs its dialect
    "psycopg",
    "rich.progress",  # the send's progress bar only
    "rich.table",  # lists are plain aligned lines (newsletter.cli.tables)
    "rich.console",  # output is plain text (newsletter.cli.common.Printer)
    "newsletter.cli.editions",  # only the command that runs is imported
    "newsletter.cli.delivery",
    "newsletter.cli.schedules",
    "newsletter.content.render",
    "newsletter.delivery",
    "newsletter.scheduling",
    "newsletter.web.app",
    "jinja2",
    "starlette",
}


def test_subscribers_list_loads_only_what_a_listing_needs(workdir: Path) -> None:
    _init(workdir)
    loaded = imported_modules(workdir, "subscribers", "list")
    assert {"sqlite3", "subscribers.listing"} <= loaded
    assert not loaded & (NOT_FOR_LISTING | RENDERING | SENDING), sorted(
        loaded & (NOT_FOR_LISTING | RENDERING | SENDING)
    )


def test_subscribers_list_on_an_outdated_database_migrates_it_first(workdir: Path) -> None:
    _init(workdir)
    with sqlite3.connect(workdir / "newsletter.db") as db:
        db.execute("DELETE FROM schema_migrations WHERE name = '0012_subject_tests'")
    db.close()
    # not current: the full path (SQLAlchemy, the migrations) runs, then the listing
    assert "sqlalchemy" in imported(workdir, "subscribers", "list")
    with sqlite3.connect(workdir / "newsletter.db") as db:
        names = [name for (name,) in db.execute("SELECT name FROM schema_migrations")]
    db.close()
    assert "0012_subject_tests" in names
    assert "sqlalchemy" not in imported(workdir, "subscribers", "list")  # current again


def _list(workdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "subscribers", "list"],
        cwd=workdir,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_subscribers_list_checks_the_key_on_the_bare_driver_too(workdir: Path) -> None:
    _init(workdir)
    other = "another-key-entirely-Zp8wQ3xR6tV1yN4mK7bH2cJ5"
    refused = _list(workdir, NEWSLETTER_SECRET_KEY=other)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: NEWSLETTER_SECRET_KEY is not the key this database was used with; set it to "
        "that key (or, to rotate, list that key in NEWSLETTER_SECRET_KEYS_PREVIOUS)"
    )
    assert refused.stdout == ""
    # during a rotation the retired key's record is accepted, and a listing records nothing
    with sqlite3.connect(workdir / "newsletter.db") as db:
        before = db.execute("SELECT fingerprint FROM database_keys").fetchall()
    db.close()
    rotating = _list(
        workdir,
        NEWSLETTER_SECRET_KEY=other,
        NEWSLETTER_SECRET_KEYS_PREVIOUS="test-secret-key-not-for-production",
    )
    assert rotating.returncode == 0, rotating.stderr
    assert rotating.stdout.splitlines()[-1] == "0 subscribers"
    with sqlite3.connect(workdir / "newsletter.db") as db:
        assert db.execute("SELECT fingerprint FROM database_keys").fetchall() == before
    db.close()
