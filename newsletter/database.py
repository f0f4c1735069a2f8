"""The product's database: every table's migration, in order, and the migrated engine.

This is the one module that knows every owner's tables (the newsletter's own in
:mod:`newsletter.core.schema`, the subscriber list's in :mod:`subscribers.schema`),
so the core stays a leaf. Each step creates or alters tables inside the
migration transaction. Never edit a step that has shipped: add a new one at the end.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.core import db, schema
from newsletter.core.db import Migration
from subscribers import schema as subscriber_schema

__all__ = ["MIGRATIONS", "migrate", "open_database"]


def _create(*tables: sa.Table) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return step


MIGRATIONS: list[Migration] = [
    ("0001_articles_editions", _create(schema.articles, schema.editions)),
    (
        "0002_subscribers",
        _create(
            subscriber_schema.subscribers,
            subscriber_schema.subscriber_events,
            subscriber_schema.suppressions,
        ),
    ),
    ("0003_outbox", _create(schema.deliveries)),
    ("0004_schedules", _create(schema.schedules, schema.schedule_runs)),
    ("0007_web_limits", _create(schema.web_limits)),
]


def migrate(engine: Engine) -> list[str]:
    """Apply every migration not yet recorded, in order; return the names applied."""
    return db.migrate(engine, MIGRATIONS)


def open_database(url: str) -> Engine:
    """An engine for ``url`` with every migration applied (once per process and URL)."""
    return db.open_migrated(url, MIGRATIONS)
