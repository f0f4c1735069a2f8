"""The pacing rules with a fake clock: token bucket, backoff, and AIMD over rate and connections."""

from __future__ import annotations

import pytest

from newsletter.delivery.pacing import Pacer, PacingPolicy, RateLimiter, backoff_delay


class FakeClock:
    """A clock that only moves when told to (or when something sleeps on it)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pacer(rate: float | None, concurrency: int = 8, **policy: float) -> tuple[Pacer, FakeClock]:
    clock = FakeClock()
    chosen = PacingPolicy(**policy)  # type: ignore[arg-type]
    return Pacer(rate, concurrency, policy=chosen, clock=clock, sleep=clock.sleep), clock


def healthy(p: Pacer, clock: FakeClock, seconds: float, per_second: int) -> None:
    """``per_second`` successes a second for ``seconds`` seconds."""
    for _ in range(int(seconds * per_second)):
        clock.now += 1 / per_second
        p.success()


def burst(p: Pacer, clock: FakeClock, signals: int = 3, gap: float = 0.01) -> bool:
    """``signals`` slow-down signals ``gap`` seconds apart; True if any lowered the pace."""
    lowered = False
    for _ in range(signals):
        clock.now += gap
        lowered |= p.slow_down_signal()
    return lowered


async def test_rate_limiter_paces_to_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock, sleep=clock.sleep)
    for _ in range(31):
        await limiter.acquire()
    # 31 messages at 10/s with a burst of 1: three seconds.
    assert clock.now == pytest.approx(3.0)


async def test_rate_limiter_follows_a_new_rate_and_can_be_lifted() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock, sleep=clock.sleep)
    limiter.set_rate(20.0)
    for _ in range(21):
        await limiter.acquire()
    assert clock.now == pytest.approx(1.0, abs=0.11)
    limiter.set_rate(None)
    before = clock.now
    for _ in range(100):
        await limiter.acquire()
    assert clock.now == before  # unlimited: nobody waits
    with pytest.raises(ValueError, match="rate must be positive"):
        limiter.set_rate(0)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    low = [backoff_delay(n, base=1, cap=60, rng=lambda: 0.0) for n in range(1, 9)]
    high = [backoff_delay(n, base=1, cap=60, rng=lambda: 1.0) for n in range(1, 9)]
    assert low[:4] == [0.5, 1.0, 2.0, 4.0]
    assert high[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(high) == 60.0


def test_a_single_421_or_drop_changes_nothing() -> None:
    p, clock = pacer(100.0)
    healthy(p, clock, 1, 100)
    for _ in range(5):  # one signal every six seconds: isolated faults
        clock.now += 6.0
        assert not p.slow_down_signal()
    for _ in range(5):  # one every four seconds, among a hundred messages a second
        healthy(p, clock, 4, 100)
        assert not p.slow_down_signal()
    assert (p.rate, p.concurrency, p.decreases) == (100.0, 8, 0)


def test_a_burst_halves_the_rate_and_the_connections_once() -> None:
    p, clock = pacer(100.0)
    assert burst(p, clock, signals=6)
    assert (p.rate, p.concurrency, p.decreases) == (50.0, 4, 1)
    # the same burst's stragglers, within the cooldown, do not count again
    assert not burst(p, clock, signals=3)
    assert p.rate == 50.0
    # a second burst after the cooldown halves again
    clock.now += 2.5
    assert burst(p, clock)
    assert (p.rate, p.concurrency) == (25.0, 2)
    assert [c.rate for c in p.changes] == [50.0, 25.0]


def test_signals_lost_among_many_successes_are_not_a_burst() -> None:
    # three 421s within ten seconds, but among a thousand messages: 0.3%
    p, clock = pacer(None)
    for n in range(1000):
        clock.now += 0.009
        if n % 300 == 0:
            assert not p.slow_down_signal()
        else:
            p.success()
    assert (p.rate, p.decreases) == (None, 0)


def test_tempfails_are_neither_success_nor_a_signal() -> None:
    p, clock = pacer(50.0, 4)
    for _ in range(200):
        clock.now += 0.01
        p.tempfail()
    assert (p.rate, p.concurrency, p.decreases, p.changes) == (50.0, 4, 0, [])


def test_additive_increase_recovers_the_configured_rate_and_connections() -> None:
    p, clock = pacer(100.0, 8)
    burst(p, clock)
    assert (p.rate, p.concurrency) == (50.0, 4)
    # each round (20 successes) adds a tenth of 100/s and one connection
    rates = []
    for _ in range(8):
        for _ in range(20):
            clock.now += 0.001
            p.success()
        rates.append(p.rate)
    assert rates[:5] == pytest.approx([60.0, 70.0, 80.0, 90.0, 100.0])
    assert rates[5:] == [100.0, 100.0, 100.0]  # never above what was configured
    assert p.concurrency == 8


def test_with_no_limit_configured_recovery_lifts_the_limit() -> None:
    p, clock = pacer(None, 8)
    healthy(p, clock, 2, 200)  # 200 a second observed
    assert burst(p, clock, signals=30)  # 421s make up 7% of the last ten seconds
    assert p.rate == pytest.approx(100.0, rel=0.05)
    for _ in range(12):
        for _ in range(20):
            clock.now += 0.01
            p.success()
    assert p.rate is None  # unlimited again
    assert p.concurrency == 8
    assert p.changes[-1].why.startswith("additive increase")


def test_the_floor_is_not_a_trap() -> None:
    p, clock = pacer(10.0, 4, floor=1.0, cooldown=0.0)
    for _ in range(6):  # burst after burst
        clock.now += 20.0  # older signals leave the window
        burst(p, clock)
    assert (p.rate, p.concurrency) == (1.0, 1)
    assert p.lowest_rate == 1.0
    # at one message a second, rounds end on time, not on twenty successes
    for _ in range(12):
        clock.now += 1.0
        p.success()
    assert p.rate == 10.0
    assert p.concurrency == 4


def test_recovery_after_faults_stop_over_time() -> None:
    """The rate over time: healthy, a storm of 421s, then healthy again."""
    p, clock = pacer(100.0, 8)
    timeline: list[tuple[int, float | None, int]] = []
    for second in range(30):
        storm = 5 <= second < 10
        for n in range(50):
            clock.now = second + n / 50
            if storm and n % 5 == 0:
                p.slow_down_signal()
            else:
                p.success()
        timeline.append((second, p.rate, p.concurrency))
    print("\n".join(f"t={s:2d}s rate={r} connections={c}" for s, r, c in timeline))
    during = [r for s, r, _ in timeline if 5 <= s < 10]
    assert min(r or 0 for r in during) < 50.0
    assert timeline[-1][1:] == (100.0, 8)
    # back to the configured rate within ten seconds of the end of the storm
    assert next(s for s, r, _ in timeline if s >= 10 and r == 100.0) <= 20


def test_policy_and_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Pacer(10.0, 0)
    with pytest.raises(ValueError, match="rate must be positive"):
        RateLimiter(-1.0)
