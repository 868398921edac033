"""Respecting the peer: the circuit breaker's states on a fake clock, and the rate limiter."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tidings.delivery.throttle import Breaker, RateLimiter, Slot
from tidings.integrations.base import BreakerPolicy


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def breaker(clock: Clock | None = None, **policy: Any) -> tuple[Breaker, Clock]:
    clock = clock or Clock()
    settings = {"min_calls": 4, "failure_rate": 0.5, "window": 10.0, "cool_off": 1.0, "max_cool_off": 8.0, **policy}
    return Breaker(BreakerPolicy(**settings), "ops", clock=clock), clock


def send(b: Breaker, ok: bool) -> bool:
    """One send through the breaker: admitted, then its result recorded; True on a transition."""
    until, epoch = b.admit()
    assert until is None, "the breaker let nothing through"
    return b.record(ok, epoch)


def open_it(b: Breaker) -> None:
    while b.state == "closed":
        send(b, False)


# -- the breaker -------------------------------------------------------------------------------
def test_random_failures_below_the_rate_never_open_it() -> None:
    """30% of sends failing, in runs of up to five in a row (which opened the old breaker of
    five consecutive failures): the rate stays below 50% and the breaker closed."""
    b, clock = breaker(min_calls=20)
    pattern = [False] * 5 + [True] * 12 + [False, True, True, False, True, True, False, True, True, True]
    assert pattern.count(False) / len(pattern) < 0.5
    for _ in range(20):
        for ok in pattern:
            assert not send(b, ok)
            clock.advance(0.01)
    assert b.state == "closed"


def test_opens_at_the_failure_rate_once_the_window_holds_min_calls() -> None:
    b, _ = breaker(min_calls=10, failure_rate=0.5)
    for _ in range(9):
        assert not send(b, False), "below min_calls a breaker never opens, even at 100% failures"
    assert b.state == "closed"
    assert send(b, False), "the 10th failure in 10 sends opens it"
    assert b.state == "open" and b.tripped == (10, 10)

    b, _ = breaker(min_calls=10, failure_rate=0.5)
    for _ in range(6):
        send(b, True)
    for _ in range(5):
        assert not send(b, False)  # 5 of 11
    assert send(b, False) and b.state == "open", "6 of 12 failed: 50%"
    assert b.tripped == (6, 12)


def test_old_sends_slide_out_of_the_window() -> None:
    b, clock = breaker(min_calls=4, window=10.0)
    for _ in range(50):
        send(b, True)
    for _ in range(10):
        send(b, False)
    assert b.state == "closed", "50 recent successes outweigh 10 failures"
    clock.advance(11.0)  # they all age out
    for _ in range(3):
        assert not send(b, False)
    assert send(b, False) and b.state == "open"


def test_open_admits_nothing_then_half_open_lets_the_trials_through() -> None:
    b, clock = breaker(cool_off=1.0, trials=2)
    open_it(b)
    opened = clock.now
    assert not b.admits
    assert b.admit()[0] == opened + 1.0
    clock.advance(0.99)
    assert b.state == "open" and b.admit()[0] == opened + 1.0
    clock.advance(0.01)
    assert b.state == "half-open" and b.admits
    first, epoch = b.admit()
    second, _ = b.admit()
    assert first is None and second is None, "two trials"
    third, _ = b.admit()
    assert third is not None and not b.admits, "the rest wait while the trials run"
    assert not b.record(True, epoch), "one success of two trials: still half-open"
    assert b.state == "half-open"
    assert b.record(True, epoch)
    assert b.state == "closed" and b.admits and b.admit()[0] is None


def test_cool_off_grows_while_the_peer_stays_down_and_resets_when_it_is_back() -> None:
    b, clock = breaker(cool_off=1.0, max_cool_off=8.0)
    open_it(b)
    seen = []
    for _ in range(5):
        clock.advance(b.cool_off)
        assert b.state == "half-open"
        assert send(b, False)
        assert b.state == "open"
        assert b.admit()[0] == clock.now + b.cool_off
        seen.append((b.cool_off, b.at_cap))
    assert seen == [(2.0, False), (4.0, False), (8.0, False), (8.0, True), (8.0, True)], "doubling, capped"
    clock.advance(8.0)
    assert send(b, True) and b.state == "closed"
    assert b.cool_off == 1.0
    open_it(b)
    assert b.admit()[0] == clock.now + 1.0, "a new episode starts from the first cool-off"


def test_max_cool_off_below_cool_off_never_shortens_it() -> None:
    b, clock = breaker(cool_off=30.0, max_cool_off=4.0)
    open_it(b)
    clock.advance(30.0)
    send(b, False)
    assert b.cool_off == 30.0


def test_results_of_sends_admitted_before_a_transition_change_nothing() -> None:
    """Sends that started before the breaker opened end after it: a late failure doesn't extend
    the cool-off, a late success doesn't close it (only the trials decide)."""
    b, clock = breaker(cool_off=1.0)
    late = [b.admit()[1] for _ in range(3)]
    open_it(b)
    opened = clock.now
    clock.advance(0.5)
    assert not b.record(False, late[0])
    assert b.admit()[0] == opened + 1.0
    clock.advance(0.5)
    _, trial = b.admit()
    assert not b.record(True, late[1]), "not the trial"
    assert b.state == "half-open" and not b.admits
    assert b.record(False, trial)
    assert b.state == "open"


