"""When to try again, and when to give up."""

from __future__ import annotations

import random

from ..integrations.base import RetryPolicy

RETRY_AFTER_MAX_FACTOR = 10.0


def backoff(policy: RetryPolicy, attempt: int) -> float:
    """The un-jittered delay after failed attempt number ``attempt`` (1-based)."""
    try:
        return min(policy.cap, policy.base * policy.factor ** max(0, attempt - 1))
    except OverflowError:  # factor 10 overflows a float by attempt 310 (max_attempts allows 1000)
        return policy.cap


def next_delay(policy: RetryPolicy, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt``: full jitter over the backoff, and a peer's
    ``Retry-After`` honoured but kept within [1x, 10x] of the backoff so no peer can make us
    hammer it sooner, or park a delivery for a day."""
    scheduled = backoff(policy, attempt)
    jittered = (rng or random).uniform(0, scheduled)
    if retry_after is None:
        return jittered
    return min(max(retry_after, jittered), RETRY_AFTER_MAX_FACTOR * scheduled)


def gives_up(policy: RetryPolicy, attempts: int, queued_at: float, now: float) -> bool:
    """True when ``attempts`` failures (or the age since the delivery was queued) exhaust the policy."""
    return attempts >= policy.max_attempts or now - queued_at >= policy.max_age
