"""What the calendar push tests share: a dispatching hub with one calendar integration routed
``match: {source: tasks}``, task changes made as the API makes them (committed, then
``after_commit``), and waiting until the outbox has nothing left for the calendar."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sync.service_fakes import until

from tidings.audit import Actor
from tidings.store.calendar_tables import calendar_events
from tidings.store.tables import deliveries
from tidings.sync.events import after_commit
from tidings.sync.tasks import create_task, delete_task, get_task, input_values, update_task

ALICE = Actor("user", name="alice@example.com", auth_method="token")
TOKEN = "calendar-token"
FAST_RETRY = {"base": 0.05, "cap": 0.2, "max_attempts": 50}
ACTIVE = ("pending", "sending", "retrying", "scheduled")


def calendar_config(kind: str, url: str, name: str = "cal", **settings: Any) -> dict[str, Any]:
    integration = {"kind": kind, "token": TOKEN, "api_url": url, "retry": FAST_RETRY, "timeout": 1.0, **settings}
    return {"integrations": {name: integration},
            "routes": [{"name": "tasks-to-calendar", "match": {"source": "tasks"}, "to": [name]}]}


class Tasks:
    """Task changes on ``hub``, each routed after its commit as the API does it."""

    def __init__(self, hub: Any, project: str = "default") -> None:
        self.hub, self.project = hub, project

    async def create(self, **values: Any) -> dict[str, Any]:
        async with self.hub.store.write() as conn:
            change = await create_task(conn, self.project, input_values({"title": "a task", **values}), actor=ALICE,
                                       origin="test")
        await after_commit(self.hub, change, [])
        return change.task

    async def update(self, key: str, **values: Any) -> dict[str, Any]:
        async with self.hub.store.write() as conn:
            task = await get_task(conn, self.project, key)
            assert task is not None
            change = await update_task(conn, task, input_values(values), actor=ALICE, origin="test")
        await after_commit(self.hub, change)
        return change.task if change else task

    async def delete(self, key: str) -> None:
        async with self.hub.store.write() as conn:
            task = await get_task(conn, self.project, key)
            assert task is not None
            change = await delete_task(conn, task, actor=ALICE, origin="test")
        await after_commit(self.hub, change)

    async def settled(self, integration: str = "cal", timeout: float = 15.0) -> list[dict[str, Any]]:
        """Until no delivery to ``integration`` is waiting; all its deliveries."""

        async def done() -> list[dict[str, Any]] | None:
            async with self.hub.store.read() as conn:
                rows = [dict(r._mapping) for r in await conn.execute(
                    select(deliveries).where(deliveries.c.integration == integration))]
            return rows if rows and not any(r["status"] in ACTIVE for r in rows) else None

        return await until(done, timeout=timeout, what=f"deliveries to {integration} done")  # type: ignore[no-any-return]

    async def row(self, task_id: str, integration: str = "cal") -> dict[str, Any] | None:
        async with self.hub.store.read() as conn:
            row = (await conn.execute(select(calendar_events).where(
                calendar_events.c.integration == integration, calendar_events.c.task_id == task_id))).first()
        return dict(row._mapping) if row else None
