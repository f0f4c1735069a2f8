"""Keys: weak or blank keys refused (issue 9 item 4); one database, one key (item 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.core.config import SECRET_FILE, load_settings
from newsletter.core.errors import ConfigError
from newsletter.core.keys import SigningSecret, fingerprint, keys_to_try
from tests.support.cli import CLIResult

GOOD = "test-secret-key-not-for-production"
OTHER = "another-key-of-full-strength-5f1e9c3a7b"
WEAK = ["", "   ", "a", "short-key-of-31-bytes-exactly!!", "a" * 40, "ab" * 32]

Run = Callable[..., CLIResult]


def _cli(folder: Path, *args: str, **env: str) -> CLIResult:
    """``newsletter ARGS`` in ``folder`` with only the NEWSLETTER_* variables given."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    full.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=folder,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CLIResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("key", WEAK)
def test_a_weak_or_blank_key_is_refused(workdir: Path, key: str) -> None:
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY") as info:
        load_settings(workdir, secret_key=key)
    message = str(info.value)
    assert "token_urlsafe(32)" in message
    assert "\n" not in message
    if len(key.strip()) > 3:
        assert key not in message
    # the 34-character key the tests use is long and varied enough
    assert load_settings(workdir, secret_key=GOOD).secret() == GOOD.encode()


@pytest.mark.parametrize("key", ["", "a", "b" * 40])
def test_the_cli_refuses_a_weak_key_in_one_line(run_cli: Run, key: str) -> None:
    result = run_cli("subscribers", "add", "ann@example.com", env={"NEWSLETTER_SECRET_KEY": key})
    assert result.code == 1
    assert result.stderr.startswith("error: NEWSLETTER_SECRET_KEY is ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", ["", "\n", "  \n", "tiny\n"])
def test_a_blank_or_weak_secret_file_is_refused(workdir: Path, content: str) -> None:
    (workdir / SECRET_FILE).write_text(content)
    with pytest.raises(ConfigError, match=SECRET_FILE.replace(".", r"\.")) as info:
        load_settings(workdir)
    assert "\n" not in str(info.value)
    assert (workdir / SECRET_FILE).read_text() == content  # never replaced behind one's back


def test_a_generated_key_is_strong_and_private(workdir: Path) -> None:
    secret = load_settings(workdir).secret()
    assert len(secret) >= 32
    assert ((workdir / SECRET_FILE).stat().st_mode & 0o777) == 0o600
    assert load_settings(workdir, create_secret=False).secret() == secret


def test_a_fingerprint_names_a_key_without_showing_it() -> None:
    print_ = fingerprint(GOOD.encode())
    assert print_ == fingerprint(GOOD.encode()) != fingerprint(OTHER.encode())
    assert GOOD.encode().hex() not in print_
    assert keys_to_try(SigningSecret(b"now", [b"then"])) == (b"now", b"then")


def test_a_cron_job_in_another_folder_is_refused(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "cron"
    home.mkdir()
    elsewhere.mkdir()
    database = {"NEWSLETTER_DATABASE_URL": f"sqlite:///{home / 'newsletter.db'}"}
    first = _cli(home, "subscribers", "add", "ann@example.com", "--confirmed")
    assert first.code == 0, first.stderr
    assert (home / SECRET_FILE).exists()  # a fresh working folder gets its key
    assert _cli(home, "subscribers", "delete", "ann@example.com").code == 0

    # no key in the other folder: a writing command is refused, no secret is made there
    refused = _cli(elsewhere, "subscribers", "import", str(_csv(elsewhere)), **database)
    assert refused.code == 1
    assert "NEWSLETTER_SECRET_KEY is not set" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (elsewhere / SECRET_FILE).exists()
    # a command that only reads works without a key and creates nothing
    listed = _cli(elsewhere, "subscribers", "list", **database)
    assert listed.code == 0, listed.stderr
    assert not (elsewhere / SECRET_FILE).exists()

    # that folder's own, different key: refused, and the erased address stays out
    (elsewhere / SECRET_FILE).write_text(OTHER + "\n")
    imported = _cli(
        elsewhere, "subscribers", "import", str(_csv(elsewhere)), "--confirmed", **database
    )
    assert imported.code == 1
    assert "not the key this database was used with" in imported.stderr
    assert OTHER not in imported.stderr
    shown = _cli(home, "subscribers", "list")
    assert "ann@example.com" not in shown.stdout


def _csv(folder: Path) -> Path:
    path = folder / "list.csv"
    path.write_text("email\nann@example.com\n")
    return path


def test_a_read_only_command_in_a_fresh_folder_creates_no_secret(tmp_path: Path) -> None:
    result = _cli(tmp_path, "articles", "list")
    assert result.code == 1  # nothing here to read: it says so and creates nothing
    assert "no database here" in result.stderr
    assert not (tmp_path / SECRET_FILE).exists()
    assert not (tmp_path / "newsletter.db").exists()


@pytest.mark.postgres
def test_one_postgresql_database_one_key(run_cli: Run, postgresql_url: str) -> None:
    env = {"NEWSLETTER_DATABASE_URL": postgresql_url}
    assert run_cli("subscribers", "add", "bo@example.com", "--no-email", env=env).code == 0
    other = run_cli(
        "subscribers", "add", "cy@example.com", env={**env, "NEWSLETTER_SECRET_KEY": OTHER}
    )
    assert other.code == 1
    assert "not the key this database was used with" in other.stderr
    # rotating: the retired key listed lets the new one take over, and then only it works
    rotated = {**env, "NEWSLETTER_SECRET_KEY": OTHER, "NEWSLETTER_SECRET_KEYS_PREVIOUS": GOOD}
    assert run_cli("subscribers", "add", "cy@example.com", "--no-email", env=rotated).code == 0
    back = run_cli("subscribers", "add", "di@example.com", env=env)
    assert back.code == 1
    assert "not the key this database was used with" in back.stderr
