"""Links between a task and its item in one tracker (``task_links``), and who works on one now.

Work on one item is serialized twice: an asyncio lock per (integration, remote id) in this process
(no pointless contention on the database), and a lease on the link row (``claimed_by`` /
``claimed_until``) across processes. A link that does not exist yet is claimed by inserting it: the
unique (integration, remote_id) index lets one insert win, the loser re-reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import and_, or_, select

from ..store.engine import Conn
from ..store.tables import task_links

LINKED, CREATING, UNLINKED, DELETED = "linked", "creating", "unlinked", "deleted"

_locks: dict[tuple[str, str], asyncio.Lock] = {}
_waiting: dict[tuple[str, str], int] = {}


@contextlib.asynccontextmanager
async def item_lock(integration: str, key: str) -> AsyncIterator[bool]:
    """This process's lock on one item (``key``: its remote id, or ``task:<id>`` for an item not
    created yet); yields whether it had to wait (what was read before may be stale by now). Locks
    no one waits on are dropped, so the map stays as small as the work in flight."""
    k = (integration, key)
    lock = _locks.setdefault(k, asyncio.Lock())
    _waiting[k] = _waiting.get(k, 0) + 1
    try:
        waited = lock.locked()
        async with lock:
            yield waited
    finally:
        _waiting[k] -= 1
        if not _waiting[k]:
            del _waiting[k]
            _locks.pop(k, None)


def as_link(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    d = dict(row._mapping)
    d["base"] = d["base"] or {}
    return d


async def by_remote(conn: Conn, integration: str, remote_id: str) -> dict[str, Any] | None:
    q = select(task_links).where(task_links.c.integration == integration, task_links.c.remote_id == remote_id)
    return as_link((await conn.execute(q)).first())


async def by_task(conn: Conn, integration: str, task_id: str) -> dict[str, Any] | None:
    q = select(task_links).where(task_links.c.integration == integration, task_links.c.task_id == task_id)
    return as_link((await conn.execute(q)).first())


async def by_id(conn: Conn, link_id: str) -> dict[str, Any] | None:
    return as_link((await conn.execute(select(task_links).where(task_links.c.id == link_id))).first())


async def by_remotes(conn: Conn, integration: str, remote_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The links of several items at once (one query per sweep page)."""
    if not remote_ids:
        return {}
    q = select(task_links).where(task_links.c.integration == integration, task_links.c.remote_id.in_(remote_ids))
    return {row.remote_id: as_link(row) for row in await conn.execute(q)}  # type: ignore[misc]


async def claim(conn: Conn, link_id: str, worker: str, lease: float) -> bool:
    """Take the link's lease unless another worker holds a live one. Atomic on both databases: the
    condition is checked by the UPDATE itself (PostgreSQL re-checks it after a concurrent writer)."""
    now = time.time()
    result = await conn.execute(
        task_links.update()
        .where(task_links.c.id == link_id,
               or_(task_links.c.claimed_until.is_(None), task_links.c.claimed_until < now,
                   task_links.c.claimed_by == worker))
        .values(claimed_by=worker, claimed_until=now + lease)
    )
    return bool(result.rowcount == 1)


async def claim_waiting(store: Any, link_id: str, worker: str, lease: float, poll: float) -> bool:
    """:func:`claim`, waiting while another worker holds the lease (at most one lease long)."""
    deadline = time.monotonic() + lease + 5
    for attempt in range(100_000):
        async with store.write() as conn:
            if await claim(conn, link_id, worker, lease):
                return True
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(min(poll * 2 ** min(attempt, 4), 0.5))
    return False


async def update(conn: Conn, link_id: str, **values: Any) -> None:
    await conn.execute(task_links.update().where(task_links.c.id == link_id).values(**values))


async def release(conn: Conn, link_id: str, worker: str) -> None:
    """Give the lease back (only ours)."""
    await conn.execute(
        task_links.update()
        .where(and_(task_links.c.id == link_id, task_links.c.claimed_by == worker))
        .values(claimed_by=None, claimed_until=None)
    )


async def insert(conn: Conn, **values: Any) -> None:
    await conn.execute(task_links.insert().values(**values))


async def insert_many(conn: Conn, rows: list[dict[str, Any]]) -> None:
    """Several links, every row with the same keys (one statement for a sweep page's imports)."""
    if rows:
        await conn.execute(_INSERT, rows if len(rows) > 1 else rows[0])


_INSERT = task_links.insert()


def summary(link: dict[str, Any]) -> dict[str, Any]:
    """What an audit entry says about a link."""
    return {k: link.get(k) for k in ("integration", "remote_id", "remote_key", "remote_url", "state")}
