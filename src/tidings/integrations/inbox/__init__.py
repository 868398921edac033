"""The built-in inbox: keeps what it receives in the database, listed by the API and the CLI.
The default target for demos and tests."""

from __future__ import annotations

import time
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ...message import Message
from ...store.batch import GroupCommit
from ...store.tables import inbox
from ..base import Attempt, IntegrationSettings, Notifier, Outcome


class InboxSettings(IntegrationSettings):
    kind: Literal["inbox"] = "inbox"


class InboxNotifier(Notifier):
    kind = "inbox"
    Settings = InboxSettings
    concurrency = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writer: GroupCommit[dict[str, Any], int] | None = None

    async def open(self) -> None:
        if self._writer is None:
            self._writer = GroupCommit(self.context.store, _store_items)
            self._writer.start()

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None

    def render(self, message: Message) -> dict[str, Any]:
        return message.to_dict()

    async def send(self, payload: dict[str, Any], attempt: Attempt) -> Outcome:
        if self._writer is None:
            await self.open()
        assert self._writer is not None
        row = {
            "delivery_id": attempt.delivery_id,
            "message_id": attempt.message_id,
            "integration": self.name,
            "received_at": time.time(),
            "payload": payload,
        }
        return Outcome.delivered(f"inbox:{await self._writer.submit(row)}")

    async def test(self) -> Outcome:
        async with self.context.store.read() as conn:
            await conn.execute(select(func.count()).select_from(inbox))
        return Outcome.delivered()


async def _store_items(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[int | BaseException]:
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
