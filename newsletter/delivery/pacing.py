"""Pacing for a send: how fast, and over how many connections, adapted to the relay.

It works the way TCP's congestion control and Postfix's destination
concurrency feedback do:

* **additive increase**: a *round* ends after ``increase_after`` successes, or
  at the first success once it has lasted ``round_time`` seconds; each round
  raises the rate by a tenth of its target (the configured rate, or, with no
  limit configured, the rate seen before the last decrease) and lets one more
  connection open, up to the configured number. With no limit configured, the
  limit is lifted altogether once the rate is back at its target;
* **multiplicative decrease**: only a *burst* of slow-down signals halves the
  rate and the connections: at least ``burst`` of them (a 421, a dropped
  connection, a refused connect) within ``window`` seconds, making up at least
  ``share`` of the outcomes in that window, and at most one decrease per
  ``cooldown``. A single 421 or drop is retried on a fresh connection and
  changes nothing;
* **a floor that is not a trap**: the rate never goes below ``floor`` nor the
  connections below one, and since a round also ends on time alone, the rate
  climbs back even when few messages are flowing.

A 4xx tempfail (other than 421) is neither: the relay answered, it just will
not take that recipient now. Those rows are retried after a jittered
exponential backoff (:func:`backoff_delay`) while the others keep flowing.

Everything here is synchronous and takes an injectable clock, so the rules are
unit-tested with a fake one; :class:`newsletter.delivery.run.SendRun` feeds it.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["PaceChange", "Pacer", "PacingPolicy", "RateLimiter", "backoff_delay"]

# Successes remembered to estimate the rate when no limit is configured.
_WINDOW = 512


class RateLimiter:
    """A token bucket shared by all connections of a send; ``rate=None`` is unlimited."""

    def __init__(
        self,
        rate: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._tokens = self._burst()
        self._stamp = clock()

    @property
    def rate(self) -> float | None:
        """The current limit in messages per second (``None``: unlimited)."""
        return self._rate

    def _burst(self) -> float:
        # A small burst smooths scheduling jitter without letting K connections
        # fire far above the rate at once.
        return 1.0 if self._rate is None else max(1.0, self._rate / 10)

    def _refill(self, now: float) -> None:
        if self._rate is not None:
            self._tokens = min(self._burst(), self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def delay(self) -> float:
        """Take one token and return how long the caller must wait before using it."""
        if self._rate is None:
            return 0.0
        now = self._clock()
        self._refill(now)
        # Reserve the token now (the balance may go negative) so that waiters
        # are served in arrival order without a lock.
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    async def acquire(self) -> None:
        """Wait until one more message may start."""
        wait = self.delay()
        if wait > 0:
            await self._sleep(wait)  # type: ignore[misc]

    def set_rate(self, rate: float | None) -> None:
        """Change the limit from now on (``None``: unlimited); debts already taken stand."""
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self._refill(self._clock())
        self._rate = rate
        self._tokens = min(self._tokens, self._burst())


@dataclass(frozen=True, slots=True)
class PacingPolicy:
    """The constants of the pacing rules (see the module docstring)."""

    burst: int = 3  # slow-down signals within the window that make a real signal
    window: float = 10.0  # seconds
    share: float = 0.05  # ...and at least this share of the outcomes in the window
    cooldown: float = 2.0  # seconds after a decrease during which signals are ignored
    decrease: float = 0.5  # multiplicative decrease of the rate and the connections
    increase_after: int = 20  # successes that end a round of additive increase
    round_time: float = 1.0  # a round also ends at the first success after this long
    steps: int = 10  # additive increase: a tenth of the target rate per round
    floor: float = 1.0  # messages per second, the lowest rate ever imposed


@dataclass(frozen=True, slots=True)
class PaceChange:
    """One change of pace: when (clock seconds), to what, and why."""

    at: float
    rate: float | None
    concurrency: int
    why: str


class Pacer:
    """The rate limit and connection count of one send, adapted to the relay's signals.

    ``rate`` (messages per second, ``None`` for unlimited) and ``concurrency``
    are what was configured: the pacer never goes above them and comes back to
    them once the relay is healthy.
    """

    def __init__(
        self,
        rate: float | None,
        concurrency: int,
        *,
        policy: PacingPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.policy = policy or PacingPolicy()
        self.limiter = RateLimiter(rate, clock=clock, sleep=sleep)
        self.configured_rate = rate
        self.max_concurrency = concurrency
        self.concurrency = concurrency
        self._clock = clock
        self._target = rate  # what additive increase climbs back to
        self._signals: deque[float] = deque()
        self._outcomes: deque[float] = deque()
        self._sent: deque[float] = deque(maxlen=_WINDOW)
        self._calm_until = -math.inf
        self._successes = 0
        self._round_start = clock()
        self.decreases = 0
        self.lowest_rate: float | None = None
        self.changes: list[PaceChange] = []

    @property
    def rate(self) -> float | None:
        """The current rate limit (``None``: unlimited)."""
        return self.limiter.rate

    async def acquire(self) -> None:
        """Wait until one more message may start, at the current rate."""
        await self.limiter.acquire()

    def _note(self, now: float) -> None:
        horizon = now - self.policy.window
        for times in (self._outcomes, self._signals):
            while times and times[0] < horizon:
                times.popleft()
        self._outcomes.append(now)

    def success(self) -> bool:
        """The relay took a message; returns True when the pace went up."""
        now = self._clock()
        self._note(now)
        self._sent.append(now)
        self._successes += 1
        policy = self.policy
        if self._successes < policy.increase_after and now - self._round_start < policy.round_time:
            return False
        self._successes = 0
        self._round_start = now
        return self._increase(now)

    def tempfail(self) -> None:
        """A 4xx for one recipient: neither success nor a slow-down signal, only an outcome."""
        self._note(self._clock())

    def slow_down_signal(self) -> bool:
        """A 421, a dropped connection or a refused connect; True when the pace went down."""
        now = self._clock()
        self._note(now)
        self._signals.append(now)
        policy = self.policy
        if now < self._calm_until or len(self._signals) < policy.burst:
            return False
        if len(self._signals) < policy.share * len(self._outcomes):
            return False
        return self._decrease(now)

    def observed_rate(self) -> float | None:
        """Successes per second over the recent ones, or ``None`` before there are two."""
        sent = self._sent
        if len(sent) < 2 or sent[-1] <= sent[0]:
            return None
        return (len(sent) - 1) / (sent[-1] - sent[0])

    def _increase(self, now: float) -> bool:
        rate, target = self.limiter.rate, self._target
        new_rate = rate
        if rate is not None and target is not None and rate < target:
            new_rate = min(target, rate + target / self.policy.steps)
        if new_rate is not None and self.configured_rate is None and new_rate >= (target or 0):
            new_rate = None  # back where it was before the decrease: lift the limit
        new_concurrency = min(self.max_concurrency, self.concurrency + 1)
        if new_rate == rate and new_concurrency == self.concurrency:
            return False
        self._apply(now, new_rate, new_concurrency, "additive increase after a round of successes")
        return True

    def _decrease(self, now: float) -> bool:
        policy = self.policy
        current = self.limiter.rate
        if current is None:
            current = self.observed_rate()
            # The rate to recover to before lifting the limit again.
            self._target = current
        new_rate = None if current is None else max(policy.floor, current * policy.decrease)
        new_concurrency = max(1, int(self.concurrency * policy.decrease))
        self._calm_until = now + policy.cooldown
        self._signals.clear()
        self._successes = 0
        self._round_start = now
        self.decreases += 1
        if new_rate is not None:
            self.lowest_rate = min(new_rate, self.lowest_rate or new_rate)
        self._apply(now, new_rate, new_concurrency, "multiplicative decrease after a burst")
        return True

    def _apply(self, now: float, rate: float | None, concurrency: int, why: str) -> None:
        self.limiter.set_rate(rate)
        self.concurrency = concurrency
        self.changes.append(PaceChange(now, rate, concurrency, why))


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = first retry).

    Exponential (``base * 2**(attempt-1)``, at most ``cap``) with "equal jitter":
    half fixed, half random, so retries of a whole batch spread out but never
    come back sooner than half the nominal delay.
    """
    nominal = min(cap, base * 2.0 ** max(0, attempt - 1))
    return nominal / 2 + rng() * nominal / 2
