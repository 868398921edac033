"""The store on SQLite and PostgreSQL: migrations equal tables.py, claiming (priority, age,
leases, concurrent workers), and group commit."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, func, select, text
from sqlalchemy.exc import IntegrityError

from tidings.delivery import outbox
from tidings.delivery.outbox import Result
from tidings.message import Message, Priority
from tidings.store.batch import Batch, GroupCommit
from tidings.store.engine import Store, normalize_url
from tidings.store.migrate import current, head, upgrade
from tidings.store.tables import dedup, deliveries, messages, metadata


def _diff(conn: Any, target: MetaData) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return compare_metadata(ctx, target)


async def schema_diff(store: Store, target: MetaData = metadata) -> list[Any]:
    async with store.read() as conn:
        return await conn.run_sync(_diff, target)


# -- migrations ---------------------------------------------------------------------------
async def test_migrations_produce_exactly_the_tables_of_tables_py(store: Store) -> None:
    assert await schema_diff(store) == []


async def test_the_comparison_does_see_a_difference(store: Store) -> None:
    """A model that differs from the migrated database is reported (so [] above means equal)."""
    changed = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["deliveries"].append_column(Column("extra", Integer))
    diff = await schema_diff(store, changed)
    assert any(d[0] == "add_column" and d[3].name == "extra" for d in diff), diff


async def test_is_current_false_on_an_empty_database_then_true(fresh_db_url: str) -> None:
    s = Store(fresh_db_url)
    try:
        assert await s.is_current() is False
        assert await current(s) is None
        await s.migrate()
        assert await s.is_current() is True
        assert await current(s) == head() is not None
    finally:
        await s.close()


async def test_migrating_twice_is_a_no_op(store: Store) -> None:
    async with store.write() as conn:
        await conn.execute(dedup.insert().values(key="k", seen_at=1.0, expires_at=2.0))
    before = await current(store)
    await store.migrate()
    await store.migrate()
    assert await current(store) == before == head()
    assert await schema_diff(store) == []
    async with store.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(dedup))).scalar() == 1
        versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert [v[0] for v in versions] == [head()]


async def test_concurrent_migrations_of_a_fresh_database(fresh_db_url: str) -> None:
    """Several processes starting at once: one migrates, the others find it done."""
    stores = [Store(fresh_db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        assert all([await s.is_current() for s in stores])
        assert await schema_diff(stores[0]) == []
    finally:
        for s in stores:
            await s.close()


async def test_upgrading_from_0003_keeps_waiting_deliveries_claimable(fresh_db_url: str) -> None:
    """0004 rewrites the due index's condition (OR-ed equalities, no IN list): deliveries stored
    before it are still found through the index, and claimed most urgent first."""
    s = Store(fresh_db_url)
    try:
        await upgrade(s, "0003")
        ids = await add_deliveries(s, [("low", 1.0), ("high", 2.0)])
        await s.migrate()
        assert await current(s) == head()
        assert await schema_diff(s) == []
        async with s.read() as conn:
            if s.is_sqlite:
                query = "SELECT sql FROM sqlite_master WHERE name = 'ix_deliveries_due'"
            else:
                query = "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'ix_deliveries_due'"
            definition = (await conn.execute(text(query))).scalar_one()
        assert "sending" in definition and " IN " not in definition.upper() and "ANY" not in definition.upper(), definition
        async with s.write() as conn:
            claimed = await outbox.claim(conn, "worker", ["ops"], 10, time.time(), 60)
        assert [c.id for c in claimed] == [ids[1], ids[0]]
    finally:
        await s.close()


def test_urls_users_write_pick_the_async_drivers() -> None:
    assert normalize_url("sqlite:///x.db").get_backend_name() == "sqlite"
    assert normalize_url("sqlite:///x.db").database == "x.db"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="unsupported database"):
        normalize_url("mysql://u@h/db")
    with pytest.raises(ValueError, match="in-memory"):
        Store("sqlite:///:memory:")


# -- claiming -----------------------------------------------------------------------------
async def add_deliveries(
    store: Store, specs: list[tuple[str, float]], *, integration: str = "ops", status: str = "pending", due: float | None = None
) -> list[str]:
    """One message with one delivery per (priority, created_at); returns the delivery ids in order."""
    ids = []
    msg_rows, del_rows = [], []
    for i, (prio, created) in enumerate(specs):
        p = Priority(prio)
        tag = uuid.uuid4().hex[:8]
        mid, did = f"m-{i:04d}-{tag}", f"d-{i:04d}-{tag}"
        msg_rows.append(
            {"id": mid, "created_at": created, "title": f"{prio}@{created}", "priority": p.rank,
             "data": Message(f"{prio}@{created}", priority=p).to_dict()}
        )
        del_rows.append(
            {"id": did, "message_id": mid, "integration": integration, "status": status, "priority": p.rank,
             "attempts": 0, "created_at": created, "updated_at": created, "queued_at": created,
             "next_attempt_at": created if due is None else due}
        )
        ids.append(did)
    async with store.write() as conn:
        await conn.execute(messages.insert(), msg_rows)
        await conn.execute(deliveries.insert(), del_rows)
    return ids


async def claim(store: Store, owner: str, limit: int, now: float, lease: float = 60.0, integrations: tuple[str, ...] = ("ops",)) -> list[outbox.Claimed]:
    async with store.write() as conn:
        return await outbox.claim(conn, owner, list(integrations), limit, now, lease)


async def test_claim_returns_priority_order_then_age(store: Store) -> None:
    ids = await add_deliveries(
        store,
        [("low", 100.0), ("critical", 300.0), ("medium", 50.0), ("critical", 200.0), ("info", 10.0), ("high", 400.0), ("low", 90.0)],
    )
    by_title = dict(zip(ids, ["low@100", "crit@300", "med@50", "crit@200", "info@10", "high@400", "low@90"], strict=True))
    got = await claim(store, "w1", 100, now=1000.0)
    assert [by_title[c.id] for c in got] == ["crit@200", "crit@300", "high@400", "med@50", "low@90", "low@100", "info@10"]
    assert got[0].message.title == "critical@200.0"
    assert got[0].message.priority is Priority.CRITICAL


async def test_claim_with_a_limit_takes_the_most_urgent_first(store: Store) -> None:
    await add_deliveries(store, [("info", 1.0), ("info", 2.0), ("critical", 50.0), ("high", 40.0)])
    first = await claim(store, "w1", 2, now=100.0)
    assert [c.message.priority for c in first] == [Priority.CRITICAL, Priority.HIGH]
    second = await claim(store, "w1", 2, now=100.0)
    assert [c.message.title for c in second] == ["info@1.0", "info@2.0"]
    assert await claim(store, "w1", 2, now=100.0) == []


async def test_claim_marks_sending_with_owner_and_lease(store: Store) -> None:
    [did] = await add_deliveries(store, [("high", 10.0)])
    [c] = await claim(store, "worker-a", 10, now=100.0, lease=30.0)
    assert c.id == did and c.attempts == 0
    async with store.read() as conn:
        row = (await conn.execute(select(deliveries).where(deliveries.c.id == did))).one()
    assert row.status == "sending"
    assert row.lease_owner == "worker-a"
    assert row.next_attempt_at == pytest.approx(130.0)


async def test_claim_skips_what_is_not_due_not_active_or_elsewhere(store: Store) -> None:
    due = await add_deliveries(store, [("high", 10.0)])
    await add_deliveries(store, [("critical", 10.0)], due=500.0)  # not due yet
    for status in ("delivered", "dead", "suppressed"):
        await add_deliveries(store, [("critical", 10.0)], status=status)
    await add_deliveries(store, [("critical", 10.0)], integration="other")
    retrying = await add_deliveries(store, [("low", 20.0)], status="retrying", due=90.0)
    got = await claim(store, "w", 100, now=100.0, lease=10_000.0)
    assert [c.id for c in got] == due + retrying
    assert await claim(store, "w", 100, now=100.0, integrations=()) == []
    assert await claim(store, "w", 0, now=1000.0) == []
    later = await claim(store, "w", 100, now=1000.0, integrations=("ops", "other"))
    assert sorted(c.integration for c in later) == ["ops", "other"]


async def test_expired_lease_is_claimable_again_and_the_old_owner_cannot_record(store: Store) -> None:
    [did] = await add_deliveries(store, [("high", 10.0)])
    assert [c.id for c in await claim(store, "a", 10, now=100.0, lease=5.0)] == [did]
    # Still leased to a.
    assert await claim(store, "b", 10, now=104.0, lease=5.0) == []
    # a went silent; the lease ends and b takes it over.
    [taken] = await claim(store, "b", 10, now=105.5, lease=5.0)
    assert taken.id == did
    # a's late outcome must not overwrite b's lease.
    async with store.write() as conn:
        await outbox.record(conn, "a", [Result(did, "ops", "delivered", 1, 106.0, delivered_at=106.0)], 106.0)
    async with store.read() as conn:
        row = (await conn.execute(select(deliveries).where(deliveries.c.id == did))).one()
    assert (row.status, row.lease_owner) == ("sending", "b")
    async with store.write() as conn:
        await outbox.record(conn, "b", [Result(did, "ops", "delivered", 1, 107.0, remote_id="r-1", delivered_at=107.0)], 107.0)
    async with store.read() as conn:
        row = (await conn.execute(select(deliveries).where(deliveries.c.id == did))).one()
    assert (row.status, row.lease_owner, row.attempts, row.remote_id) == ("delivered", None, 1, "r-1")
    assert await claim(store, "c", 10, now=10_000.0) == []


async def test_two_concurrent_claims_never_return_the_same_delivery(db_url: str, store: Store) -> None:
    """Two workers, each with its own engine and connection, claiming at the same time: on
    PostgreSQL this is FOR UPDATE SKIP LOCKED, on SQLite BEGIN IMMEDIATE."""
    total = 300
    ids = await add_deliveries(store, [("medium", float(i)) for i in range(total)])
    other = Store(db_url)
    try:

        async def claim_slowly(s: Store, owner: str) -> list[str]:
            async with s.write() as conn:
                got = await outbox.claim(conn, owner, ["ops"], 70, time.time(), 60.0)
                await asyncio.sleep(0.05)  # hold the transaction so the two overlap
            return [c.id for c in got]

        seen: dict[str, str] = {}
        rounds = 0
        while len(seen) < total:
            rounds += 1
            assert rounds < 20, "claiming stalled"
            a, b = await asyncio.gather(claim_slowly(store, "a"), claim_slowly(other, "b"))
            assert not set(a) & set(b), "the same delivery was claimed by both workers"
            for owner, got in (("a", a), ("b", b)):
                for did in got:
                    assert did not in seen, f"{did} claimed twice ({seen[did]} then {owner})"
                    seen[did] = owner
        assert sorted(seen) == sorted(ids)
        assert set(seen.values()) == {"a", "b"}
        async with store.read() as conn:
            owners = dict((await conn.execute(select(deliveries.c.id, deliveries.c.lease_owner))).all())
        assert owners == seen
    finally:
        await other.close()


async def test_many_concurrent_claimers_split_the_queue(db_url: str, store: Store) -> None:
    total = 400
    await add_deliveries(store, [("low", float(i)) for i in range(total)])
    stores = [Store(db_url) for _ in range(4)]
    try:

        async def drain(s: Store, owner: str) -> list[str]:
            mine: list[str] = []
            while True:
                async with s.write() as conn:
                    got = await outbox.claim(conn, owner, ["ops"], 25, time.time(), 60.0)
                if not got:
                    return mine
                mine += [c.id for c in got]
                await asyncio.sleep(0)

        results = await asyncio.gather(*(drain(s, f"w{i}") for i, s in enumerate(stores)))
    finally:
        for s in stores:
            await s.close()
    flat = [d for r in results for d in r]
    assert len(flat) == total
    assert len(set(flat)) == total


# -- group commit -------------------------------------------------------------------------
class Recorder(Batch[dict[str, Any], str]):
    """A Batch that inserts dedup rows and counts transactions and commits."""

    def __init__(self) -> None:
        self.transactions: list[int] = []
        self.commits = 0

    async def apply(self, conn: Any, items: list[dict[str, Any]]) -> list[Any]:
        self.transactions.append(len(items))
        out: list[Any] = []
        for item in items:
            if item.get("refuse"):
                out.append(ValueError(f"refused {item['key']}"))
                continue
            await conn.execute(dedup.insert().values(key=item["key"], seen_at=1.0, expires_at=2.0))
            out.append(item["key"])
        return out

    def committed(self, items: list[dict[str, Any]], results: list[Any]) -> None:
        self.commits += 1


async def keys_in_db(store: Store) -> set[str]:
    async with store.read() as conn:
        return {r.key for r in await conn.execute(select(dedup.c.key))}


async def test_group_commit_batches_concurrent_submits(store: Store) -> None:
    apply = Recorder()
    writer = GroupCommit(store)
    writer.start()
    try:
        n = 300
        results = await asyncio.gather(*(writer.submit(apply, {"key": f"k{i}"}) for i in range(n)))
    finally:
        await writer.stop()
    assert results == [f"k{i}" for i in range(n)], "each caller gets its own result, in order"
    assert sum(apply.transactions) == n
    assert len(apply.transactions) <= 5, f"{n} submits took {len(apply.transactions)} transactions"
    assert apply.commits == len(apply.transactions)
    assert await keys_in_db(store) == {f"k{i}" for i in range(n)}


async def test_callers_woken_by_a_commit_join_the_next_transaction(store: Store) -> None:
    """Writers that submit again as soon as their commit returns (a busy API, many producers)
    share the next transaction instead of splitting into two alternating halves."""
    apply = Recorder()
    writer = GroupCommit(store)
    writer.start()
    callers, rounds = 32, 10

    async def caller(c: int) -> None:
        for r in range(rounds):
            await writer.submit(apply, {"key": f"k{c}-{r}"})

    async def late(c: int) -> None:
        await asyncio.sleep(0.001)  # while the first half's transaction runs
        await caller(c)

    try:
        await asyncio.gather(*(caller(c) for c in range(callers // 2)), *(late(c) for c in range(callers // 2, callers)))
    finally:
        await writer.stop()
    assert sum(apply.transactions) == callers * rounds
    assert len(apply.transactions) <= rounds + 3, apply.transactions


async def test_stop_commits_and_answers_what_was_submitted_and_refuses_the_rest(store: Store) -> None:
    apply = Recorder()
    writer = GroupCommit(store)
    writer.start()
    pending = [asyncio.create_task(writer.submit(apply, {"key": f"k{i}"})) for i in range(50)]
    await asyncio.sleep(0)  # submitted; the writer may be in the middle of committing some
    stopping = asyncio.create_task(writer.stop())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="stopping"):
        await writer.submit(apply, {"key": "late"})
    await stopping
    assert [await p for p in pending] == [f"k{i}" for i in range(50)], "every caller is told its write went through"
    assert await keys_in_db(store) == {f"k{i}" for i in range(50)}
    assert apply.commits == len(apply.transactions), "the committed hooks ran for every transaction"
    with pytest.raises(RuntimeError, match="not running"):
        await writer.submit(apply, {"key": "after"})


async def test_group_commit_respects_max_batch(store: Store) -> None:
    apply = Recorder()
    writer = GroupCommit(store, max_batch=10)
    writer.start()
    try:
        await writer.submit_many(apply, [{"key": f"k{i}"} for i in range(55)])
    finally:
        await writer.stop()
    assert max(apply.transactions) <= 10
    assert sum(apply.transactions) == 55
    assert len(await keys_in_db(store)) == 55


async def test_one_bad_item_fails_alone_and_the_others_commit(store: Store) -> None:
    async with store.write() as conn:
        await conn.execute(dedup.insert().values(key="taken", seen_at=1.0, expires_at=2.0))
    apply = Recorder()
    writer = GroupCommit(store)
    writer.start()
    try:
        items = [{"key": f"ok{i}"} for i in range(20)]
        items.insert(7, {"key": "taken"})  # violates the primary key: the whole transaction fails
        results = await asyncio.gather(*(writer.submit(apply, i) for i in items), return_exceptions=True)
    finally:
        await writer.stop()
    bad = results.pop(7)
    assert isinstance(bad, IntegrityError), bad
    assert results == [f"ok{i}" for i in range(20)]
    assert await keys_in_db(store) == {"taken"} | {f"ok{i}" for i in range(20)}
    # It was tried together first, then split.
    assert apply.transactions[0] > 1
    assert apply.transactions.count(1) >= 21


async def test_an_item_refused_by_apply_gets_its_exception_and_the_batch_commits(store: Store) -> None:
    apply = Recorder()
    writer = GroupCommit(store)
    writer.start()
    try:
        items = [{"key": f"k{i}", "refuse": i == 3} for i in range(10)]
        results = await asyncio.gather(*(writer.submit(apply, i) for i in items), return_exceptions=True)
    finally:
        await writer.stop()
    assert isinstance(results[3], ValueError) and "refused k3" in str(results[3])
    assert [r for i, r in enumerate(results) if i != 3] == [f"k{i}" for i in range(10) if i != 3]
    assert await keys_in_db(store) == {f"k{i}" for i in range(10) if i != 3}
    assert len(apply.transactions) <= 2, "a per-item refusal does not split the batch"


async def test_submit_many_shares_one_transaction_and_raises_a_refusal_once_all_are_written(store: Store) -> None:
    apply = Recorder()
    writer = GroupCommit(store)
    writer.start()
    try:
        assert await writer.submit_many(apply, [{"key": f"a{i}"} for i in range(30)]) == [f"a{i}" for i in range(30)]
        assert apply.transactions == [30], "queued together, written together"
        with pytest.raises(ValueError, match="refused b2"):
            await writer.submit_many(apply, [{"key": f"b{i}", "refuse": i == 2} for i in range(5)])
    finally:
        await writer.stop()
    assert await keys_in_db(store) == {f"a{i}" for i in range(30)} | {f"b{i}" for i in range(5) if i != 2}


async def test_group_commit_answers_only_after_the_commit(store: Store, db_url: str) -> None:
    """When submit returns, another connection already sees the row."""
    other = Store(db_url)
    apply = Recorder()
    writer = GroupCommit(store)
    writer.start()
    try:
        for i in range(5):
            await writer.submit(apply, {"key": f"durable{i}"})
            assert f"durable{i}" in await keys_in_db(other)
    finally:
        await writer.stop()
        await other.close()


async def test_submit_before_start_is_an_error(store: Store) -> None:
    writer = GroupCommit(store)
    with pytest.raises(RuntimeError, match="not running"):
        await writer.submit(Recorder(), {"key": "x"})


async def test_different_kinds_of_write_share_one_transaction(store: Store) -> None:
    first, second = Recorder(), Recorder()
    writer = GroupCommit(store)
    writer.start()
    try:
        results = await asyncio.gather(
            *(writer.submit(first if i % 2 else second, {"key": f"m{i}"}) for i in range(40))
        )
    finally:
        await writer.stop()
    assert results == [f"m{i}" for i in range(40)]
    assert len(first.transactions) == len(second.transactions) <= 3
    assert await keys_in_db(store) == {f"m{i}" for i in range(40)}


async def test_a_failing_committed_hook_does_not_stop_the_writer(store: Store) -> None:
    class Broken(Recorder):
        def committed(self, items: list[dict[str, Any]], results: list[Any]) -> None:
            raise RuntimeError("hook bug")

    writer = GroupCommit(store)
    writer.start()
    try:
        assert await writer.submit(Broken(), {"key": "a"}) == "a"
        assert await writer.submit(Recorder(), {"key": "b"}) == "b"
    finally:
        await writer.stop()
