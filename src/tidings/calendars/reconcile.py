"""Reconcile a calendar with the tasks: delete our events that should not be there, push again the
tasks whose event is missing. Only events carrying our private property (``list_ours``) are ever
touched. Runs from the hub once an hour (:class:`Reconciler`) and from ``tidings calendar reconcile``.

Orphans (the task is gone, done, without a due date or outside the filter, or a second event for a
task) are deleted here and now; a missing event, or one that differs from what the task shows now
(new reminders in the settings...), is pushed again through the outbox, as a task message addressed
to the calendar alone, so it is retried and ordered like any push.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog
from sqlalchemy import select

from ..background import Background
from ..integrations.base import CalendarFailure
from ..security.redact import clip
from ..store.tables import integration_state, task_links, tasks
from ..sync.events import task_message
from ..sync.tasks import TaskChange, as_dict
from . import state
from .push import CalendarPush, digest, event_of, wanted

if TYPE_CHECKING:
    from ..hub import Hub

log = structlog.get_logger("tidings.calendars")
EVERY = 3600.0


@dataclass
class Counts:
    listed: int = 0
    kept: int = 0
    deleted: int = 0
    repushed: int = 0
    """Tasks whose event is missing, or differs from what the task shows now (settings changed)."""


class ReconcileError(Exception):
    """Reconcile could not read or write the calendar; the text says why (secrets masked)."""


def calendar_of(hub: Hub, name: str) -> CalendarPush:
    integration = hub.notifiers.get(name)
    if not isinstance(integration, CalendarPush):
        raise ReconcileError(f"{name!r} is not a calendar integration (google_calendar, outlook_calendar)")
    return integration


async def reconcile(hub: Hub, name: str) -> dict[str, int]:
    """One pass over calendar ``name``; the counts of what it found and did."""
    cal = calendar_of(hub, name)
    if (missing := cal.not_connected()) is not None:
        raise ReconcileError(missing.error or "not connected")
    store = hub.require_store()
    async with store.read() as conn:
        off = (await conn.execute(select(integration_state.c.reason).where(
            integration_state.c.name == name, integration_state.c.disabled.is_(True)))).first()
    if off is not None:
        raise ReconcileError(f"{name} is disabled ({off.reason or 'by hand'}): enable it first")
    counts = Counts()
    try:
        remote = [ref async for ref in cal.list_ours()]
        counts.listed = len(remote)
        async with store.read() as conn:
            rows = await state.of_integration(conn, name)
            found = (await conn.execute(select(tasks).where(tasks.c.project == cal.project,
                                                            tasks.c.due.is_not(None)))).all()
        by_id: dict[str, dict[str, Any]] = {r.id: as_dict(r) for r in found}
        seen: set[str] = set()
        for ref in remote:
            task = by_id.get(ref.task_id or "")
            row = rows.get(ref.task_id or "")
            ours = row is None or row["remote_id"] in (None, ref.event_id)
            if wanted(task, cal.settings) and ours and ref.task_id not in seen:
                seen.add(ref.task_id or "")
                counts.kept += 1
                continue
            await cal.delete(ref)
            counts.deleted += 1
            if row is not None and row["remote_id"] == ref.event_id:
                async with store.write() as conn:
                    await state.deleted(conn, name, row["task_id"])
        async with store.read() as conn:
            links = await _links(conn, seen)
        for task in by_id.values():
            if not wanted(task, cal.settings):
                continue
            if task["id"] in seen:
                row = rows.get(task["id"])
                if row is None or row["written_hash"] == digest(event_of(task, links.get(task["id"], []), cal.settings)):
                    continue  # as it should be (or a create under way: its push ends it)
            else:
                async with store.write() as conn:
                    await state.missing(conn, name, task["id"])
            await hub.notify(task_message(TaskChange("task.update", task)), to=[name], project=cal.project)
            counts.repushed += 1
    except CalendarFailure as failure:
        raise ReconcileError(f"{name}: {failure.outcome.error}") from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ReconcileError(f"{name}: {clip(f'{type(exc).__name__}: {exc}', 300)}") from None
    log.info("calendar.reconciled", integration=name, **asdict(counts))
    return asdict(counts)


async def _links(conn: Any, task_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Task id -> its tracker links (what an event's description shows), for ``task_ids``."""
    found: dict[str, list[dict[str, Any]]] = {}
    ids = sorted(task_ids)
    for start in range(0, len(ids), 500):
        rows = await conn.execute(select(task_links.c.task_id, task_links.c.remote_url, task_links.c.state)
                                  .where(task_links.c.task_id.in_(ids[start:start + 500]))
                                  .order_by(task_links.c.integration))
        for r in rows:
            found.setdefault(r.task_id, []).append(dict(r._mapping))
    return found


class Reconciler(Background):
    """Reconciles every calendar integration of a dispatching hub once per :data:`EVERY` (the first
    time after one interval, so starting never waits for it)."""

    task_name = "tidings-calendar-reconcile"

    def __init__(self, hub: Hub, every: float = EVERY) -> None:
        self.hub = hub
        self.every = every

    async def _run(self) -> None:
        import asyncio

        while True:
            await asyncio.sleep(self.every)
            for name, integration in list(self.hub.notifiers.items()):
                if not isinstance(integration, CalendarPush):
                    continue
                try:
                    await reconcile(self.hub, name)
                except Exception as exc:  # the next interval tries again
                    log.warning("calendar.reconcile_failed", integration=name,
                                error=clip(f"{type(exc).__name__}: {exc}", 300))
