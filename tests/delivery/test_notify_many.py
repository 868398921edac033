"""``Hub.notify_many``: the bulk path plans every message first (one that can't be routed stores
none), queues them together so they share transactions, and answers each in order."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tidings import Message, UnknownIntegration
from tidings.store.tables import deliveries, messages


async def count(hub: Any, table: Any) -> int:
    async with hub.store.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar())


async def test_many_messages_are_stored_in_order_sharing_transactions(make_hub: Any) -> None:
    hub = await make_hub(dispatch=False)
    commits = 0
    apply = hub._writer.apply

    async def counting(conn: Any, items: list[Any]) -> list[Any]:
        nonlocal commits
        commits += 1
        return await apply(conn, items)

    hub._writer.apply = counting
    receipts = await hub.notify_many([Message(f"m{i}", thread_key="t" if i % 3 == 0 else None) for i in range(250)])
    assert len({r.id for r in receipts}) == 250 and all(len(r.deliveries) == 1 for r in receipts)
    assert commits <= 2, "queued together: one transaction (two when the writer woke between)"
    async with hub.store.read() as conn:
        rows = (await conn.execute(select(messages.c.id, messages.c.title))).all()
        seqs = (await conn.execute(select(deliveries.c.thread_seq, deliveries.c.message_id)
                                   .where(deliveries.c.thread.is_not(None)))).all()
    titles = {r.id: r.title for r in rows}
    assert [titles[r.id] for r in receipts] == [f"m{i}" for i in range(250)], "each answered with its own message"
    by_seq = [titles[m] for _, m in sorted(seqs)]
    assert by_seq == [f"m{i}" for i in range(0, 250, 3)], "a thread keeps the order of the call"


async def test_a_message_that_cannot_be_routed_stores_none(make_hub: Any) -> None:
    hub = await make_hub(dispatch=False)
    with pytest.raises(UnknownIntegration):
        await hub.notify_many([Message("fine"), Message("also fine")], to=["nope"])
    assert await count(hub, messages) == 0
    assert await hub.notify_many([]) == []


async def test_many_are_delivered(make_hub: Any) -> None:
    hub = await make_hub()
    receipts = await hub.notify_many([Message(f"m{i}") for i in range(20)])
    for r in receipts:
        assert (await hub.wait(r.id))["deliveries"][0]["status"] == "delivered"
    assert await count(hub, deliveries) == 20
