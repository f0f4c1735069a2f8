"""The SMTP pool and one-message delivery, against real aiosmtpd servers on port 0."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from newsletter.core.config import SMTPEndpoint, load_settings
from newsletter.core.errors import InsecureTransportError, SMTPUnavailableError
from newsletter.delivery.outcomes import DeliveryStatus
from newsletter.delivery.smtp import Attempt, SMTPPool, classify_reply
from tests.plugins.smtp import Misbehaviour, SMTPServer

SENDER = "news@example.com"


def message(to: str, body: str = "Hello.\r\n") -> bytes:
    """A small, valid message as bytes (CRLF)."""
    return (
        f"From: News <{SENDER}>\r\nTo: {to}\r\nSubject: test\r\n"
        f"Message-ID: <{abs(hash(to))}@example.com>\r\n\r\n{body}"
    ).encode()


def pool_for(server: SMTPServer, size: int = 2, timeout: float = 5.0) -> SMTPPool:
    endpoint = SMTPEndpoint.parse(server.url)
    return SMTPPool(endpoint, size=size, timeout=timeout)


async def send_one(pool: SMTPPool, to: str, data: bytes | None = None) -> Attempt:
    connection = await pool.acquire()
    attempt = await connection.deliver(SENDER, to, data or message(to))
    await pool.release(connection, reusable=attempt.reusable)
    return attempt


async def test_bytes_arrive_unchanged_including_leading_dots(smtp_server: SMTPServer) -> None:
    data = message("a@example.org", "line one\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n")
    async with pool_for(smtp_server) as pool:
        attempt = await send_one(pool, "a@example.org", data)
    assert attempt.outcome is DeliveryStatus.SENT
    assert attempt.code == 250
    [got] = smtp_server.received
    assert got.data == data
    assert got.rcpt_tos == ["a@example.org"]
    assert got.mail_from == SENDER


async def test_connections_are_reused_and_bounded(smtp_server: SMTPServer) -> None:
    async with pool_for(smtp_server, size=3) as pool:
        await pool.open()

        async def worker(n: int) -> list[Attempt]:
            return [await send_one(pool, f"r{n}-{i}@example.org") for i in range(10)]

        results = await asyncio.gather(*(worker(n) for n in range(6)))
    assert all(a.outcome is DeliveryStatus.SENT for batch in results for a in batch)
    assert len(smtp_server.received) == 60
    # 60 messages over at most 3 sessions: connections were reused.
    assert 1 <= len({r.peer for r in smtp_server.received}) <= 3


@pytest.mark.smtp_misbehave(refuse={"gone@example.org": "550 5.1.1 no such user"})
async def test_550_is_a_hard_bounce_and_the_connection_carries_on(smtp_server: SMTPServer) -> None:
    async with pool_for(smtp_server, size=1) as pool:
        bad = await send_one(pool, "gone@example.org")
        good = await send_one(pool, "ok@example.org")
    assert bad.outcome is DeliveryStatus.FAILED
    assert bad.code == 550
    assert bad.bounce
    assert bad.reusable
    assert "no such user" in (bad.error or "")
    assert good.outcome is DeliveryStatus.SENT
    assert [r.rcpt_tos for r in smtp_server.received] == [["ok@example.org"]]
    assert len(smtp_server.handler.peers) == 1


@pytest.mark.smtp_misbehave(soft_fail={"busy@example.org": 1})
async def test_450_defers_on_a_connection_that_is_not_reused(smtp_server: SMTPServer) -> None:
    async with pool_for(smtp_server, size=1) as pool:
        first = await send_one(pool, "busy@example.org")
        second = await send_one(pool, "busy@example.org")
    assert first.outcome is DeliveryStatus.DEFERRED
    assert first.code == 450
    assert not first.reusable
    assert not first.bounce
    assert not first.slow_down
    assert second.outcome is DeliveryStatus.SENT
    assert len(smtp_server.handler.peers) == 2  # the retry ran on a fresh session


@pytest.mark.smtp_misbehave(reply_421_after=1)
async def test_421_after_a_delivery_ends_the_session_and_is_no_slow_down_signal(
    smtp_server: SMTPServer,
) -> None:
    async with pool_for(smtp_server, size=1) as pool:
        ok = await send_one(pool, "one@example.org")
        refused = await send_one(pool, "two@example.org")
        again = await send_one(pool, "two@example.org")
    assert ok.outcome is DeliveryStatus.SENT
    assert refused.outcome is DeliveryStatus.DEFERRED
    assert refused.code == 421
    # the session had delivered: a per-session cap, not congestion (Postfix's rule)
    assert not refused.slow_down
    assert not refused.reusable
    assert again.outcome is DeliveryStatus.SENT


@pytest.mark.smtp_misbehave(reply_421_after=0)
async def test_421_before_the_session_delivered_anything_asks_to_slow_down(
    smtp_server: SMTPServer,
) -> None:
    async with pool_for(smtp_server, size=1) as pool:
        refused = await send_one(pool, "one@example.org")
        again = await send_one(pool, "one@example.org")
    assert (refused.outcome, refused.code, refused.slow_down) == (
        DeliveryStatus.DEFERRED,
        421,
        True,
    )
    assert again.outcome is DeliveryStatus.SENT


@pytest.mark.smtp_misbehave(refuse_every_nth_connection=2)
async def test_a_421_at_ehlo_is_a_refused_connect(smtp_server: SMTPServer) -> None:
    async with pool_for(smtp_server, size=2) as pool:
        first = await pool.acquire()
        with pytest.raises(SMTPUnavailableError, match="421"):
            await pool.acquire()
        await pool.release(first)
    assert smtp_server.handler.refused_connections == 1


@pytest.mark.smtp_misbehave(
    pipelining=True,
    refuse={"gone@example.org": "550 5.1.1 no such user"},
    soft_fail={"busy@example.org": 1},
)
async def test_pipelined_transactions_keep_replies_in_order(smtp_server: SMTPServer) -> None:
    async with pool_for(smtp_server, size=1) as pool:
        connection = await pool.acquire()
        assert connection.pipelining
        results = []
        for to in ["a@example.org", "gone@example.org", "b@example.org", "busy@example.org"]:
            attempt = await connection.deliver(SENDER, to, message(to))
            results.append((to, attempt.outcome, attempt.code))
            if not attempt.reusable:
                await pool.release(connection, reusable=False)
                connection = await pool.acquire()
        withdrawn = asyncio.get_running_loop().create_future()
        withdrawn.set_result(False)
        attempt = await connection.deliver(SENDER, "c@example.org", message("c"), ready=withdrawn)
        await pool.release(connection, reusable=attempt.reusable)
    assert results == [
        ("a@example.org", DeliveryStatus.SENT, 250),
        ("gone@example.org", DeliveryStatus.FAILED, 550),
        ("b@example.org", DeliveryStatus.SENT, 250),
        ("busy@example.org", DeliveryStatus.DEFERRED, 450),
    ]
    # withdrawn in the data phase: the session is hung up on, nothing is delivered
    assert (attempt.outcome, attempt.reusable) == (DeliveryStatus.FAILED, False)
    assert [r.rcpt_tos for r in smtp_server.received] == [["a@example.org"], ["b@example.org"]]


@pytest.mark.smtp_misbehave(disconnect_at_rcpt={"drop@example.org"})
async def test_a_drop_before_the_payload_is_a_safe_retry(smtp_server: SMTPServer) -> None:
    async with pool_for(smtp_server, size=1) as pool:
        dropped = await send_one(pool, "drop@example.org")
        retried = await send_one(pool, "drop@example.org")
    assert dropped.outcome is DeliveryStatus.DEFERRED
    assert not dropped.reusable
    assert retried.outcome is DeliveryStatus.SENT
    assert smtp_server.handler.copies()["drop@example.org"] == 1


@pytest.mark.smtp_misbehave(drop_after_data={"maybe@example.org"})
async def test_a_drop_after_the_payload_is_unknown(smtp_server: SMTPServer) -> None:
    async with pool_for(smtp_server, size=1) as pool:
        attempt = await send_one(pool, "maybe@example.org")
    assert attempt.outcome is DeliveryStatus.UNKNOWN
    # It did arrive: that is exactly why it must not be retried blindly.
    assert smtp_server.handler.copies()["maybe@example.org"] == 1


@pytest.mark.smtp_misbehave(delay_rcpt=2.0, slow_times=1)
async def test_a_server_slower_than_the_timeout_before_data_defers(
    smtp_server: SMTPServer,
) -> None:
    async with pool_for(smtp_server, size=1, timeout=0.3) as pool:
        slow = await send_one(pool, "slow@example.org")
        fast = await send_one(pool, "slow@example.org")
    assert slow.outcome is DeliveryStatus.DEFERRED
    assert "timed out" in slow.detail.lower()
    assert fast.outcome is DeliveryStatus.SENT


@pytest.mark.smtp_misbehave(delay_data=2.0, slow_times=1)
async def test_a_timeout_waiting_for_the_final_reply_is_unknown(smtp_server: SMTPServer) -> None:
    async with pool_for(smtp_server, size=1, timeout=0.3) as pool:
        attempt = await send_one(pool, "slow@example.org")
    assert attempt.outcome is DeliveryStatus.UNKNOWN
    assert not attempt.reusable


async def test_a_server_that_is_down_fails_fast(closed_port: int) -> None:
    pool = SMTPPool(SMTPEndpoint.parse(f"smtp://127.0.0.1:{closed_port}"), size=2, timeout=2)
    with pytest.raises(SMTPUnavailableError, match=rf"127\.0\.0\.1:{closed_port}"):
        await pool.open()


async def test_smtputf8_is_used_for_an_international_address(smtp_server: SMTPServer) -> None:
    async with pool_for(smtp_server) as pool:
        attempt = await send_one(pool, "josé@exämple.org", message("x@example.org"))
    assert attempt.outcome is DeliveryStatus.SENT
    [got] = smtp_server.received
    assert got.rcpt_tos == ["josé@exämple.org"]
    assert "SMTPUTF8" in [o.upper() for o in got.mail_options]


async def test_an_international_address_fails_when_the_relay_lacks_smtputf8(
    smtp_server_factory: Callable[..., SMTPServer],
) -> None:
    server = smtp_server_factory(enable_SMTPUTF8=False)
    async with pool_for(server) as pool:
        attempt = await send_one(pool, "josé@exämple.org", message("x@example.org"))
        ascii_ok = await send_one(pool, "plain@example.org")
    assert attempt.outcome is DeliveryStatus.FAILED
    assert "SMTPUTF8" in attempt.detail
    assert not attempt.bounce
    assert ascii_ok.outcome is DeliveryStatus.SENT


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_tls_modes(smtp_server_factory: Callable[..., SMTPServer], tls: str) -> None:
    server = smtp_server_factory(tls=tls)
    endpoint = SMTPEndpoint(server.host, server.port, tls)  # type: ignore[arg-type]
    async with SMTPPool(endpoint, size=1, tls_context=server.client_tls_context()) as pool:
        attempt = await send_one(pool, "secure@example.org")
    assert attempt.outcome is DeliveryStatus.SENT
    assert [r.tls for r in server.received] == [True]


async def test_starttls_required_but_not_offered_is_refused(smtp_server: SMTPServer) -> None:
    endpoint = SMTPEndpoint(smtp_server.host, smtp_server.port, "starttls")
    with pytest.raises(InsecureTransportError, match="STARTTLS"):
        await SMTPPool(endpoint, size=1).open()
    assert smtp_server.received == []


def test_clear_text_to_a_remote_host_is_refused_unless_allowed() -> None:
    with pytest.raises(InsecureTransportError):
        SMTPPool(SMTPEndpoint("mail.example.com", 25, "none"))
    SMTPPool(SMTPEndpoint("mail.example.com", 25, "none"), allow_insecure=True)
    SMTPPool(SMTPEndpoint("127.0.0.1", 25, "none"))


def test_the_url_decides_tls_and_refuses_auth_in_the_clear() -> None:
    assert SMTPEndpoint.parse("smtp://mail.example.com").tls == "starttls"
    assert SMTPEndpoint.parse("smtps://mail.example.com").tls == "implicit"
    assert SMTPEndpoint.parse("smtp://127.0.0.1:1025").tls == "none"
    assert SMTPEndpoint.parse("smtp://mail.example.com", allow_insecure=True).tls == "none"
    endpoint = SMTPEndpoint.parse("smtp://user:s3cret@mail.example.com:587")
    assert endpoint.tls == "starttls"
    assert "s3cret" not in repr(endpoint)


def test_settings_never_show_the_password(workdir: object) -> None:
    settings = load_settings(smtp_url="smtps://user:s3cret@mail.example.com")
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in repr(settings.smtp())


@pytest.mark.parametrize(
    ("code", "phase", "outcome", "bounce", "slow"),
    [
        (421, "rcpt", DeliveryStatus.DEFERRED, False, True),
        (451, "data", DeliveryStatus.DEFERRED, False, False),
        (550, "rcpt", DeliveryStatus.FAILED, True, False),
        (552, "rcpt", DeliveryStatus.FAILED, False, False),
        (550, "mail", DeliveryStatus.FAILED, False, False),  # our sender refused: not their bounce
        (554, "data", DeliveryStatus.FAILED, False, False),
    ],
)
def test_reply_classification(
    code: int, phase: str, outcome: DeliveryStatus, bounce: bool, slow: bool
) -> None:
    attempt = classify_reply(code, "text", phase=phase)
    assert (attempt.outcome, attempt.bounce, attempt.slow_down) == (outcome, bounce, slow)


def test_misbehaviour_defaults_behave() -> None:
    assert Misbehaviour().refuse == {}
    assert Misbehaviour().reply_421_after is None


async def test_login_over_starttls(
    smtp_server_factory: Callable[..., SMTPServer],
) -> None:
    from aiosmtpd.smtp import AuthResult
    from pydantic import SecretStr

    def check(
        server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        login, password = getattr(data, "login", b""), getattr(data, "password", b"")
        return AuthResult(success=(login, password) == (b"news", b"right-pass"))

    server = smtp_server_factory(
        tls="starttls", authenticator=check, auth_required=True, auth_exclude_mechanism=["LOGIN"]
    )
    context = server.client_tls_context()
    good = SMTPEndpoint(server.host, server.port, "starttls", "news", SecretStr("right-pass"))
    async with SMTPPool(good, size=1, tls_context=context) as pool:
        attempt = await send_one(pool, "authed@example.org")
    assert attempt.outcome is DeliveryStatus.SENT
    assert [r.tls for r in server.received] == [True]
