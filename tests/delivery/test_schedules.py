"""Scheduled messages on SQLite and PostgreSQL: stored now, routed once when due (with the routes
of that moment), cancellable until then, restart-safe and shared by workers. Time is moved by
writing ``due_at`` into the past (or by the scheduler's clock), never waited for."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import LOCAL, eventually
from sink import Sink
from sqlalchemy import func, select, update

from tidings import Hub, IdempotencyConflict, Message, UnknownIntegration
from tidings.audit import Actor
from tidings.delivery.schedule import CancelRefused, Scheduler
from tidings.errors import MessageError, NotFound
from tidings.store import leases
from tidings.store.recipient_tables import schedules
from tidings.store.tables import audit_log, deliveries, messages

ALICE = Actor("user", id="u1", name="alice@example.com", auth_method="session")


def hook(sink: Sink, path: str = "/hook") -> dict[str, Any]:
    return {"kind": "webhook", "url": sink.url + path, "retry": {"base": 0.05, "cap": 0.2}}


async def make_due(hub: Hub, *message_ids: str) -> None:
    """Move the messages' send_at into the past (as if the time had come) and wake the scheduler."""
    async with hub.require_store().write() as conn:
        await conn.execute(update(schedules).where(schedules.c.message_id.in_(message_ids)).values(due_at=time.time() - 1))
    assert hub.scheduler is not None
    hub.scheduler.wake()


