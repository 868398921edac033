"""Escalation: a route's ``escalation:`` steps fire while a message stays unacknowledged, each as
deliveries with their reason; an acknowledgement stops them; the rows survive restarts and many
workers share them. Time is driven by passing ``now`` to the loop: nothing sleeps."""

from __future__ import annotations

import time
from typing import Any

import pytest
from helpers import eventually
from sqlalchemy import select, update

from tidings import Message, Priority
from tidings.delivery.escalation import Escalator, claim_due, span
from tidings.errors import NotFound
from tidings.store.recipient_tables import escalations

CONFIG: dict[str, Any] = {
    "integrations": {
        "ops": {"kind": "inbox"},
        "pager": {"kind": "inbox"},
        "phone": {"kind": "inbox"},
        "team-x": {"kind": "inbox", "project": "x"},
    },
    "routes": [
        {"name": "pager", "match": {"labels": {"team": "db"}}, "to": ["ops"],
         "escalation": {"steps": [{"after": "10m", "to": ["pager"]}, {"after": "20m", "to": ["phone", "ops"]}]}},
        {"name": "x", "project": "x", "to": ["team-x"]},
    ],
}


def critical(title: str = "db down", **labels: str) -> Message:
    return Message(title, priority=Priority.CRITICAL, labels={"team": "db", **labels})


async def rows(hub: Any, message_id: str) -> list[Any]:
    async with hub.store.read() as conn:
        return (await conn.execute(select(escalations).where(escalations.c.message_id == message_id))).all()


async def test_a_matching_critical_message_gets_its_escalation_row_with_the_message(make_hub: Any) -> None:
    hub = await make_hub(CONFIG, dispatch=False)
    receipt = await hub.notify(critical())
    [row] = await rows(hub, receipt.id)
    message = await hub.message(receipt.id)
    assert (row.route, row.step, row.status, row.project) == ("pager", 0, "waiting", "default")
    assert row.due_at == message["created_at"] + 600
    assert message["escalation"] == {"route": "pager", "step": 0, "status": "waiting", "due_at": row.due_at,
                                     "reason": None}
    # Not covered: a normal message of the route, a message of another route, one sent with `to`,
    # a silenced one.
    normal = await hub.notify(Message("slow query", priority=Priority.MEDIUM, labels={"team": "db"}))
    other = await hub.notify(Message("disk", priority=Priority.CRITICAL, labels={"team": "web"}))
    direct = await hub.notify(critical(), to=["ops"])
    await hub.silence({"team": "db"}, 3600, by="test")
    silenced = await hub.notify(critical())
    for r in (normal, other, direct, silenced):
        assert await rows(hub, r.id) == []
        assert (await hub.message(r.id))["escalation"] is None


async def test_an_unacknowledged_message_escalates_step_by_step_then_ends(make_hub: Any) -> None:
    hub = await make_hub(CONFIG, dispatch=False)
    receipt = await hub.notify(critical())
    t0 = (await hub.message(receipt.id))["created_at"]
    esc = Escalator(hub, "worker-a")
    assert await esc.run_once(now=t0 + 599) == 0  # not due yet

    assert await esc.run_once(now=t0 + 600) == 1
    message = await hub.message(receipt.id)
    step1 = [d for d in message["deliveries"] if d["integration"] == "pager"]
    assert [(d["route"], d["status"], d["reason"]) for d in step1] == [
        ("pager", "pending", "escalation step 1/2 of route pager: not acknowledged within 10m")]
    assert step1[0]["next_attempt_at"] == t0 + 600
    assert message["escalation"] == {"route": "pager", "step": 1, "status": "waiting", "due_at": t0 + 600 + 1200,
                                     "reason": "escalation step 1/2 of route pager: not acknowledged within 10m"}
    assert await esc.run_once(now=t0 + 600 + 1199) == 0
    assert await esc.run_once(now=t0 + 1800) == 1
    message = await hub.message(receipt.id)
    reasons = sorted((d["integration"], d["reason"] or "") for d in message["deliveries"])
    step2 = "escalation step 2/2 of route pager: not acknowledged within 20m"
    assert reasons == [("ops", ""), ("ops", step2), ("pager", reasons[2][1]), ("phone", step2)]
    assert message["escalation"]["status"] == "done"
    assert message["escalation"]["step"] == 2
    assert message["escalation"]["reason"] == f"{step2}; that was the last step"
    assert await esc.run_once(now=t0 + 99999) == 0  # nothing more


