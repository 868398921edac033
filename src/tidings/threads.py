"""Where each channel keeps a thread: messages sharing a ``thread_key`` become replies to the
first one (Slack ``thread_ts``, email ``In-Reply-To``), and a resolving message can update the
first one in place. The first send of a key stores its reference; later sends look it up."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from .store.batch import Batch
from .store.engine import Conn, Store
from .store.tables import threads


@dataclass(frozen=True, slots=True)
class Thread:
    integration: str
    thread_key: str
    ref: dict[str, Any]
    """What the channel needs to reply or update: e.g. ``{"channel": "C123", "ts": "1700.1"}``."""
    message_id: str
    created_at: float
    resolved_at: float | None


def thread_hash(thread_key: str) -> str:
    return hashlib.sha256(thread_key.encode()).hexdigest()


class Threads:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._start = _StartThreads()

    async def get(self, integration: str, thread_key: str) -> Thread | None:
        async with self.store.read() as conn:
            return await _get(conn, integration, thread_key)

    async def start(self, integration: str, thread_key: str, ref: dict[str, Any], message_id: str) -> Thread:
        """Remember where a thread starts. The first one stored wins: if another send stored the
        key meanwhile, that thread is returned and ``ref`` is dropped."""
        return await self.store.submit(self._start, (integration, thread_key, ref, message_id))

    async def resolve(self, integration: str, thread_key: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                update(threads)
                .where(threads.c.integration == integration, threads.c.key == thread_hash(thread_key))
                .values(resolved_at=time.time(), updated_at=time.time())
            )


    async def update_ref(self, integration: str, thread_key: str, ref: dict[str, Any]) -> None:
        """Replace what is kept of the thread's first message (its content after an in-place edit,
        so that a later resolve starts from what the channel shows)."""
        async with self.store.write() as conn:
            await conn.execute(
                update(threads)
                .where(threads.c.integration == integration, threads.c.key == thread_hash(thread_key))
                .values(ref=ref, updated_at=time.time())
            )


class _StartThreads(Batch[tuple[str, str, dict[str, Any], str], Thread]):
    async def apply(self, conn: Conn, items: list[tuple[str, str, dict[str, Any], str]]) -> list[Thread | BaseException]:
        now = time.time()
        ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(threads)
        rows = [
            {"integration": i, "key": thread_hash(k), "thread_key": k, "ref": ref, "message_id": m,
             "created_at": now, "updated_at": now}
            for i, k, ref, m in items
        ]
        await conn.execute(ins.on_conflict_do_nothing(index_elements=[threads.c.integration, threads.c.key]), rows)
        out: list[Thread | BaseException] = []
        for integration, key, _, _ in items:
            found = await _get(conn, integration, key)
            out.append(found if found is not None else LookupError(f"thread {key!r} was not stored"))
        return out


async def _get(conn: Conn, integration: str, thread_key: str) -> Thread | None:
    row = (
        await conn.execute(
            select(threads).where(threads.c.integration == integration, threads.c.key == thread_hash(thread_key))
        )
    ).first()
    if row is None:
        return None
    return Thread(row.integration, row.thread_key, dict(row.ref), row.message_id, row.created_at, row.resolved_at)
