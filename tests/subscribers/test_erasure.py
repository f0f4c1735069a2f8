"""Erasure leaves the address nowhere (issue 9, item 9).

A real send through a real SMTP server that refuses one reader with a 550 quoting
the address; the relay's text lands in the outbox. After ``subscribers delete``
the address is in no table, not in ``newsletter status``, and (SQLite) not in the
database file nor its WAL, byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.core.db import make_engine, metadata
from newsletter.privacy import ERASED, scrub_text
from subscribers import store
from tests.plugins.smtp import SMTPServer
from tests.support.cli import CLIResult

Run = Callable[..., CLIResult]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "articles"
ADDRESS = "ann.erasable@example.com"
NAME = "Annabel Erasable"
REFUSAL = f"550 5.1.1 <{ADDRESS}>: no such user ({NAME})"


def _ok(result: CLIResult) -> CLIResult:
    assert result.code == 0, result.stderr
    return result


def _stored_text(url: str) -> str:
    """Every value of every table, as text, lower-cased."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            parts = [
                repr(row)
                for table in metadata.sorted_tables
                if sa.inspect(conn).has_table(table.name)
                for row in conn.execute(sa.select(table))
            ]
    finally:
        engine.dispose()
    return "\n".join(parts).lower()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, workdir: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{workdir / 'test.db'}"
    url: str = request.getfixturevalue("postgresql_url")
    return url


@pytest.mark.smtp_misbehave(refuse={ADDRESS: REFUSAL})
def test_erasure_scrubs_the_relays_error_the_status_and_the_file(
    run_cli: Run, smtp_server: SMTPServer, database_url: str, workdir: Path
) -> None:
    env = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_SMTP_URL": smtp_server.url}
    _ok(run_cli("articles", "import", str(EXAMPLES), env=env))
    _ok(run_cli("subscribers", "add", ADDRESS, "--name", NAME, "--confirmed", env=env))
    _ok(run_cli("subscribers", "add", "bob@example.com", "--confirmed", env=env))
    edition = _ok(run_cli("edition", "build", "--since", "2026-11-24", env=env)).stdout.split()[0]
    _ok(run_cli("send", edition, env=env))
    # an inbound report about Ann, filed in another person's history
    engine = make_engine(database_url)
    with engine.begin() as conn:
        bob = store.get_by_email(conn, "bob@example.com")
        store.record_event(conn, bob.id, "complaint_unverified", bob.created_at, about=ADDRESS)
    engine.dispose()
    before = _ok(run_cli("status", edition, env=env)).stdout
    assert ADDRESS in before  # the attack's premise: the relay's words quote her
    assert ADDRESS in _stored_text(database_url)

    _ok(run_cli("subscribers", "delete", ADDRESS, env=env))

    after = _ok(run_cli("status", edition, env=env))
    assert ADDRESS not in after.stdout + after.stderr
    assert NAME not in after.stdout
    stored = _stored_text(database_url)
    assert ADDRESS not in stored
    assert NAME.lower() not in stored
    assert "bob@example.com" in stored  # nobody else was touched
    if database_url.startswith("sqlite"):
        for path in (workdir / "test.db", workdir / "test.db-wal"):
            if path.exists():
                data = path.read_bytes().lower()
                assert ADDRESS.encode() not in data, path.name
                assert NAME.lower().encode() not in data, path.name


def test_the_database_file_is_private(run_cli: Run, workdir: Path) -> None:
    _ok(run_cli("subscribers", "add", "cy@example.com", "--no-email"))
    for name in ("test.db", "test.db-wal", "test.db-shm"):
        path = workdir / name
        if path.exists():
            assert path.stat().st_mode & 0o777 == 0o600, name


def test_scrubbing_spares_longer_addresses_and_other_words() -> None:
    text = "550 <Ann@Example.com> unknown; joann@example.com fine; ann@example.com.evil too"
    assert scrub_text(text, ["ann@example.com"]) == (
        f"550 <{ERASED}> unknown; joann@example.com fine; ann@example.com.evil too"
    )
    assert re.search("ann@", scrub_text("to ANN@EXAMPLE.COM", ["ann@example.com"])) is None
