"""Order within a thread, at the claim: priority orders work across threads, never inside one.

Each test writes through the outbox as the hub does, then claims and records as dispatchers do,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
import pytest
from helpers import eventually
from sqlalchemy import select, text, update

from tidings.delivery import outbox
from tidings.delivery.outbox import Claimed, Lease, Planned, Result
from tidings.delivery.queries import retry_delivery
from tidings.message import Message
from tidings.routing import Target
from tidings.store.engine import Store
from tidings.store.tables import deliveries

NOW = 1_800_000_000.0
LEASE = 60.0


def msg(title: str, priority: str = "medium", thread: str | None = None, resolves: bool = False) -> Message:
    return Message(title, priority=priority, thread_key=thread, resolves=resolves)


async def write(store: Store, items: Sequence[Message], to: Sequence[str] = ("chat",), lease: Lease | None = None,
                now: float = NOW) -> list[Planned]:
    planned = [Planned(m, [Target(name, None, 0.0) for name in to]) for m in items]
    async with store.write() as conn:
        await outbox.write_messages(conn, planned, now, lease)
    return planned


async def claim(store: Store, now: float = NOW, owner: str = "w1", names: Sequence[str] = ("chat",)) -> list[Claimed]:
    async with store.write() as conn:
        return await outbox.claim(conn, owner, list(names), 100, now, LEASE)


async def record(store: Store, c: Claimed, status: str, at: float, owner: str = "w1", due: float | None = None) -> None:
    result = Result(c.id, c.integration, status, c.attempts + 1, at if due is None else due,
                    delivered_at=at if status == "delivered" else None)
    async with store.write() as conn:
        await outbox.record(conn, owner, [result], at)


async def next_due(store: Store, now: float, names: Sequence[str] = ("chat",)) -> float | None:
    async with store.read() as conn:
        return await outbox.next_due(conn, list(names), now)


def titles(claimed: Sequence[Claimed]) -> list[tuple[str, str]]:
    return [(c.message.title, c.integration) for c in claimed]


async def test_a_critical_resolve_waits_for_its_medium_firing_but_other_work_does_not(store: Store) -> None:
    await write(store, [
        msg("fire", "medium", "disk"),
        msg("noise", "low"),
        msg("still", "high", "disk"),
        msg("resolve", "critical", "disk", resolves=True),
        msg("other", "info", "cpu"),
    ], to=("chat", "mail"))
    first = await claim(store, names=("chat", "mail"))
    # Priority still orders across threads; of the thread "disk" only its head, on each target.
    assert [t for t, _ in titles(first)] == ["fire", "fire", "noise", "noise", "other", "other"]
    assert sorted(titles(first)) == [("fire", "chat"), ("fire", "mail"), ("noise", "chat"), ("noise", "mail"),
                                     ("other", "chat"), ("other", "mail")]
    assert all(c.thread is not None for c in first if c.message.thread_key)
    assert await claim(store, names=("chat", "mail")) == [], "the rest of the thread waits"
    # What waits for its thread is not due: the dispatcher sleeps until a lease ends.
    assert await next_due(store, NOW, ("chat", "mail")) == NOW + LEASE

    fire_chat, fire_mail = sorted(first[:2], key=lambda c: c.integration)
    await record(store, fire_chat, "delivered", NOW + 1)
    assert titles(await claim(store, NOW + 1, names=("chat", "mail"))) == [("still", "chat")], \
        "each target keeps its own order: mail's firing is still being sent"
    await record(store, fire_mail, "retrying", NOW + 1, due=NOW + 30)
    assert await claim(store, NOW + 2, names=("mail",)) == [], "a retrying head holds its thread back"
    assert await next_due(store, NOW + 2, ("mail",)) == NOW + 30, "the head's retry is the next thing due"
    again = await claim(store, NOW + 30, names=("mail",))
    assert titles(again) == [("fire", "mail")], "the head goes again first"
    await record(store, again[0], "dead", NOW + 31)
    assert titles(await claim(store, NOW + 31, names=("mail",))) == [("still", "mail")], "a dead head lets the rest go"


async def test_a_thread_keeps_its_order_of_acceptance_within_one_batch_and_across_batches(store: Store) -> None:
    await write(store, [msg(f"m{i}", ("critical", "info", "high", "low", "medium")[i % 5], "t") for i in range(5)])
    await write(store, [msg("m5", "critical", "t")], now=NOW + 1)
    seen = []
    at = NOW + 2
    while len(seen) < 6:
        got = await claim(store, at)
        assert len(got) == 1, titles(got)
        seen.append(got[0].message.title)
        await record(store, got[0], "delivered", at)
        at += 1
    assert seen == [f"m{i}" for i in range(6)]


async def test_threaded_deliveries_skip_the_lease_fast_path(store: Store) -> None:
    """The writer's fast path leases new deliveries to its own dispatcher: one of a thread could
    overtake an earlier one another worker still sends, so threads always go through the claim."""
    lease = Lease("w1", LEASE, lambda name: True)
    planned = await write(store, [msg("plain"), msg("head", thread="t"), msg("next", "critical", thread="t")],
                          lease=lease)
    assert [len(p.leased) for p in planned] == [1, 0, 0]
    async with store.read() as conn:
        rows = (await conn.execute(select(deliveries.c.status, deliveries.c.thread, deliveries.c.thread_seq)
                                   .order_by(deliveries.c.thread_seq))).all()
    assert sorted((r.status, r.thread is None) for r in rows) == [("pending", False), ("pending", False), ("sending", True)]
    head_seq, next_seq = (r.thread_seq for r in rows if r.thread is not None)
    assert head_seq < next_seq, "one batch, two clock readings at most: the order comes from the sequence"
    assert titles(await claim(store)) == [("head", "chat")]


async def test_a_live_lease_anywhere_in_the_thread_blocks_it_an_expired_one_does_not(store: Store) -> None:
    await write(store, [msg("head", thread="t"), msg("next", thread="t")])
    (head,) = await claim(store, owner="a")
    assert await claim(store, NOW + 1, owner="b") == []
    # a went silent: its lease ends, b takes the head over, never the next one.
    assert titles(await claim(store, NOW + LEASE + 1, owner="b")) == [("head", "chat")]
    assert head.id == (await claim(store, NOW + 2 * LEASE + 2, owner="c"))[0].id


async def test_a_dead_head_retried_by_hand_waits_for_the_one_being_sent(store: Store) -> None:
    """Whatever the order, two deliveries of a thread are never sent at once."""
    await write(store, [msg("head", thread="t"), msg("next", thread="t")])
    (head,) = await claim(store)
    await record(store, head, "dead", NOW + 1)
    (nxt,) = await claim(store, NOW + 1)
    assert nxt.message.title == "next"
    async with store.write() as conn:
        await retry_delivery(conn, head.id, now=NOW + 2)
    assert await claim(store, NOW + 2) == [], "the retried head waits while its successor is being sent"
    await record(store, nxt, "delivered", NOW + 3)
    assert titles(await claim(store, NOW + 3)) == [("head", "chat")]


async def test_one_thread_per_worker_on_postgresql_even_when_snapshots_differ(db_url: str, store: Store) -> None:
    """H is accepted before S but committed after worker B claimed S. Worker A's snapshot has H
    (in turn: nothing active ahead of it) and S still pending (B has not committed): the claim's
    condition alone, and SKIP LOCKED (two different rows), would let A send H while B sends S.
    A waits for B's lock on the thread, looks again, and hands H back."""
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL only")
    await write(store, [msg("S", thread="t")])
    other = Store(db_url)
    try:
        async with other.write() as conn_b:
            got_b = await outbox.claim(conn_b, "b", ["chat"], 10, NOW, LEASE)
            assert titles(got_b) == [("S", "chat")]
            # H: accepted before S (a smaller thread_seq), committed only now.
            async with store.write() as conn:
                await outbox.write_messages(conn, [Planned(msg("H", thread="t"), [Target("chat", None, 0.0)])], NOW)
                await conn.execute(update(deliveries).where(deliveries.c.id != got_b[0].id)
                                   .values(thread_seq=deliveries.c.thread_seq - 10**12))
            a = asyncio.create_task(claim(store, NOW, owner="a"))

            async def a_waits_on_the_thread_lock() -> bool:
                async with store.read() as conn:
                    n = (await conn.execute(text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))).scalar()
                return bool(n) or a.done()

            await eventually(a_waits_on_the_thread_lock)
            assert not a.done(), "A claimed H without waiting for B"
        got_a = await a
    finally:
        await other.close()
    assert got_a == [], "A handed H back: S is being sent"
    async with store.read() as conn:
        rows = {r.id: (r.status, r.lease_owner) for r in await conn.execute(select(deliveries))}
    assert rows[got_b[0].id] == ("sending", "b")
    assert sorted(rows.values(), key=str) == [("pending", None), ("sending", "b")]


