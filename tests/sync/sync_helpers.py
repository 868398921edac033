"""Reading the store in sync tests."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tidings import Hub
from tidings.audit.chain import Actor
from tidings.store.tables import audit_log, sync_conflicts, task_links, tasks
from tidings.sync.engine import RunState
from tidings.sync.tasks import create_task, get_task_by_id, update_task


async def counts(hub: Hub) -> dict[str, int]:
    """Rows per sync table (and the audit log): what a plan must leave as it found."""
    out = {}
    async with hub.require_store().read() as conn:
        for table in (tasks, task_links, sync_conflicts, audit_log):
            out[table.name] = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
    return out


async def all_tasks(hub: Hub) -> list[dict[str, Any]]:
    async with hub.require_store().read() as conn:
        ids = [r.id for r in await conn.execute(select(tasks.c.id).order_by(tasks.c.number))]
        return [await get_task_by_id(conn, i) for i in ids]  # type: ignore[misc]


async def all_links(hub: Hub, integration: str | None = None) -> list[dict[str, Any]]:
    q = select(task_links).order_by(task_links.c.created_at)
    if integration:
        q = q.where(task_links.c.integration == integration)
    async with hub.require_store().read() as conn:
        return [dict(r._mapping) for r in await conn.execute(q)]


async def audit_actions(hub: Hub) -> list[tuple[str, str | None, str | None]]:
    async with hub.require_store().read() as conn:
        rows = await conn.execute(select(audit_log.c.action, audit_log.c.target, audit_log.c.actor_name)
                                  .order_by(audit_log.c.seq))
        return [(r.action, r.target, r.actor_name) for r in rows]


USER = Actor("user", id="u1", name="ann@example.com", auth_method="session")


async def new_task(hub: Hub, project: str = "default", **values: Any) -> dict[str, Any]:
    """A task made here (by a person)."""
    async with hub.require_store().write() as conn:
        change = await create_task(conn, project, values, actor=USER)
    return change.task


async def edit_task(hub: Hub, task_id: str, **values: Any) -> dict[str, Any]:
    async with hub.require_store().write() as conn:
        task = await get_task_by_id(conn, task_id)
        assert task is not None
        change = await update_task(conn, task, values, actor=USER)
    assert change is not None
    return change.task


async def task(hub: Hub, task_id: str) -> dict[str, Any]:
    async with hub.require_store().read() as conn:
        found = await get_task_by_id(conn, task_id)
    assert found is not None
    return found


SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"])
"""For what the merge decides (the same on either database): the store-bound tests run on both."""


async def sweep(engine: Any, run: RunState | None = None) -> RunState:
    """A sweep from where the last one (kept on the engine by the test) got to."""
    run = run or RunState("sweep")
    mark, etag = getattr(engine, "_test_cursor", (None, None))
    await engine.sweep(run, mark, etag)
    engine._test_cursor = (run.mark, run.list_etag)
    return run
