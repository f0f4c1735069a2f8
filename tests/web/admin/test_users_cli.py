"""``newsletter users`` and ``newsletter audit``: accounts at the command line, no secret shown."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from newsletter.database import open_database
from newsletter.web.admin.accounts import authenticate

SECRET = "test-secret-key-not-for-production"


def newsletter(workdir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_DATABASE_URL"] = f"sqlite:///{workdir / 'test.db'}"
    env["NEWSLETTER_SECRET_KEY"] = SECRET
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=workdir,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_add_list_reset_remove_and_audit(workdir: Path) -> None:
    password = "tangerine-orbit-cascade"
    added = newsletter(
        workdir, "users", "add", "Ed@Example.com", "--role", "editor", "--password-stdin",
        stdin=password + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "added ed@example.com (editor)" in added.stdout
    assert password not in added.stdout + added.stderr
    listed = newsletter(workdir, "users", "list", "--json")
    assert json.loads(listed.stdout)[0]["role"] == "editor"
    engine = open_database(f"sqlite:///{workdir / 'test.db'}")
    with engine.begin() as conn:
        assert authenticate(conn, "ed@example.com", password) is not None
    reset = newsletter(
        workdir, "users", "reset-password", "ed@example.com", "--password-stdin",
        stdin="a-brand-new-passphrase\n",
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    with engine.begin() as conn:
        assert authenticate(conn, "ed@example.com", password) is None
        assert authenticate(conn, "ed@example.com", "a-brand-new-passphrase") is not None
    removed = newsletter(workdir, "users", "remove", "ed@example.com", "--yes")
    assert removed.returncode == 0, removed.stderr
    audit = newsletter(workdir, "audit", "--json")
    actions = [entry["action"] for entry in json.loads(audit.stdout)]
    assert actions == ["user.remove", "user.reset-password", "user.add"]
    text = newsletter(workdir, "audit")
    assert re.search(r"  cli  +user\.add  +ed@example\.com  +role editor\n", text.stdout)


def test_weak_passwords_and_mistakes_are_one_clear_line(workdir: Path) -> None:
    for password, reason in (
        ("short", "at least 12 characters"),
        ("password1234", "most common passwords"),
        ("aaaaaaaaaaaaaaaa", "most common passwords"),
    ):
        result = newsletter(
            workdir, "users", "add", "x@example.com", "--role", "admin", "--password-stdin",
            stdin=password + "\n",
        )  # fmt: skip
        assert result.returncode == 1
        assert reason in result.stderr
        assert "Traceback" not in result.stderr
        assert password not in result.stderr
    no_terminal = newsletter(workdir, "users", "add", "x@example.com", "--role", "admin")
    assert no_terminal.returncode == 1
    assert "--password-stdin" in no_terminal.stderr
    twice = "long-enough-passphrase\n"
    newsletter(workdir, "users", "add", "y@example.com", "--role", "viewer", "--password-stdin",
               stdin=twice)  # fmt: skip
    again = newsletter(
        workdir, "users", "add", "Y@example.com", "--role", "viewer", "--password-stdin",
        stdin=twice,
    )  # fmt: skip
    assert again.returncode == 1
    assert "already a console account" in again.stderr
    missing = newsletter(workdir, "users", "remove", "nobody@example.com", "--yes")
    assert missing.returncode == 1
    assert "no console account" in missing.stderr
    assert newsletter(workdir, "users", "--help").returncode == 0
