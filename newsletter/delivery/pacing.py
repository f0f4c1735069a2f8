"""Pacing for a send: the global token bucket, and the backoff before a retry.

One :class:`RateLimiter` is shared by every connection of a send, so the rate
is global to the send, not per connection. A 421 from the relay ("service not
available, closing channel") means it wants less: :meth:`RateLimiter.slow_down`
halves the rate (or, with no limit set, imposes half of what was observed).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable

__all__ = ["RateLimiter", "backoff_delay"]

# With no limit configured, a 421 imposes half the rate seen over this many sends.
_WINDOW = 512
_MIN_RATE = 0.5


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
        self._recent: deque[float] = deque(maxlen=_WINDOW)

    @property
    def rate(self) -> float | None:
        """The current limit in messages per second (``None``: unlimited)."""
        return self._rate

    def _burst(self) -> float:
        # A small burst smooths scheduling jitter without letting K connections
        # fire far above the rate at once.
        return 1.0 if self._rate is None else max(1.0, self._rate / 10)

    def _refill(self, now: float) -> None:
        if self._rate is None:
            return
        self._tokens = min(self._burst(), self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def delay(self) -> float:
        """Take one token and return how long the caller must wait before using it."""
        now = self._clock()
        self._recent.append(now)
        if self._rate is None:
            return 0.0
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

    def observed_rate(self) -> float | None:
        """Messages per second over the recent window, or ``None`` before there is one."""
        if len(self._recent) < 2:
            return None
        span = self._recent[-1] - self._recent[0]
        return (len(self._recent) - 1) / span if span > 0 else None

    def slow_down(self, factor: float = 0.5) -> float:
        """Lower the rate (after a 421) and return the new rate in messages per second."""
        now = self._clock()
        self._refill(now)
        current = self._rate if self._rate is not None else self.observed_rate()
        new_rate = max(_MIN_RATE, (current or 2 * _MIN_RATE) * factor)
        self._rate = new_rate
        self._stamp = now
        self._tokens = min(self._tokens, self._burst())
        return new_rate


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
