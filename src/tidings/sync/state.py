"""One sync run's bookkeeping, and how a run calls its tracker (waits, retries, stops)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from ..security.redact import ERROR_MAX, clip
from .model import AuthFailed, CallStats, Merged, RateLimited, Unavailable, count_wait, current_stats

T = TypeVar("T")
PROBLEMS_MAX = 100
RATE_LIMIT_RETRIES = 10
"""Short rate-limit waits waited out in a row for one call before the run stops anyway."""


@dataclass
class RunState:
    """One run's bookkeeping; the service stores it as a ``sync_runs`` row."""

    trigger: str
    dry: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0
    errors: int = 0
    stats: CallStats = field(default_factory=CallStats)
    problems: list[dict[str, Any]] = field(default_factory=list)
    """Per-item errors ``{task, remote, error}``, at most :data:`PROBLEMS_MAX` kept (``errors`` counts all)."""
    planned: list[dict[str, Any]] = field(default_factory=list)
    """Dry runs: ``{action, task, remote, fields}`` for every action a real run would take."""
    mark: float | None = None
    list_etag: str | None = None
    stopped: str | None = None
    """Why the run ended early (a rate limit longer than ``max_wait``, a refused credential)."""
    resume_at: float | None = None
    seen: set[str] = field(default_factory=set, repr=False)
    """Tasks this run already synced (the export pass leaves them; a plan must not list them twice)."""

    def problem(self, task: str | None, remote: str | None, error: str) -> None:
        self.errors += 1
        if len(self.problems) < PROBLEMS_MAX:
            self.problems.append({"task": task, "remote": remote, "error": clip(error, ERROR_MAX)})

    def plan(self, action: str, task: str | None, remote: str | None, fields: dict[str, Any]) -> None:
        self.planned.append({"action": action, "task": task, "remote": remote, "fields": fields})


class Stop(Exception):
    """The run can't go on: a rate limit longer than ``max_wait`` or a refused credential."""

    def __init__(self, reason: str, resume_at: float | None) -> None:
        super().__init__(reason)
        self.reason, self.resume_at = reason, resume_at


Outcome = Literal["ok", "failed", "held", "stopped"]
"""``held``: a transient failure (the sweep's mark must not pass it); ``failed``: that item's own error."""


async def call(fn: Callable[..., Awaitable[T]], *args: Any, max_wait: float, delays: Iterable[float]) -> T:
    """A tracker call: a rate limit up to ``max_wait`` waited out (counted), a longer one (or a
    refused credential) stops the run (:class:`Stop`), a peer that is down tried again after each
    of ``delays``, then its :class:`~tidings.sync.model.Unavailable` raised."""
    pending = iter(delays)
    waits = 0
    while True:
        try:
            return await fn(*args)
        except (RateLimited, AuthFailed, Unavailable) as exc:
            waits += isinstance(exc, RateLimited)
            await wait_or_stop(exc, waits=waits, max_wait=max_wait, delays=pending)


async def wait_or_stop(exc: Exception, *, waits: int, max_wait: float, delays: Iterator[float]) -> None:
    """What a failed tracker call leads to before it is tried again: a wait (a short rate limit,
    the next backoff delay), or :class:`Stop` (a long limit, a refused credential), or ``exc``
    raised again (unavailable once the delays are spent)."""
    if isinstance(exc, RateLimited):
        if exc.wait > max_wait or waits > RATE_LIMIT_RETRIES:
            raise Stop(f"rate limited for {exc.wait:.0f}s: {exc}", time.time() + exc.wait) from exc
        count_wait(exc.wait)
        await asyncio.sleep(exc.wait)
    elif isinstance(exc, AuthFailed):
        raise Stop(f"authentication failed: {exc}", None) from exc
    else:
        delay = next(delays, None)
        if delay is None:
            raise exc
        await asyncio.sleep(delay)


def plan_merged(run: RunState, task: str | None, remote: str, merged: Merged) -> None:
    """What applying ``merged`` would do, as planned actions (a status change is a ``transition``)."""
    for c in merged.conflicts:
        run.plan("conflict", task, remote, {c.field: {"base": c.base, "local": c.local, "remote": c.remote}})
    run.conflicts += len(merged.conflicts)
    if merged.to_local:
        run.plan("update_task", task, remote, merged.to_local)
    rest = {k: v for k, v in merged.to_remote.items() if k != "status"}
    if rest:
        run.plan("update_remote", task, remote, rest)
    if "status" in merged.to_remote:
        run.plan("transition", task, remote, {"status": merged.to_remote["status"]})
    if merged.to_local or merged.to_remote:
        run.updated += 1
    elif not merged.conflicts:
        run.unchanged += 1


@contextlib.contextmanager
def stats(run: RunState) -> Iterator[None]:
    """Trackers count their calls into the run's stats while it runs."""
    token = current_stats.set(run.stats)
    try:
        yield
    finally:
        current_stats.reset(token)
