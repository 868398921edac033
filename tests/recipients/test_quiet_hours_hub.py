"""Quiet hours end to end on a real hub (SQLite and PostgreSQL): a delivery deferred until the
window ends and then sent, one dropped and recorded with its reason, a critical one delivered,
and the digest that folds what was held into one message, across a restart and shared by two
workers. Messages reach people the way they do in production: a route ``to: ["@ana"]`` plans a
delivery per person on the Slack bot (the local fake), addressed at dispatch as a DM to their user
id. The passing of time is a due time written into the past, or a frozen clock."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fake_slack import FakeSlack
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
from tidings.routing import Router, Target
from tidings.store.recipient_tables import recipients
from tidings.store.tables import deliveries, groups

BERLIN = "Europe/Berlin"
PEOPLE = ("ana", "bo", "cy", "di", "ed", "fay")
SLACK_USER = {"ana": "U0ADA", "bo": "U0GRACE", "cy": "U0LINUS", "di": "U0ADA", "ed": "U0GRACE", "fay": "U0LINUS"}
"""Each person's Slack user id (members the fake Slack knows; no two people of one test share one)."""


def config(slack: FakeSlack, **extra: Any) -> dict[str, Any]:
    """The Slack bot ``chat`` (posts to #ops, DMs people); a message labelled ``for: <name>`` goes
    to ``@<name>`` by the route ``for-<name>``, anything else to #ops."""
    return {
        "integrations": {"chat": {"kind": "slack", "token": slack.token, "channel": "#ops", "api_url": slack.api_url}},
        "routes": [{"name": f"for-{n}", "match": {"labels": {"for": n}}, "to": [f"@{n}"]} for n in PEOPLE],
        "default": {"to": ["chat"]},
        **extra,
    }


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
            slack_user=SLACK_USER[name], created_at=now, updated_at=now))
    assert hub.directory is not None
    await hub.directory.reload("default")
    return rid


def to(name: str, title: str, **fields: Any) -> Message:
    labels = {"for": name, **fields.pop("labels", {})}
    return Message(title, labels=labels, **fields)


def posted(slack: FakeSlack, channel: str) -> list[str]:
    """The text of each message the bot posted to ``channel`` (a user id: a DM), in order."""
    return [p["text"] for p in slack.posts() if p.get("channel") == channel]


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


async def test_deferred_until_the_window_ends_then_sent_dropped_and_critical(make_hub: Any, slack: FakeSlack) -> None:
    hub = await make_hub(config(slack))
    window = around_now()
    ana = await add_person(hub, "ana", {"windows": [window], "policy": {"low": "drop"}})
    started = time.time()

    held = await hub.notify(to("ana", "nightly report"))
    dropped = await hub.notify(to("ana", "fyi", priority=Priority.LOW))
    urgent = await hub.notify(to("ana", "db down", priority=Priority.CRITICAL))
    plain = await hub.notify(Message("to the channel itself"))
    await hub.wait(urgent.id)
    await hub.wait(plain.id)

    d = await delivery_of(hub, held.id)
    end = dt.datetime.now(ZoneInfo(BERLIN)) + dt.timedelta(minutes=120)
    assert d["status"] == "pending" and d["recipient"] == ana and d["integration"] == "chat"
    assert d["next_attempt_at"] == pytest.approx(end.replace(second=0, microsecond=0).timestamp(), abs=61)
    assert d["next_attempt_at"] > started + 3600
    assert d["reason"].startswith("to @ana (Ana) by route for-ana; held by quiet hours until ")
    assert d["reason"].endswith(" Europe/Berlin")
    assert d["last_error"] is None and d["attempts"] == 0
    gone = await delivery_of(hub, dropped.id)
    assert (gone["status"], gone["reason"]) == ("suppressed", "to @ana (Ana) by route for-ana; dropped by quiet hours"
                                                f" (daily {window['start']}–{window['end']} Europe/Berlin)")
    sent = await delivery_of(hub, urgent.id)
    assert sent["status"] == "delivered" and sent["recipient"] == ana
    assert sent["reason"] == "to @ana (Ana) by route for-ana"  # ``deliver`` leaves the delivery as planned
    (dm,) = posted(slack, "U0ADA")  # only the critical one reached her
    assert "db down" in dm
    (post,) = posted(slack, "#ops")
    assert "to the channel itself" in post

    await time_passes(hub, delivery=d["id"])
    await hub.wait(held.id)
    assert (await delivery_of(hub, held.id))["status"] == "delivered"
    dms = posted(slack, "U0ADA")
    assert len(dms) == 2 and "nightly report" in dms[-1]
    assert not any("fyi" in t for t in posted(slack, "U0ADA") + posted(slack, "#ops"))


