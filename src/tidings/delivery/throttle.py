"""Respecting the peer: a rate limit and a circuit breaker per integration."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.util import WindowStats

from ..extras import require
from ..integrations.base import BreakerPolicy
from ..security.redact import clip

log = structlog.get_logger("tidings.dispatcher")


SHARED_RETRY = 10.0
"""After Redis failed, count in this process for this long before trying Redis again."""

SWEEP_AT = 1024
"""The in-memory limiter forgets idle keys once it holds this many (and then twice as many as it kept)."""


class SharedLimits:
    """Rate limits counted in Redis (``dispatcher.rate_limit_storage: redis://...``), so that
    every worker sharing it shares each integration's limit: two workers on PostgreSQL must not
    send Slack two messages a second to one channel. limits' moving windows, kept by its Lua
    scripts, one round trip per send, counted from each send's start (see :class:`RateLimiter`).
    When Redis can't be reached each process counts alone meanwhile (logged): sends go on, within
    the limit per process."""

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


class Slot:
    """A send's place in its integration's rate limit, held from the send's start until its answer
    (see :class:`RateLimiter`). :meth:`answered` gives it back; calling it again does nothing."""

    __slots__ = ("_window",)

    def __init__(self, window: _Window | None) -> None:
        self._window = window

    def answered(self) -> None:
        """The send has its answer (a success, a failure, a timeout or a cancellation): the slot
        counts one window more from now, then frees."""
        window, self._window = self._window, None
        if window is not None:
            window.in_flight -= 1
            window.answers.append(window.clock())


NO_SLOT = Slot(None)
"""A slot with nothing to give back: no limit, or one counted in Redis from the send's start."""


class _Window:
    """One key's sends: how many are in flight, and when the answered ones got their answers
    (in completion order, on a monotonic clock: sorted)."""

    __slots__ = ("answers", "clock", "in_flight")

    def __init__(self, clock: Callable[[], float]) -> None:
        self.in_flight = 0
        self.answers: deque[float] = deque()
        self.clock = clock


class RateLimiter:
    """A moving window that behaves like a token bucket of ``rate`` with room for ``burst``:
    "1/second" with burst 3 allows 3 sends in any 3 seconds. Keys let one integration count per
    channel (Slack's 1 message/s per channel).

    Peers count requests where they arrive, and a request can arrive late after its send starts
    (a cold connection's set-up, a loaded event loop). So in memory a send holds its slot from its
    start until its answer (:meth:`Slot.answered`), and for the window after the answer: the
    (N+1)th request starts, hence arrives, at least a window after the 1st got its answer, hence
    after it arrived, whatever the network or the loop did. A peer that answers slowly gets
    correspondingly fewer sends. Per key: a count of sends in flight and a queue of answer times,
    O(1) amortised a send.

    With ``shared``, Redis counts for every worker (see :class:`SharedLimits`) with limits' moving
    window, from each send's start only (one round trip a send, none for the answer): arrivals at
    the peer may then come closer than the limit by what a request's delay on its way took (a
    connection's set-up). Memory counts only while Redis is away."""

    def __init__(self, rate: str, burst: int = 1, shared: SharedLimits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        item = parse(rate)
        amount, seconds = item.amount, item.get_expiry()
        windows = max(1, math.ceil(burst / amount))
        self.item: RateLimitItem = RateLimitItemPerSecond(amount * windows, seconds * windows)
        self.per_second = amount / seconds
        self._amount = self.item.amount
        self._seconds = float(self.item.get_expiry())
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._sweep_at = SWEEP_AT
        self._shared = shared

    async def acquire(self, key: str) -> Slot | float:
        """Take a slot now and return it (the send gives it back with :meth:`Slot.answered`), or
        take nothing and return the seconds until one frees at the earliest."""
        shared = self._shared
        if shared is not None and shared.up:
            try:
                if await shared.limiter.hit(self.item, key):
                    return NO_SLOT
                return _until(await shared.limiter.get_window_stats(self.item, key))
            except Exception as exc:  # Redis away: count here meanwhile
                shared.failed(exc)
        now = self._clock()
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self._sweep_at:
                self._sweep(now)
            window = self._windows[key] = _Window(self._clock)
        answers, seconds = window.answers, self._seconds
        while answers and answers[0] + seconds <= now:
            answers.popleft()
        if window.in_flight + len(answers) < self._amount:
            window.in_flight += 1
            return Slot(window)
        # The oldest answer frees a slot a window after it; with every slot in flight, the
        # earliest is a window after the next answer, which is no earlier than now.
        return (answers[0] if answers else now) + seconds - now

    def _sweep(self, now: float) -> None:
        """Forget the keys with nothing in flight or in the window (Slack's channels come and go)."""
        seconds = self._seconds
        self._windows = {key: w for key, w in self._windows.items()
                         if w.in_flight or (w.answers and w.answers[-1] + seconds > now)}
        self._sweep_at = max(SWEEP_AT, 2 * len(self._windows))


def _until(stats: WindowStats) -> float:
    """Seconds until the window of a refused hit frees a slot."""
    return max(0.001, stats.reset_time - time.time())


@dataclass(frozen=True, slots=True)
class BreakerState:
    """What every process shares about one integration's breaker (a row of ``breakers``).
    ``generation`` counts the stored transitions: a write names the one it saw (compare-and-set)."""

    state: str
    """``closed`` or ``open`` (half-open is open past ``half_open_at``)."""
    generation: int = 0
    cool_off: float = 0.0
    opened_at: float | None = None
    """When the current (or, closed, the last) episode began: its first opening."""
    half_open_at: float | None = None

    def circuit(self, now: float) -> str:
        if self.state == "closed":
            return "closed"
        return "half-open" if now >= (self.half_open_at or 0.0) else "open"


CLOSED = BreakerState("closed")


@dataclass(frozen=True, slots=True)
class Pending:
    """A transition to store: write ``state`` if the row still has generation ``expected``."""

    expected: int
    state: BreakerState
    change: int


class FailureWindow:
    """Sends and failed sends over the last ``seconds``, counted in ten buckets."""

    BUCKETS = 10

    def __init__(self, seconds: float) -> None:
        self._width = seconds / self.BUCKETS
        self._buckets: deque[list[int]] = deque()  # [bucket number, sends, failures]
        self.calls = 0
        self.failures = 0

    def add(self, now: float, ok: bool) -> None:
        number = int(now // self._width)
        while self._buckets and self._buckets[0][0] <= number - self.BUCKETS:
            _, calls, failures = self._buckets.popleft()
            self.calls -= calls
            self.failures -= failures
        if not self._buckets or self._buckets[-1][0] != number:
            self._buckets.append([number, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        self.calls += 1
        if not ok:
            bucket[2] += 1
            self.failures += 1

    def clear(self) -> None:
        self._buckets.clear()
        self.calls = self.failures = 0


class Breaker:
    """One integration's circuit breaker, as one process sees it.

    Closed, it counts this process's sends in a sliding window and opens when the failure rate
    reaches the policy's once the window holds ``min_calls``. Open, it admits nothing until
    ``half_open_at``; half-open, it admits ``trials`` sends: their success closes it, a failure
    opens it again with the cool-off doubled (capped). Results of sends admitted before the last
    transition (a stale *epoch*) change nothing.

    Transitions are shared through the database (see ``delivery/circuits.py``): :meth:`pending`
    says what to store, :meth:`stored` that it was, and :meth:`adopt` takes what another process
    stored, so that every worker converges on the same state."""

    def __init__(self, policy: BreakerPolicy, name: str = "", clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self.name = name
        self._clock = clock
        self._window = FailureWindow(policy.window)
        self.opened_at: float | None = None
        """When the current episode began (None: closed)."""
        self.last_opened_at: float | None = None
        self.half_open_at = 0.0
        self.cool_off = policy.cool_off
        self.epoch = 0
        self.generation = 0
        """The stored generation this state follows."""
        self._change = 0
        self._stored_change = 0
        self._taken = 0
        self._passed = 0
        self._half_open_logged = False
        self.at_cap = False
        """Whether it last reopened at the longest cool-off already."""
        self.tripped: tuple[int, int] = (0, 0)
        """(failures, sends) in the window when it last opened."""

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self._clock() >= self.half_open_at else "open"

    @property
    def admits(self) -> bool:
        """Whether a send would be let through now (closed, or a half-open trial left)."""
        if self.opened_at is None:
            return True
        return self._clock() >= self.half_open_at and self._taken < self.policy.trials

    def admit(self) -> tuple[float | None, int]:
        """``(None, epoch)`` if a send may start now, the epoch to report its result with;
        otherwise ``(when to look again, epoch)``. Half-open, this takes a trial."""
        if self.opened_at is None:
            return None, self.epoch
        now = self._clock()
        if now < self.half_open_at:
            return self.half_open_at, self.epoch
        if self._taken >= self.policy.trials:
            return now + self.cool_off, self.epoch
        if not self._half_open_logged:
            self._half_open_logged = True
            log.info("breaker.half_open", integration=self.name, trials=self.policy.trials,
                     open_for_s=round(now - self.opened_at, 3))
        self._taken += 1
        return None, self.epoch

    def record(self, ok: bool, epoch: int) -> bool:
        """A send's result (retryable failures are the failures). True when it changed the state
        (a transition to store)."""
        if epoch != self.epoch:
            return False  # admitted before the last transition
        now = self._clock()
        if self.opened_at is None:
            self._window.add(now, ok)
            w, p = self._window, self.policy
            if ok or w.calls < p.min_calls or w.failures < p.failure_rate * w.calls:
                return False
            self.tripped = (w.failures, w.calls)
            self.opened_at, self.at_cap = now, False
            self._open(now, p.cool_off)
            return True
        if ok:
            self._passed += 1
            if self._passed < self.policy.trials:
                return False
            self.last_opened_at, self.opened_at = self.opened_at, None
            self.cool_off = self.policy.cool_off
            self._changed()
            return True
        longer = min(self.cool_off * 2, self.policy.longest_cool_off)
        self.at_cap = longer == self.cool_off
        self._open(now, longer)
        return True

    def release(self, epoch: int) -> None:
        """A send admitted at ``epoch`` didn't happen (shutdown, rate limit): give its trial back."""
        if epoch == self.epoch and self.opened_at is not None and self._taken > self._passed:
            self._taken -= 1

    def _open(self, now: float, cool_off: float) -> None:
        self.cool_off = cool_off
        self.half_open_at = now + cool_off
        self._changed()

    def _changed(self) -> None:
        self._reset()
        self._change += 1

    def _reset(self) -> None:
        self._window.clear()
        self._taken = self._passed = 0
        self._half_open_logged = False
        self.epoch += 1

    # -- sharing -------------------------------------------------------------------------------
    def snapshot(self, generation: int) -> BreakerState:
        if self.opened_at is None:
            return BreakerState("closed", generation, self.cool_off, self.last_opened_at)
        return BreakerState("open", generation, self.cool_off, self.opened_at, self.half_open_at)

    def pending(self) -> Pending | None:
        """The transition not stored yet, if any."""
        if self._change == self._stored_change:
            return None
        return Pending(self.generation, self.snapshot(self.generation + 1), self._change)

    def stored(self, p: Pending) -> None:
        self.generation = p.state.generation
        self._stored_change = p.change

    def adopt(self, shared: BreakerState, force: bool = False) -> bool:
        """Take the state another process stored: when it is newer than ours and we have nothing
        to store, or (``force``) because our write lost to it. True when the state changed."""
        if not force and (shared.generation <= self.generation or self.pending() is not None):
            return False
        self.generation = shared.generation
        self._stored_change = self._change
        if shared.state == "closed":
            if self.opened_at is None:
                return False
            self.opened_at, self.last_opened_at, self.cool_off = None, shared.opened_at, self.policy.cool_off
        else:
            same = self.opened_at is not None and self.half_open_at == shared.half_open_at
            if same:
                return False
            self.opened_at = shared.opened_at if shared.opened_at is not None else self._clock()
            self.cool_off = shared.cool_off
            self.half_open_at = shared.half_open_at or 0.0
        self._reset()
        return True
