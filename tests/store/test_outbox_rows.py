"""The outbox's hot statements over many rows, on SQLite (chunks of VALUES rows) and PostgreSQL
(executemany): every row written once, whatever the count; outcomes for the right lease only."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from tidings.delivery import outbox
from tidings.delivery.outbox import Result
from tidings.ids import new_id
from tidings.store.engine import Store
from tidings.store.tables import deliveries, messages


def _message_row(now: float) -> tuple[object, ...]:
    return (new_id(), now, "t", 2, None, None, None, "{}", None, None, "default")


def _delivery_row(message_id: str, now: float, owner: str | None = "me") -> tuple[object, ...]:
    return (new_id(), message_id, "ops", None, "sending", 2, 0, now, now, now, now + 60, owner, None, None, None, None, None)


@pytest.mark.parametrize("count", [0, 1, 5, 64, 85, 300])
async def test_any_number_of_rows_is_written_once(store: Store, count: int) -> None:
    now = time.time()
    rows = [_message_row(now) for _ in range(count)]
    async with store.write() as conn:
        await outbox._INSERT_MESSAGE.run(conn, rows)
    async with store.read() as conn:
        ids = sorted(r.id for r in await conn.execute(select(messages.c.id)))
    assert ids == sorted(r[0] for r in rows)


async def test_outcomes_land_on_their_own_lease_only_and_the_first_result_wins(store: Store) -> None:
    now = time.time()
    message = _message_row(now)
    mine = [_delivery_row(str(message[0]), now) for _ in range(70)]
    theirs = _delivery_row(str(message[0]), now, owner="another worker")
    async with store.write() as conn:
        await outbox._INSERT_MESSAGE.run(conn, [message])
        await outbox._INSERT_DELIVERY.run(conn, [*mine, theirs])
    results = [Result(str(r[0]), "ops", "delivered", 1, now, None, f"remote-{i}", 12.5, now) for i, r in enumerate(mine)]
    results.append(Result(str(theirs[0]), "ops", "delivered", 1, now, None, "stolen", 1.0, now))
    # The same delivery twice in one batch: the first result ends the lease and is the one kept.
    results.insert(0, Result(str(mine[0][0]), "ops", "dead", 1, now, "HTTP 400", None, 3.0))
    async with store.write() as conn:
        await outbox.record(conn, "me", results, now)
    async with store.read() as conn:
        rows = {r.id: r for r in await conn.execute(select(deliveries))}
        delivered = (await conn.execute(select(func.count()).where(deliveries.c.status == "delivered"))).scalar()
    assert delivered == 69
    first = rows[str(mine[0][0])]
    assert (first.status, first.last_error, first.remote_id, first.lease_owner) == ("dead", "HTTP 400", None, None)
    assert rows[str(mine[1][0])].remote_id == "remote-1" and rows[str(mine[1][0])].latency_ms == 12.5
    stolen = rows[str(theirs[0])]
    assert stolen.status == "sending" and stolen.lease_owner == "another worker", "someone else's lease is left alone"
