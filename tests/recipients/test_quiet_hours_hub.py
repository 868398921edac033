"""Quiet hours end to end on a real hub (SQLite and PostgreSQL): a delivery deferred until the
window ends and then sent, one dropped and recorded with its reason, a critical one delivered,
and the digest that folds what was held into one message, across a restart and shared by two
workers. Deliveries to a recipient are made here by routing with a ``recipient`` (what routes'
``@handles`` do); the passing of time is a due time written into the past, or a frozen clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import eventually
from sqlalchemy import select, update

from tidings import Hub, Message
from tidings.config.people import QuietHours
from tidings.delivery.digest import Grouper
from tidings.delivery.outbox import Planned, write_messages
from tidings.delivery.quiet_digest import QUIET_ROUTE
from tidings.ids import new_id
from tidings.message import Priority
from tidings.recipients.model import People, Person
from tidings.recipients.quiet import apply_quiet_hours
from tidings.routing import Routed, Router, Target
from tidings.store.recipient_tables import recipients
from tidings.store.tables import deliveries, groups

BERLIN = "Europe/Berlin"


def around_now(before: int = 60, after: int = 120) -> dict[str, str]:
    """A daily window in Berlin from ``before`` minutes ago to ``after`` minutes from now."""
    now = dt.datetime.now(ZoneInfo(BERLIN))
    start, end = now - dt.timedelta(minutes=before), now + dt.timedelta(minutes=after)
    return {"days": "daily", "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}


async def add_person(hub: Hub, name: str, quiet: dict[str, Any] | None, zone: str = BERLIN) -> str:
    rid = new_id()
    now = time.time()
    async with hub.require_store().write() as conn:
        await conn.execute(recipients.insert().values(
            id=rid, project="default", name=name, display_name=name.title(), timezone=zone, quiet_hours=quiet,
            created_at=now, updated_at=now))
    assert hub.directory is not None
    await hub.directory.reload("default")
    return rid


def address_recipients(hub: Hub) -> None:
    """Route a message labelled ``recipient=<id>`` to that recipient on its route's channels."""
    plain = hub.router.route

    def route(message: Message, to: Any = None, project: str = "default") -> Routed:
        found = plain(message, to, project)
        rid = message.labels.get("recipient")
        if not rid:
            return found
        return dataclasses.replace(found, targets=[dataclasses.replace(t, recipient=rid, reason=f"to {rid}")
                                                   for t in found.targets])

    hub.router.route = route  # type: ignore[method-assign]


async def inbox_titles(hub: Hub) -> list[str]:
    return [i["message"]["title"] for i in reversed((await hub.inbox(limit=100))["items"])]


async def delivery_of(hub: Hub, message_id: str) -> dict[str, Any]:
    (d,) = (await hub.message(message_id))["deliveries"]
    return dict(d)


async def time_passes(hub: Hub, *, delivery: str | None = None) -> None:
    """The quiet period is over: what waits for its end is due now."""
    async with hub.require_store().write() as conn:
        if delivery is not None:
            await conn.execute(update(deliveries).where(deliveries.c.id == delivery).values(next_attempt_at=time.time() - 1))
        else:
            await conn.execute(update(groups).where(groups.c.route == QUIET_ROUTE).values(flush_at=time.time() - 1))
    hub._wake_dispatcher()


