"""Respecting the peer: a rate limit and a circuit breaker per integration."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.storage import MemoryStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from ..integrations.base import BreakerPolicy


class RateLimiter:
    """A moving-window limit from the ``limits`` library that behaves like a token bucket of
    ``rate`` with room for ``burst``: "1/second" with burst 3 allows 3 sends in any 3 seconds.
    Keys let one integration count per channel (Slack's 1 message/s per channel).

    In memory it uses limits' synchronous storage (a dictionary: nothing blocks). The asyncio
    one starts an expiry task, and a thread hop, for nearly every hit: under load that machinery
    cost more than the sends it limited (bench/throughput.py, Teams 3,400 -> 5,500 messages/s
    with the synchronous one)."""

    def __init__(self, rate: str, burst: int = 1, storage: Storage | None = None) -> None:
        item = parse(rate)
        amount, seconds = item.amount, item.get_expiry()
        windows = max(1, math.ceil(burst / amount))
        self.item: RateLimitItem = RateLimitItemPerSecond(amount * windows, seconds * windows)
        self.per_second = amount / seconds
        self._limiter = MovingWindowRateLimiter(storage or MemoryStorage())

    async def acquire(self, key: str) -> float:
        """Take a slot now and return 0, or take nothing and return the seconds until one frees."""
        if self._limiter.hit(self.item, key):
            return 0.0
        stats = self._limiter.get_window_stats(self.item, key)
        return max(0.001, stats.reset_time - time.time())


class Breaker:
    """Closed, open after ``failures`` consecutive failures, half-open after ``cool_off``: one trial
    goes through; success closes it, failure opens it again for twice as long (at most 10x)."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self._clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.cool_off = policy.cool_off
        self._trial = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self._clock() >= self.opened_at + self.cool_off else "open"

    def blocked_until(self) -> float | None:
        """None if a send may start now; otherwise when to look again. Starting a send in the
        half-open state takes the single trial slot."""
        if self.opened_at is None:
            return None
        reopen = self.opened_at + self.cool_off
        now = self._clock()
        if now < reopen:
            return reopen
        if self._trial:
            return now + 1.0
        self._trial = True
        return None

    def record(self, ok: bool) -> None:
        if ok:
            self.failures = 0
            self.opened_at = None
            self.cool_off = self.policy.cool_off
            self._trial = False
            return
        self.failures += 1
        if self._trial:
            self._trial = False
            self.cool_off = min(self.cool_off * 2, self.policy.cool_off * 10)
            self.opened_at = self._clock()
        elif self.opened_at is None and self.failures >= self.policy.failures:
            self.opened_at = self._clock()

    def release_trial(self) -> None:
        """The trial send didn't happen (shutdown, rate limit): let another one try."""
        self._trial = False
