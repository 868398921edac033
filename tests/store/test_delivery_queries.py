"""The dispatcher's queries on SQLite read the partial index of active deliveries. Planned on
their own, they sorted every delivery the integration ever had on every claim (found by
bench/throughput.py: claiming from 40,000 stored deliveries cost more CPU than sending them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, event, text

from tidings.delivery import queries, stats
from tidings.delivery.outbox import _CLAIM, _NEXT_DUE
from tidings.delivery.stats import queue_gauges
from tidings.store.engine import Store


async def _plan(store: Store, sql: str, params: dict[str, object]) -> str:
    explain = text("EXPLAIN QUERY PLAN " + sql)
    if ":names" in sql:
        explain = explain.bindparams(bindparam("names", expanding=True))
    async with store.read() as conn:
        return " | ".join(str(row[-1]) for row in (await conn.execute(explain, params)).all())


async def test_due_delivery_queries_use_the_partial_index(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        await store.migrate()
        params = {"owner": "o", "until": 1.0, "names": ["ops", "slack"], "now": 1.0, "limit": 100}
        for stmt in (_CLAIM["sqlite"], _NEXT_DUE["sqlite"]):
            plan = await _plan(store, stmt.text, params)
            assert "ix_deliveries_due" in plan, plan
            assert "SEARCH ahead USING INDEX ix_deliveries_thread (integration=? AND thread=?)" in plan, plan
            assert "ix_deliveries_integration_id" not in plan, plan
        claim = await _plan(store, _CLAIM["sqlite"].text, params)
        assert "TEMP B-TREE" not in claim, claim  # served in claim order, never sorted
    finally:
        await store.close()


async def test_due_delivery_queries_use_the_partial_index_on_postgresql(pg_url: str) -> None:
    """With 100,000 finished deliveries and 100 waiting, PostgreSQL claims and finds the next due
    time through the partial index too (its condition, OR-ed equalities, is implied by the queries')."""
    store = Store(pg_url)
    try:
        await store.migrate()
        async with store.write() as conn:
            await conn.execute(text("INSERT INTO messages (id, created_at, title, priority, data) VALUES ('m', 1, 't', 2, '{}')"))
            await conn.execute(
                text(
                    "INSERT INTO deliveries (id, message_id, integration, status, priority, attempts, created_at,"
                    " updated_at, queued_at, next_attempt_at) SELECT 'd' || g, 'm', 'ops',"
                    " CASE WHEN g % 1000 = 0 THEN 'pending' ELSE 'delivered' END, 2, 0, g, g, g, g"
                    " FROM generate_series(1, 100000) g"
                )
            )
        async with store.write() as conn:
            await conn.execute(text("ANALYZE deliveries"))
        params = {"owner": "o", "until": 1.0, "names": ["ops", "slack"], "now": 1e9, "limit": 100}
        for stmt in (_CLAIM["postgresql"], _NEXT_DUE["postgresql"]):
            explain = text("EXPLAIN " + stmt.text).bindparams(bindparam("names", expanding=True))
            async with store.read() as conn:
                plan = " | ".join(row[0] for row in (await conn.execute(explain, params)).all())
            assert "ix_deliveries_due" in plan, plan
            assert "Index Scan using ix_deliveries_thread on deliveries ahead" in plan, plan  # a thread's turn
            assert "Seq Scan" not in plan, plan
    finally:
        await store.close()


async def test_queue_gauges_count_only_active_deliveries(store: Store) -> None:
    rows = [
        ("d1", "ops", "pending", 100.0),
        ("d2", "ops", "sending", 90.0),
        ("d3", "ops", "delivered", 10.0),
        ("d4", "slack", "retrying", 95.0),
        ("d5", "slack", "dead", 5.0),
    ]
    async with store.write() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO messages (id, created_at, title, priority, data) VALUES ('m', 1, 't', 2, '{}')"
        )
        for d_id, integration, status, created in rows:
            await conn.execute(
                text(
                    "INSERT INTO deliveries (id, message_id, integration, status, priority, attempts, created_at,"
                    " updated_at, queued_at, next_attempt_at) VALUES (:id, 'm', :i, :s, 2, 0, :c, :c, :c, :c)"
                ),
                {"id": d_id, "i": integration, "s": status, "c": created},
            )
    async with store.read() as conn:
        depth, oldest_age = await queue_gauges(conn, now=200.0)
    assert depth == {"ops": 2, "slack": 1}
    assert oldest_age == 110.0