async def test_deferred_until_the_window_ends_then_sent_dropped_and_critical(make_hub: Any) -> None:
    hub = await make_hub()
    address_recipients(hub)
    window = around_now()
    ana = await add_person(hub, "ana", {"windows": [window], "policy": {"low": "drop"}})
    started = time.time()

    held = await hub.notify(Message("nightly report", labels={"recipient": ana}))
    dropped = await hub.notify(Message("fyi", priority=Priority.LOW, labels={"recipient": ana}))
    urgent = await hub.notify(Message("db down", priority=Priority.CRITICAL, labels={"recipient": ana}))
    plain = await hub.notify(Message("to the channel itself"))
    await hub.wait(urgent.id)
    await hub.wait(plain.id)

    d = await delivery_of(hub, held.id)
    end = dt.datetime.now(ZoneInfo(BERLIN)) + dt.timedelta(minutes=120)
    assert d["status"] == "pending" and d["recipient"] == ana
    assert d["next_attempt_at"] == pytest.approx(end.replace(second=0, microsecond=0).timestamp(), abs=61)
    assert d["next_attempt_at"] > started + 3600
    assert d["reason"].startswith(f"to {ana}; held by quiet hours until ") and d["reason"].endswith(" Europe/Berlin")
    assert d["last_error"] is None
    gone = await delivery_of(hub, dropped.id)
    assert (gone["status"], gone["reason"]) == (
        "suppressed", f"to {ana}; dropped by quiet hours (daily {window['start']}–{window['end']} Europe/Berlin)")
    assert (await delivery_of(hub, urgent.id))["status"] == "delivered"
    assert sorted(await inbox_titles(hub)) == ["db down", "to the channel itself"]

    await time_passes(hub, delivery=d["id"])
    await hub.wait(held.id)
    assert (await delivery_of(hub, held.id))["status"] == "delivered"
    assert (await inbox_titles(hub))[-1] == "nightly report"


async def test_the_project_default_applies_to_people_without_their_own(make_hub: Any) -> None:
    hub = await make_hub({"projects": {"default": {"quiet_hours": {"windows": [around_now()], "timezone": BERLIN}}}})
    address_recipients(hub)
    bo = await add_person(hub, "bo", None, zone="UTC")  # UTC (no zone given): the project's zone
    cy = await add_person(hub, "cy", {"windows": [around_now(before=180, after=-120)]})  # her own: not quiet now
    to_bo = await hub.notify(Message("report", labels={"recipient": bo}))
    to_cy = await hub.notify(Message("report", labels={"recipient": cy}))
    await hub.wait(to_cy.id)
    assert (await delivery_of(hub, to_cy.id))["status"] == "delivered"
    assert "held by quiet hours until" in (await delivery_of(hub, to_bo.id))["reason"]
    silence, _ = await hub.silence({"source": "muted"}, 60, by="test")
    muted = await hub.notify(Message("muted", labels={"recipient": bo, "source": "muted"}))
    d = await delivery_of(hub, muted.id)
    assert d["status"] == "suppressed" and d["last_error"].startswith(f"silenced by silence {silence.id}")


async def test_the_digest_folds_what_was_held_into_one_message_across_a_restart(make_hub: Any) -> None:
    config: dict[str, Any] = {}
    first = await make_hub(config)
    address_recipients(first)
    di = await add_person(first, "di", {"windows": [around_now()], "digest": True})
    held = [await first.notify(Message(t, priority=p, labels={"recipient": di}))
            for t, p in (("disk 91%", Priority.MEDIUM), ("deploy done", Priority.LOW), ("disk 91%", Priority.HIGH))]
    for r in held:
        d = await delivery_of(first, r.id)
        assert d["status"] == "grouped" and d["reason"].endswith(" Europe/Berlin for the quiet-hours digest")
    await first.stop()

    second = await make_hub(config)
    await time_passes(second)

    async def one() -> bool:
        return len(await inbox_titles(second)) == 1

    await eventually(one, timeout=15)
    (item,) = (await second.inbox())["items"]
    digest = item["message"]
    assert digest["title"] == "3 messages held during quiet hours: disk 91%, deploy done"
    assert digest["priority"] == "high" and digest["labels"]["event_type"] == "digest.quiet_hours"
    assert digest["body"].count("\n") == 2 and "[low] deploy done" in digest["body"]
    sent = await delivery_of(second, item["message_id"])
    assert sent["recipient"] == di and sent["reason"] == "quiet-hours digest of 3 messages held for @di"
    for r in held:
        d = await delivery_of(second, r.id)
        assert (d["status"], d["reason"]) == ("grouped", f"folded into the quiet-hours digest {item['message_id']}")
    async with second.require_store().read() as conn:
        row = (await conn.execute(select(groups).where(groups.c.route == QUIET_ROUTE))).one()
    assert (row.pending, row.total, row.flush_at) == (0, 3, None)