async def status_is(hub: Hub, message_id: str, status: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def check() -> bool:
        found.update(await hub.message(message_id))
        return found["status"] == status

    await eventually(check)
    return found


async def count(hub: Hub, table: Any, *where: Any) -> int:
    async with hub.require_store().read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def test_scheduled_message_waits_and_is_delivered_when_due(make_hub: Any, sink: Sink) -> None:
    hub = await make_hub({"integrations": {"ops": hook(sink)}, "default": {"to": ["ops"]}})
    at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    receipt = await hub.notify(Message("Maintenance starts", labels={"service": "db"}), send_at=at, actor=ALICE)
    assert receipt.status == "scheduled" and receipt.deliveries == []
    assert receipt.send_at == pytest.approx(at.timestamp())
    shown = await hub.message(receipt.id)
    assert shown["status"] == "scheduled" and shown["send_at"] == pytest.approx(at.timestamp())
    assert shown["deliveries"] == []
    assert await hub.scheduler.route_due() == 0  # not due: nothing is routed
    assert await count(hub, deliveries, deliveries.c.message_id == receipt.id) == 0
    assert await count(hub, audit_log, audit_log.c.action == "message.schedule",
                       audit_log.c.target == f"message/{receipt.id}", audit_log.c.actor_name == ALICE.name) == 1

    await make_due(hub, receipt.id)
    await status_is(hub, receipt.id, "routed")
    message = await hub.wait(receipt.id)
    assert [(d["integration"], d["status"]) for d in message["deliveries"]] == [("ops", "delivered")]
    assert [r.json()["data"]["title"] for r in sink.received] == ["Maintenance starts"]
    assert await count(hub, audit_log, audit_log.c.action == "message.route",
                       audit_log.c.target == f"message/{receipt.id}") == 1


async def test_delay_in_text_or_seconds_and_send_at_forms(make_hub: Any) -> None:
    hub = await make_hub()
    before = time.time()
    by_text = await hub.notify(Message("in ten minutes"), delay="10m")
    by_seconds = await hub.notify(Message("in an hour"), delay=3600)
    by_iso = await hub.notify(Message("new year"), send_at=(dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat())
    by_epoch = await hub.notify(Message("epoch"), send_at=before + 7200)
    assert by_text.send_at == pytest.approx(before + 600, abs=5)
    assert by_seconds.send_at == pytest.approx(before + 3600, abs=5)
    assert by_iso.send_at == pytest.approx(before + 3 * 86400, abs=5)
    assert by_epoch.send_at == before + 7200
    assert {r.status for r in (by_text, by_seconds, by_iso, by_epoch)} == {"scheduled"}


async def test_send_at_now_or_past_is_sent_at_once(make_hub: Any) -> None:
    hub = await make_hub()
    for when in (dict(send_at=time.time() - 3600), dict(send_at=dt.datetime.now(dt.UTC)), dict(delay=0), dict(delay="0.5s")):
        receipt = await hub.notify(Message("now"), **when)
        assert receipt.status == "routed" and [d.integration for d in receipt.deliveries] == ["inbox"], when
        await hub.wait(receipt.id)
        assert (await hub.message(receipt.id))["status"] == "routed"
    assert await count(hub, schedules) == 0


BAD_TIMING = [
    (dict(send_at=dt.datetime(2030, 1, 1, 9, 0)), "has no time zone offset"),
    (dict(send_at="2030-01-01T09:00:00"), "has no time zone offset"),
    (dict(send_at="next tuesday"), "is not an ISO 8601 time"),
    (dict(send_at="2030-02-30T09:00:00Z"), "is not an ISO 8601 time"),
    (dict(send_at=float("nan")), "must be finite"),
    (dict(send_at=True), "give an ISO 8601 time"),
    (dict(delay="soon"), "delay: invalid duration"),
    (dict(delay=-5), "delay: a duration can't be negative"),
    (dict(delay="-10m"), "delay: invalid duration"),
    (dict(delay="10m", send_at="2030-01-01T09:00:00Z"), "give send_at or delay, not both"),
    (dict(send_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=400)), "send_at: at most 366 days ahead"),
    (dict(delay="400d"), "delay: at most 366 days ahead"),
]


async def test_bad_timing_is_refused_and_nothing_is_stored(make_hub: Any) -> None:
    hub = await make_hub(dispatch=False)
    for when, says in BAD_TIMING:
        with pytest.raises(MessageError) as refused:
            await hub.notify(Message("x"), **when)
        assert says in str(refused.value), when
    assert await count(hub, schedules) == 0
    assert await count(hub, messages) == 0


async def test_unknown_integration_in_to_is_refused_when_scheduling(make_hub: Any) -> None:
    hub = await make_hub()
    with pytest.raises(UnknownIntegration):
        await hub.notify(Message("x"), to=["slak"], delay="1h")
    assert await count(hub, schedules) == 0


async def test_idempotency_key_replays_the_scheduled_message(make_hub: Any) -> None:
    hub = await make_hub()
    first = await hub.notify(Message("report"), delay="1h", idempotency_key="k1")
    again = await hub.notify(Message("report"), delay="1h", idempotency_key="k1")
    assert again.id == first.id and again.replay and again.status == "scheduled" and again.send_at == first.send_at
    with pytest.raises(IdempotencyConflict):
        await hub.notify(Message("report"), delay="2h", idempotency_key="k1")
    with pytest.raises(IdempotencyConflict):  # the same message now, not scheduled, is another request
        await hub.notify(Message("report"), idempotency_key="k1")
    assert await count(hub, schedules) == 1


async def test_routes_changed_before_it_is_due_apply(tmp_path: Path, db_url: str, sink: Sink) -> None:
    path = tmp_path / "tidings.yaml"
    data = {"server": {"database": db_url, "allow_destinations": LOCAL}, "dispatcher": {"poll_interval": 0.2},
            "integrations": {"old": hook(sink, "/old"), "new": hook(sink, "/new")}, "default": {"to": ["old"]}}
    path.write_text(yaml.safe_dump(data))
    async with Hub.from_config(path) as hub:
        receipt = await hub.notify(Message("later"), delay="1h")
        kept = await hub.notify(Message("to old, as asked"), delay="1h", to=["old"])
        data["default"] = {"to": ["new"]}
        path.write_text(yaml.safe_dump(data))
        await hub.reload_file()
        await make_due(hub, receipt.id, kept.id)
        routed = await hub.wait((await status_is(hub, receipt.id, "routed"))["id"])
        assert [d["integration"] for d in routed["deliveries"]] == ["new"]
        explicit = await hub.wait((await status_is(hub, kept.id, "routed"))["id"])
        assert [d["integration"] for d in explicit["deliveries"]] == ["old"]
    assert sorted(r.path for r in sink.received) == ["/new", "/old"]


async def test_to_naming_an_integration_gone_when_due_fails_with_its_reason(tmp_path: Path, db_url: str, sink: Sink) -> None:
    path = tmp_path / "tidings.yaml"
    data = {"server": {"database": db_url, "allow_destinations": LOCAL}, "dispatcher": {"poll_interval": 0.2},
            "integrations": {"old": hook(sink), "other": hook(sink)}}
    path.write_text(yaml.safe_dump(data))
    async with Hub.from_config(path) as hub:
        receipt = await hub.notify(Message("x"), delay="1h", to=["old"])
        del data["integrations"]["old"]
        path.write_text(yaml.safe_dump(data))
        await hub.reload_file()
        await make_due(hub, receipt.id)
        failed = await status_is(hub, receipt.id, "failed")
        assert failed["reason"] == "not routed: unknown integration 'old'" and failed["deliveries"] == []
        with pytest.raises(CancelRefused, match=r"failed when it was due \(not routed: unknown integration 'old'\)"):
            await hub.cancel(receipt.id)


async def test_cancel_before_due_means_never_delivered(make_hub: Any, sink: Sink) -> None:
    hub = await make_hub({"integrations": {"ops": hook(sink)}, "default": {"to": ["ops"]}})
    receipt = await hub.notify(Message("never"), delay="1h")
    cancelled = await hub.cancel(receipt.id, actor=ALICE)
    assert cancelled == {"id": receipt.id, "status": "cancelled", "send_at": receipt.send_at,
                         "cancelled_by": "alice@example.com"}
    assert await hub.cancel(receipt.id, actor=ALICE) == cancelled  # again: as it is, not audited twice
    assert await count(hub, audit_log, audit_log.c.action == "message.cancel",
                       audit_log.c.target == f"message/{receipt.id}") == 1
    await make_due(hub, receipt.id)
    assert await hub.scheduler.route_due() == 0
    shown = await hub.message(receipt.id)
    assert shown["status"] == "cancelled" and shown["cancelled_by"] == "alice@example.com" and shown["deliveries"] == []
    assert await count(hub, deliveries, deliveries.c.message_id == receipt.id) == 0


async def test_cancel_after_routed_or_unscheduled_or_unknown_is_refused(make_hub: Any) -> None:
    hub = await make_hub()
    receipt = await hub.notify(Message("soon"), delay="1h")
    await make_due(hub, receipt.id)
    await status_is(hub, receipt.id, "routed")
    with pytest.raises(CancelRefused, match="was routed already"):
        await hub.cancel(receipt.id)
    plain = await hub.notify(Message("now"))
    with pytest.raises(CancelRefused, match="was not scheduled"):
        await hub.cancel(plain.id)
    with pytest.raises(NotFound):
        await hub.cancel("0" * 26)
    assert await count(hub, audit_log, audit_log.c.action == "message.cancel") == 0


async def test_another_projects_message_is_not_found(make_hub: Any) -> None:
    hub = await make_hub({
        "integrations": {"ops-inbox": {"kind": "inbox", "project": "ops"}, "web-inbox": {"kind": "inbox", "project": "web"}},
        "routes": [{"project": "ops", "to": ["ops-inbox"]}, {"project": "web", "to": ["web-inbox"]}],
    })
    receipt = await hub.notify(Message("ops only"), delay="1h", project="ops")
    with pytest.raises(NotFound):
        await hub.cancel(receipt.id, project="web")
    with pytest.raises(NotFound):
        await hub.message(receipt.id, project="web")
    assert (await hub.message(receipt.id, project="ops"))["status"] == "scheduled"
    assert (await hub.cancel(receipt.id, project="ops"))["status"] == "cancelled"


async def test_due_schedules_are_routed_after_a_restart(make_hub: Any, sink: Sink) -> None:
    data = {"integrations": {"ops": hook(sink)}, "default": {"to": ["ops"]}}
    first = await make_hub(data)
    receipt = await first.notify(Message("across restarts"), delay="1h")
    await first.stop()
    async with _open(first) as store:  # the stopped hub's database
        async with store.write() as conn:
            await conn.execute(update(schedules).values(due_at=time.time() - 1))
    second = await make_hub(data)
    await status_is(second, receipt.id, "routed")
    await second.wait(receipt.id)
    assert await count(second, deliveries, deliveries.c.message_id == receipt.id) == 1
    assert len(sink.received) == 1


def _open(hub: Hub) -> Any:
    from contextlib import asynccontextmanager

    from tidings.store.engine import Store

    @asynccontextmanager
    async def opened() -> Any:
        store = Store(hub.config.server.database)
        try:
            yield store
        finally:
            await store.close()

    return opened()


async def test_a_dead_workers_lease_expires_and_another_routes_it(make_hub: Any) -> None:
    hub = await make_hub(dispatch=False)
    receipt = await hub.notify(Message("orphan"), delay="1h")
    now = time.time()
    async with hub.require_store().write() as conn:  # a worker claims it, then dies
        await conn.execute(update(schedules).values(due_at=now - 1))
        assert await leases.claim_due(conn, schedules, "message_id", status="scheduled", owner="dead", now=now,
                                      lease=60, limit=10) == [receipt.id]
    worker = Scheduler(hub, owner="alive", clock=lambda: now + 30)
    assert await worker.route_due() == 0  # the lease still holds
    assert not await worker.route(receipt.id)  # nor may it route what it does not hold
    assert (await hub.message(receipt.id))["status"] == "scheduled"
    later = Scheduler(hub, owner="alive", clock=lambda: now + 61)
    assert await later.route_due() == 1
    shown = await hub.message(receipt.id)
    assert shown["status"] == "routed" and [d["integration"] for d in shown["deliveries"]] == ["inbox"]
    assert await later.route_due() == 0


@pytest.mark.parametrize("db", ["postgresql"])  # workers share one database on PostgreSQL
async def test_two_workers_on_postgresql_route_each_message_once(make_hub: Any, db: str, sink: Sink) -> None:
    data = {"integrations": {"ops": hook(sink)}, "default": {"to": ["ops"]}}
    workers = [await make_hub(data), await make_hub(data)]
    ids = [(await workers[i % 2].notify(Message(f"m{i}"), delay="1h")).id for i in range(60)]
    async with workers[0].require_store().write() as conn:
        await conn.execute(update(schedules).values(due_at=time.time() - 1))
    for w in workers:
        w.scheduler.wake()

    async def all_routed() -> bool:
        return await count(workers[0], schedules, schedules.c.status == "routed") == len(ids)

    await eventually(all_routed, timeout=30)
    async with workers[0].require_store().read() as conn:
        per_message = dict((await conn.execute(
            select(deliveries.c.message_id, func.count()).group_by(deliveries.c.message_id))).all())
    assert per_message == {i: 1 for i in ids}
    assert await count(workers[0], audit_log, audit_log.c.action == "message.route") == len(ids)

    async def all_sent() -> bool:
        return len(sink.received) >= len(ids)

    await eventually(all_sent, timeout=30)
    assert sorted(r.json()["data"]["title"] for r in sink.received) == sorted(f"m{i}" for i in range(60))


async def test_retention_keeps_a_waiting_message_and_one_routed_lately(make_hub: Any) -> None:
    from tidings.config.models import RetentionSettings
    from tidings.retention import prune

    hub = await make_hub(dispatch=False)
    waiting = await hub.notify(Message("in 300 days"), delay="300d")
    routed = await hub.notify(Message("routed today"), delay="1h")
    worker = Scheduler(hub, owner="w", clock=lambda: time.time() + 7200)
    assert await worker.route_due() == 1
    async with hub.require_store().write() as conn:  # delivered meanwhile: nothing of it is active
        await conn.execute(update(deliveries).values(status="delivered"))
    week = RetentionSettings(messages=7 * 86400)
    await prune(hub.store, week, now=time.time() + 30 * 86400)  # a month on: both created 30 days ago
    assert (await hub.message(waiting.id))["status"] == "scheduled"
    with pytest.raises(NotFound):  # routed (at +2h) more than a week before: it goes, with its schedule
        await hub.message(routed.id)
    assert await count(hub, schedules, schedules.c.message_id == routed.id) == 0
    async with hub.require_store().write() as conn:  # a month on, routed two days before: kept
        await conn.execute(update(schedules).where(schedules.c.message_id == waiting.id)
                           .values(status="routed", updated_at=time.time() + 28 * 86400))
    await prune(hub.store, week, now=time.time() + 30 * 86400)
    assert (await hub.message(waiting.id))["status"] == "routed"


async def test_a_scheduled_message_joins_its_thread_when_routed(make_hub: Any) -> None:
    hub = await make_hub(dispatch=False)
    later = await hub.notify(Message("deploy done", thread_key="deploy-42"), delay="1h")
    now = await hub.notify(Message("deploy started", thread_key="deploy-42"))
    worker = Scheduler(hub, owner="w", clock=lambda: time.time() + 3601)
    assert await worker.route_due() == 1
    async with hub.require_store().read() as conn:
        rows = {r.message_id: r for r in await conn.execute(select(deliveries))}
    assert rows[later.id].thread == rows[now.id].thread is not None
    assert rows[later.id].thread_seq > rows[now.id].thread_seq  # after what the thread had when it was routed


async def test_a_cancel_while_a_worker_holds_the_lease_wins(make_hub: Any) -> None:
    hub = await make_hub(dispatch=False)
    receipt = await hub.notify(Message("raced"), delay="1h")
    worker = Scheduler(hub, owner="w", clock=lambda: time.time() + 3601)
    now = time.time() + 3601
    async with hub.require_store().write() as conn:
        assert await leases.claim_due(conn, schedules, "message_id", status="scheduled", owner="w", now=now,
                                      lease=60, limit=10) == [receipt.id]
    assert (await hub.cancel(receipt.id))["status"] == "cancelled"
    assert not await worker.route(receipt.id)  # its lease went with the cancel
    assert await count(hub, deliveries) == 0
    assert (await hub.message(receipt.id))["status"] == "cancelled"
