"""The newsletter's own tables (articles, editions, outbox, schedules) on the shared metadata.

The subscriber list's tables live with their owner, in :mod:`subscribers.schema`,
on the same ``metadata``. The migrations in :mod:`newsletter.database` create
them all; a change to a table that has shipped needs a new migration, never an
edit of an old one.
"""

from __future__ import annotations

import sqlalchemy as sa

from newsletter.core.db import UTCDateTime, metadata
from newsletter.core.newsletters import DEFAULT_NEWSLETTER_ID

__all__ = [
    "articles",
    "audit_log",
    "clicks",
    "console_users",
    "deliveries",
    "editions",
    "schedule_runs",
    "schedule_waves",
    "schedules",
    "subject_tests",
    "web_limits",
]

# --- articles and editions -------------------------------------------------

articles = sa.Table(
    "articles",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("headline", sa.Text, nullable=False),
    sa.Column("section", sa.String(100), nullable=False),
    sa.Column("topics", sa.JSON, nullable=False),
    sa.Column("breaking", sa.Boolean, nullable=False, default=False),
    sa.Column("published_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("updated_at", UTCDateTime(), nullable=True),
    sa.Column("imported_at", UTCDateTime(), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),  # the whole Article, as JSON
)

editions = sa.Table(
    "editions",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("scheduled_at", UTCDateTime(), nullable=True),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("status_reason", sa.Text, nullable=True),  # why it paused, for example
    sa.Column("data", sa.JSON, nullable=False),  # the whole Edition, as JSON
    # the newsletter (list) it belongs to: its readers are that newsletter's (0011)
    sa.Column("newsletter_id", sa.String(40), nullable=False, server_default=DEFAULT_NEWSLETTER_ID),
)

# --- delivery (the outbox) --------------------------------------------------

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("edition_id", sa.String(100), primary_key=True),
    sa.Column("subscriber_id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("variant", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("claimed_by", sa.String(100), nullable=True),
    sa.Column("message_id", sa.Text, nullable=True),
    sa.Column("last_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Index("ix_deliveries_edition_status", "edition_id", "status"),
)

# --- schedules ---------------------------------------------------------------

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(10), nullable=False),  # once | cron
    sa.Column("run_at", UTCDateTime(), nullable=True),  # for once
    sa.Column("cron", sa.String(200), nullable=True),  # for cron
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("edition_id", sa.String(100), nullable=True),  # a fixed edition, or build options
    sa.Column("build", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # active | paused | cancelled | done
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # the watermark: every occurrence at or before it has been claimed or skipped
    sa.Column("handled_until", UTCDateTime(), nullable=True),
    # the newsletter whose editions it builds (0011)
    sa.Column("newsletter_id", sa.String(40), nullable=False, server_default=DEFAULT_NEWSLETTER_ID),
)

schedule_runs = sa.Table(
    "schedule_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "schedule_id",
        sa.Integer,
        sa.ForeignKey("schedules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("occurrence_at", UTCDateTime(), nullable=False),
    sa.Column("claimed_at", UTCDateTime(), nullable=False),
    sa.Column("claimed_by", sa.String(100), nullable=False),  # worker id (delivery.lease)
    # a running claim lapses after this unless renewed; then another scheduler resumes it
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("outcome", sa.String(20), nullable=False),  # running | sent | skipped | failed
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("edition_id", sa.String(100), nullable=True),
    # the end of the article window the built edition covers; the next run starts there
    sa.Column("articles_until", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    # the claim: one row per occurrence, whoever inserts it first runs it
    sa.UniqueConstraint("schedule_id", "occurrence_at", name="uq_schedule_occurrence"),
)

# --- web request limits (newsletter.web.limits) ------------------------------

# One counter per (bucket, keyed hash of the client address or email): shared by
# every `serve` process on the database, and kept across restarts.
web_limits = sa.Table(
    "web_limits",
    metadata,
    sa.Column("bucket", sa.String(20), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("window_start", sa.Float, nullable=False, index=True),  # unix seconds
    sa.Column("hits", sa.Integer, nullable=False),
)

# --- the editor's console (newsletter.web.admin) -----------------------------

# One row per console account; the password only as an argon2 hash. Bumping
# session_epoch (a reset, a role change) ends every session signed before it.
console_users = sa.Table(
    "console_users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("role", sa.String(10), nullable=False),  # admin | editor | viewer
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("session_epoch", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("last_login_at", UTCDateTime(), nullable=True),
)

# Who changed what, when: written in the same transaction as the change.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False, index=True),
    sa.Column("actor", sa.String(320), nullable=False),  # a console user, or "cli"
    sa.Column("action", sa.String(60), nullable=False),
    sa.Column("target", sa.String(200), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)

# --- every reader's own digest (issue 13) ------------------------------------

# One wave per (run, zone) of a schedule sent at a local time in each reader's zone:
# its instant (the run's wall time in that zone), and whether it went out or was
# skipped (too late), with how many readers it wrote to the outbox.
schedule_waves = sa.Table(
    "schedule_waves",
    metadata,
    sa.Column(
        "run_id",
        sa.Integer,
        sa.ForeignKey("schedule_runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("zone", sa.String(64), primary_key=True),
    sa.Column("wave_at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # pending | sent | skipped
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("recipients", sa.Integer, nullable=False, default=0),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# One row per click on a tracked article link (BASE_URL/c/<token>). The reader's id
# only in per-subscriber mode (erased with them); else a keyed, per-edition visitor
# hash for unique counts. Scanners (HEAD, known link checkers, clicks seconds after
# delivery) are kept apart by ``kind``.
clicks = sa.Table(
    "clicks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("edition_id", sa.String(100), nullable=False),
    sa.Column("article_id", sa.String(200), nullable=False),
    sa.Column("subscriber_id", sa.Integer, nullable=True, index=True),
    sa.Column("visitor", sa.String(32), nullable=True),
    sa.Column("kind", sa.String(10), nullable=False),  # human | scanner
    sa.Column("at", UTCDateTime(), nullable=False),
    # the subject-line test arm (A | B) whose message held the link; NULL otherwise
    # (added by 0012_subject_tests)
    sa.Column("arm", sa.String(1), nullable=True),
    sa.Index("ix_clicks_edition_article", "edition_id", "article_id"),
)

# One subject-line test per edition (newsletter.delivery.subjects): subject B against
# the edition's own (A) on ``share`` percent of the recipients, the arms' sizes as
# written to the outbox, when the rest waits for, and, once decided, the winner, when,
# and the figures it was decided on.
subject_tests = sa.Table(
    "subject_tests",
    metadata,
    sa.Column("edition_id", sa.String(100), primary_key=True),
    sa.Column("subject_b", sa.Text, nullable=False),
    sa.Column("share", sa.Integer, nullable=False),  # percent of the recipients, 1 to 50
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("decide_at", UTCDateTime(), nullable=False),
    sa.Column("arm_a", sa.Integer, nullable=False),  # recipients in arm A
    sa.Column("arm_b", sa.Integer, nullable=False),
    sa.Column("rest", sa.Integer, nullable=False),  # recipients waiting for the winner
    sa.Column("winner", sa.String(1), nullable=True),  # A | B once decided
    sa.Column("decided_at", UTCDateTime(), nullable=True),
    sa.Column("decision", sa.JSON, nullable=True),  # each arm's sent, unique clicks, rate
)
