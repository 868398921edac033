"""Conflicts parked under the ``manual`` policy: one open row per (task, integration, field), with
the base and both values, until a person chooses (``Engine.resolve_conflict``)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from ..audit.chain import Actor, append
from ..ids import new_id
from ..store.engine import Conn
from ..store.tables import sync_conflicts, tasks
from .model import Conflict


class ConflictError(ValueError):
    """A conflict that can't be resolved as asked (unknown, already resolved, a bad choice)."""


async def list_conflicts(
    conn: Conn, project: str, *, task_id: str | None = None, open_only: bool = True,
    integration: str | None = None,
) -> list[dict[str, Any]]:
    """A project's conflicts, oldest first, each with its task's key (``task``)."""
    q = (select(sync_conflicts, tasks.c.number)
         .join(tasks, tasks.c.id == sync_conflicts.c.task_id)
         .where(sync_conflicts.c.project == project)
         .order_by(sync_conflicts.c.created_at, sync_conflicts.c.id))
    if task_id is not None:
        q = q.where(sync_conflicts.c.task_id == task_id)
    if integration is not None:
        q = q.where(sync_conflicts.c.integration == integration)
    if open_only:
        q = q.where(sync_conflicts.c.resolved_at.is_(None))
    out = []
    for row in await conn.execute(q):
        d = dict(row._mapping)
        d["task"] = f"T-{d.pop('number')}"
        out.append(d)
    return out


async def get_conflict(conn: Conn, conflict_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(sync_conflicts).where(sync_conflicts.c.id == conflict_id))).first()
    return dict(row._mapping) if row else None


async def park(
    conn: Conn, task: dict[str, Any], integration: str, conflicts: list[Conflict], *, actor: Actor,
) -> int:
    """Record ``conflicts`` of ``task``: a new row per field, or the open row's values brought up
    to date. Returns how many rows are new (each audited as ``sync.conflict``)."""
    new = 0
    for c in conflicts:
        open_row = (await conn.execute(
            select(sync_conflicts.c.id, sync_conflicts.c.base, sync_conflicts.c.local, sync_conflicts.c.remote)
            .where(sync_conflicts.c.task_id == task["id"], sync_conflicts.c.integration == integration,
                   sync_conflicts.c.field == c.field, sync_conflicts.c.resolved_at.is_(None))
        )).first()
        values = {"base": c.base, "local": c.local, "remote": c.remote}
        if open_row is not None:
            if (open_row.base, open_row.local, open_row.remote) != (c.base, c.local, c.remote):
                await conn.execute(sync_conflicts.update().where(sync_conflicts.c.id == open_row.id).values(**values))
            continue
        row = {"id": new_id(), "task_id": task["id"], "project": task["project"], "integration": integration,
               "field": c.field, "created_at": time.time(), **values}
        await conn.execute(sync_conflicts.insert().values(**row))
        await append(conn, actor, "sync.conflict", target=task["key"], project=task["project"],
                     after={"conflict": row["id"], "integration": integration, "field": c.field, **values})
        new += 1
    return new


async def mark_resolved(conn: Conn, conflict: dict[str, Any], value: Any, *, actor: Actor, task_key: str) -> None:
    await conn.execute(
        sync_conflicts.update().where(sync_conflicts.c.id == conflict["id"])
        .values(resolved_at=time.time(), resolved_by=actor.name or actor.id or actor.kind, resolution=value)
    )
    await append(conn, actor, "sync.conflict.resolve", target=task_key, project=conflict["project"],
                 before={k: conflict[k] for k in ("base", "local", "remote")},
                 after={"conflict": conflict["id"], "integration": conflict["integration"],
                        "field": conflict["field"], "value": value})