def test_released_trial_lets_another_send_try() -> None:
    b, clock = breaker()
    open_it(b)
    clock.advance(1.0)
    until, epoch = b.admit()
    assert until is None
    assert b.admit()[0] is not None
    b.release(epoch)  # the trial send never happened (rate limit, shutdown)
    assert b.admit()[0] is None
    assert b.admit()[0] is not None


def test_release_when_closed_changes_nothing() -> None:
    b, _ = breaker()
    _, epoch = b.admit()
    b.release(epoch)
    assert b.state == "closed" and b.admit()[0] is None


def test_a_transition_is_stored_once_and_adopted_by_other_processes() -> None:
    clock = Clock()
    a, _ = breaker(clock)
    b, _ = breaker(clock)
    assert a.pending() is None
    open_it(a)
    p = a.pending()
    assert p is not None and p.expected == 0 and p.state.state == "open" and p.state.generation == 1
    a.stored(p)
    assert a.pending() is None and a.generation == 1
    assert b.adopt(p.state) and b.state == "open" and b.half_open_at == a.half_open_at
    assert not b.adopt(p.state), "the same generation again changes nothing"
    assert b.admit()[0] == a.half_open_at

    # Both half-open at once: each lets its trial through, both succeed; a's write wins, b's loses
    # and b takes what a stored.
    clock.advance(1.0)
    for x in (a, b):
        assert send(x, True) and x.state == "closed"
    pa, pb = a.pending(), b.pending()
    assert pa is not None and pb is not None and pa.expected == pb.expected == 1
    a.stored(pa)
    b.adopt(pa.state, force=True)
    assert b.pending() is None and b.generation == 2 and b.state == "closed"


def test_a_process_with_a_transition_to_store_keeps_it() -> None:
    clock = Clock()
    a, _ = breaker(clock)
    b, _ = breaker(clock)
    open_it(a)
    open_it(b)
    pa = a.pending()
    assert pa is not None
    a.stored(pa)
    assert not b.adopt(pa.state), "b still has its own to store: the write decides"
    assert b.pending() is not None


def test_policy_bounds_defaults_and_the_old_name() -> None:
    p = BreakerPolicy()
    assert (p.failure_rate, p.min_calls, p.window, p.cool_off, p.max_cool_off, p.trials) == (0.5, 20, 10.0, 1.0, 4.0, 1)
    for bad in ({"failure_rate": 0}, {"failure_rate": 1.5}, {"min_calls": 0}, {"window": 0}, {"trials": 0},
                {"cool_off": 0}, {"failures": 3, "min_calls": 3}, {"consecutive": 3}):
        with pytest.raises(ValueError):
            BreakerPolicy(**bad)
    assert BreakerPolicy(failures=3).min_calls == 3, "configs written with failures: N still load"
    assert BreakerPolicy(cool_off="2m").cool_off == 120.0
    assert BreakerPolicy(cool_off="2m").longest_cool_off == 120.0


# -- the rate limiter --------------------------------------------------------------------------
async def take(limiter: RateLimiter, key: str) -> float:
    """0.0 after a send that got a slot and its answer at once; else the wait the limiter asked for."""
    got = await limiter.acquire(key)
    if isinstance(got, float):
        return got
    got.answered()
    return 0.0


async def test_rate_limiter_allows_the_rate_then_asks_to_wait() -> None:
    limiter = RateLimiter("5/minute", clock=(clock := Clock()))
    assert limiter.per_second == pytest.approx(5 / 60)
    assert [await take(limiter, "ops") for _ in range(5)] == [0.0] * 5
    assert await take(limiter, "ops") == 60.0
    clock.advance(59.5)
    assert await take(limiter, "ops") == pytest.approx(0.5)
    assert await take(limiter, "other") == 0.0, "keys count separately"
    clock.advance(0.5)
    assert [await take(limiter, "ops") for _ in range(5)] == [0.0] * 5


