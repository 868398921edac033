"""PLACEHOLDER (wt-service branch only): the engine helper's ``sync/engine.py`` replaces this file on
merge. It holds just the interface ``sync/service.py`` is written against, so that it imports;
nothing here syncs anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .model import CallStats, RemoteItem

if TYPE_CHECKING:
    from ..audit import Actor
    from ..hub import Hub
    from ..integrations.base import Tracker


@dataclass
class RunState:
    """What one run did so far (the service records it as a ``sync_runs`` row)."""

    trigger: str
    dry: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0
    errors: int = 0
    stats: CallStats = field(default_factory=CallStats)
    problems: list[dict[str, Any]] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)
    mark: float | None = None
    list_etag: str | None = None
    stopped: str | None = None
    resume_at: float | None = None


class Engine:
    """One tracker's sync (placeholder: every method raises)."""

    def __init__(self, hub: Hub, tracker: Tracker) -> None:
        self.hub = hub
        self.tracker = tracker

    async def sync_item(self, item: RemoteItem, run: RunState) -> None:
        raise NotImplementedError("placeholder engine")

    async def sync_remote_id(self, remote_id: str, run: RunState) -> None:
        raise NotImplementedError("placeholder engine")

    async def push_task(self, task_id: str, run: RunState) -> None:
        raise NotImplementedError("placeholder engine")

    async def sweep(self, run: RunState, mark: float | None, list_etag: str | None) -> None:
        raise NotImplementedError("placeholder engine")

    async def resolve_conflict(self, conflict_id: str, choice: str | None, value: Any, actor: Actor) -> Any:
        raise NotImplementedError("placeholder engine")
