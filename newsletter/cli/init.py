"""``newsletter init``: make a working folder: the database, a key, a commented newsletter.toml.

Everything else that writes creates what it needs too; ``init`` is the explicit
first step the README shows, and the one that writes a ``newsletter.toml`` to edit.
Running it again changes nothing that exists and says so.
"""

from __future__ import annotations

from pathlib import Path

import typer

from newsletter.cli.common import get_engine, get_settings, out, sqlite_file

__all__ = ["TOML_TEMPLATE", "init", "register"]

TOML_TEMPLATE = """\
# newsletter.toml: settings for this working folder. Environment variables
# (NEWSLETTER_<NAME>, e.g. NEWSLETTER_SMTP_URL) win over what is written here.
# Every line is commented out: the embedded defaults apply until you change one.

# Where subscribers, editions and the outbox live (SQLite file, or postgresql://...).
# database_url = "sqlite:///newsletter.db"

# The relay: smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465.
# Keep the password in NEWSLETTER_SMTP_URL rather than in this file.
# smtp_url = "smtp://127.0.0.1:1025"

# Who the newsletter is from, and a real, read mailbox for replies.
# sender = "Britain's News Portal <newsletter@news.example.com>"
# reply_to = "Newsroom <newsroom@news.example.com>"

# The public https address of `newsletter serve` (unsubscribe and preference links).
# base_url = "https://news.example.com/newsletter"

# The footer's postal address, the site's name and its time zone.
# postal_address = "1 Fleet Street, London EC4Y 1AA, United Kingdom"
# site_name = "Britain's News Portal"
# timezone = "Europe/London"

# DKIM signing (both unsubscribe headers are signed).
# dkim_selector = "news2026"
# dkim_domain = "news.example.com"
# dkim_key_path = "dkim.key"

# Sending: connections, a rate limit (messages a second), retries.
# send_concurrency = 8
# send_rate = 50
# send_max_attempts = 5
"""


def init() -> None:
    """Make this folder a working folder: database, key and a commented newsletter.toml.

    The key goes to .newsletter-secret (mode 0600) unless NEWSLETTER_SECRET_KEY is
    set; nothing that exists is overwritten.

    Example:

        newsletter init
    """
    folder = Path.cwd()
    settings = get_settings()
    database = sqlite_file(settings.database_url)
    existed = database.exists() if database is not None else True
    had_key = settings.secret_key is not None
    get_engine()  # migrates the database; records (or checks) its key
    toml = folder / "newsletter.toml"
    if database is not None:
        out.print(f"{'kept' if existed else 'created'} database {database}", markup=False)
    else:
        out.print("database: migrated (NEWSLETTER_DATABASE_URL)", markup=False)
    if had_key:
        out.print("key: kept (NEWSLETTER_SECRET_KEY or .newsletter-secret)", markup=False)
    else:
        out.print("key: created .newsletter-secret (keep it safe; back it up)", markup=False)
    if toml.exists():
        out.print("kept newsletter.toml", markup=False)
    else:
        toml.write_text(TOML_TEMPLATE, encoding="utf-8")
        out.print("created newsletter.toml (every setting commented out)", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``init`` to the root command."""
    app.command("init")(init)
