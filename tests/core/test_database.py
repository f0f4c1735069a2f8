"""The database's own rules: migration 0005 on an old SQLite file, durability, the SMTP password."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter import database
from newsletter.core import db
from newsletter.core.config import SMTPEndpoint
from newsletter.core.errors import ConfigError
from newsletter.core.schema import deliveries
from subscribers import schema
from tests.support.cli import CLIResult

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _old_subscribers(conn: Connection) -> None:
    """0002 as it shipped: ``subscribers`` without AUTOINCREMENT."""
    old = schema.subscribers.to_metadata(sa.MetaData())
    old.dialect_options["sqlite"]["autoincrement"] = False
    old.create(conn)
    schema.subscriber_events.create(conn)
    schema.suppressions.create(conn)


def _person(conn: Connection, email: str) -> int:
    new_id: int = conn.execute(
        schema.subscribers.insert()
        .values(
            email=email,
            email_key=email,
            status="confirmed",
            topics=[],
            attributes={},
            created_at=NOW,
            updated_at=NOW,
        )
        .returning(schema.subscribers.c.id)
    ).scalar_one()
    conn.execute(
        schema.subscriber_events.insert().values(
            subscriber_id=new_id, at=NOW, kind="created", detail={}
        )
    )
    return new_id


def test_0005_stops_id_reuse_on_an_existing_sqlite_file(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    shipped = list(database.MIGRATIONS[:4])
    shipped[1] = ("0002_subscribers", _old_subscribers)
    db.migrate(engine, shipped)
    with engine.begin() as conn:
        first, newest = _person(conn, "a@example.com"), _person(conn, "b@example.com")
        conn.execute(schema.subscribers.delete().where(schema.subscribers.c.id == newest))
        # the old table hands the erased id straight out again: the bug
        assert _person(conn, "c@example.com") == newest
        conn.execute(schema.subscribers.delete().where(schema.subscribers.c.id == newest))
        # what an erased reader leaves: their outbox rows, without address or name
        conn.execute(
            deliveries.insert().values(
                edition_id="e",
                subscriber_id=newest,
                email="",
                variant="all",
                status="sent",
                attempts=1,
                updated_at=NOW,
            )
        )
    assert "0005_subscriber_ids" in database.migrate(engine)
    with engine.begin() as conn:
        kinds = conn.execute(sa.select(schema.subscriber_events.c.subscriber_id)).scalars()
        assert list(kinds) == [first]  # the history survived the rebuild
        later = _person(conn, "d@example.com")
        assert later > newest
        conn.execute(schema.subscribers.delete().where(schema.subscribers.c.id == later))
        assert _person(conn, "e@example.com") > later
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").first() is None
    engine.dispose()


@pytest.mark.parametrize(("durable", "level"), [(False, 1), (True, 2)])
def test_durable_asks_sqlite_for_a_sync_per_commit(
    tmp_path: Path, durable: bool, level: int
) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'd.db'}", durable=durable)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == level
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    engine.dispose()


@pytest.mark.parametrize("password", ["se/cret-part", "se#cret-part", "se?cret-part"])
def test_an_unescaped_password_is_never_echoed(password: str) -> None:
    with pytest.raises(ConfigError, match="must be URL-encoded") as info:
        SMTPEndpoint.parse(f"smtp://user:{password}@mail.example.com:587")
    for fragment in ("cret-part", "se", password):
        assert fragment not in str(info.value).replace("user name", "")


def test_the_cli_says_so_without_the_password(run_cli: Callable[..., CLIResult]) -> None:
    env = {"NEWSLETTER_SMTP_URL": "smtp://user:hunter2/xyzzy@mail.example.com:587"}
    result = run_cli("send", "2026-01-01-daily", env=env)
    assert result.code == 1
    assert "must be URL-encoded" in result.stderr
    assert "hunter2" not in result.stderr
    assert "xyzzy" not in result.stderr
    assert "Traceback" not in result.stderr


def test_0011_moves_existing_data_to_the_default_newsletter(engine: sa.Engine) -> None:
    """A database from before newsletters: editions, schedules and subscribers (one of
    them unsubscribed) all belong to ``daily`` after 0011, and a send picks its readers."""
    from newsletter.core.schema import editions, schedules
    from subscribers import store

    with engine.begin() as conn:  # back to 0010: no subscriptions, no newsletter columns
        conn.execute(sa.text("DELETE FROM schema_migrations WHERE name = '0011_newsletters'"))
        conn.execute(sa.text("DROP TABLE subscriptions"))
        for table in ("editions", "schedules"):
            conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN newsletter_id"))
        stays, leaves = _person(conn, "stays@example.com"), _person(conn, "left@example.com")
        conn.execute(
            schema.subscribers.update()
            .where(schema.subscribers.c.id == leaves)
            .values(status="unsubscribed", unsubscribed_at=NOW)
        )
        at = {"at": NOW.replace(tzinfo=None)}
        conn.execute(
            sa.text(
                "INSERT INTO editions (id, kind, status, title, subject, created_at, data)"
                " VALUES ('e1', 'daily', 'draft', 't', 's', :at, '{}')"
            ),
            at,
        )
        conn.execute(
            sa.text(
                "INSERT INTO schedules (kind, cron, timezone, build, status, created_at,"
                " updated_at) VALUES ('cron', '0 7 * * *', 'UTC', '{}', 'active', :at, :at)"
            ),
            at,
        )
    assert database.migrate(engine) == ["0011_newsletters"]
    with engine.begin() as conn:
        held = schema.subscriptions.c
        chosen = conn.execute(sa.select(held.subscriber_id, held.newsletter_id, held.status))
        assert sorted(tuple(r) for r in chosen) == sorted(
            [(stays, "daily", "subscribed"), (leaves, "daily", "unsubscribed")]
        )
        assert conn.execute(sa.select(editions.c.newsletter_id)).scalars().all() == ["daily"]
        assert conn.execute(sa.select(schedules.c.newsletter_id)).scalars().all() == ["daily"]
        readers = [r.subscriber_id for r in store.iter_recipients(conn, newsletter="daily")]
        assert readers == [stays]
        assert list(store.iter_recipients(conn, newsletter="breaking")) == []
    assert database.migrate(engine) == []  # once only
