"""The console part of `make demo`: a demo admin account, and how to open the console.

Called at the end of scripts/demo.py with the demo's environment and folder.
The password is made here, for this demo database only, and printed on purpose.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

DEMO_ADMIN = "demo-admin@example.com"
_ADD = ("--role", "admin", "--password-stdin")


def console_login(env: dict[str, str], demo: Path) -> None:
    """Create the demo admin account (with a fresh password) and print how to sign in."""
    password = "demo-" + secrets.token_urlsafe(12)
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "users", "add", DEMO_ADMIN, *_ADD],
        cwd=demo,
        env=env,
        input=password + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"demo: creating the console account failed: {proc.stderr.strip()}")
    database = env.get("NEWSLETTER_DATABASE_URL", "")
    print("\nThe editor's console:")
    serve = f"cd demo && NEWSLETTER_DATABASE_URL={database} ../.venv/bin/newsletter serve"
    print(f"  start it            {serve}")
    print("  then open           http://127.0.0.1:8000/admin/")
    print(f"  sign in as          {DEMO_ADMIN}")
    print(f"  with the password   {password}   (made for this demo database only)")
