"""The rows of ``calendar_events``: where each task's event is on each calendar, and what we wrote."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select, update

from ..integrations.base import EventRef
from ..store.calendar_tables import calendar_events as t
from ..store.engine import Conn


async def get(conn: Conn, integration: str, task_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(t).where(t.c.integration == integration, t.c.task_id == task_id))).first()
    return dict(row._mapping) if row else None


async def of_integration(conn: Conn, integration: str) -> dict[str, dict[str, Any]]:
    """Task id -> row, for every event this integration keeps (not deleted ones)."""
    rows = await conn.execute(select(t).where(t.c.integration == integration, t.c.state != "deleted"))
    return {r.task_id: dict(r._mapping) for r in rows}


def ref(row: dict[str, Any] | None) -> EventRef | None:
    if row is None:
        return None
    return EventRef(row["remote_id"], row["etag"], row["task_id"], row["creates"])


async def creating(conn: Conn, integration: str, task: dict[str, Any], remote_id: str | None) -> dict[str, Any]:
    """Record that a create is about to be sent (one more event for the task), before sending it."""
    old = await get(conn, integration, task["id"])
    values = {"state": "creating", "remote_id": remote_id, "etag": None, "written_hash": None,
              "updated_at": time.time()}
    if old is None:
        await conn.execute(t.insert().values(integration=integration, task_id=task["id"], project=task["project"],
                                             creates=1, **values))
    else:  # deleted, or missing (reconcile found none): a new event, with a new create key
        await conn.execute(update(t).where(t.c.integration == integration, t.c.task_id == task["id"])
                           .values(creates=old["creates"] + 1, **values))
    row = await get(conn, integration, task["id"])
    assert row is not None
    return row


async def present(conn: Conn, integration: str, task_id: str, at: EventRef, written: str) -> None:
    await conn.execute(update(t).where(t.c.integration == integration, t.c.task_id == task_id).values(
        state="present", remote_id=at.event_id, etag=at.etag, written_hash=written, updated_at=time.time()))


async def deleted(conn: Conn, integration: str, task_id: str) -> None:
    await conn.execute(update(t).where(t.c.integration == integration, t.c.task_id == task_id).values(
        state="deleted", etag=None, written_hash=None, updated_at=time.time()))


async def missing(conn: Conn, integration: str, task_id: str) -> None:
    """Reconcile found no event for a task that wants one: the next push creates it."""
    await conn.execute(update(t).where(t.c.integration == integration, t.c.task_id == task_id,
                                       t.c.state != "deleted").values(state="missing", updated_at=time.time()))