async def test_deliveries_waiting_when_0005_runs_keep_their_thread_order(fresh_db_url: str) -> None:
    from tidings.store.migrate import current, head, upgrade

    s = Store(fresh_db_url)
    try:
        await upgrade(s, "0004")
        async with s.write() as conn:
            for n, (title, priority, thread, status) in enumerate([
                ("old", 2, "t", "delivered"), ("fire", 2, "t", "retrying"), ("resolve", 0, "t", "pending"),
                ("plain", 1, None, "pending"),
            ]):
                data = msg(title, thread=thread).to_dict()
                await conn.execute(text(
                    "INSERT INTO messages (id, created_at, title, priority, thread_key, data)"
                    " VALUES (:id, :at, :title, :priority, :thread, :data)"
                ), {"id": f"m{n}", "at": NOW + n, "title": title, "priority": priority, "thread": thread,
                    "data": orjson.dumps(data).decode()})
                await conn.execute(text(
                    "INSERT INTO deliveries (id, message_id, integration, status, priority, attempts, created_at,"
                    " updated_at, queued_at, next_attempt_at) VALUES (:id, :m, 'chat', :status, :priority, 0, :at, :at,"
                    " :at, :at)"
                ), {"id": f"d{n}", "m": f"m{n}", "status": status, "priority": priority, "at": NOW + n})
        await s.migrate()
        assert await current(s) == head()
        async with s.read() as conn:
            threads = dict((await conn.execute(select(deliveries.c.id, deliveries.c.thread))).all())
        assert threads["d0"] is None and threads["d3"] is None, "only waiting deliveries of a thread get one"
        assert threads["d1"] == threads["d2"] is not None
        assert titles(await claim(s, NOW + 10)) == [("plain", "chat"), ("fire", "chat")]
    finally:
        await s.close()
