"""tidings watching itself, end to end on SQLite and PostgreSQL: a real hub sending to local HTTP
peers. The broken integration is ``ops`` (a peer answering 500 or 400); notices go to ``alerts``
(another peer), never to ``ops`` even though ``alerts_to`` names it too."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import eventually
from sink import Received, Reply, Sink
from sqlalchemy import select

from tidings import Message
from tidings.store.recipient_tables import incidents
from tidings.watch import FAIL_AFTER


@pytest.fixture
async def alerts() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def ops() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    yield s
    await s.stop()


def config(ops: Sink, alerts: Sink, *, alerts_to: list[str] | None = None, cooldown: str = "1h",
           recover_after: str = "0.3s", **ops_settings: Any) -> dict[str, Any]:
    return {
        "integrations": {
            "ops": {"kind": "webhook", "url": ops.url + "/ops", "retry": {"base": 60, "cap": 60, "max_attempts": 100},
                    "breaker": {"min_calls": 3, "failure_rate": 0.5, "cool_off": 0.2, "max_cool_off": 0.4},
                    **ops_settings},
            "alerts": {"kind": "webhook", "url": alerts.url + "/alerts"},
        },
        "default": {"to": ["ops"]},
        "projects": {"default": {"alerts_to": ["ops", "alerts"] if alerts_to is None else alerts_to,
                                 "alert_cooldown": cooldown, "alert_recover_after": recover_after}},
    }


def notices(sink: Sink, kind: str | None = None, stage: str | None = None) -> list[dict[str, Any]]:
    """The tidings notices a peer received (their message data), of ``kind`` and ``stage`` when given."""
    found = []
    for r in sink.received:
        data = r.json().get("data", {})
        labels = data.get("labels", {})
        if labels.get("source") != "tidings":
            continue
        if kind is not None and labels.get("kind") != kind:
            continue
        if stage is not None and labels.get("event_type") != f"incident.{stage}":
            continue
        found.append(data)
    return found


def tidings_requests(sink: Sink) -> list[Received]:
    return [r for r in sink.received if r.json().get("data", {}).get("labels", {}).get("source") == "tidings"]


async def rows(hub: Any) -> list[dict[str, Any]]:
    async with hub.store.read() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(incidents).order_by(incidents.c.opened_at))]


async def test_an_open_circuit_is_told_once_on_the_other_integration_and_its_recovery_too(
    make_hub: Any, ops: Sink, alerts: Sink,
) -> None:
    ops.default = Reply(500)
    hub = await make_hub(config(ops, alerts))
    for n in range(4):
        await hub.notify(Message(f"deploy {n}"))

    async def told() -> bool:
        return len(notices(alerts, "circuit_open", "opened")) == 1

    await eventually(told)
    # The breaker goes on reopening (its half-open trials fail): the same incident, counted, not told again.
    await eventually(lambda: _count_above(hub, "circuit_open", 1))
    assert len(notices(alerts, "circuit_open")) == 1
    assert tidings_requests(ops) == []  # never a notice on the integration the incident is about
    [opened] = notices(alerts, "circuit_open")
    assert opened["labels"]["subject"] == "integration/ops"
    assert opened["priority"] == "high"

    ops.default = Reply(200)

    async def recovered() -> bool:
        return len(notices(alerts, "circuit_open", "resolved")) == 1

    await eventually(recovered, timeout=15)
    [back] = notices(alerts, "circuit_open", "resolved")
    assert back["thread_key"] == opened["thread_key"] == f"tidings-incident:{opened['labels']['incident']}"
    assert back["labels"]["incident"] == opened["labels"]["incident"]
    await hub.watch.settled()
    circuit = [r for r in await rows(hub) if r["kind"] == "circuit_open"]
    assert [(r["status"], r["subject"]) for r in circuit] == [("resolved", "integration/ops")]
    assert circuit[0]["notice"].startswith("resolved notice ") and circuit[0]["notice"].endswith(" to alerts")
    assert tidings_requests(ops) == []


async def _count_above(hub: Any, kind: str, n: int) -> bool:
    return any(r["kind"] == kind and r["count"] > n for r in await rows(hub))


async def test_a_dead_delivery_is_told_and_many_deads_are_one_incident(make_hub: Any, ops: Sink, alerts: Sink) -> None:
    ops.default = Reply(400, body="bad request")  # permanent: dead at the first attempt
    hub = await make_hub(config(ops, alerts))
    receipts = [await hub.notify(Message(f"deploy {n}")) for n in range(3)]
    for r in receipts:
        assert (await hub.wait(r.id))["deliveries"][0]["status"] == "dead"

    async def told() -> bool:
        return len(notices(alerts, "dead")) == 1

    await eventually(told)
    await hub.watch.settled()
    [dead] = [r for r in await rows(hub) if r["kind"] == "dead"]
    assert dead["status"] == "open" and dead["subject"] == "integration/ops"
    assert "went dead" in dead["detail"] and "400" in dead["detail"]
    assert len(notices(alerts, "dead")) == 1  # the later deads bumped it within the cooldown
    # A delivery going through again resolves it, and the recovery is told.
    ops.default = Reply(200)
    await hub.wait((await hub.notify(Message("fixed"))).id)

    async def recovered() -> bool:
        return len(notices(alerts, "dead", "resolved")) == 1

    await eventually(recovered)
    assert tidings_requests(ops) == []


async def test_failing_after_attempts_in_a_row_and_recovered_by_the_next_success(
    make_hub: Any, ops: Sink, alerts: Sink,
) -> None:
    ops.default = Reply(500)
    # A breaker that never opens: only the failures in a row make it ``failing``.
    hub = await make_hub(config(ops, alerts, retry={"base": 0.01, "cap": 0.01, "max_attempts": 100},
                                breaker={"min_calls": 1000}))
    await hub.notify(Message("deploy"))

    async def told() -> bool:
        return len(notices(alerts, "failing", "opened")) == 1

    await eventually(told)
    [opened] = notices(alerts, "failing", "opened")
    assert f"{FAIL_AFTER} attempts in a row failed" in opened["body"]
    ops.default = Reply(200)

    async def recovered() -> bool:
        return len(notices(alerts, "failing", "resolved")) == 1

    await eventually(recovered)
    assert len(notices(alerts, "failing")) == 2
    assert tidings_requests(ops) == []


async def test_alerts_to_naming_only_the_broken_integration_sends_nothing(make_hub: Any, ops: Sink,
                                                                          alerts: Sink) -> None:
    ops.default = Reply(400)
    hub = await make_hub(config(ops, alerts, alerts_to=["ops"]))
    await hub.wait((await hub.notify(Message("deploy"))).id)

    async def opened() -> bool:
        return any(r["kind"] == "dead" for r in await rows(hub))

    await eventually(opened)
    await hub.watch.settled()
    [row] = await rows(hub)
    assert row["notified_at"] is None
    assert row["notice"] == "no notice: alerts_to names no integration of project default but ops"
    assert tidings_requests(ops) == [] and tidings_requests(alerts) == []
    async with hub.store.read() as conn:
        from tidings.store.tables import messages

        assert (await conn.execute(select(messages).where(messages.c.source == "tidings"))).first() is None


async def test_a_notice_that_goes_dead_opens_no_incident_of_its_own(make_hub: Any, ops: Sink, alerts: Sink) -> None:
    """ops breaks, its notice goes to alerts, which is broken too (400): that dead delivery is a
    notice's, so no ``dead`` incident about alerts (no loop back to ops)."""
    ops.default = Reply(400)
    alerts.default = Reply(400)
    hub = await make_hub(config(ops, alerts))
    await hub.wait((await hub.notify(Message("deploy"))).id)

    async def notice_dead() -> bool:
        return bool(alerts.received)

    await eventually(notice_dead)
    [notice] = (await hub.deliveries(integration="alerts"))["items"]
    await hub.wait(notice["message_id"])
    await hub.watch.settled()
    assert [(r["subject"], r["kind"]) for r in await rows(hub)] == [("integration/ops", "dead")]
    assert tidings_requests(ops) == []


