"""Respecting the peer: the circuit breaker's states on a fake clock, and the rate limiter."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tidings.delivery.throttle import Breaker, RateLimiter
from tidings.integrations.base import BreakerPolicy


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def breaker(failures: int = 3, cool_off: float = 10.0) -> tuple[Breaker, Clock]:
    clock = Clock()
    return Breaker(BreakerPolicy(failures=failures, cool_off=cool_off), clock=clock), clock


def open_it(b: Breaker, failures: int = 3) -> None:
    for _ in range(failures):
        b.record(False)


# -- the breaker -------------------------------------------------------------------------------
def test_closed_until_n_consecutive_failures() -> None:
    b, clock = breaker(failures=3)
    assert b.state == "closed" and b.blocked_until() is None
    b.record(False)
    b.record(False)
    assert b.state == "closed" and b.blocked_until() is None
    b.record(True)  # a success in between: the count starts again
    b.record(False)
    b.record(False)
    assert b.state == "closed"
    b.record(False)
    assert b.state == "open"
    assert b.blocked_until() == clock.now + 10.0


def test_open_blocks_until_the_cool_off_then_one_trial() -> None:
    b, clock = breaker(cool_off=10.0)
    open_it(b)
    opened = clock.now
    clock.advance(9.99)
    assert b.state == "open"
    assert b.blocked_until() == opened + 10.0
    clock.advance(0.01)
    assert b.state == "half-open"
    assert b.blocked_until() is None, "the first send takes the trial"
    assert b.blocked_until() == clock.now + 1.0, "a second send waits while the trial runs"
    assert b.blocked_until() is not None
    b.record(True)
    assert b.state == "closed"
    assert b.failures == 0
    assert b.blocked_until() is None and b.blocked_until() is None


def test_failed_trial_reopens_for_twice_as_long_capped_at_ten_times() -> None:
    b, clock = breaker(cool_off=10.0)
    open_it(b)
    expected = [20.0, 40.0, 80.0, 100.0, 100.0]
    for cool_off in [10.0, *expected[:-1]]:
        clock.advance(cool_off)
        assert b.state == "half-open"
        assert b.blocked_until() is None
        b.record(False)
        assert b.state == "open"
    assert b.cool_off == 100.0
    seen = []
    b2, clock2 = breaker(cool_off=10.0)
    open_it(b2)
    for _ in range(5):
        clock2.advance(b2.cool_off)
        assert b2.blocked_until() is None
        b2.record(False)
        seen.append(b2.cool_off)
        assert b2.blocked_until() == clock2.now + b2.cool_off
    assert seen == expected


def test_success_after_reopening_restores_the_first_cool_off() -> None:
    b, clock = breaker(cool_off=10.0)
    open_it(b)
    clock.advance(10.0)
    assert b.blocked_until() is None
    b.record(False)  # trial failed: 20 s now
    clock.advance(20.0)
    assert b.blocked_until() is None
    b.record(True)
    assert b.state == "closed" and b.cool_off == 10.0
    open_it(b)
    assert b.blocked_until() == clock.now + 10.0


def test_late_failures_while_open_do_not_extend_it() -> None:
    """Sends that started before the breaker opened may fail after: the cool-off still runs from
    the moment it opened."""
    b, clock = breaker(cool_off=10.0)
    open_it(b)
    opened = clock.now
    clock.advance(5.0)
    b.record(False)
    b.record(False)
    assert b.blocked_until() == opened + 10.0
    clock.advance(5.0)
    assert b.state == "half-open"


def test_released_trial_lets_another_send_try() -> None:
    b, clock = breaker()
    open_it(b)
    clock.advance(10.0)
    assert b.blocked_until() is None
    assert b.blocked_until() is not None
    b.release_trial()  # the trial send never happened (rate limit, shutdown)
    assert b.blocked_until() is None
    assert b.blocked_until() is not None


def test_release_trial_when_closed_changes_nothing() -> None:
    b, _ = breaker()
    b.release_trial()
    assert b.state == "closed" and b.blocked_until() is None


def test_policy_bounds() -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(failures=0)
    assert BreakerPolicy().failures == 5 and BreakerPolicy().cool_off == 30.0
    assert BreakerPolicy(cool_off="2m").cool_off == 120.0


# -- the rate limiter --------------------------------------------------------------------------
# Windows of minutes where the test doesn't wait for them: a stalled machine can't slide them.
async def test_rate_limiter_allows_the_rate_then_asks_to_wait() -> None:
    limiter = RateLimiter("5/minute")
    assert limiter.per_second == pytest.approx(5 / 60)
    assert [await limiter.acquire("ops") for _ in range(5)] == [0.0] * 5
    wait = await limiter.acquire("ops")
    assert 0.0 < wait <= 60.0
    assert await limiter.acquire("ops") > 0.0
    assert await limiter.acquire("other") == 0.0, "keys count separately"


async def test_rate_limiter_wait_is_until_the_oldest_slot_frees() -> None:
    limiter = RateLimiter("2/5 seconds")
    assert await limiter.acquire("k") == 0.0
    await asyncio.sleep(0.3)
    assert await limiter.acquire("k") == 0.0
    wait = await limiter.acquire("k")
    # The first slot frees 5 s after it was taken, at least 0.3 s ago.
    assert 0.0 < wait <= 4.7 + 0.01


async def test_rate_limiter_burst() -> None:
    limiter = RateLimiter("1/minute", burst=3)
    assert limiter.per_second == pytest.approx(1 / 60)
    assert [await limiter.acquire("c") for _ in range(3)] == [0.0] * 3
    wait = await limiter.acquire("c")
    assert 0.0 < wait <= 180.0


async def test_refused_acquire_takes_no_slot() -> None:
    limiter = RateLimiter("1/second")
    assert await limiter.acquire("k") == 0.0
    refused = [await limiter.acquire("k") for _ in range(10)]
    assert all(w > 0.0 for w in refused)
    await asyncio.sleep(refused[-1] + 0.01)
    assert await limiter.acquire("k") == 0.0, "ten refusals did not push the next slot back"


# -- limits shared through Redis ----------------------------------------------------------------
async def test_workers_sharing_redis_share_the_limit(redis_url: str) -> None:
    """Two dispatchers (two workers) on one Redis: 5 sends a minute in all, not 5 each."""
    from tidings.delivery.throttle import SharedLimits

    key = f"ops-{uuid.uuid4().hex}"
    first, second = SharedLimits(redis_url), SharedLimits(redis_url)
    try:
        a, b = RateLimiter("5/minute", shared=first), RateLimiter("5/minute", shared=second)
        assert [await a.acquire(key) for _ in range(3)] == [0.0] * 3
        assert [await b.acquire(key) for _ in range(2)] == [0.0] * 2
        assert await a.acquire(key) > 0.0 and await b.acquire(key) > 0.0
        wait = await b.acquire(key)
        assert 0.0 < wait <= 60.0
        assert await a.acquire(f"{key}-other") == 0.0, "keys count separately"
    finally:
        await first.close()
        await second.close()


async def test_without_redis_each_process_counts_alone_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    from tidings.delivery import throttle
    from tidings.delivery.throttle import SharedLimits

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    shared = SharedLimits(f"redis://127.0.0.1:{port}/0")
    try:
        limiter = RateLimiter("2/minute", shared=shared)
        assert [await limiter.acquire("k") for _ in range(2)] == [0.0, 0.0], "sends go on"
        assert await limiter.acquire("k") > 0.0, "within the limit, counted in this process"
        assert not shared.up
        shared.down_until = 0.0  # the retry interval has passed: Redis is asked again
        assert await limiter.acquire("k") > 0.0
        assert not shared.up
        assert throttle.SHARED_RETRY > 0
    finally:
        await shared.close()


def test_rate_limit_storage_is_memory_or_redis() -> None:
    from tidings.config import parse_config
    from tidings.errors import ConfigError

    assert parse_config({}).dispatcher.rate_limit_storage == "memory://"
    assert parse_config({"dispatcher": {"rate_limit_storage": "redis://127.0.0.1:6379/1"}}).dispatcher.rate_limit_storage
    with pytest.raises(ConfigError, match="rate_limit_storage"):
        parse_config({"dispatcher": {"rate_limit_storage": "memcached://x"}})


async def test_a_hub_with_shared_limits_sends_through_redis(make_hub: Any, sink: Any, redis_url: str) -> None:
    from tidings import Message

    name = f"ops{uuid.uuid4().hex[:8]}"
    hub = await make_hub({
        "dispatcher": {"rate_limit_storage": redis_url},
        "integrations": {name: {"kind": "webhook", "url": sink.url + "/hook", "rate_limit": "50/second"}},
        "default": {"to": [name]},
    })
    lane = hub.dispatcher.lanes[name]
    assert lane.limiter is not None and lane.limiter._shared is hub.dispatcher.shared_limits
    receipts = [await hub.notify(Message(f"m{i}")) for i in range(5)]
    for r in receipts:
        assert (await hub.wait(r.id))["deliveries"][0]["status"] == "delivered"
    assert hub.dispatcher.shared_limits is not None and hub.dispatcher.shared_limits.up
