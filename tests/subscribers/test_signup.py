"""Signups ask, confirmations decide: suppressions and people who left, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from newsletter import privacy
from newsletter.core.errors import SuppressedError
from subscribers import signup, store
from subscribers.importer import ImportReport, import_csv
from subscribers.model import Consent, Subscriber, SubscriberStatus
from subscribers.schema import suppressions
from subscribers.signup import SignupKind

SECRET = b"test-secret"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
STATEMENT = "I agree to receive the newsletter."


def _sign_up(engine: Engine, email: str, at: datetime, **fields: object) -> signup.SignupRequest:
    with engine.begin() as conn:
        return signup.request(
            conn,
            email,
            secret=SECRET,
            name=fields.get("name"),  # type: ignore[arg-type]
            topics=fields.get("topics", ()),  # type: ignore[arg-type]
            consent=Consent(source="web", at=at, ip="192.0.2.9"),
            statement=STATEMENT,
        )


def _confirm(engine: Engine, subscriber_id: int, at: datetime) -> Subscriber | None:
    with engine.begin() as conn:
        return signup.confirm(conn, subscriber_id, secret=SECRET, now=at, ip="192.0.2.10")


def _import(engine: Engine, data: str, at: datetime, **options: object) -> ImportReport:
    return import_csv(
        engine,
        io.BytesIO(data.encode()),
        secret=SECRET,
        source="list.csv",
        now=at,
        **options,  # type: ignore[arg-type]
    )


def _suppressed(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(suppressions.select()).all())


def _status(engine: Engine, email: str) -> SubscriberStatus | None:
    with engine.connect() as conn:
        found = store.find_by_email(conn, email)
    return None if found is None else found.status


def test_a_signup_of_an_erased_address_keeps_its_suppression_until_confirmed(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        store.add(conn, "erased@example.com", secret=SECRET, confirmed=True, now=T0)
        privacy.erase(conn, "erased@example.com", secret=SECRET, now=T0)
    asked = _sign_up(engine, "Erased@Example.com", T0 + timedelta(days=1), topics=["crime"])
    assert asked.kind is SignupKind.NEW
    assert asked.subscriber.status is SubscriberStatus.PENDING
    assert _suppressed(engine) == 1  # a stranger's signup lifts nothing

    # until the owner confirms, an import refuses the address, even with --confirmed
    data = "email,status\nerased@example.com,confirmed\n"
    report = _import(engine, data, T0 + timedelta(days=2), confirmed=True)
    assert (report.skipped, report.updated, report.imported) == (1, 0, 0)
    assert "erased at their request" in report.problems[0].reason
    assert _status(engine, "erased@example.com") is SubscriberStatus.PENDING
    # the CLI's add refuses it too, and a second signup still only asks
    with engine.begin() as conn, pytest.raises(SuppressedError):
        store.add(conn, "erased@example.com", secret=SECRET, confirmed=True)
    again = _sign_up(engine, "erased@example.com", T0 + timedelta(days=2), name="Eve")
    assert again.kind is SignupKind.PENDING
    assert again.subscriber.id == asked.subscriber.id
    assert _suppressed(engine) == 1

    confirmed = _confirm(engine, asked.subscriber.id, T0 + timedelta(days=3))
    assert confirmed is not None
    assert confirmed.status is SubscriberStatus.CONFIRMED
    assert _suppressed(engine) == 0
    with engine.connect() as conn:
        kinds = [e.kind for e in store.events(conn, confirmed.id)]
    assert "suppression_lifted" in kinds
    # now that they asked, a later import treats them as anyone on the list
    report = _import(engine, "email,name\nerased@example.com,Eve Again\n", T0 + timedelta(days=4))
    assert (report.skipped, report.updated) == (0, 1)


@pytest.mark.parametrize("left", ["unsubscribe", "mark_bounced"])
def test_a_person_who_left_comes_back_only_through_the_confirmation(
    engine: Engine, left: str
) -> None:
    with engine.begin() as conn:
        person = store.add(
            conn, "left@example.com", secret=SECRET, confirmed=True, topics=["uk"], now=T0
        )
        if left == "unsubscribe":
            store.unsubscribe(conn, person.id, now=T0 + timedelta(hours=1))
        else:
            store.mark_bounced(conn, person.id, "550 no such user", now=T0 + timedelta(hours=1))
    gone = _status(engine, "left@example.com")
    at = T0 + timedelta(days=1)
    asked = _sign_up(engine, "left@example.com", at, name="Lee", topics=["crime", "economy"])
    assert asked.kind is SignupKind.RETURNING
    assert asked.topics == frozenset({"crime", "economy"})
    # the signup changed nothing: same status, name and topics; no recipient
    with engine.connect() as conn:
        held = store.get(conn, person.id)
        assert list(store.iter_recipients(conn)) == []
    assert (held.status, held.name, held.topics) == (gone, None, frozenset({"uk"}))
    # an import without --resubscribe still skips them
    report = _import(engine, "email\nleft@example.com\n", at, confirmed=True)
    assert report.skipped == 1
    assert _status(engine, "left@example.com") is gone

    back = _confirm(engine, person.id, at + timedelta(hours=2))
    assert back is not None
    assert back.status is SubscriberStatus.CONFIRMED
    assert (back.name, back.topics) == ("Lee", frozenset({"crime", "economy"}))
    assert back.confirmed_at == at + timedelta(hours=2)
    assert back.consent is not None
    assert back.consent.source == "web"
    with engine.connect() as conn:
        events = store.events(conn, person.id)
    kinds = [e.kind for e in events]
    assert kinds.count("resubscribed") == 1
    assert kinds.index("resubscribed") > kinds.index(signup.REQUEST_EVENT)
    assert kinds[-1] == "consent"
    assert events[-1].detail["statement"] == STATEMENT


def test_an_old_confirm_link_does_not_bring_back_someone_who_left(engine: Engine) -> None:
    with engine.begin() as conn:
        person = store.add(conn, "old@example.com", secret=SECRET, now=T0)
        store.confirm(conn, person.id, now=T0)
        store.unsubscribe(conn, person.id, now=T0 + timedelta(hours=1))
    # no request since they left: the link they still hold does nothing
    unchanged = _confirm(engine, person.id, T0 + timedelta(hours=2))
    assert unchanged is not None
    assert unchanged.status is SubscriberStatus.UNSUBSCRIBED
    # a request, then another unsubscribe: the request no longer speaks for them
    _sign_up(engine, "old@example.com", T0 + timedelta(hours=3))
    with engine.begin() as conn:
        store.record_event(conn, person.id, "unsubscribed", T0 + timedelta(hours=4))
        assert (
            signup.open_request(conn, store.get(conn, person.id), T0 + timedelta(hours=5)) is None
        )
    # a request older than a confirm link lives has lapsed
    _sign_up(engine, "old@example.com", T0 + timedelta(days=1))
    late = _confirm(engine, person.id, T0 + timedelta(days=9))
    assert late is not None
    assert late.status is SubscriberStatus.UNSUBSCRIBED
    assert _confirm(engine, person.id, T0 + timedelta(days=2)) is not None
    assert _status(engine, "old@example.com") is SubscriberStatus.CONFIRMED


def test_a_signup_of_a_confirmed_person_changes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        person = store.add(conn, "c@example.com", secret=SECRET, confirmed=True, topics=["uk"])
    asked = _sign_up(engine, "c@example.com", T0, name="Stranger", topics=["crime"])
    assert asked.kind is SignupKind.CONFIRMED
    with engine.connect() as conn:
        held = store.get(conn, person.id)
    assert (held.name, held.topics) == (None, frozenset({"uk"}))
