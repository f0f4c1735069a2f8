"""Pacing against real misbehaving aiosmtpd relays: slowing down, recovering, deferring.

Loopback only, bounded in messages; nothing here asserts a duration (speed is
the benchmarks' business): the tests check what the pacer decided and that
everybody got the message exactly once, and print the rate over time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from newsletter.content.editions import get_edition
from newsletter.content.models import EditionStatus
from newsletter.core.config import Settings
from newsletter.core.db import utcnow
from newsletter.core.schema import deliveries
from newsletter.database import open_database
from newsletter.delivery.engine import SendOptions, send_edition
from newsletter.delivery.outcomes import DeliveryStatus as S
from newsletter.delivery.pacing import PacingPolicy
from newsletter.delivery.report import EXIT_DEFERRED, SendReport
from tests.plugins.smtp import Misbehaviour, SMTPServer
from tests.support.cli import CLIResult
from tests.support.sendkit import address, populate, states, with_smtp

FAST: dict[str, Any] = {"retry_base": 0.05, "retry_cap": 0.2}
# Quick rounds, so that recovery shows within a few hundred messages.
QUICK = PacingPolicy(burst=3, window=5.0, cooldown=0.3, increase_after=10, round_time=0.5)


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return open_database(settings.database_url)


def exactly_once(server: SMTPServer, readers: int) -> None:
    copies = server.handler.copies()
    assert {address(n): copies[address(n)] for n in range(readers)} == {
        address(n): 1 for n in range(readers)
    }


async def send_to(
    settings: Settings, engine: Engine, server: SMTPServer, readers: int, **options: Any
) -> SendReport:
    """Send a new edition to ``readers`` through ``server`` with quick retries."""
    edition_id = populate(engine, settings, readers)
    return await send_edition(
        with_smtp(settings, server.url), engine, edition_id, options=SendOptions(**options, **FAST)
    )


def rate_over_time(server: SMTPServer, report: SendReport, width: float = 0.25) -> str:
    """Messages per second in each slice of the send, and the pacer's changes, for the log."""
    times = sorted(r.at for r in server.received)
    start = times[0]
    slices = Counter(int((at - start) // width) for at in times)
    lines = [
        f"t={n * width:5.2f}s {slices.get(n, 0) / width:6.0f} msg/s" for n in range(max(slices) + 1)
    ]
    lines += [f"pace: {c.why} -> rate {c.rate}, {c.concurrency} connections" for c in report.pace]
    return "\n".join(lines)


async def test_the_rate_recovers_after_the_faults_stop(
    settings: Settings, engine: Engine, smtp_server_factory: Callable[..., SMTPServer]
) -> None:
    # Every other connection of the first 30 is refused with a 421 at EHLO (a
    # burst); sessions are capped at 3 messages, so connections keep coming.
    # Then the relay is healthy: the pace must climb back to what was configured.
    server = smtp_server_factory(
        Misbehaviour(refuse_every_nth_connection=2, faulty_connections=30, session_limit=3)
    )
    readers = 240
    report = await send_to(settings, engine, server, readers, concurrency=4, rate=60, pacing=QUICK)
    print(rate_over_time(server, report))
    assert report.sent == readers
    exactly_once(server, readers)
    assert server.handler.refused_connections == 15
    # it slowed down during the burst...
    assert report.slowdowns >= 1
    assert report.slowed_to is not None
    assert report.slowed_to <= 30
    decreases = [c for c in report.pace if c.why.startswith("multiplicative")]
    assert decreases
    assert min(c.concurrency for c in decreases) < 4
    # ...and recovered the configured rate and connections once it was healthy
    last = report.pace[-1]
    assert last.why.startswith("additive")
    assert (last.rate, last.concurrency) == (60, 4)
    assert "slowed down" in str(report)


@pytest.mark.smtp_misbehave(refuse_every_nth_connection=20, session_limit=3)
async def test_isolated_421s_and_session_caps_do_not_slow_the_send(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    readers = 150
    report = await send_to(settings, engine, smtp_server, readers, concurrency=2)
    assert report.sent == readers
    exactly_once(smtp_server, readers)
    assert smtp_server.handler.refused_connections >= 1
    assert (report.slowdowns, report.pace) == (0, [])


@pytest.mark.smtp_misbehave(tempfail_share=0.3, drop_every_nth_connection=7, seed=3)
async def test_a_tempfail_storm_is_retried_while_the_others_keep_flowing(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    readers = 60
    report = await send_to(settings, engine, smtp_server, readers, concurrency=3, max_attempts=20)
    handler = smtp_server.handler
    assert handler.tempfails > 0
    assert handler.dropped_connections > 0
    assert report.sent == readers
    assert report.deferred >= handler.tempfails
    exactly_once(smtp_server, readers)
    assert states(engine, report.edition_id) == {S.SENT: readers}


@pytest.mark.smtp_misbehave(pipelining=True, soft_fail={"reader1@example.org": 1})
async def test_rows_deferred_far_ahead_end_the_run_and_the_next_send_takes_them(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    edition_id = populate(engine, settings, 4)
    config = with_smtp(settings, smtp_server.url)
    # A first retry due 100-200 s ahead: further than the send lingers.
    slow_retry = SendOptions(retry_base=200, retry_cap=400, linger=30)
    report = await send_edition(config, engine, edition_id, options=slow_retry)
    assert (report.sent, report.deferred, report.remaining) == (3, 1, 1)
    assert report.deferred_until is not None
    assert report.deferred_until > utcnow() + timedelta(seconds=90)
    assert "1 deferred by the relay until" in str(report)
    with engine.connect() as conn:
        edition = get_edition(conn, edition_id)
    assert edition.status is EditionStatus.SENDING
    assert "waiting to retry 1 deferred" in (edition.status_reason or "")

    # Sending again before it is due changes nothing and says so again.
    again = await send_edition(config, engine, edition_id, options=slow_retry)
    assert (again.sent, again.remaining) == (0, 1)
    assert again.deferred_until == report.deferred_until

    # Once due, the next send delivers it and the edition is sent.
    with engine.begin() as conn:
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.status == S.DEFERRED.value)
            .values(next_attempt_at=utcnow())
        )
    last = await send_edition(config, engine, edition_id, options=slow_retry)
    assert (last.sent, last.remaining, last.deferred_until) == (1, 0, None)
    exactly_once(smtp_server, 4)
    with engine.connect() as conn:
        assert get_edition(conn, edition_id).status is EditionStatus.SENT


def test_cli_send_with_only_rows_deferred_far_ahead_exits_with_the_deferred_status(
    settings: Settings,
    engine: Engine,
    smtp_server: SMTPServer,
    run_cli: Callable[..., CLIResult],
) -> None:
    edition_id = populate(engine, settings, 2)
    first = run_cli("send", edition_id, "--yes", env={"NEWSLETTER_SMTP_URL": smtp_server.url})
    assert first.code == 0, first.stderr
    # The relay deferred one recipient for an hour (as if 4xx after 4xx).
    with engine.begin() as conn:
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.email == address(1))
            .values(status=S.DEFERRED.value, next_attempt_at=utcnow() + timedelta(hours=1))
        )
    result = run_cli("send", edition_id, "--yes", env={"NEWSLETTER_SMTP_URL": smtp_server.url})
    assert result.code == EXIT_DEFERRED == 75
    assert "1 deferred by the relay until" in result.stdout
    assert "send again then" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.smtp_misbehave(
    pipelining=True,
    session_limit=4,
    refuse={"reader5@example.org": "550 5.1.1 no such user"},
    soft_fail={"reader7@example.org": 1, "reader20@example.org": 2},
    drop_every_nth_connection=6,
)
async def test_envelopes_sent_ahead_over_pipelining_keep_exactly_once(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    # Each payload carries the next message's MAIL, RCPT and DATA; sessions end
    # under them (the cap), some are dropped, some recipients refused or deferred.
    readers = 40
    report = await send_to(settings, engine, smtp_server, readers, concurrency=3)
    assert (report.sent, report.failed, report.unknown) == (readers - 1, 1, 0)
    copies = smtp_server.handler.copies()
    assert address(5) not in copies
    assert {n: copies[address(n)] for n in range(readers) if n != 5} == {
        n: 1 for n in range(readers) if n != 5
    }
    assert states(engine, report.edition_id) == {S.SENT: readers - 1, S.FAILED: 1}
