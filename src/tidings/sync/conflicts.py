"""PLACEHOLDER (wt-service branch only): the engine helper's ``sync/conflicts.py`` replaces this file
on merge. The one reader ``server/sync_api.py`` and ``cli/sync.py`` call, so that they import."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..store.engine import Conn
from ..store.tables import sync_conflicts


async def list_conflicts(
    conn: Conn, project: str, *, task_id: str | None = None, open_only: bool = True
) -> list[dict[str, Any]]:
    """A project's parked conflicts (open ones unless ``open_only`` is false), oldest first."""
    q = select(sync_conflicts).where(sync_conflicts.c.project == project)
    if task_id is not None:
        q = q.where(sync_conflicts.c.task_id == task_id)
    if open_only:
        q = q.where(sync_conflicts.c.resolved_at.is_(None))
    rows = (await conn.execute(q.order_by(sync_conflicts.c.created_at, sync_conflicts.c.id))).all()
    return [dict(r._mapping) for r in rows]
