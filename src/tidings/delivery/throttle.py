"""Respecting the peer: a rate limit and a circuit breaker per integration."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from limits.util import WindowStats

from ..extras import require
from ..integrations.base import BreakerPolicy
from ..security.redact import clip

log = structlog.get_logger("tidings.dispatcher")


SHARED_RETRY = 10.0
"""After Redis failed, count in this process for this long before trying Redis again."""


class SharedLimits:
    """Rate limits counted in Redis (``dispatcher.rate_limit_storage: redis://...``), so that
    every worker sharing it shares each integration's limit: two workers on PostgreSQL must not
    send Slack two messages a second to one channel. The same moving windows as in memory, kept
    by limits' Lua scripts, one round trip per send. When Redis can't be reached each process
    counts alone meanwhile (logged): sends go on, within the limit per process."""

    def __init__(self, url: str) -> None:
        require("redis", "redis", "rate_limit_storage: redis://")
        import redis.asyncio
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter as SharedWindow

        self.url = url
        self._pool = redis.asyncio.ConnectionPool.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        storage = RedisStorage(f"async+{url}", implementation="redispy", key_prefix="tidings", connection_pool=self._pool)
        self.limiter = SharedWindow(storage)
        self.down_until = 0.0

    @property
    def up(self) -> bool:
        return time.monotonic() >= self.down_until

    def failed(self, exc: BaseException) -> None:
        if self.up:
            log.warning("rate_limit.redis_unavailable", error=clip(f"{type(exc).__name__}: {exc}", 300),
                        meanwhile="each process counts its own sends", retry_in_s=SHARED_RETRY)
        self.down_until = time.monotonic() + SHARED_RETRY

    async def close(self) -> None:
        await self._pool.disconnect()


class RateLimiter:
    """A moving-window limit from the ``limits`` library that behaves like a token bucket of
    ``rate`` with room for ``burst``: "1/second" with burst 3 allows 3 sends in any 3 seconds.
    Keys let one integration count per channel (Slack's 1 message/s per channel).

    In memory it uses limits' synchronous storage (a dictionary: nothing blocks). The asyncio
    one starts an expiry task, and a thread hop, for nearly every hit: under load that machinery
    cost more than the sends it limited (bench/throughput.py, Teams 3,400 -> 5,500 messages/s
    with the synchronous one). With ``shared``, Redis counts for every worker (see
    :class:`SharedLimits`), and memory only while Redis is away."""

    def __init__(self, rate: str, burst: int = 1, shared: SharedLimits | None = None) -> None:
        item = parse(rate)
        amount, seconds = item.amount, item.get_expiry()
        windows = max(1, math.ceil(burst / amount))
        self.item: RateLimitItem = RateLimitItemPerSecond(amount * windows, seconds * windows)
        self.per_second = amount / seconds
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._shared = shared

    async def acquire(self, key: str) -> float:
        """Take a slot now and return 0, or take nothing and return the seconds until one frees."""
        shared = self._shared
        if shared is not None and shared.up:
            try:
                if await shared.limiter.hit(self.item, key):
                    return 0.0
                return _until(await shared.limiter.get_window_stats(self.item, key))
            except Exception as exc:  # Redis away: count here meanwhile
                shared.failed(exc)
        if self._limiter.hit(self.item, key):
            return 0.0
        return _until(self._limiter.get_window_stats(self.item, key))


def _until(stats: WindowStats) -> float:
    """Seconds until the window of a refused hit frees a slot."""
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