async def test_a_step_due_in_the_past_is_fired_by_the_hub_and_delivered(make_hub: Any) -> None:
    """The dispatching hub's own loop fires a step that is due and its deliveries go out."""
    hub = await make_hub(CONFIG)
    receipt = await hub.notify(critical())
    async with hub.store.write() as conn:
        await conn.execute(update(escalations).values(due_at=0))
    hub.escalator.wake()
    await eventually(lambda: _has(hub, receipt.id, "pager"))
    message = await hub.wait(receipt.id)
    assert [(d["integration"], d["status"]) for d in message["deliveries"]] == [("ops", "delivered"), ("pager", "delivered")]
    assert message["deliveries"][1]["reason"] == "escalation step 1/2 of route pager: not acknowledged within 10m"
    assert message["escalation"]["step"] == 1


async def _has(hub: Any, message_id: str, integration: str) -> bool:
    return any(d["integration"] == integration for d in (await hub.message(message_id))["deliveries"])


async def test_an_ack_one_second_before_the_step_stops_it(make_hub: Any) -> None:
    hub = await make_hub(CONFIG, dispatch=False)
    esc = Escalator(hub, "worker-a")
    receipt = await hub.notify(critical())
    t0 = (await hub.message(receipt.id))["created_at"]
    await esc.run_once(now=t0 + 600)  # step 1 fires
    before = len((await hub.message(receipt.id))["deliveries"])
    ack, created = await hub.ack(receipt.id, by="ana", via="cli")
    assert created
    # The ack itself stops the escalation at once (the history shows it stopped, and why).
    message = await hub.message(receipt.id)
    assert message["escalation"]["status"] == "stopped"
    assert message["escalation"]["reason"].startswith("acknowledged by ana via cli at ")
    assert await esc.run_once(now=t0 + 1800) == 0
    assert len((await hub.message(receipt.id))["deliveries"]) == before


async def test_the_step_rechecks_the_ack_in_its_own_transaction(make_hub: Any) -> None:
    """An ack recorded 1 s before the step is due, by a writer that does not stop escalations
    (an ack row written directly): the step still finds it, under its lock, and fires nothing."""
    from tidings.acks import ack_id
    from tidings.store.tables import acks

    hub = await make_hub(CONFIG, dispatch=False)
    esc = Escalator(hub, "worker-a")
    receipt = await hub.notify(critical())
    t0 = (await hub.message(receipt.id))["created_at"]
    async with hub.store.write() as conn:
        await conn.execute(acks.insert().values(id=ack_id(receipt.id), message_id=receipt.id, by="U1 (bo)", via="slack",
                                                integration="slack", at=t0 + 599))
    [due] = await _claim(hub, "worker-a", t0 + 600)
    assert await esc.step(due, t0 + 600) == 1
    message = await hub.message(receipt.id)
    assert [d["integration"] for d in message["deliveries"]] == ["ops"]
    assert message["escalation"]["status"] == "stopped"
    assert message["escalation"]["reason"] == "acknowledged by U1 (bo) via slack at " + _utc(t0 + 599)


async def test_a_new_hub_on_the_same_database_carries_on(make_hub: Any) -> None:
    first = await make_hub(CONFIG, dispatch=False)
    receipt = await first.notify(critical())
    t0 = (await first.message(receipt.id))["created_at"]
    assert await Escalator(first, "old").run_once(now=t0 + 600) == 1
    # A worker that claims and dies: its lease keeps the row from others until it ends.
    async with first.store.write() as conn:
        await conn.execute(update(escalations).values(due_at=t0 + 1000))
    assert len(await _claim(first, "dying", t0 + 1000, lease=60)) == 1
    await first.stop()

    second = await make_hub(CONFIG, dispatch=False)
    esc = Escalator(second, "new")
    assert await esc.run_once(now=t0 + 1030) == 0  # still leased to the dead worker
    assert await esc.run_once(now=t0 + 1061) == 1
    message = await second.message(receipt.id)
    assert sorted(d["reason"] or "" for d in message["deliveries"]) == [
        "", "escalation step 1/2 of route pager: not acknowledged within 10m",
        "escalation step 2/2 of route pager: not acknowledged within 20m",
        "escalation step 2/2 of route pager: not acknowledged within 20m"]
    assert message["escalation"]["status"] == "done"