async def test_rate_limiter_wait_is_until_the_oldest_slot_frees() -> None:
    limiter = RateLimiter("2/5 seconds", clock=(clock := Clock()))
    assert await take(limiter, "k") == 0.0
    clock.advance(0.3)
    assert await take(limiter, "k") == 0.0
    assert await take(limiter, "k") == pytest.approx(4.7), "the first slot frees 5 s after its answer"


async def test_rate_limiter_burst() -> None:
    """"1/second" with burst 3: 3 sends at once, then none until 3 seconds after the first answer."""
    limiter = RateLimiter("1/second", burst=3, clock=(clock := Clock()))
    assert limiter.per_second == 1.0
    assert [await take(limiter, "c") for _ in range(3)] == [0.0] * 3
    assert await take(limiter, "c") == 3.0
    clock.advance(2.999)
    assert await take(limiter, "c") == pytest.approx(0.001)
    clock.advance(0.001)
    assert [await take(limiter, "c") for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(3.0)]
    assert RateLimiter("1/minute", burst=3).item.get_expiry() == 180, "3 in any 3 minutes"


async def test_refused_acquire_takes_no_slot() -> None:
    limiter = RateLimiter("1/second", clock=(clock := Clock()))
    assert await take(limiter, "k") == 0.0
    refused = [await take(limiter, "k") for _ in range(10)]
    assert all(w > 0.0 for w in refused)
    clock.advance(refused[-1])
    assert await take(limiter, "k") == 0.0, "ten refusals did not push the next slot back"


async def test_a_send_holds_its_slot_until_its_answer_then_for_the_window() -> None:
    """Peers count arrivals: the (N+1)th send starts no sooner than a window after the 1st's answer,
    however late that answer (and the 1st's arrival) came."""
    limiter = RateLimiter("2/second", clock=(clock := Clock()))
    slow = await limiter.acquire("k")
    assert isinstance(slow, Slot)
    assert await take(limiter, "k") == 0.0
    assert await limiter.acquire("k") == pytest.approx(1.0)
    clock.advance(1.0)  # the quick send's window is over, the slow one still waits for its answer
    assert isinstance(await limiter.acquire("k"), Slot)
    clock.advance(2.5)
    assert await limiter.acquire("k") == 1.0, "both slots in flight or answered: at least a window"
    slow.answered()
    slow.answered()  # once only
    clock.advance(0.4)
    assert await limiter.acquire("k") == pytest.approx(0.6), "a window after the slow answer, not after its start"
    clock.advance(0.6)
    assert isinstance(await limiter.acquire("k"), Slot)


async def test_every_slot_in_flight_waits_a_window() -> None:
    limiter = RateLimiter("3/minute", clock=Clock())
    held = [await limiter.acquire("k") for _ in range(3)]
    assert all(isinstance(s, Slot) for s in held)
    assert await limiter.acquire("k") == 60.0, "the earliest slot frees a window after an answer still to come"


async def test_idle_keys_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    from tidings.delivery import throttle

    monkeypatch.setattr(throttle, "SWEEP_AT", 4)
    limiter = RateLimiter("1/second", clock=(clock := Clock()))
    held = await limiter.acquire("held")
    assert [await take(limiter, f"channel-{i}") for i in range(3)] == [0.0] * 3
    clock.advance(1.0)
    assert await take(limiter, "new") == 0.0
    assert set(limiter._windows) == {"held", "new"}, "idle channels went, the one in flight stayed"
    assert await limiter.acquire("held") == 1.0
    assert isinstance(held, Slot)
    held.answered()


# -- limits shared through Redis ----------------------------------------------------------------
async def test_workers_sharing_redis_share_the_limit(redis_url: str) -> None:
    """Two dispatchers (two workers) on one Redis: 5 sends a minute in all, not 5 each."""
    from tidings.delivery.throttle import SharedLimits

    key = f"ops-{uuid.uuid4().hex}"
    first, second = SharedLimits(redis_url), SharedLimits(redis_url)
    try:
        a, b = RateLimiter("5/minute", shared=first), RateLimiter("5/minute", shared=second)
        assert [await take(a, key) for _ in range(3)] == [0.0] * 3
        assert [await take(b, key) for _ in range(2)] == [0.0] * 2
        assert await take(a, key) > 0.0 and await take(b, key) > 0.0
        wait = await take(b, key)
        assert 0.0 < wait <= 60.0
        assert await take(a, f"{key}-other") == 0.0, "keys count separately"
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
        assert [await take(limiter, "k") for _ in range(2)] == [0.0, 0.0], "sends go on"
        assert await take(limiter, "k") > 0.0, "within the limit, counted in this process"
        assert not shared.up
        shared.down_until = 0.0  # the retry interval has passed: Redis is asked again
        assert await take(limiter, "k") > 0.0
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
