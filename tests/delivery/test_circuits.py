"""The circuit breaker shared by every process on one database (SQLite and PostgreSQL): stored
transitions, what an API-only hub reports, workers converging, the backlog resuming when the
peer comes back, and one log line per transition."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from helpers import eventually
from peer import Peer
from sink import Reply
from sqlalchemy import select, update

import tidings.delivery.circuits
import tidings.delivery.throttle
from tidings import Message
from tidings.delivery import circuits
from tidings.delivery.throttle import BreakerState
from tidings.store.engine import Store
from tidings.store.tables import deliveries


def hook(peer: Peer, **breaker: Any) -> dict[str, Any]:
    return {
        "kind": "webhook",
        "url": peer.url + "/hook",
        "retry": {"base": 60, "cap": 60, "max_attempts": 100},
        "breaker": {"min_calls": 3, "failure_rate": 0.5, "cool_off": 0.2, "max_cool_off": 0.4, **breaker},
    }


def routed(ops: dict[str, Any]) -> dict[str, Any]:
    return {"integrations": {"ops": ops}, "default": {"to": ["ops"]}}


async def statuses(hub: Any, ids: list[str]) -> list[str]:
    return [(await hub.message(i))["deliveries"][0]["status"] for i in ids]


async def circuit(hub: Any) -> str:
    return {i["name"]: i for i in await hub.integrations()}["ops"]["circuit"]


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """The breaker's log lines (fresh loggers, so that a logger cached earlier can't miss them)."""
    with pytest.MonkeyPatch.context() as mp, structlog.testing.capture_logs() as captured:
        for module in (tidings.delivery.circuits, tidings.delivery.throttle):
            mp.setattr(module, "log", structlog.get_logger("tidings.dispatcher"))
        yield captured


# -- the stored state --------------------------------------------------------------------------
async def test_transitions_are_stored_compare_and_set(store: Store) -> None:
    now = time.time()
    opened = BreakerState("open", 1, 2.0, now, now + 2.0)
    async with store.write() as conn:
        assert await circuits.circuits(conn, ["ops", "other"], now) == {"ops": "closed", "other": "closed"}
        assert await circuits.store(conn, "ops", 0, opened, now, 10.0) is None
        # A second process that opened it at the same time lost: it gets the row to adopt.
        assert await circuits.store(conn, "ops", 0, BreakerState("open", 1, 1.0, now, now + 1.0), now, 10.0) == opened
        assert await circuits.store(conn, "ops", 5, BreakerState("closed", 6, 1.0, now), now, 10.0) == opened
        assert await circuits.circuits(conn, ["ops", "other"], now) == {"ops": "open", "other": "closed"}
        assert (await circuits.circuits(conn, ["ops"], now + 2.0))["ops"] == "half-open"
        closed = BreakerState("closed", 2, 1.0, now)
        assert await circuits.store(conn, "ops", 1, closed, now + 3, 10.0) is None
        assert await circuits.load(conn, ["ops"]) == {"ops": closed}
        assert (await circuits.circuits(conn, ["ops"], now + 3))["ops"] == "closed"


async def test_closing_makes_the_deliveries_held_back_due(make_hub: Any, peer: Peer) -> None:
    writer = await make_hub(routed(hook(peer)), dispatch=False)
    ids = [(await writer.notify(Message(f"m{i}"))).deliveries[0].id for i in range(4)]
    now = time.time()
    opened_at = now - 30
    rows = {  # id -> (status, next_attempt_at, updated_at)
        ids[0]: ("retrying", now + 3600, now - 20),  # failed during the outage: a long retry
        ids[1]: ("pending", now + 50, now - 5),  # handed back while the breaker was open
        ids[2]: ("retrying", now + 3600, opened_at - 100),  # failed long before the outage: its own delay
        ids[3]: ("sending", now + 100, now - 5),  # leased to a worker: not ours to move
    }
    async with writer.store.write() as conn:
        for i, (status, due, touched) in rows.items():
            await conn.execute(update(deliveries).where(deliveries.c.id == i)
                               .values(status=status, next_attempt_at=due, updated_at=touched))
        assert await circuits.store(conn, "ops", 0, BreakerState("open", 1, 4.0, opened_at, now + 1), now, 10.0) is None
        assert await circuits.store(conn, "ops", 1, BreakerState("closed", 2, 1.0, opened_at), now, 10.0) is None
        due = dict((await conn.execute(select(deliveries.c.id, deliveries.c.next_attempt_at))).all())
    assert due[ids[0]] == pytest.approx(now) and due[ids[1]] == pytest.approx(now)
    assert due[ids[2]] == pytest.approx(now + 3600) and due[ids[3]] == pytest.approx(now + 100)


# -- every process sees it -----------------------------------------------------------------------
async def test_an_api_only_hub_reports_the_workers_breaker(make_hub: Any, peer: Peer) -> None:
    """`serve --no-dispatch` showed `circuit: null` while a worker held deliveries back."""
    peer.default = Reply(503)
    config = routed(hook(peer, cool_off=30, max_cool_off=30))
    worker = await make_hub(config)
    api = await make_hub(config, dispatch=False)
    assert await circuit(api) == "closed"
    for i in range(3):
        await api.notify(Message(f"m{i}"))

    async def opened() -> bool:
        return await circuit(api) == "open"

    await eventually(opened)
    ops = {i["name"]: i for i in await api.integrations()}["ops"]
    assert ops["health"] == "circuit-open"
    assert worker.dispatcher.breaker_state("ops") == "open"


async def test_the_cli_reports_the_workers_breaker(make_hub: Any, peer: Peer, db_url: str, tmp_path: Path) -> None:
    """`tidings integrations` runs without a dispatcher: it showed no circuit at all."""
    peer.default = Reply(503)
    config = routed(hook(peer, cool_off=30, max_cool_off=30))
    worker = await make_hub(config)
    for i in range(3):
        await worker.notify(Message(f"m{i}"))
    await eventually(lambda: _is_open(worker))
    path = tmp_path / "tidings.yaml"
    path.write_text(json.dumps({**config, "server": {"database": db_url}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(TIDINGS_CONFIG=str(path), TIDINGS_KEY_FILE=str(tmp_path / "tidings.key"))
    cli = await asyncio.create_subprocess_exec(str(Path(sys.executable).with_name("tidings")), "integrations", "--json",
                                               env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(cli.communicate(), 60)
    assert cli.returncode == 0, err
    ops = {i["name"]: i for i in json.loads(out)}["ops"]
    assert ops["circuit"] == "open" and ops["health"] == "circuit-open"


async def _is_open(hub: Any) -> bool:
    return await circuit(hub) == "open"


async def test_workers_on_one_database_converge(make_hub: Any, peer: Peer) -> None:
    peer.default = Reply(503)
    config = routed(hook(peer, cool_off=0.3, max_cool_off=0.3))
    a = await make_hub(config)
    b = await make_hub(config)
    for i in range(3):
        await a.notify(Message(f"m{i}"))  # leased to a's own dispatcher: b sends nothing itself

    async def both(state: str) -> bool:
        return a.dispatcher.breaker_state("ops") in state and b.dispatcher.breaker_state("ops") in state

    await eventually(lambda: both("open half-open"))
    assert len(b.dispatcher.circuits.breakers["ops"]._window._buckets) == 0, "b adopted it, not counted it"
    peer.default = Reply(200)
    await eventually(lambda: both("closed"))

    async def stored_closed() -> bool:
        return await circuit(a) == await circuit(b) == "closed"

    await eventually(stored_closed)


async def test_the_backlog_resumes_promptly_when_the_peer_returns(
    make_hub: Any, peer: Peer, logged: list[dict[str, Any]]
) -> None:
    """Deliveries that failed during the outage (retry in 60 s, as the peer's Retry-After asked)
    and those queued behind the open breaker all go within seconds of the peer's return."""
    peer.default = Reply(503, headers={"Retry-After": "60"})
    hub = await make_hub(routed(hook(peer)))
    failed = [(await hub.notify(Message(f"failed-{i}"))).id for i in range(3)]

    async def opened() -> bool:
        return hub.dispatcher.breaker_state("ops") != "closed" and await circuit(hub) != "closed"

    await eventually(opened)
    queued = [(await hub.notify(Message(f"queued-{i}"))).id for i in range(5)]
    await eventually(lambda: _all(statuses(hub, failed), "retrying"))
    async with hub.store.read() as conn:
        later = (await conn.execute(select(deliveries.c.next_attempt_at).where(deliveries.c.id.in_(
            [d["id"] for i in failed for d in (await hub.message(i))["deliveries"]])))).scalars().all()
    assert min(later) > time.time() + 30, "the failed ones wait out the Retry-After..."
    peer.default = Reply(200)
    await eventually(lambda: _all(statuses(hub, failed + queued), "delivered"), timeout=10)  # ...or did before
    assert await circuit(hub) == "closed"
    events = [e["event"] for e in logged if e["event"].startswith("breaker.")]
    assert events.count("breaker.opened") == 1 and events.count("breaker.closed") == 1, events
    assert events[0] == "breaker.opened" and events[-1] == "breaker.closed"
    assert "breaker.half_open" in events
    assert len(events) < 40, "one line per transition, not per send"


async def _all(values: Any, status: str) -> bool:
    return all(v == status for v in await values)
