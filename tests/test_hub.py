"""The embedded hub end to end, on SQLite and PostgreSQL: store, route, deliver, dedup,
idempotency, retry by hand, restart."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from helpers import eventually
from sink import Reply, Sink
from sqlalchemy import update

from tidings import IdempotencyConflict, Message, UnknownIntegration
from tidings.store.tables import dedup


def webhook(sink: Sink, **extra: Any) -> dict[str, Any]:
    return {"kind": "webhook", "url": sink.url + "/hook", "retry": {"base": 0.05, "cap": 0.2}, **extra}


async def test_notify_delivers_to_the_default_inbox(make_hub: Any) -> None:
    hub = await make_hub()
    receipt = await hub.notify(Message("Disk full", "on web-01", priority="high", fields={"host": "web-01"}))
    assert [d.integration for d in receipt.deliveries] == ["inbox"]
    message = await hub.wait(receipt.id, timeout=10)
    assert message["deliveries"][0]["status"] == "delivered"
    assert message["deliveries"][0]["attempts"] == 1
    assert message["deliveries"][0]["remote_id"].startswith("inbox:")
    items = (await hub.inbox())["items"]
    assert items[0]["message"]["title"] == "Disk full"
    assert items[0]["message"]["fields"] == [["host", "web-01"]]


async def test_routes_pick_targets_and_explicit_to_bypasses_them(make_hub: Any, sink: Sink) -> None:
    hub = await make_hub(
        {
            "integrations": {"ops": webhook(sink)},
            "routes": [{"name": "urgent", "match": {"priority": ">=high"}, "to": ["ops"]}],
        }
    )
    urgent = await hub.notify(Message("down", priority="critical"))
    calm = await hub.notify(Message("fyi", priority="low"))
    forced = await hub.notify(Message("forced", priority="low"), to=["ops", "inbox"])
    assert [(d.integration) for d in urgent.deliveries] == ["ops"]
    assert [(d.integration) for d in calm.deliveries] == ["inbox"]
    assert sorted(d.integration for d in forced.deliveries) == ["inbox", "ops"]
    for r in (urgent, calm, forced):
        await hub.wait(r.id)
    titles = sorted(r.json()["data"]["title"] for r in sink.received)
    assert titles == ["down", "forced"]
    with pytest.raises(UnknownIntegration):
        await hub.notify(Message("x"), to=["slak"])


async def test_same_dedup_key_inside_cooldown_is_suppressed(make_hub: Any, sink: Sink) -> None:
    hub = await make_hub({"integrations": {"ops": webhook(sink)}, "default": {"to": ["ops"], "cooldown": 3600}})
    first = await hub.notify(Message("disk full", dedup_key="disk:web-01"))
    second = await hub.notify(Message("disk full again", dedup_key="disk:web-01"))
    other = await hub.notify(Message("disk full elsewhere", dedup_key="disk:web-02"))
    assert first.deliveries[0].status in ("pending", "sending")
    assert second.deliveries[0].status == "suppressed"
    assert other.deliveries[0].status in ("pending", "sending")
    why = (await hub.message(second.id))["deliveries"][0]["last_error"]
    assert why == "a duplicate: dedup_key 'disk:web-01' already sent within the 3600s cooldown"
    # The window ends (moved into the past here rather than waited for): the next one is sent.
    async with hub.store.write() as conn:
        await conn.execute(update(dedup).values(expires_at=time.time() - 1))
    after = await hub.notify(Message("disk still full", dedup_key="disk:web-01"))
    assert after.deliveries[0].status in ("pending", "sending")
    for r in (first, other, after):
        await hub.wait(r.id)
    assert len(sink.received) == 3
    stats = {i["name"]: i["stats"] for i in await hub.integrations()}
    assert stats["ops"]["suppressed"] == 1
    assert stats["ops"]["sent"] == 3
    assert stats["ops"]["last_error"] is None, "why a delivery was suppressed is not an error"


async def test_idempotency_key_replays_and_conflicts(make_hub: Any) -> None:
    hub = await make_hub()
    a = await hub.notify(Message("once"), idempotency_key="k-1")
    b = await hub.notify(Message("once"), idempotency_key="k-1")
    assert b.replay and b.id == a.id and [d.id for d in b.deliveries] == [d.id for d in a.deliveries]
    with pytest.raises(IdempotencyConflict):
        await hub.notify(Message("twice"), idempotency_key="k-1")
    # Concurrent duplicates in one group commit resolve to one message too.
    many = await asyncio.gather(*(hub.notify(Message("burst"), idempotency_key="k-2") for _ in range(20)))
    assert len({r.id for r in many}) == 1
    assert sum(not r.replay for r in many) == 1


async def test_retryable_failures_back_off_then_deliver(make_hub: Any, sink: Sink) -> None:
    sink.script(503, Reply(429, headers={"Retry-After": "0"}), 200)
    hub = await make_hub({"integrations": {"ops": webhook(sink)}, "default": {"to": ["ops"]}})
    r = await hub.notify(Message("flaky"))

    async def delivered() -> bool:
        return (await hub.message(r.id))["deliveries"][0]["status"] == "delivered"

    await eventually(delivered, timeout=10)
    d = (await hub.message(r.id))["deliveries"][0]
    assert d["attempts"] == 3
    ids = {x.json()["id"] for x in sink.received}
    assert ids == {d["id"]}, "every attempt carries the same idempotency id"


async def test_permanent_failure_is_dead_and_retry_by_hand_brings_it_back(make_hub: Any, sink: Sink) -> None:
    sink.script(Reply(400, body="bad field"))
    hub = await make_hub({"integrations": {"ops": webhook(sink)}, "default": {"to": ["ops"]}})
    r = await hub.notify(Message("rejected"))
    m = await hub.wait(r.id)
    d = m["deliveries"][0]
    assert d["status"] == "dead"
    assert "HTTP 400" in d["last_error"] and "bad field" in d["last_error"]
    dead = await hub.deliveries(status="dead")
    assert [x["id"] for x in dead["items"]] == [d["id"]]
    again = await hub.retry(d["id"])
    assert again["status"] == "pending" and again["attempts"] == 0

    async def delivered() -> bool:
        return (await hub.message(r.id))["deliveries"][0]["status"] == "delivered"

    await eventually(delivered)


async def test_gives_up_after_max_attempts(make_hub: Any, sink: Sink) -> None:
    sink.default = Reply(500)
    hub = await make_hub(
        {"integrations": {"ops": webhook(sink, retry={"base": 0.01, "cap": 0.02, "max_attempts": 3}, breaker={"failures": 100})},
         "default": {"to": ["ops"]}}
    )
    r = await hub.notify(Message("never"))

    async def dead() -> bool:
        return (await hub.message(r.id))["deliveries"][0]["status"] == "dead"

    await eventually(dead)
    d = (await hub.message(r.id))["deliveries"][0]
    assert d["attempts"] == 3
    assert d["last_error"].startswith("gave up after 3 attempts: HTTP 500")
    assert len(sink.received) == 3


async def test_a_restart_resumes_from_the_rows(make_hub: Any, sink: Sink) -> None:
    """Stored but not yet sent: a new hub on the same database delivers it."""
    config = {"integrations": {"ops": webhook(sink)}, "default": {"to": ["ops"]}}
    writer = await make_hub(config, dispatch=False)
    receipts = [await writer.notify(Message(f"m{i}")) for i in range(5)]
    await writer.stop()
    assert sink.received == []
    worker = await make_hub(config)
    for r in receipts:
        m = await worker.wait(r.id)
        assert m["deliveries"][0]["status"] == "delivered"
    assert sorted(x.json()["data"]["title"] for x in sink.received) == [f"m{i}" for i in range(5)]


async def test_an_empty_idempotency_key_is_no_key(make_hub: Any) -> None:
    hub = await make_hub(dispatch=False)
    first = await hub.notify(Message("one"), idempotency_key="")
    second = await hub.notify(Message("two"), idempotency_key="")
    assert first.id != second.id and not second.replay


async def test_a_message_accepted_while_the_hub_stops_is_sent_or_handed_back(make_hub: Any, sink: Sink) -> None:
    """Its transaction may end after the dispatcher stopped taking work: the delivery must not stay
    leased to a process that is gone (it would wait for the lease to run out)."""
    from sqlalchemy import select

    from tidings.store.tables import deliveries

    hub = await make_hub({"integrations": {"ops": webhook(sink)}, "default": {"to": ["ops"]}})
    apply = hub._writer.apply

    async def slow_apply(conn: Any, items: Any) -> Any:  # a slow database
        results = await apply(conn, items)
        await asyncio.sleep(0.5)
        return results

    hub._writer.apply = slow_apply  # type: ignore[method-assign]
    late = [asyncio.create_task(hub.notify(Message(f"late {i}"))) for i in range(20)]
    await asyncio.sleep(0.05)  # submitted and leased; the transaction is still open
    await hub.stop(timeout=0.05)
    receipts = [await t for t in late]
    db = await make_hub(dispatch=False)
    async with db.store.read() as conn:
        rows = (await conn.execute(select(deliveries.c.status, deliveries.c.lease_owner))).all()
    assert len(rows) == len(receipts) == 20
    for status, owner in rows:
        assert status in ("delivered", "pending", "retrying") and owner is None, (status, owner)
