"""Thread references: the first send of a key stores where the thread lives; later ones find it."""

from __future__ import annotations

import asyncio

from tidings.store.engine import Store
from tidings.threads import Threads


async def test_start_get_and_resolve(store: Store) -> None:
    threads = Threads(store)
    assert await threads.get("slack", "alert:disk") is None
    t = await threads.start("slack", "alert:disk", {"channel": "C1", "ts": "1.0"}, "m1")
    assert (t.ref, t.message_id, t.resolved_at) == ({"channel": "C1", "ts": "1.0"}, "m1", None)
    assert await threads.get("slack", "alert:disk") == t
    assert await threads.get("email", "alert:disk") is None, "each integration keeps its own threads"
    await threads.resolve("slack", "alert:disk")
    resolved = await threads.get("slack", "alert:disk")
    assert resolved is not None and resolved.resolved_at is not None


async def test_the_first_start_wins_even_when_concurrent(store: Store) -> None:
    threads = Threads(store)
    started = await asyncio.gather(
        *(threads.start("slack", "k" * 600, {"ts": str(i)}, f"m{i}") for i in range(10))
    )
    assert len({t.ref["ts"] for t in started}) == 1, "every caller sees the one stored thread"
    assert (await threads.get("slack", "k" * 600)) == started[0]