async def test_the_project_default_applies_to_people_without_their_own(make_hub: Any, slack: FakeSlack) -> None:
    hub = await make_hub(config(slack, projects={"default": {"quiet_hours": {"windows": [around_now()], "timezone": BERLIN}}}))
    bo = await add_person(hub, "bo", None, zone="UTC")  # UTC (no zone given): the project's zone
    cy = await add_person(hub, "cy", {"windows": [around_now(before=180, after=-120)]})  # her own: not quiet now
    to_bo = await hub.notify(to("bo", "report"))
    to_cy = await hub.notify(to("cy", "report"))
    await hub.wait(to_cy.id)
    got = await delivery_of(hub, to_cy.id)
    assert (got["status"], got["recipient"], got["reason"]) == ("delivered", cy, "to @cy (Cy) by route for-cy")
    assert len(posted(slack, "U0LINUS")) == 1
    d = await delivery_of(hub, to_bo.id)
    assert d["status"] == "pending" and d["recipient"] == bo
    assert d["reason"].startswith("to @bo (Bo) by route for-bo; held by quiet hours until ")
    assert d["reason"].endswith(" Europe/Berlin")
    silence, _ = await hub.silence({"source": "muted"}, 60, by="test")
    muted = await hub.notify(to("bo", "muted", labels={"source": "muted"}))
    d = await delivery_of(hub, muted.id)
    assert d["status"] == "suppressed" and d["last_error"].startswith(f"silenced by silence {silence.id}")
    assert posted(slack, "U0GRACE") == []


async def test_the_digest_folds_what_was_held_into_one_message_across_a_restart(make_hub: Any, slack: FakeSlack) -> None:
    first = await make_hub(config(slack))
    di = await add_person(first, "di", {"windows": [around_now()], "digest": True})
    held = [await first.notify(to("di", t, priority=p))
            for t, p in (("disk 91%", Priority.MEDIUM), ("deploy done", Priority.LOW), ("disk 91%", Priority.HIGH))]
    for r in held:
        d = await delivery_of(first, r.id)
        assert d["status"] == "grouped" and d["recipient"] == di
        assert d["reason"].startswith("to @di (Di) by route for-di; held by quiet hours until ")
        assert d["reason"].endswith(" Europe/Berlin for the quiet-hours digest")
    await first.stop()
    assert posted(slack, "U0ADA") == []

    second = await make_hub(config(slack))
    await time_passes(second)
    await slack.wait_for("chat.postMessage", 1, timeout=15)
    async with second.require_store().read() as conn:
        (digest_id,) = (await conn.execute(select(deliveries.c.message_id).where(
            deliveries.c.recipient == di, deliveries.c.message_id.notin_([r.id for r in held])))).scalars().all()
    digest = await second.wait(digest_id)
    assert digest["title"] == "3 messages held during quiet hours: disk 91%, deploy done"
    assert digest["priority"] == "high" and digest["labels"]["event_type"] == "digest.quiet_hours"
    assert digest["body"].count("\n") == 2 and "[low] deploy done" in digest["body"]
    (sent,) = digest["deliveries"]
    assert (sent["status"], sent["integration"], sent["recipient"]) == ("delivered", "chat", di)
    assert sent["reason"] == "quiet-hours digest of 3 messages held for @di"
    (dm,) = posted(slack, "U0ADA")
    assert "3 messages held during quiet hours" in dm
    for r in held:
        d = await delivery_of(second, r.id)
        assert (d["status"], d["reason"]) == ("grouped", f"folded into the quiet-hours digest {digest_id}")
    async with second.require_store().read() as conn:
        row = (await conn.execute(select(groups).where(groups.c.route == QUIET_ROUTE))).one()
    assert (row.pending, row.total, row.flush_at) == (0, 3, None)


async def test_a_single_held_message_goes_as_itself_and_two_workers_send_one_digest(
    make_hub: Any, slack: FakeSlack
) -> None:
    one, two = await make_hub(config(slack)), await make_hub(config(slack))
    ed = await add_person(one, "ed", {"windows": [around_now()], "digest": True})
    fay = await add_person(one, "fay", {"windows": [around_now()], "digest": True})
    assert two.directory is not None
    await two.directory.reload("default")
    alone = await one.notify(to("ed", "only one"))
    alerts = [await (one, two)[i % 2].notify(to("fay", f"alert {i}")) for i in range(4)]
    await time_passes(one)
    await time_passes(two)

    async def flushed() -> bool:
        async with one.require_store().read() as conn:
            rows = (await conn.execute(select(groups).where(groups.c.route == QUIET_ROUTE))).all()
            digests = (await conn.execute(select(deliveries).where(
                deliveries.c.recipient == fay, deliveries.c.message_id.notin_([a.id for a in alerts])))).all()
        return (len(rows) == 2 and all(r.flush_at is None for r in rows)
                and len(digests) >= 1 and all(d.status == "delivered" for d in digests))

    await eventually(flushed, timeout=15)
    await one.wait(alone.id)
    d = await delivery_of(one, alone.id)
    assert d["status"] == "delivered" and d["recipient"] == ed
    assert d["reason"].startswith("to @ed (Ed) by route for-ed; held by quiet hours until ")
    assert d["reason"].endswith("for the quiet-hours digest; sent alone when they ended (nothing else was held)")
    (alone_dm,) = posted(slack, "U0GRACE")
    assert "only one" in alone_dm and "held during quiet hours" not in alone_dm
    (digest,) = posted(slack, "U0LINUS")  # one digest, though both workers flushed
    assert "4 messages held during quiet hours: alert 0, alert 1, alert 2, …" in digest
    for a in alerts:
        assert (await delivery_of(one, a.id))["reason"].startswith("folded into the quiet-hours digest ")


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
