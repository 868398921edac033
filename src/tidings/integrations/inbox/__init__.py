"""The built-in inbox: keeps what it receives in the database, listed by the API and the CLI.
The default target for demos and tests."""

from __future__ import annotations

import time
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from ...message import Message
from ...store.batch import Batch
from ...store.engine import Conn
from ...store.tables import inbox
from ..base import NO_OPTIONS, Attempt, IntegrationSettings, Notifier, Outcome, RenderOptions


class InboxSettings(IntegrationSettings):
    kind: Literal["inbox"]


class InboxNotifier(Notifier):
    kind = "inbox"
    Settings = InboxSettings
    concurrency = 64

    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> dict[str, Any]:
        return message.to_dict()

    async def send(self, payload: dict[str, Any], attempt: Attempt) -> Outcome:
        row = {
            "delivery_id": attempt.delivery_id,
            "message_id": attempt.message_id,
            "integration": self.name,
            "received_at": time.time(),
            "payload": payload,
        }
        return Outcome.delivered(f"inbox:{await self.context.store.submit(_STORE_ITEMS, row)}")

    async def test(self) -> Outcome:
        async with self.context.store.read() as conn:
            await conn.execute(select(func.count()).select_from(inbox))
        return Outcome.delivered()


class _StoreItems(Batch[dict[str, Any], int]):
    async def apply(self, conn: Conn, rows: list[dict[str, Any]]) -> list[int | BaseException]:
        """Insert many received messages at once; a redelivered one keeps its first row."""
        ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(inbox)
        await conn.execute(ins.on_conflict_do_nothing(index_elements=[inbox.c.delivery_id]), rows)
        ids = {
            r.delivery_id: r.id
            for r in await conn.execute(
                select(inbox.c.delivery_id, inbox.c.id).where(inbox.c.delivery_id.in_([r["delivery_id"] for r in rows]))
            )
        }
        return [ids[r["delivery_id"]] for r in rows]


_STORE_ITEMS = _StoreItems()