async def test_a_stale_claim_fires_nothing(make_hub: Any) -> None:
    """A worker whose lease ran out while another took the row and fired the step: when it gets
    to it, the step has moved on and it does nothing."""
    hub = await make_hub(CONFIG, dispatch=False)
    receipt = await hub.notify(critical())
    t0 = (await hub.message(receipt.id))["created_at"]
    slow, fast = Escalator(hub, "slow"), Escalator(hub, "fast")
    [stale] = await _claim(hub, "slow", t0 + 600, lease=5)
    assert await fast.run_once(now=t0 + 606) == 1
    assert await slow.step(stale, t0 + 607) == 0
    message = await hub.message(receipt.id)
    assert sum(1 for d in message["deliveries"] if d["integration"] == "pager") == 1


async def test_a_step_naming_what_no_longer_exists_is_skipped_with_its_reason(make_hub: Any) -> None:
    """The configuration changed meanwhile (a live switch): the step names an integration this
    project doesn't have (any more)."""
    from tidings.config.people import Escalation

    config = {**CONFIG, "routes": [{**CONFIG["routes"][0], "escalation": {"steps": [
        {"after": "1m", "to": ["phone"]}, {"after": "1m", "to": ["pager"]}]}}]}
    hub = await make_hub(config, dispatch=False)
    receipt = await hub.notify(critical())
    hub.router.escalation_of["pager"] = Escalation.model_validate(
        {"steps": [{"after": "1m", "to": ["team-x"]}, {"after": "1m", "to": ["pager"]}]})
    t0 = (await hub.message(receipt.id))["created_at"]
    esc = Escalator(hub, "w")
    assert await esc.run_once(now=t0 + 60) == 1
    state = (await hub.message(receipt.id))["escalation"]
    assert state["status"] == "waiting"
    assert state["reason"] == "escalation step 1/2 of route pager skipped: unknown integration 'team-x'"
    assert await esc.run_once(now=t0 + 120) == 1
    assert [d["integration"] for d in (await hub.message(receipt.id))["deliveries"]] == ["ops", "pager"]


def test_span_reads_as_people_write_durations() -> None:
    assert [span(x) for x in (0, 45, 600, 5400, 90061)] == ["0s", "45s", "10m", "1h30m", "1d1h1m1s"]


async def _claim(hub: Any, owner: str, now: float, lease: float = 60) -> list[Any]:
    async with hub.store.write() as conn:
        return await claim_due(conn, owner, now, lease=lease)


