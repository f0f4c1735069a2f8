"""The named, ordered schema migrations; :func:`newsletter.db.migrate` applies them.

Each step creates or alters tables inside the migration transaction. Never edit
a step that has shipped: add a new one at the end.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter import schema
from newsletter.db import Migration

__all__ = ["MIGRATIONS"]


def _create(*tables: sa.Table) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return step


MIGRATIONS: list[Migration] = [
    ("0001_articles_editions", _create(schema.articles, schema.editions)),
    (
        "0002_subscribers",
        _create(schema.subscribers, schema.subscriber_events, schema.suppressions),
    ),
    ("0003_outbox", _create(schema.deliveries)),
    ("0004_schedules", _create(schema.schedules, schema.schedule_runs)),
]
