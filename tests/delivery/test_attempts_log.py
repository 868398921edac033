"""Each delivery's attempts, on SQLite and PostgreSQL: the failed ones are kept (when, outcome, the
peer's status, latency, the masked error), the delivered one comes from the delivery row, and they
go with their delivery."""

from __future__ import annotations

import base64
import time
from typing import Any

from helpers import eventually
from peer import Peer
from sink import Reply
from sqlalchemy import func, select

from tidings import Message
from tidings.retention import prune
from tidings.store.tables import delivery_attempts

SECRET = "whsec_" + base64.b64encode(b"attempts-log-secret-0123456789ab").decode()


def hook(peer: Peer, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "webhook",
        "url": peer.url + "/hook",
        "retry": {"base": 0.02, "cap": 0.05, "max_attempts": 5},
        "breaker": {"failures": 1000},
        **extra,
    }


def routed(ops: dict[str, Any]) -> dict[str, Any]:
    return {"integrations": {"ops": ops}, "default": {"to": ["ops"]}}


async def finished(hub: Any, message_id: str, status: str = "delivered") -> dict[str, Any]:
    async def done() -> bool:
        return (await hub.message(message_id))["deliveries"][0]["status"] == status

    await eventually(done, timeout=10)
    return (await hub.message(message_id))["deliveries"][0]


async def rows(hub: Any) -> list[Any]:
    async with hub.store.read() as conn:
        return list(await conn.execute(select(delivery_attempts).order_by(delivery_attempts.c.id)))


async def test_failed_attempts_then_the_delivered_one_in_order(make_hub: Any, peer: Peer) -> None:
    peer.script(Reply(500, body="database on fire"), Reply(429, body="slow down", headers={"Retry-After": "0"}), 200)
    hub = await make_hub(routed(hook(peer)))
    r = await hub.notify(Message("flaky"))
    d = await finished(hub, r.id)
    log = d["attempts_log"]
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in log] == [
        (1, "retry", 500), (2, "retry", 429), (3, "delivered", None)]
    assert "database on fire" in log[0]["error"] and log[0]["error"].startswith("HTTP 500")
    assert "slow down" in log[1]["error"]
    assert all(a["latency_ms"] is not None and a["latency_ms"] >= 0 for a in log)
    assert log[0]["at"] <= log[1]["at"] <= log[2]["at"] == d["delivered_at"]
    assert log[2]["latency_ms"] == d["latency_ms"] and log[2]["error"] is None
    assert len(await rows(hub)) == 2, "a successful attempt writes no row"
    shown = await hub.delivery(d["id"])
    assert shown["attempts_log"] == log
    listed = await hub.deliveries(integration="ops")
    assert [x["attempts_log"] for x in listed["items"]] == [log]


async def test_a_reset_and_a_timeout_have_no_status(make_hub: Any, peer: Peer) -> None:
    peer.script(Reply(action="reset"), Reply(delay=5), 200)
    hub = await make_hub(routed(hook(peer, timeout=0.5)))
    r = await hub.notify(Message("unreachable"))
    d = await finished(hub, r.id)
    failed = d["attempts_log"][:-1]
    assert [(a["outcome"], a["status_code"]) for a in failed] == [("retry", None), ("retry", None)]
    assert all(a["error"] for a in failed)
    assert "timed out" in failed[1]["error"]


async def test_a_dead_delivery_ends_with_a_dead_attempt_and_secrets_stay_masked(make_hub: Any, peer: Peer) -> None:
    peer.default = Reply(503, body=f"your signing secret {SECRET} is wrong")
    hub = await make_hub(routed(hook(peer, secret=SECRET, retry={"base": 0.02, "cap": 0.05, "max_attempts": 2})))
    r = await hub.notify(Message("doomed"))
    d = await finished(hub, r.id, "dead")
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in d["attempts_log"]] == [
        (1, "retry", 503), (2, "dead", 503)]
    assert d["attempts_log"][-1]["error"] == d["last_error"]
    stored = await rows(hub)
    assert len(stored) == 2
    secret_part = SECRET.removeprefix("whsec_")
    for row in stored:
        assert row.error and "is wrong" in row.error
        assert SECRET not in row.error and secret_part not in row.error


async def test_retention_deletes_the_attempts_with_their_delivery(make_hub: Any, peer: Peer) -> None:
    peer.script(500, 500, 200)
    hub = await make_hub(routed(hook(peer)))
    r = await hub.notify(Message("old"))
    await finished(hub, r.id)
    assert len(await rows(hub)) == 2
    pruned = await prune(hub.store, hub.config.retention, now=time.time() + 400 * 86400.0)
    assert pruned["messages"] == 1
    async with hub.store.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(delivery_attempts))).scalar() == 0
