"""Stand-ins for testing how sync runs (``sync/service.py``) without the engine or a peer: a
tracker integration with a ``sync:`` block, and an engine whose every step a test scripts.

The engine's own behaviour (merge, echo guard, links) is tested with the real engine and the
GitHub/Jira stand-ins; here only what the service does around it counts: claims, queues,
records, notices."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select, update

from tidings.config.switch import context_of
from tidings.integrations.base import IntegrationSettings, Tracker
from tidings.store.tables import sync_conflicts
from tidings.sync import service as service_module
from tidings.sync.model import count_call
from tidings.sync.settings import SyncSettings


class FakeSettings(IntegrationSettings):
    kind: str = "fake-tracker"
    sync: SyncSettings | None = None


class FakeTracker(Tracker):
    kind = "fake-tracker"
    Settings = FakeSettings


def tracker(hub: Any, name: str, project: str = "default", **sync: Any) -> FakeTracker:
    """A fake tracker named ``name`` in ``project`` running on ``hub`` (added to its integrations)."""
    settings = FakeSettings(project=project, sync=SyncSettings(**sync))
    made = FakeTracker(name, settings, context_of(hub))
    hub._integrations[name] = made
    return made


Step = Callable[..., Awaitable[None]]


@dataclass
class Script:
    """What the fake engine does; every call is logged as (method, integration, argument)."""

    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    sweep: Step | None = None
    item: Step | None = None
    """For ``sync_remote_id`` and ``push_task``: (method, tracker, key, run)."""
    active: dict[str, int] = field(default_factory=dict)
    most: dict[str, int] = field(default_factory=dict)
    """The most sweeps of one integration under way at once (across every service of the test)."""
    resolved: list[tuple[str, Any, Any, Any]] = field(default_factory=list)


class FakeEngine:
    script: Script

    def __init__(self, hub: Any, tracker: Tracker) -> None:
        self.hub = hub
        self.tracker = tracker

    async def sweep(self, run: Any, mark: float | None, list_etag: str | None) -> None:
        s, name = self.script, self.tracker.name
        s.calls.append(("sweep", name, mark))
        s.active[name] = s.active.get(name, 0) + 1
        s.most[name] = max(s.most.get(name, 0), s.active[name])
        try:
            count_call()
            if s.sweep is not None:
                await s.sweep(self.tracker, run, mark, list_etag)
            else:
                run.unchanged += 1
        finally:
            s.active[name] -= 1

    async def _item(self, method: str, key: str, run: Any) -> None:
        self.script.calls.append((method, self.tracker.name, key))
        count_call()
        if self.script.item is not None:
            await self.script.item(method, self.tracker, key, run)
        else:
            run.updated += 1

    async def sync_remote_id(self, remote_id: str, run: Any) -> None:
        await self._item("sync_remote_id", remote_id, run)

    async def push_task(self, task_id: str, run: Any) -> None:
        await self._item("push_task", task_id, run)

    async def resolve_conflict(self, conflict_id: str, choice: Any, value: Any, actor: Any) -> None:
        """Marks the conflict resolved, as the engine does (after writing both sides)."""
        self.script.resolved.append((conflict_id, choice, value, actor))
        async with self.hub.store.write() as conn:
            row = (await conn.execute(select(sync_conflicts).where(sync_conflicts.c.id == conflict_id))).one()
            chosen = value if choice is None else getattr(row, choice)
            await conn.execute(update(sync_conflicts).where(sync_conflicts.c.id == conflict_id).values(
                resolved_at=time.time(), resolved_by=actor.name, resolution=chosen))


def install(monkeypatch: pytest.MonkeyPatch) -> Script:
    """The fake engine in place of the real one (for this test), scripted by the returned :class:`Script`."""
    s = Script()
    monkeypatch.setattr(FakeEngine, "script", s, raising=False)
    monkeypatch.setattr(service_module, "Engine", FakeEngine)
    return s


async def until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Wait until ``check()`` (sync or async) is truthy; its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