def _utc(at: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def test_two_workers_fire_each_step_once(make_hub: Any) -> None:
    """Two hubs on one database (PostgreSQL: real concurrent claims with SKIP LOCKED) race over
    the same due steps: every step fires exactly once."""
    import asyncio

    one = await make_hub(CONFIG, dispatch=False)
    two = await make_hub(CONFIG, dispatch=False)
    ids = [(await one.notify(critical(f"db {i} down"))).id for i in range(30)]
    t0 = max([(await one.message(i))["created_at"] for i in ids])
    workers = [Escalator(one, "one", batch=4), Escalator(two, "two", batch=4)]
    for now in (t0 + 600, t0 + 1800):
        done: list[int] = []
        while not done or sum(done[-2:]):
            done += await asyncio.gather(*(w.run_once(now=now) for w in workers))
        assert sum(done) == len(ids)
        assert sum(done[::2]) and sum(done[1::2])  # both took part
    for message_id in ids:
        message = await one.message(message_id)
        assert sorted(d["integration"] for d in message["deliveries"]) == ["ops", "ops", "pager", "phone"], message_id
        assert message["escalation"]["status"] == "done"


async def test_an_ack_committing_during_a_step_waits_for_it_and_stops_what_is_left(
    make_hub: Any, monkeypatch: Any
) -> None:
    """The race: the step is writing its deliveries when someone acknowledges. The ack waits for
    the step's lock; the step's deliveries stay (they were made before the ack) and the ack then
    stops the rest: never an ack recorded and a later step fired anyway."""
    import asyncio

    from tidings.delivery import escalation as module

    hub = await make_hub(CONFIG, dispatch=False)
    receipt = await hub.notify(critical())
    t0 = (await hub.message(receipt.id))["created_at"]
    writing, release = asyncio.Event(), asyncio.Event()
    real = module.add_deliveries

    async def slow(*args: Any, **kwargs: Any) -> Any:
        refs = await real(*args, **kwargs)
        writing.set()
        await release.wait()
        return refs

    monkeypatch.setattr(module, "add_deliveries", slow)
    step = asyncio.create_task(Escalator(hub, "w").run_once(now=t0 + 600))
    await writing.wait()
    ack = asyncio.create_task(hub.ack(receipt.id, by="ana", via="api"))
    done, _ = await asyncio.wait({ack}, timeout=0.3)
    assert not done  # held by the step's lock
    release.set()
    assert await step == 1
    _, created = await ack
    assert created
    message = await hub.message(receipt.id)
    assert [d["integration"] for d in message["deliveries"]] == ["ops", "pager"]
    assert (message["escalation"]["status"], message["escalation"]["step"]) == ("stopped", 1)
    assert await Escalator(hub, "w").run_once(now=t0 + 1800) == 0


async def test_a_step_waiting_on_an_ack_in_progress_fires_nothing(make_hub: Any) -> None:
    """The other order: the ack holds the row (its transaction not committed yet) when the step
    comes; the step waits, then finds the message acknowledged."""
    import asyncio

    from tidings.acks import record_ack

    hub = await make_hub(CONFIG, dispatch=False)
    receipt = await hub.notify(critical())
    t0 = (await hub.message(receipt.id))["created_at"]
    esc = Escalator(hub, "w")
    [due] = await _claim(hub, "w", t0 + 600)
    async with hub.store.write() as conn:
        await record_ack(conn, receipt.id, by="bo", via="email", now=t0 + 599)
        step = asyncio.create_task(esc.step(due, t0 + 600))
        done, _ = await asyncio.wait({step}, timeout=0.3)
        assert not done  # the ack's transaction holds it
    assert await step == 0  # the ack stopped it: nothing to fire
    message = await hub.message(receipt.id)
    assert [d["integration"] for d in message["deliveries"]] == ["ops"]
    assert message["escalation"]["status"] == "stopped"
    assert message["escalation"]["reason"] == "acknowledged by bo via email at " + _utc(t0 + 599)


def test_the_documented_policy_is_valid_and_escalates_as_the_page_says() -> None:
    import re
    from pathlib import Path

    import yaml

    from tidings.config import parse_config
    from tidings.routing import Router

    page = (Path(__file__).parents[2] / "docs" / "escalation.md").read_text()
    config = parse_config(yaml.safe_load(re.search(r"```yaml\n(.*?)```", page, re.S).group(1)))
    router = Router(config)
    assert router.escalations(Message("x", priority=Priority.CRITICAL, labels={"team": "db"})) == ["db"]
    assert router.escalations(Message("x", priority=Priority.HIGH, labels={"team": "db"})) == ["db"]
    assert router.escalations(Message("x", priority=Priority.MEDIUM, labels={"team": "db"})) == []
    assert router.escalations(Message("x", priority=Priority.CRITICAL, labels={"team": "web"})) == []
    assert [(s.after, s.to) for s in router.escalation_of["db"].steps] == [(600, ["mail"]), (1200, ["pager", "slack"])]


def test_a_step_naming_an_unknown_or_foreign_integration_is_a_config_problem() -> None:
    from tidings.config import parse_config
    from tidings.errors import ConfigError

    bad = {**CONFIG, "routes": [{**CONFIG["routes"][0], "escalation": {"steps": [
        {"after": "1m", "to": ["pagr", "team-x", "@oncall"]}]}}],
        "default": {"to": ["ops"], "escalation": {"steps": [{"after": "1m", "to": ["phne"]}]}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(bad)
    text = str(caught.value)
    assert "routes[0].escalation.steps[0].to[0]: unknown integration 'pagr' (did you mean 'pager'?)" in text
    assert "routes[0].escalation.steps[0].to[1]: integration 'team-x' belongs to project 'x', not 'default'" in text
    assert "default.escalation.steps[0].to[0]: unknown integration 'phne'" in text
    assert "@oncall" not in text  # a recipient handle is resolved when the step fires


async def test_retention_keeps_a_message_whose_escalation_still_waits(make_hub: Any) -> None:
    from tidings.config.models import RetentionSettings
    from tidings.retention import prune

    hub = await make_hub(CONFIG)
    waiting = await hub.notify(critical())
    ended = await hub.notify(critical("db slow"))
    await hub.ack(ended.id, by="ana", via="cli")
    for r in (waiting, ended):
        await hub.wait(r.id)
    counts = await prune(hub.store, RetentionSettings(messages="1s"), now=time.time() + 3600, pause=0)
    assert counts["messages"] == 1
    assert (await hub.message(waiting.id))["escalation"]["status"] == "waiting"
    with pytest.raises(NotFound):
        await hub.message(ended.id)
