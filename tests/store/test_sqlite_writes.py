"""SQLite's write path: one connection kept across transactions, the commit in a thread, the
database lock taken up front and waited for without blocking the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tidings.store.engine import Store

INSERT = "INSERT INTO integration_state (name, disabled, updated_at) VALUES (:n, false, 0)"


async def _names(store: Store) -> list[str]:
    async with store.read() as conn:
        return [r[0] for r in await conn.execute(text("SELECT name FROM integration_state ORDER BY name"))]


@pytest.fixture
async def lite(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    await store.migrate()
    yield store  # type: ignore[misc]
    await store.close()


async def test_transactions_commit_in_order_on_one_connection(lite: Store) -> None:
    for name in ("a", "b", "c"):
        async with lite.write() as conn:
            await conn.execute(text(INSERT), {"n": name})
    assert await _names(lite) == ["a", "b", "c"]


async def test_a_failed_transaction_rolls_back_and_the_next_one_commits(lite: Store) -> None:
    with pytest.raises(IntegrityError):
        async with lite.write() as conn:
            await conn.execute(text(INSERT), {"n": "a"})
            await conn.execute(text(INSERT), {"n": "a"})
    async with lite.write() as conn:
        await conn.execute(text(INSERT), {"n": "b"})
    assert await _names(lite) == ["b"]


async def test_a_caller_cancelled_during_the_commit_does_not_let_the_next_one_in_early(lite: Store) -> None:
    """The commit runs on in its thread; the next transaction waits for it, then commits too."""

    async def first() -> None:
        async with lite.write() as conn:
            await conn.execute(text(INSERT), {"n": "first"})

    task = asyncio.create_task(first())
    for _ in range(100):  # until the commit has been handed to its thread
        await asyncio.sleep(0)
        if lite._write_lock is not None and lite._write_lock.locked() and task.done() is False:
            break
    task.cancel()
    async with lite.write() as conn:
        await conn.execute(text(INSERT), {"n": "second"})
    await asyncio.gather(task, return_exceptions=True)
    names = await _names(lite)
    assert "second" in names
    assert set(names) <= {"first", "second"}


async def test_a_writer_waits_for_another_process_holding_the_lock(lite: Store, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO integration_state (name, disabled, updated_at) VALUES ('other', 0, 0)")
    threading.Timer(0.3, other.execute, ("COMMIT",)).start()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    t = asyncio.create_task(ticker())
    async with lite.write() as conn:
        await conn.execute(text(INSERT), {"n": "mine"})
    t.cancel()
    other.close()
    assert await _names(lite) == ["mine", "other"]
    assert ticks >= 10, "the loop kept running while the writer waited for the lock"


async def test_close_then_reopen_sees_every_commit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    store = Store(url)
    await store.migrate()
    async with store.write() as conn:
        await conn.execute(text(INSERT), {"n": "kept"})
    await store.close()
    again = Store(url)
    try:
        assert await _names(again) == ["kept"]
    finally:
        await again.close()


@pytest.mark.parametrize("statement", ["_INSERT_MESSAGE", "_INSERT_DELIVERY", "_RECORD"])
async def test_the_outbox_statements_build_no_temporary_table_per_row(lite: Store, statement: str) -> None:
    """SQLite opens a temporary b-tree for an IN list of three or more values each time it tests
    it; a partial index's condition is tested on every row written, so the migrated schema states
    it as OR-ed equalities. A temporary table opened once per statement sits behind a ``Once``."""
    from tidings.delivery import outbox

    sql = getattr(outbox, statement)._many(4)
    path = lite.sqlite_path
    assert path is not None
    with sqlite3.connect(path) as conn:
        ops = [row[1] for row in conn.execute("EXPLAIN " + sql, [None] * sql.count("?"))]
    assert ops.count("OpenEphemeral") <= ops.count("Once"), ops
