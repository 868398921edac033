"""The event processor's queries on SQLite use the partial index of due events: without it they
scan every event ever received, on every wake-up (found by bench/ingest.py: the rate halved with
each round)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import bindparam, text

from tidings.inbound import _SQLITE_CLAIM, _SQLITE_NEXT_DUE
from tidings.store.engine import Store


async def test_due_event_queries_use_the_partial_index(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        await store.migrate()
        params = {"owner": "o", "until": 1.0, "names": ["gh", "jira"], "now": 1.0, "limit": 100}
        async with store.read() as conn:
            for sql in (_SQLITE_NEXT_DUE.text, _SQLITE_CLAIM.element.text):
                explain = text("EXPLAIN QUERY PLAN " + sql).bindparams(bindparam("names", expanding=True))
                plan = " | ".join(str(row[-1]) for row in (await conn.execute(explain, params)).all())
                assert "ix_events_due" in plan, plan
                assert "ux_events_delivery" not in plan, plan
    finally:
        await store.close()