async def test_a_single_held_message_goes_as_itself_and_two_workers_send_one_digest(make_hub: Any) -> None:
    one, two = await make_hub(), await make_hub()
    for hub in (one, two):
        address_recipients(hub)
    ed = await add_person(one, "ed", {"windows": [around_now()], "digest": True})
    fay = await add_person(one, "fay", {"windows": [around_now()], "digest": True})
    assert two.directory is not None
    await two.directory.reload("default")
    alone = await one.notify(Message("only one", labels={"recipient": ed}))
    for i in range(4):
        await (one, two)[i % 2].notify(Message(f"alert {i}", labels={"recipient": fay}))
    await time_passes(one)
    await time_passes(two)

    async def both() -> bool:
        return len(await inbox_titles(one)) == 2

    await eventually(both, timeout=15)
    await one.wait(alone.id)
    d = await delivery_of(one, alone.id)
    assert d["status"] == "delivered"
    assert d["reason"].endswith("for the quiet-hours digest; sent alone when they ended (nothing else was held)")
    async with one.require_store().read() as conn:
        assert [r.flush_at for r in await conn.execute(select(groups).where(groups.c.route == QUIET_ROUTE))] == [None, None]
    assert sorted(await inbox_titles(one)) == ["4 messages held during quiet hours: alert 0, alert 1, alert 2, …", "only one"]


async def test_the_digest_is_due_exactly_when_the_quiet_period_ends(store: Any) -> None:
    """Frozen clocks: planned at 23:30 Berlin with quiet hours 22:00–07:00, flushed at 07:00."""
    from tidings.config import parse_config

    quiet = QuietHours(windows=[{"start": "22:00", "end": "07:00"}], digest=True)
    rid = new_id()
    async with store.write() as conn:
        await conn.execute(recipients.insert().values(
            id=rid, project="default", name="gil", display_name="Gil", timezone=BERLIN,
            quiet_hours=quiet.model_dump(), created_at=0.0, updated_at=0.0))
    people = People("default", {"gil": Person(rid, "default", "gil", "Gil", BERLIN, quiet_hours=quiet)})
    planned_at = dt.datetime(2026, 10, 24, 23, 30, tzinfo=ZoneInfo(BERLIN)).timestamp()  # the fall-back night
    seven = dt.datetime(2026, 10, 25, 7, 0, tzinfo=ZoneInfo(BERLIN)).timestamp()
    assert seven - planned_at == 8.5 * 3600
    for title in ("a", "b"):
        message = Message(title)
        targets = apply_quiet_hours([Target("inbox", None, 0.0, recipient=rid)], people, None, message, planned_at)
        async with store.write() as conn:
            await write_messages(conn, [Planned(message, targets)], planned_at)
    taken: list[Any] = []
    router = Router(parse_config({}))
    assert await Grouper(store, router, lease=lambda: None, take=taken.extend, clock=lambda: seven - 1).flush_due() == 0
    assert await Grouper(store, router, lease=lambda: None, take=taken.extend, clock=lambda: seven).flush_due() == 1
    assert await Grouper(store, router, lease=lambda: None, take=taken.extend, clock=lambda: seven + 60).flush_due() == 0
    async with store.read() as conn:
        rows = (await conn.execute(select(deliveries).order_by(deliveries.c.created_at, deliveries.c.id))).all()
    digest = [r for r in rows if r.status == "pending"]
    assert len(digest) == 1 and digest[0].next_attempt_at == seven and digest[0].recipient == rid
    assert sorted(r.reason for r in rows if r.status == "grouped") == [
        f"folded into the quiet-hours digest {digest[0].message_id}"] * 2
