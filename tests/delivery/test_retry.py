"""The retry policy: exponential backoff with a cap, full jitter, Retry-After kept within bounds,
and when to give up."""

from __future__ import annotations

import random

import pytest

from tidings.delivery.retry import RETRY_AFTER_MAX_FACTOR, backoff, gives_up, next_delay
from tidings.integrations.base import RetryPolicy

POLICY = RetryPolicy(base=1.0, factor=2.0, cap=10.0, max_attempts=5, max_age=3600.0)


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    assert [backoff(POLICY, n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert backoff(POLICY, 0) == 1.0, "attempt numbers start at 1; 0 is treated as the first"
    assert backoff(POLICY, 10_000) == 10.0, "no overflow for absurd attempt numbers"
    steep = RetryPolicy(base=1.0, factor=10.0, cap=60.0, max_attempts=1000)
    assert backoff(steep, 400) == 60.0, "an allowed policy: 10.0**399 overflows a float"
    assert 0.0 <= next_delay(steep, 999, 30.0) <= 600.0
    assert backoff(RetryPolicy(base=0.5, factor=3.0, cap=100.0), 3) == 4.5
    assert backoff(RetryPolicy(base=2.0, factor=1.0, cap=100.0), 7) == 2.0


def test_policy_defaults_and_durations() -> None:
    p = RetryPolicy()
    assert (p.base, p.factor, p.cap, p.max_attempts, p.max_age) == (5.0, 2.0, 3600.0, 10, 86400.0)
    assert RetryPolicy(base="250ms", cap="2m", max_age="1d").model_dump() == {
        "base": 0.25, "factor": 2.0, "cap": 120.0, "max_attempts": 10, "max_age": 86400.0,
    }


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 6])
def test_full_jitter_stays_within_zero_and_the_backoff(attempt: int) -> None:
    rng = random.Random(attempt)
    ceiling = backoff(POLICY, attempt)
    delays = [next_delay(POLICY, attempt, rng=rng) for _ in range(2000)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # Full jitter: the whole range is used, not just its top half.
    assert min(delays) < 0.05 * ceiling
    assert max(delays) > 0.95 * ceiling
    assert 0.4 * ceiling < sum(delays) / len(delays) < 0.6 * ceiling


def test_jitter_uses_the_global_random_by_default() -> None:
    random.seed(1234)
    first = [next_delay(POLICY, 3) for _ in range(5)]
    random.seed(1234)
    assert [next_delay(POLICY, 3) for _ in range(5)] == first
    assert len(set(first)) == 5


def _jittered(attempt: int, seed: int) -> float:
    return next_delay(POLICY, attempt, rng=random.Random(seed))


@pytest.mark.parametrize("attempt", [1, 3, 5])
def test_retry_after_is_clamped_between_the_jitter_and_ten_times_the_backoff(attempt: int) -> None:
    scheduled = backoff(POLICY, attempt)
    for seed in range(50):
        jittered = _jittered(attempt, seed)

        def with_ra(ra: float) -> float:
            return next_delay(POLICY, attempt, ra, rng=random.Random(seed))

        # Sooner than the backoff would wait: the backoff wins (no peer makes us hammer it).
        assert with_ra(0.0) == jittered
        assert with_ra(jittered / 2) == jittered
        # Within range: exactly what the peer asked.
        assert with_ra(scheduled * 3) == scheduled * 3
        # Later than 10x the backoff: capped (no peer parks a delivery for a day).
        assert with_ra(86_400.0) == RETRY_AFTER_MAX_FACTOR * scheduled
        assert with_ra(float("inf")) == RETRY_AFTER_MAX_FACTOR * scheduled
    assert RETRY_AFTER_MAX_FACTOR == 10.0


def test_retry_after_none_is_plain_jitter() -> None:
    assert next_delay(POLICY, 2, None, rng=random.Random(7)) == _jittered(2, 7)


def test_gives_up_by_attempts() -> None:
    assert not gives_up(POLICY, 1, queued_at=1000.0, now=1001.0)
    assert not gives_up(POLICY, 4, queued_at=1000.0, now=1001.0)
    assert gives_up(POLICY, 5, queued_at=1000.0, now=1001.0)
    assert gives_up(POLICY, 6, queued_at=1000.0, now=1001.0)
    assert gives_up(RetryPolicy(max_attempts=1), 1, queued_at=0.0, now=0.0), "max_attempts=1: one try only"


def test_gives_up_by_age() -> None:
    assert not gives_up(POLICY, 1, queued_at=1000.0, now=1000.0 + 3599.9)
    assert gives_up(POLICY, 1, queued_at=1000.0, now=1000.0 + 3600.0)
    assert gives_up(POLICY, 1, queued_at=1000.0, now=1000.0 + 99_999.0)