async def test_two_hubs_opening_the_same_incident_at_once_tell_it_once(make_hub: Any, ops: Sink, alerts: Sink) -> None:
    first = await make_hub(config(ops, alerts))
    second = await make_hub(config(ops, alerts))
    opened = await asyncio.gather(*(hub.watch.open("default", "integration/ops", "failing", f"seen by {n}")
                                    for n in range(3) for hub in (first, second)))
    assert len({row["id"] for row in opened}) == 1
    await alerts.wait_for(1)
    await first.wait(next(iter(tidings_requests(alerts))).json()["message_id"])
    [row] = await rows(first)
    assert row["count"] == 6 and row["status"] == "open" and row["notified_at"] is not None
    assert len(notices(alerts, "failing")) == 1
    # Resolving from both at once: one recovery notice.
    resolved = await asyncio.gather(first.watch.resolve("default", "integration/ops", "failing"),
                                    second.watch.resolve("default", "integration/ops", "failing"))
    assert sum(r is not None for r in resolved) == 1

    async def recovered() -> bool:
        return len(notices(alerts, "failing", "resolved")) == 1

    await eventually(recovered)
    await first.wait(tidings_requests(alerts)[-1].json()["message_id"])
    assert len(notices(alerts, "failing")) == 2


async def test_two_dispatching_hubs_seeing_deads_of_one_integration_tell_it_once(make_hub: Any, ops: Sink,
                                                                                  alerts: Sink) -> None:
    ops.default = Reply(400)
    hubs = [await make_hub(config(ops, alerts)), await make_hub(config(ops, alerts))]
    receipts = [await hubs[n % 2].notify(Message(f"deploy {n}")) for n in range(8)]
    for r in receipts:
        assert (await hubs[0].wait(r.id))["deliveries"][0]["status"] == "dead"
    for hub in hubs:
        await hub.watch.settled()

    async def told() -> bool:
        return len(notices(alerts, "dead")) >= 1

    await eventually(told)
    [row] = await rows(hubs[0])
    assert row["kind"] == "dead" and row["count"] >= 1
    assert len(notices(alerts, "dead")) == 1
    assert tidings_requests(ops) == []


