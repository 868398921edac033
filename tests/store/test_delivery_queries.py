"""The dispatcher's queries on SQLite read the partial index of active deliveries. Planned on
their own, they sorted every delivery the integration ever had on every claim (found by
bench/throughput.py: claiming from 40,000 stored deliveries cost more CPU than sending them)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import bindparam, text

from tidings.delivery.outbox import _CLAIM, _NEXT_DUE
from tidings.delivery.queries import queue_gauges
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
            assert "ix_deliveries_integration" not in plan, plan
        claim = await _plan(store, _CLAIM["sqlite"].text, params)
        assert "TEMP B-TREE" not in claim, claim  # served in claim order, never sorted
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
