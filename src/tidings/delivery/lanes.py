"""A lane per integration: everything that limits its sends (a circuit breaker, a rate limit, a
concurrency) and the deliveries claimed for it, queued for its workers (see ``dispatcher.py``)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from ..integrations.base import BatchNotifier, Notifier, RetryPolicy
from .outbox import Claimed
from .throttle import Breaker, RateLimiter, SharedLimits

MAX_RATE_WAIT = 2.0
"""A delivery waits in memory for a rate-limit slot at most this long; beyond it goes back to the
queue with its due time set to when the slot frees."""


@dataclass
class Lane:
    """Everything that limits one integration's sends."""

    notifier: Notifier
    policy: RetryPolicy
    breaker: Breaker
    limiter: RateLimiter | None
    concurrency: int
    capacity: int
    queue: deque[Claimed] = field(default_factory=deque)
    """Deliveries waiting for a worker."""
    idle: list[asyncio.Future[None]] = field(default_factory=list)
    """Workers waiting for a delivery (a plain deque and futures: asyncio.Queue's bookkeeping
    cost more than the handoff itself on the hot path)."""
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    sending: dict[asyncio.Task[None], float] = field(default_factory=dict)
    """Worker -> when its current send must be over."""
    active: int = 0
    """Deliveries this lane holds: queued or being sent."""
    disabled: bool = False
    drained: asyncio.Event | None = None
    """Set once a retired lane's last send is over (see :meth:`Dispatcher.retire`)."""

    @property
    def accepting(self) -> bool:
        return not self.disabled and self.active < self.capacity and self.breaker.admits

    def put(self, c: Claimed) -> None:
        self.queue.append(c)
        self._wake_one()

    def _wake_one(self) -> None:
        while self.idle:
            waiter = self.idle.pop()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def get(self) -> Claimed:
        while not self.queue:
            waiter = asyncio.get_running_loop().create_future()
            self.idle.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self.idle:
                    self.idle.remove(waiter)
                elif self.queue:
                    self._wake_one()  # woken for a delivery it won't take: hand the wake-up on
                raise
        return self.queue.popleft()


def lane_for(notifier: Notifier, shared: SharedLimits | None = None) -> Lane:
    concurrency = notifier.effective_concurrency
    rate = notifier.effective_rate_limit
    limiter = RateLimiter(rate, notifier.effective_burst, shared) if rate else None
    # Claim no more than the lane can start within a couple of seconds (a send may carry a batch).
    per_send = notifier.effective_max_batch if isinstance(notifier, BatchNotifier) else 1
    capacity = concurrency * 4 * per_send
    if limiter is not None:
        sends = int(limiter.per_second * MAX_RATE_WAIT) + notifier.effective_burst
        capacity = max(1, min(capacity, sends * per_send))
    return Lane(
        notifier=notifier,
        policy=notifier.settings.retry,
        breaker=Breaker(notifier.settings.breaker, notifier.name),
        limiter=limiter,
        concurrency=concurrency,
        capacity=capacity,
    )