async def test_a_flapping_peer_is_one_incident_told_once_and_resolved_once_it_stays_well(
    make_hub: Any, ops: Sink, alerts: Sink,
) -> None:
    # Each message fails FAIL_AFTER times in a row, then goes through: without a settling time every
    # success would resolve the incident and the next burst open (and tell) a new one.
    # A cycle's success and the next one's first failure must come within the settling time (8 s):
    # two cycles took 2.5 s on PostgreSQL on a loaded machine.
    settling = 8.0
    settings = config(ops, alerts, recover_after=f"{settling:g}s", retry={"base": 0.01, "cap": 0.01, "max_attempts": 100},
                      breaker={"min_calls": 1000})
    hub = await make_hub(settings | {"dispatcher": {"poll_interval": 0.02}})  # retries due at once are taken at once
    spans: list[tuple[float, float]] = []
    for n in range(3):
        ops.script(*([500] * FAIL_AFTER), 200)
        started = time.monotonic()
        receipt = await hub.notify(Message(f"deploy {n}"))

        async def delivered() -> bool:
            return [d["status"] for d in (await hub.wait(receipt.id))["deliveries"]] == ["delivered"]

        await eventually(delivered)
        await hub.watch.settled()
        spans.append((started, time.monotonic()))
    failing = [r for r in await rows(hub) if r["kind"] == "failing"]
    # A cycle's success came after it started; the next one's first failure before that one ended.
    longest = max(after[1] - before[0] for before, after in itertools.pairwise(spans))
    assert longest < settling, f"a success and the next failure were up to {longest:.1f}s apart: the test proves nothing"
    assert [(r["status"], r["count"]) for r in failing] == [("open", 3)]
    assert len(notices(alerts, "failing", "opened")) == 1

    async def resolved() -> bool:
        return [r["status"] for r in await rows(hub) if r["kind"] == "failing"] == ["resolved"]

    await eventually(resolved, timeout=20)

    async def told() -> bool:
        return len(notices(alerts, "failing", "resolved")) == 1

    await eventually(told)
    assert [n["labels"]["event_type"] for n in notices(alerts, "failing")] == ["incident.opened", "incident.resolved"]


async def test_a_recurrence_seen_by_another_worker_keeps_the_incident_open(make_hub: Any, ops: Sink,
                                                                          alerts: Sink) -> None:
    hub = await make_hub(config(ops, alerts, recover_after="60s"))
    row = await hub.watch.open("default", "integration/ops", "failing", "5 attempts in a row failed")
    # This process's wait is over, but the row was bumped within the last 60 s (another worker).
    assert await hub.watch.resolve("default", "integration/ops", "failing", quiet_for=60.0) is None
    [stored] = await rows(hub)
    assert stored["id"] == row["id"] and stored["status"] == "open"
    assert await hub.watch.resolve("default", "integration/ops", "failing") is not None