async def test_what_people_read_never_scans_or_sorts_the_history(tmp_path: Path) -> None:
    """Stats, health, latencies, last error and every listing read an index range: each plan
    is checked for a full scan of deliveries or a sort of its rows."""
    store = Store(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        await store.migrate()
        seen: list[tuple[str, Any]] = []

        def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "deliveries" in statement:
                seen.append((statement, parameters))

        assert store.sync_engine is not None
        event.listen(store.sync_engine, "before_cursor_execute", capture)
        async with store.read() as conn:
            await stats.integration_stats(conn, ["ops", "slack"])
            await queries.list_deliveries(conn, integration="ops")
            await queries.list_deliveries(conn, integration="ops", before="0193")
            for status in ("dead", "retrying", "pending", "suppressed", "grouped"):
                await queries.list_deliveries(conn, status=status)
        event.remove(store.sync_engine, "before_cursor_execute", capture)
        assert len(seen) >= 12
        assert store.sync_engine is not None
        with store.sync_engine.connect() as raw:
            for statement, parameters in seen:
                steps = [str(r[-1]) for r in raw.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
                # Scanning the partial index of active deliveries is fine: it holds only the work left.
                scans = [st for st in steps if st.startswith("SCAN deliveries") and "ix_deliveries_due" not in st]
                assert not scans, (statement, steps)
                assert not any("TEMP B-TREE FOR ORDER BY" in st for st in steps), (statement, steps)
    finally:
        await store.close()


async def test_stats_count_the_last_day_and_whatever_still_waits(store: Store) -> None:
    from tidings.ids import id_floor

    now = 1_800_000_000.0
    day = 24 * 3600

    def an_id(at: float, n: int) -> str:
        return id_floor(at)[:-2] + f"{n:02d}"

    rows = [
        (an_id(now - 60, 1), "delivered", 1),
        (an_id(now - 120, 2), "dead", 3),
        (an_id(now - 2 * day, 3), "delivered", 1),  # too old to count
        (an_id(now - 2 * day, 4), "retrying", 2),  # old, but still waiting: counted
        (an_id(now - 30, 5), "pending", 0),
        (an_id(now - 10, 6), "suppressed", 0),
    ]
    async with store.write() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO messages (id, created_at, title, priority, data) VALUES ('m', 1, 't', 2, '{}')"
        )
        for d_id, status, attempts in rows:
            await conn.execute(
                text(
                    "INSERT INTO deliveries (id, message_id, integration, status, priority, attempts, created_at,"
                    " updated_at, queued_at, next_attempt_at, latency_ms, last_error) VALUES"
                    " (:id, 'm', 'ops', :s, 2, :a, 0, 0, 0, 0, :lat, :err)"
                ),
                {"id": d_id, "s": status, "a": attempts, "lat": 12.5 if status == "delivered" else None,
                 "err": "HTTP 500" if status in ("dead", "retrying") else None},
            )
    async with store.read() as conn:
        s = (await stats.integration_stats(conn, ["ops", "idle"], now=now))["ops"]
    assert (s.sent, s.failed, s.retrying, s.pending, s.suppressed) == (1, 1, 1, 1, 1)
    assert s.success_rate == 50.0
    assert s.recent_attempted == 4 and s.recent_failure_ratio == 0.5
    assert s.p50_ms == 12.5 and s.last_error == "HTTP 500"
