"""The subscriber list's tables, owned here, on the core's shared ``metadata``.

Only :mod:`subscribers` writes them; the rest of the product reads and changes
subscribers through this package's functions. The migrations in
:mod:`newsletter.database` create them.
"""

from __future__ import annotations

import sqlalchemy as sa

from newsletter.core.db import UTCDateTime, metadata

__all__ = ["subscriber_events", "subscribers", "subscriptions", "suppressions"]

# --- subscribers -----------------------------------------------------------

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False),
    # the address folded for comparison (case-insensitive as a whole); unique
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("topics", sa.JSON, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=True),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("consent_source", sa.Text, nullable=True),
    sa.Column("consent_at", UTCDateTime(), nullable=True),
    sa.Column("consent_ip", sa.String(64), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("confirmed_at", UTCDateTime(), nullable=True),
    sa.Column("unsubscribed_at", UTCDateTime(), nullable=True),
    sa.Column("bounced_at", UTCDateTime(), nullable=True),
    sa.Column("complained_at", UTCDateTime(), nullable=True),
    # AUTOINCREMENT on SQLite: an erased person's id is never given to anyone
    # else, so a link or a late bounce made for them can never act on a newcomer
    sqlite_autoincrement=True,
)

subscriber_events = sa.Table(
    "subscriber_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "subscriber_id",
        sa.Integer,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),  # created, confirmed, unsubscribed, ...
    sa.Column("detail", sa.JSON, nullable=False),
)

suppressions = sa.Table(
    "suppressions",
    metadata,
    # keyed hash (HMAC) of the folded address: no personal data is kept
    sa.Column("address_hash", sa.String(128), primary_key=True),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# --- subscriptions: which newsletters a person receives ----------------------

# One row per (person, newsletter) they ever chose; erased with the person. A reader
# is sent a newsletter's editions while confirmed and subscribed to it here.
subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column(
        "subscriber_id",
        sa.Integer,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("newsletter_id", sa.String(40), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),  # subscribed | unsubscribed
    sa.Column("subscribed_at", UTCDateTime(), nullable=False),
    sa.Column("unsubscribed_at", UTCDateTime(), nullable=True),
    sa.Column("source", sa.String(40), nullable=True),  # cli, web, import, migration...
    # who receives newsletter X: walked by recipients, counts and `subscribers list`
    sa.Index("ix_subscriptions_newsletter", "newsletter_id", "status", "subscriber_id"),
)
