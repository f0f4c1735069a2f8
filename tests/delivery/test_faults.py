"""Faults during a send, against misbehaving aiosmtpd servers: nobody lost, nobody twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, Session
from sqlalchemy.engine import Engine

from newsletter.content.editions import get_edition
from newsletter.content.models import EditionStatus
from newsletter.core.config import Settings
from newsletter.core.errors import DeliveryError, SendPausedError, SMTPUnavailableError
from newsletter.core.schema import deliveries
from newsletter.database import open_database
from newsletter.delivery import outbox
from newsletter.delivery.engine import SendOptions, send_edition
from newsletter.delivery.outcomes import DeliveryStatus as S
from subscribers import store
from subscribers.model import SubscriberStatus
from tests.plugins.smtp import Misbehaviour, Received, SMTPServer
from tests.support.cli import CLIResult
from tests.support.sendkit import address, populate, states, with_smtp

# Retries come back within a fraction of a second in tests.
FAST: dict[str, Any] = {"retry_base": 0.05, "retry_cap": 0.2}


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return open_database(settings.database_url)


def rows(engine: Engine, edition_id: str) -> dict[str, tuple[str, int, str | None]]:
    """email -> (status, attempts, last_error) for every outbox row."""
    with engine.connect() as conn:
        found = conn.execute(deliveries.select().where(deliveries.c.edition_id == edition_id)).all()
    return {r.email: (r.status, r.attempts, r.last_error) for r in found}


def exactly_once(server: SMTPServer, readers: int) -> None:
    copies = server.handler.copies()
    assert {address(n): copies[address(n)] for n in range(readers)} == {
        address(n): 1 for n in range(readers)
    }


@pytest.mark.smtp_misbehave(refuse={"reader2@example.org": "550 5.1.1 no such mailbox"})
async def test_a_550_fails_the_row_and_bounces_the_subscriber(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 5)
    report = await send_edition(with_smtp(settings, smtp_server.url), engine, edition_id)
    assert (report.sent, report.failed, report.bounced) == (4, 1, 1)
    status, _, error = rows(engine, edition_id)[address(2)]
    assert status == "failed"
    assert "550" in (error or "")
    assert "no such mailbox" in (error or "")
    with engine.connect() as conn:
        assert store.get_by_email(conn, address(2)).status is SubscriberStatus.BOUNCED
        assert store.get_by_email(conn, address(1)).status is SubscriberStatus.CONFIRMED
        # failed and unknown rows do not hold the edition back
        assert get_edition(conn, edition_id).status is EditionStatus.SENT
    assert address(2) not in smtp_server.handler.copies()


@pytest.mark.smtp_misbehave(soft_fail={"reader1@example.org": 2, "reader3@example.org": 1})
async def test_450_is_retried_with_backoff_until_it_succeeds(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 5)
    report = await send_edition(
        with_smtp(settings, smtp_server.url), engine, edition_id, options=SendOptions(**FAST)
    )
    assert (report.sent, report.deferred, report.failed) == (5, 3, 0)
    exactly_once(smtp_server, 5)
    found = rows(engine, edition_id)
    assert found[address(1)][:2] == ("sent", 3)
    assert found[address(3)][:2] == ("sent", 2)
    assert smtp_server.handler.rcpt_attempts[address(1)] == 3


@pytest.mark.smtp_misbehave(soft_fail={"reader0@example.org": 99})
async def test_retries_are_bounded(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 2)
    report = await send_edition(
        with_smtp(settings, smtp_server.url),
        engine,
        edition_id,
        options=SendOptions(max_attempts=3, **FAST),
    )
    assert report.failed == 1
    assert report.bounced == 0
    status, attempts, error = rows(engine, edition_id)[address(0)]
    assert (status, attempts) == ("failed", 3)
    assert error is not None
    assert error.startswith("gave up after 3 attempts: 450")
    with engine.connect() as conn:
        # a temporary refusal is not a bounce
        assert store.get_by_email(conn, address(0)).status is SubscriberStatus.CONFIRMED


@pytest.mark.smtp_misbehave(reply_421_after=3, times_421=2)
async def test_a_couple_of_421s_are_retried_without_slowing_down(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 10)
    report = await send_edition(
        with_smtp(settings, smtp_server.url),
        engine,
        edition_id,
        options=SendOptions(concurrency=2, rate=200, **FAST),
    )
    assert report.sent == 10
    # Each 421 ended a session that had delivered: retried at once on a fresh
    # connection, without spending an attempt; and two are not a burst.
    assert report.deferred == 0
    assert (report.slowdowns, report.slowed_to, report.pace) == (0, None, [])
    assert smtp_server.handler.replies_421 == 2
    assert {attempts for _, attempts, _ in rows(engine, edition_id).values()} == {1}
    exactly_once(smtp_server, 10)


@pytest.mark.smtp_misbehave(disconnect_at_rcpt={"reader3@example.org", "reader6@example.org"})
async def test_a_disconnect_mid_batch_is_retried_on_a_fresh_connection(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 9)
    report = await send_edition(
        with_smtp(settings, smtp_server.url),
        engine,
        edition_id,
        options=SendOptions(concurrency=2, **FAST),
    )
    # retried at once on a fresh session, or (a session's first message) after a backoff
    assert (report.sent, report.unknown) == (9, 0)
    assert report.deferred <= 2
    exactly_once(smtp_server, 9)
    # the dropped sessions were replaced: more sessions than connections
    assert len(smtp_server.handler.peers) >= 3


@pytest.mark.smtp_misbehave(drop_after_data={"reader2@example.org"})
async def test_a_drop_after_the_message_is_unknown_and_not_resent_unless_asked(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 4)
    config = with_smtp(settings, smtp_server.url)
    report = await send_edition(config, engine, edition_id, options=SendOptions(**FAST))
    assert (report.sent, report.unknown) == (3, 1)
    assert rows(engine, edition_id)[address(2)][0] == "unknown"
    again = await send_edition(config, engine, edition_id)
    assert again.sent == 0
    exactly_once(smtp_server, 4)  # it did arrive, once
    resent = await send_edition(
        config, engine, edition_id, options=SendOptions(resend_unknown=True)
    )
    assert resent.sent == 1
    assert smtp_server.handler.copies()[address(2)] == 2  # what --resend-unknown risks


@pytest.mark.smtp_misbehave(delay_rcpt=1.5, slow_times=2)
async def test_a_server_slower_than_the_timeout_is_retried(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 4)
    config = with_smtp(settings, smtp_server.url, smtp_timeout=0.3)
    report = await send_edition(
        config, engine, edition_id, options=SendOptions(concurrency=2, **FAST)
    )
    assert (report.sent, report.deferred) == (4, 2)
    assert states(engine, edition_id) == {S.SENT: 4}
    exactly_once(smtp_server, 4)


@pytest.mark.smtp_misbehave(delay_data=1.5, slow_times=1)
async def test_a_timeout_after_the_message_was_handed_over_is_unknown(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 3)
    config = with_smtp(settings, smtp_server.url, smtp_timeout=0.3)
    report = await send_edition(
        config, engine, edition_id, options=SendOptions(concurrency=1, **FAST)
    )
    assert (report.sent, report.unknown) == (2, 1)
    assert states(engine, edition_id) == {S.SENT: 2, S.UNKNOWN: 1}


async def test_a_server_down_at_the_start_fails_fast_and_leaves_everything_queued(
    settings: Settings, engine: Engine, closed_port: int
) -> None:
    edition_id = populate(engine, settings, 5)
    config = with_smtp(settings, f"smtp://127.0.0.1:{closed_port}")
    with pytest.raises(
        SMTPUnavailableError, match=rf"cannot reach the SMTP relay at 127\.0\.0\.1:{closed_port}"
    ):
        await send_edition(config, engine, edition_id)
    assert states(engine, edition_id) == {S.QUEUED: 5}
    with engine.connect() as conn:
        assert get_edition(conn, edition_id).status is EditionStatus.DRAFT
        assert outbox.status(conn, edition_id).open == 5


def test_cli_server_down_is_one_clear_line(
    settings: Settings, engine: Engine, closed_port: int, run_cli: Callable[..., CLIResult]
) -> None:
    edition_id = populate(engine, settings, 2)
    result = run_cli(
        "send", edition_id, env={"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{closed_port}"}
    )
    assert result.code == 1
    assert result.stderr.strip().startswith(
        f"error: cannot reach the SMTP relay at 127.0.0.1:{closed_port}"
    )
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.smtp_misbehave(refuse_all="554 5.7.1 your IP is on a blocklist")
async def test_many_failures_in_a_row_pause_the_edition(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 30)
    with pytest.raises(SendPausedError, match="5 failures in a row") as caught:
        await send_edition(
            with_smtp(settings, smtp_server.url),
            engine,
            edition_id,
            options=SendOptions(concurrency=2, failure_threshold=5),
        )
    found = states(engine, edition_id)
    assert 5 <= found[S.FAILED] <= 6
    assert found[S.QUEUED] == 30 - found[S.FAILED]
    assert S.SENDING not in found
    with engine.connect() as conn:
        edition = get_edition(conn, edition_id)
    assert edition.status is EditionStatus.PAUSED
    assert "5 failures in a row" in (edition.status_reason or "")
    assert "blocklist" in (edition.status_reason or "")
    assert caught.value.report is not None


async def test_a_stop_request_finishes_in_flight_and_leaves_the_rest_queued(
    settings: Settings, engine: Engine, smtp_server_factory: Callable[..., SMTPServer]
) -> None:
    server = smtp_server_factory(Misbehaviour(delay_data=0.02))
    edition_id = populate(engine, settings, 40)
    config = with_smtp(settings, server.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop_after_five(_: Received) -> None:
        if len(server.received) == 5:
            loop.call_soon_threadsafe(stop.set)

    server.handler._on_message = stop_after_five
    report = await send_edition(
        config, engine, edition_id, options=SendOptions(concurrency=2), stop=stop
    )
    assert report.stopped
    assert report.sent < 40
    found = states(engine, edition_id)
    assert S.SENDING not in found
    assert found[S.SENT] == report.sent == len(server.received)
    assert found[S.QUEUED] == 40 - report.sent
    with engine.connect() as conn:
        edition = get_edition(conn, edition_id)
    assert edition.status is EditionStatus.PAUSED
    assert "resume" in (edition.status_reason or "")

    server.handler._on_message = None
    with engine.begin() as conn:  # joins after the send began: not in this edition's snapshot
        store.add(conn, "late@example.org", secret=settings.secret(), confirmed=True)
    resumed = await send_edition(config, engine, edition_id)
    assert resumed.sent == 40 - report.sent
    exactly_once(server, 40)
    assert "late@example.org" not in server.handler.copies()
    with engine.connect() as conn:
        assert get_edition(conn, edition_id).status is EditionStatus.SENT


async def test_an_unsubscribe_during_the_send_is_honoured(
    settings: Settings, engine: Engine, smtp_server_factory: Callable[..., SMTPServer]
) -> None:
    server = smtp_server_factory(Misbehaviour(delay_data=0.01))
    edition_id = populate(engine, settings, 10)
    other = open_database(settings.database_url)

    def unsubscribe_the_last(_: Received) -> None:
        if len(server.received) == 1:
            with other.begin() as conn:
                store.unsubscribe(conn, store.get_by_email(conn, address(9)).id)

    server.handler._on_message = unsubscribe_the_last
    report = await send_edition(
        with_smtp(settings, server.url), engine, edition_id, options=SendOptions(concurrency=1)
    )
    assert report.sent == 9
    assert address(9) not in server.handler.copies()
    assert rows(engine, edition_id)[address(9)][0] == "failed"


class _RefuseEveryLogin:
    """An aiosmtpd authenticator that refuses everyone (535) and notes who tried."""

    def __init__(self) -> None:
        self.sessions: set[object] = set()

    def __call__(
        self, server: object, session: Session, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        self.sessions.add(session.peer)
        # handled=False: aiosmtpd itself answers 535 (True would mean "already answered").
        return AuthResult(success=False, handled=False)


REFUSED_URL = "smtp://user:secret-pw@127.0.0.1:{port}"


async def test_a_refused_login_fails_fast_and_leaves_everything_queued(
    settings: Settings, engine: Engine, smtp_server_factory: Callable[..., SMTPServer]
) -> None:
    refuse = _RefuseEveryLogin()
    server = smtp_server_factory(authenticator=refuse, auth_require_tls=False)
    edition_id = populate(engine, settings, 3)
    config = with_smtp(settings, REFUSED_URL.format(port=server.port))
    with pytest.raises(DeliveryError) as caught:
        await send_edition(config, engine, edition_id)
    assert not isinstance(caught.value, SMTPUnavailableError)
    message = str(caught.value)
    assert f"the SMTP relay 127.0.0.1:{server.port} refused the login" in message
    assert "secret-pw" not in message
    assert states(engine, edition_id) == {S.QUEUED: 3}
    assert server.received == []
    # Fail fast: one session tried to log in, not one per message or per worker.
    assert len(refuse.sessions) == 1


def test_cli_refused_login_is_one_clear_line_without_the_password(
    settings: Settings,
    engine: Engine,
    smtp_server_factory: Callable[..., SMTPServer],
    run_cli: Callable[..., CLIResult],
) -> None:
    server = smtp_server_factory(authenticator=_RefuseEveryLogin(), auth_require_tls=False)
    edition_id = populate(engine, settings, 2)
    result = run_cli(
        "send", edition_id, env={"NEWSLETTER_SMTP_URL": REFUSED_URL.format(port=server.port)}
    )
    assert result.code == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: the SMTP relay 127.0.0.1:{server.port} refused the login (535)"]
    assert "secret-pw" not in result.stdout + result.stderr
    assert states(engine, edition_id) == {S.QUEUED: 2}
    assert server.received == []
