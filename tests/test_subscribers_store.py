"""The subscriber store, on SQLite and on PostgreSQL: lifecycle, merging, recipients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from newsletter.errors import NotFoundError, StateError, SubscriberInputError, SuppressedError
from subscribers import privacy, store
from subscribers.model import SubscriberStatus

SECRET = b"test-secret"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_postgres_is_really_postgres(engine: Engine) -> None:
    assert engine.dialect.name in {"sqlite", "postgresql"}
    with engine.begin() as conn:
        assert store.count_by_status(conn)[SubscriberStatus.CONFIRMED] == 0


def test_lifecycle_pending_confirmed_unsubscribed(engine: Engine) -> None:
    with engine.begin() as conn:
        new = store.add(conn, "Ann@Example.COM", secret=SECRET, name="Ann", topics=["UK"], now=T0)
        assert new.status is SubscriberStatus.PENDING
        assert new.email == "Ann@example.com"
        assert new.consent is not None and new.consent.source == "cli"
        assert list(store.iter_recipients(conn)) == []
        confirmed = store.confirm(conn, new.id, now=T0 + timedelta(hours=1), ip="192.0.2.7")
        assert confirmed.status is SubscriberStatus.CONFIRMED
        assert confirmed.confirmed_at == T0 + timedelta(hours=1)
        assert [r.email for r in store.iter_recipients(conn)] == ["Ann@example.com"]
        gone = store.unsubscribe(conn, new.id, now=T0 + timedelta(days=2), source="web")
        assert gone.status is SubscriberStatus.UNSUBSCRIBED
        assert gone.unsubscribed_at == T0 + timedelta(days=2)
        assert list(store.iter_recipients(conn)) == []
        kinds = [e.kind for e in store.events(conn, new.id)]
        assert kinds == ["created", "confirmed", "unsubscribed"]
        with pytest.raises(StateError):
            store.confirm(conn, new.id, now=T0 + timedelta(days=3))
