"""The splunk kind through the hub and the outbox, on SQLite and PostgreSQL: batches of deliveries
in one request, each delivery's own outcome, indexer acknowledgement, a bad token, faults that
lose nothing, a thread's order, preview and the integrations test."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import all_status, eventually, first_deliveries, queued
from peers.splunk_hec import SplunkHec

from tidings import Message

TOKEN = "00000000-1111-2222-3333-444444444444"


@pytest.fixture
async def hec() -> AsyncIterator[SplunkHec]:
    h = SplunkHec()
    await h.start()
    yield h
    await h.stop()


def siem(hec: SplunkHec, **extra: Any) -> dict[str, Any]:
    ops = {
        "kind": "splunk", "url": hec.url, "token": TOKEN, "index": "security",
        "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 100}, "breaker": {"min_calls": 1000}, **extra,
    }
    return {"integrations": {"siem": ops}, "default": {"to": ["siem"]}}


async def test_many_deliveries_few_requests_each_event_once(make_hub: Any, hec: SplunkHec) -> None:
    config = siem(hec)
    ids = await queued(make_hub, config, [Message(f"alert {i}") for i in range(30)])
    hub = await make_hub(config)
    done = await all_status(hub, ids)
    assert len(hec.requests) <= 4 and sum(hec.requests) == 30, hec.requests
    assert all(d["attempts"] == 1 for d in done)
    counts = Counter(e["event"]["delivery_id"] for e in hec.events())
    assert counts == Counter({d["id"]: 1 for d in done}), "every event indexed once"
    assert {e["event"]["id"] for e in hec.events()} == set(ids)


async def test_batch_event_bound(make_hub: Any, hec: SplunkHec) -> None:
    config = siem(hec, batch_max_events=7)
    ids = await queued(make_hub, config, [Message(f"alert {i}", body="x" * 900) for i in range(20)])
    await all_status(await make_hub(config), ids)
    assert max(hec.requests) <= 7 and sum(hec.requests) == 20 and len(hec.requests) >= 3


async def test_batch_byte_bound(make_hub: Any, hec: SplunkHec) -> None:
    config = siem(hec, batch_max_bytes="8KiB")
    ids = await queued(make_hub, config, [Message(f"big {i}", body="x" * 1800) for i in range(10)])
    await all_status(await make_hub(config), ids)
    assert max(hec.requests) <= 4 and sum(hec.requests) == 10


async def test_delivered_once_acknowledged(make_hub: Any, hec: SplunkHec) -> None:
    hec.ack, hec.ack_delay = True, 0.2
    hub = await make_hub(siem(hec, ack=True))
    receipts = await hub.notify_many([Message(f"indexed {i}") for i in range(5)])
    done = await all_status(hub, [r.id for r in receipts])
    channel = hub.dispatcher.lanes["siem"].notifier.channel
    assert all(d["remote_id"].startswith(f"{channel}/") for d in done)
    assert hec.ack_polls >= 1 and {i.channel for i in hec.indexed} == {channel}


async def test_an_ack_that_never_comes_is_sent_again(make_hub: Any, hec: SplunkHec) -> None:
    hec.ack, hec.ack_delay = True, None
    hub = await make_hub(siem(hec, ack=True, ack_timeout=0.2))
    r = await hub.notify(Message("lost ack"))

    async def retried() -> bool:
        d = (await first_deliveries(hub, [r.id]))[0]
        return d["status"] == "retrying" and "not acknowledged" in (d["last_error"] or "")

    await eventually(retried)
    hec.ack_delay = 0.0
    (d,) = await all_status(hub, [r.id])
    assert d["attempts"] >= 2
    sent = [e for e in hec.events() if e["event"]["delivery_id"] == d["id"]]
    assert len(sent) == d["attempts"], "at least once: each attempt indexed the event again"


async def test_a_bad_token_disables_and_holds(make_hub: Any, hec: SplunkHec) -> None:
    hec.tokens = set()
    config = siem(hec, batch_max_events=1, concurrency=1)
    ids = await queued(make_hub, config, [Message(f"refused {i}") for i in range(3)])
    hub = await make_hub(config)

    async def settled() -> bool:
        return sorted(d["status"] for d in await first_deliveries(hub, ids)) == ["dead", "held", "held"]

    await eventually(settled)
    done = await first_deliveries(hub, ids)
    (dead,) = [d for d in done if d["status"] == "dead"]
    assert "Invalid token (code 4)" in dead["last_error"] and TOKEN not in dead["last_error"]
    assert all("Invalid token" in d["last_error"] for d in done if d["status"] == "held")
    info = {i["name"]: i for i in await hub.integrations()}["siem"]
    assert info["health"] == "disabled" and "Invalid token" in info["disabled_reason"]
    later = await hub.notify(Message("waits"))
    assert (await first_deliveries(hub, [later.id]))[0]["status"] == "held", "written held: its integration is disabled"
    hec.tokens = {TOKEN}
    await hub.set_enabled("siem", True)
    held = [d["id"] for d in done if d["status"] == "held"]
    await all_status(hub, [later.id, *(i for i, d in zip(ids, done, strict=True) if d["id"] in held)])
    assert len(hec.indexed) == 3


async def test_a_bad_event_in_a_batch(make_hub: Any, hec: SplunkHec) -> None:
    config = siem(hec)
    ids = await queued(make_hub, config, [Message(f"alert {i}") for i in range(6)])
    hec.fail("invalid_at", index=2)
    hub = await make_hub(config)

    async def settled() -> bool:
        return sorted(d["status"] for d in await first_deliveries(hub, ids)) == ["dead"] + ["delivered"] * 5

    await eventually(settled)
    done = await first_deliveries(hub, ids)
    (dead,) = [d for d in done if d["status"] == "dead"]
    assert "Invalid data format (code 6)" in dead["last_error"] and dead["attempts"] == 1
    counts = Counter(e["event"]["delivery_id"] for e in hec.events())
    assert counts == Counter({d["id"]: 1 for d in done if d["status"] == "delivered"})
    assert sorted(d["attempts"] for d in done if d["status"] == "delivered") == [1, 1, 2, 2, 2]


@pytest.mark.parametrize("fault", [{"kind": "busy", "retry_after": 0}, {"kind": "error"},
                                   {"kind": "throttled", "retry_after": 0}, {"kind": "reset"},
                                   {"kind": "delay", "seconds": 3}])
async def test_faults_are_retried_and_nothing_is_lost(make_hub: Any, hec: SplunkHec, fault: dict[str, Any]) -> None:
    config = siem(hec, timeout=0.5)
    ids = await queued(make_hub, config, [Message(f"alert {i}") for i in range(10)])
    hec.fail(**{"times": 2, **fault})
    done = await all_status(await make_hub(config), ids)
    assert all(d["attempts"] >= 2 for d in done), "the first request failed for them all"
    indexed = Counter(e["event"]["delivery_id"] for e in hec.events())
    assert set(indexed) == {d["id"] for d in done}
    if fault["kind"] != "delay":  # a late answer may still index what timed out here
        assert set(indexed.values()) == {1}


async def test_a_thread_keeps_its_order(make_hub: Any, hec: SplunkHec) -> None:
    config = siem(hec)
    messages = [Message(f"step {i}", thread_key="incident-7") for i in range(5)]
    messages += [Message(f"other {i}") for i in range(5)]
    ids = await queued(make_hub, config, messages)
    await all_status(await make_hub(config), ids)
    steps = [e["event"]["title"] for e in hec.events() if e["event"]["thread_key"] == "incident-7"]
    assert steps == [f"step {i}" for i in range(5)]
    by_request = Counter(i.request for i in hec.indexed if i.event["event"]["thread_key"] == "incident-7")
    assert set(by_request.values()) == {1}, "one delivery of a thread per batch"


async def test_preview_and_test(make_hub: Any, hec: SplunkHec) -> None:
    hub = await make_hub(siem(hec, host="tidings-1"))
    (preview,) = hub.preview(Message("what would go", priority="critical"))
    payload = preview["payload"] if "payload" in preview else preview
    assert "what would go" in str(payload) and "critical" in str(payload)
    assert hec.requests == []
    ok = await hub.test("siem")
    assert ok.ok and "token accepted" in (ok.remote_id or "")
    hec.tokens = set()
    bad = await hub.test("siem")
    assert not bad.ok and "would disable" in (bad.error or "")
    assert {i["name"]: i for i in await hub.integrations()}["siem"]["health"] != "disabled"
    assert hec.indexed == []
