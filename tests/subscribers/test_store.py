"""The subscriber store, on SQLite and on PostgreSQL: lifecycle, merging, recipients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from newsletter import privacy
from newsletter.core.errors import NotFoundError, StateError, SubscriberInputError, SuppressedError
from subscribers import store
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
        assert new.consent is not None
        assert new.consent.source == "cli"
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


def test_one_person_per_address_updates_merge(engine: Engine) -> None:
    with engine.begin() as conn:
        first = store.add(conn, "bob@example.com", secret=SECRET, name="Bob", now=T0)
        again = store.add(conn, "  BOB@Example.com", secret=SECRET, topics=["Sport"], now=T0)
        assert again.id == first.id
        assert again.name == "Bob"
        assert again.topics == {"sport"}
        assert again.email == "bob@example.com"  # the first spelling is kept
        assert sum(store.count_by_status(conn).values()) == 1
        assert store.get_by_email(conn, "Bob@EXAMPLE.com").id == first.id


def test_bounced_and_complained_people_are_not_recipients(engine: Engine) -> None:
    with engine.begin() as conn:
        ids = [
            store.add(conn, f"r{i}@example.com", secret=SECRET, confirmed=True, now=T0).id
            for i in range(4)
        ]
        store.mark_bounced(conn, ids[1], "550 5.1.1 no such user", now=T0)
        store.mark_complained(conn, ids[2], "feedback loop", now=T0)
        recipients = list(store.iter_recipients(conn, batch_size=1))
        assert [r.subscriber_id for r in recipients] == [ids[0], ids[3]]
        bounced = store.get(conn, ids[1])
        assert bounced.status is SubscriberStatus.BOUNCED
        assert bounced.bounced_at == T0
        assert store.events(conn, ids[1])[-1].detail["reason"] == "550 5.1.1 no such user"
        with pytest.raises(SuppressedError):
            store.add(conn, "r1@example.com", secret=SECRET)
        back = store.add(conn, "r1@example.com", secret=SECRET, resubscribe=True, now=T0)
        assert back.status is SubscriberStatus.PENDING
        # a bounce that arrives after the person was erased changes nothing
        privacy.erase(conn, "r3@example.com", secret=SECRET, now=T0)
        assert store.mark_bounced(conn, ids[3], "550", now=T0) is None
        assert store.mark_complained(conn, ids[3], "fbl", now=T0) is None


def test_recipients_by_topic_and_in_pages(engine: Engine) -> None:
    with engine.begin() as conn:
        for i, topics in enumerate([["politics"], ["sport"], [], ["Politics", "UK"]] * 3):
            store.add(conn, f"t{i}@example.com", secret=SECRET, topics=topics, confirmed=True)
        everyone = list(store.iter_recipients(conn, batch_size=5))
        assert len(everyone) == 12
        assert len({r.subscriber_id for r in everyone}) == 12
        politics = list(store.iter_recipients(conn, batch_size=5, topics={"politics"}))
        # people with no topics take everything
        assert len(politics) == 9
        assert all(not r.topics or "politics" in r.topics for r in politics)
        listed = list(store.list_subscribers(conn, topic="Sport", status="confirmed"))
        assert len(listed) == 6


def test_preferences_change_and_are_recorded(engine: Engine) -> None:
    with engine.begin() as conn:
        person = store.add(conn, "p@example.com", secret=SECRET, topics=["uk"], now=T0)
        changed = store.update_preferences(
            conn, person.id, topics=["World", "science"], timezone="Europe/Paris", now=T0
        )
        assert changed.topics == {"world", "science"}
        assert changed.timezone == "Europe/Paris"
        assert store.events(conn, person.id)[-1].detail["fields"] == ["timezone", "topics"]
        with pytest.raises(SubscriberInputError):
            store.update_preferences(conn, person.id, name="Eve\r\nBcc: x@example.com")
        with pytest.raises(SubscriberInputError):
            store.update_preferences(conn, person.id, timezone="Mars/Olympus")


def test_unknown_people_are_not_found(engine: Engine) -> None:
    with engine.begin() as conn:
        with pytest.raises(NotFoundError):
            store.get(conn, 999)
        with pytest.raises(NotFoundError):
            store.get_by_email(conn, "nobody@example.com")
        assert store.find_by_email(conn, "nobody@example.com") is None


def test_access_report_holds_everything(engine: Engine) -> None:
    with engine.begin() as conn:
        person = store.add(
            conn,
            "gdpr@example.com",
            secret=SECRET,
            name="Gita",
            topics=["uk"],
            attributes={"plan": "premium"},
            consent_source="web",
            consent_ip="198.51.100.4",
            now=T0,
        )
        store.confirm(conn, person.id, now=T0 + timedelta(minutes=5))
        report = privacy.access_report(conn, "GDPR@example.com")
    assert report["subscriber"]["email"] == "gdpr@example.com"
    assert report["subscriber"]["attributes"] == {"plan": "premium"}
    assert report["consent"] == {
        "source": "web",
        "at": "2026-03-01T09:00:00Z",
        "ip": "198.51.100.4",
    }
    assert [e["kind"] for e in report["events"]] == ["created", "confirmed"]


def test_erase_keeps_only_a_keyed_hash(engine: Engine) -> None:
    from newsletter.core.schema import deliveries
    from subscribers.schema import subscribers, suppressions

    with engine.begin() as conn:
        person = store.add(conn, "erase.me@example.com", secret=SECRET, name="Erin", now=T0)
        store.confirm(conn, person.id, now=T0)
        conn.execute(
            deliveries.insert().values(
                edition_id="e1", subscriber_id=person.id, email="erase.me@example.com",
                name="Erin", variant="all", status="queued", attempts=0, updated_at=T0,
            )
        )  # fmt: skip
        assert privacy.erase(conn, "Erase.Me@example.com", secret=SECRET, now=T0) is True
        assert store.find_by_email(conn, "erase.me@example.com") is None
        hashes = [row.address_hash for row in conn.execute(suppressions.select())]
        assert len(hashes) == 1
        assert "erase" not in hashes[0]
        outbox = conn.execute(deliveries.select()).one()
        assert (outbox.email, outbox.name, outbox.status) == ("", None, "failed")
        # nothing personal left anywhere in the subscriber tables
        assert conn.execute(subscribers.select()).first() is None
        with pytest.raises(SuppressedError):
            store.add(conn, "ERASE.ME@example.com", secret=SECRET)
        back = store.add(conn, "erase.me@example.com", secret=SECRET, resubscribe=True)
        assert back.status is SubscriberStatus.PENDING
        assert conn.execute(suppressions.select()).first() is None
