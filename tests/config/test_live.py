"""Live configuration: every hub runs a new revision within 2 s of its commit, rebuilding only the
integrations that changed, without losing a delivery (config/live.py, config/switch.py)."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest
import structlog
from helpers import eventually
from sink import Reply, Sink
from sqlalchemy import text, update

from tidings import Message
from tidings.config import live, revisions
from tidings.config.document import Document, document_of, to_config
from tidings.delivery import outbox
from tidings.hub import Hub
from tidings.store.engine import Store
from tidings.store.tables import deliveries

SWITCH_WITHIN = 2.0


def hook(sink: Sink, path: str = "/hook", **extra: Any) -> dict[str, Any]:
    return {"kind": "webhook", "url": sink.url + path, "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 100},
            "breaker": {"failures": 1000}, **extra}


async def commit(store: Store, doc: Document, **kwargs: Any) -> int:
    """Commit ``doc`` as another process would (its own store, no validation of ours)."""
    async with store.write() as conn:
        revision, made = await revisions.commit(conn, copy.deepcopy(doc), source="api", **kwargs)
    assert made
    return revision.number


async def all_running(hubs: list[Hub], number: int, timeout: float = SWITCH_WITHIN) -> float:
    """Seconds until every hub runs revision ``number`` (fails beyond ``timeout``)."""
    started = time.monotonic()

    async def there() -> bool:
        return all(h.revision == number for h in hubs)

    await eventually(there, timeout=timeout, interval=0.01)
    return time.monotonic() - started


async def delivery(hub: Hub, message_id: str) -> dict[str, Any]:
    (d,) = (await hub.message(message_id))["deliveries"]
    return d


async def status_is(hub: Hub, message_id: str, *statuses: str, timeout: float = 10.0) -> dict[str, Any]:
    async def check() -> bool:
        return (await delivery(hub, message_id))["status"] in statuses

    await eventually(check, timeout=timeout)
    return await delivery(hub, message_id)


async def cleanups(hub: Hub) -> None:
    """Until what the hub's switches left behind is cleaned up (old integrations closed)."""
    await asyncio.gather(*list(hub._cleanups), return_exceptions=True)


# -- every process follows --------------------------------------------------------------------------
async def test_a_revision_committed_elsewhere_runs_in_every_hub_within_2s(
    make_hub: Any, make_config: Any, store: Store, sink: Sink
) -> None:
    data = {"integrations": {"a": hook(sink)}, "default": {"to": ["a"]}}
    hubs = [await make_hub(data), await make_hub(data), await make_hub(data, dispatch=False, watch=True)]
    assert len({h.revision for h in hubs}) == 1 and hubs[0].revision >= 1
    doc = document_of(make_config(data))
    for i in range(3):
        doc["integrations"][f"extra{i}"] = hook(sink, f"/extra{i}")
        number = await commit(store, doc)
        took = await all_running(hubs, number)
        assert took < SWITCH_WITHIN
        for hub in hubs:
            assert f"extra{i}" in hub.notifiers and f"extra{i}" in hub.router.project_of

    async def recorded() -> bool:  # each row is written right after its hub switched
        async with store.read() as conn:
            return {r.revision for r in await live.processes(conn)} == {number}

    await eventually(recorded, timeout=SWITCH_WITHIN)
    async with store.read() as conn:
        rows = await live.processes(conn)
    assert sorted(r.owner for r in rows) == sorted(h.watcher.owner for h in hubs if h.watcher)
    assert all(r.problem is None for r in rows)
    owners = {h.dispatcher.owner for h in hubs if h.dispatcher}
    assert owners <= {r.owner for r in rows}, "a dispatching hub is named by its dispatcher's owner"

    # The new integration sends, in every hub.
    r = await hubs[1].notify(Message("to the new one"), to=["extra2"])
    assert (await hubs[1].wait(r.id))["deliveries"][0]["status"] == "delivered"
    assert any(x.path == "/extra2" for x in sink.received)

    # A hub that stops takes its row with it.
    await hubs[2].stop()
    async with store.read() as conn:
        assert len(await live.processes(conn)) == 2


async def test_a_process_gone_without_stopping_shows_silent_then_its_row_goes(make_hub: Any) -> None:
    """kill -9 leaves a row: without a sign of life for 3 heartbeats it is *silent*; after GONE_AFTER
    the next row written removes it. A running process's row carries its last sign of life."""
    from tidings.store.tables import config_processes

    hub = await make_hub()
    now = time.time()
    async with hub.store.write() as conn:
        for owner, seen in (("dead:1:aaaaaa", now - 5 * live.HEARTBEAT), ("long-gone:2:bbbbbb", now - 2 * live.GONE_AFTER)):
            await conn.execute(config_processes.insert().values(owner=owner, revision=0, applied_at=seen, seen_at=seen))
    async with hub.store.write() as conn:
        await live.record(conn, "alive:3:cccccc", hub.revision, now, None)
    async with hub.store.read() as conn:
        rows = {p.owner: p for p in await live.processes(conn)}
    assert "long-gone:2:bbbbbb" not in rows
    assert rows["dead:1:aaaaaa"].silent and rows["dead:1:aaaaaa"].as_dict()["silent"] is True
    assert not rows["alive:3:cccccc"].silent and rows["alive:3:cccccc"].seen_at is not None


async def test_listen_switches_at_once_with_the_poll_slowed_down(make_hub: Any, make_config: Any, db: str,
                                                                 db_url: str, sink: Sink) -> None:
    """PostgreSQL: a commit's NOTIFY wakes the watchers; with a 60 s poll the switch still comes at once."""
    if db != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    data = {"integrations": {"a": hook(sink)}, "default": {"to": ["a"]}}
    hubs = [await make_hub(data, watch_interval=60), await make_hub(data, watch_interval=60)]

    async def listening() -> bool:
        return all(h.watcher is not None and h.watcher.listening for h in hubs)

    await eventually(listening, timeout=5)
    other = Store(db_url)
    try:
        doc = document_of(make_config(data))
        for i in range(3):
            doc["integrations"][f"n{i}"] = hook(sink)
            number = await commit(other, doc)
            assert await all_running(hubs, number, timeout=1.0) < 1.0

        # The connection is lost (a server restart, a proxy's idle cut): the watcher connects again.
        lost = hubs[0].watcher.listen_pid  # type: ignore[union-attr]
        async with other.write() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": lost})

        async def again() -> bool:
            w = hubs[0].watcher
            return w is not None and w.listening and w.listen_pid != lost

        await eventually(again, timeout=10)
        doc["integrations"]["after"] = hook(sink)
        number = await commit(other, doc)
        assert await all_running(hubs, number, timeout=1.0) < 1.0
    finally:
        await other.close()


async def test_without_listen_the_poll_switches(make_hub: Any, make_config: Any, store: Store, sink: Sink) -> None:
    data = {"integrations": {"a": hook(sink)}, "default": {"to": ["a"]}}
    hub = await make_hub(data, listen=False, watch_interval=0.1)
    doc = document_of(make_config(data))
    doc["integrations"]["b"] = hook(sink)
    assert await all_running([hub], await commit(store, doc)) < 1.0


# -- only what changed is rebuilt -------------------------------------------------------------------
async def test_a_changed_integration_is_rebuilt_and_an_unchanged_one_kept(
    make_hub: Any, make_config: Any, store: Store, sink: Sink
) -> None:
    data = {"integrations": {"a": hook(sink, "/a"), "b": hook(sink, "/b-old")},
            "routes": [{"name": "to-b", "match": {"labels": {"to": "b"}}, "to": ["b"]}], "default": {"to": ["a"]}}
    hub = await make_hub(data)
    r = await hub.notify(Message("warm up", labels={"to": "b"}))
    await hub.wait(r.id)
    a, b = hub._integrations["a"], hub._integrations["b"]
    lane_a, lane_b = hub.dispatcher.lanes["a"], hub.dispatcher.lanes["b"]
    assert b._session is not None  # type: ignore[attr-defined]

    doc = document_of(make_config(data))
    doc["integrations"]["b"]["url"] = sink.url + "/b-new"
    doc["integrations"]["b"]["concurrency"] = 3
    await all_running([hub], await commit(store, doc))
    assert hub._integrations["a"] is a and hub.notifiers["a"] is a and hub.dispatcher.lanes["a"] is lane_a
    new_b = hub._integrations["b"]
    assert new_b is not b and hub.dispatcher.lanes["b"] is not lane_b
    assert hub.dispatcher.lanes["b"].notifier is new_b and hub.dispatcher.lanes["b"].concurrency == 3
    await cleanups(hub)
    assert b._session is None, "the replaced integration's HTTP session is closed"  # type: ignore[attr-defined]
    assert not lane_b.workers

    r = await hub.notify(Message("after", labels={"to": "b"}))
    assert (await hub.wait(r.id))["deliveries"][0]["status"] == "delivered"
    assert sink.received[-1].path == "/b-new"


async def test_an_in_flight_send_finishes_when_its_integration_changes(
    make_hub: Any, make_config: Any, store: Store, sink: Sink
) -> None:
    data = {"integrations": {"a": hook(sink, "/old")}, "default": {"to": ["a"]}}
    hub = await make_hub(data)
    sink.script(Reply(200, delay=1.0))
    r = await hub.notify(Message("slow"))
    await asyncio.wait_for(sink.arrived.wait(), 5)
    old = hub._integrations["a"]
    doc = document_of(make_config(data))
    doc["integrations"]["a"]["url"] = sink.url + "/new"
    await all_running([hub], await commit(store, doc))
    assert hub._integrations["a"] is not old
    d = await status_is(hub, r.id, "delivered", "retrying", "dead")
    assert d["status"] == "delivered" and d["attempts"] == 1, d
    await cleanups(hub)
    assert old._session is None  # type: ignore[attr-defined]
    r2 = await hub.notify(Message("next"))
    assert (await hub.wait(r2.id))["deliveries"][0]["status"] == "delivered"
    assert [x.path for x in sink.received] == ["/old", "/new"]


# -- removed integrations hold their deliveries ----------------------------------------------------------
async def test_a_removed_integrations_deliveries_are_held_and_resume_when_it_comes_back(
    make_hub: Any, make_config: Any, store: Store, sink: Sink
) -> None:
    slow_retries = {"base": 30, "cap": 30, "max_attempts": 100}  # a retry waits: nothing else takes the replies
    data = {"integrations": {"a": hook(sink, retry=slow_retries), "keep": hook(sink, "/keep")}, "default": {"to": ["a"]}}
    hub = await make_hub(data)
    # One delivery in flight when the revision commits (its peer answers 503 after a while: it is
    # left retrying by the send, after the commit held what was waiting), one waiting to retry.
    sink.script(Reply(503), Reply(503, delay=1.0))
    waiting = await hub.notify(Message("waits"))
    await status_is(hub, waiting.id, "retrying")
    sink.arrived.clear()
    inflight = await hub.notify(Message("in flight"))
    await asyncio.wait_for(sink.arrived.wait(), 5)

    doc = document_of(make_config(data))
    del doc["integrations"]["a"]
    doc["default"] = {"to": ["keep"]}
    removed_in = await commit(store, doc)
    await all_running([hub], removed_in)
    assert "a" not in hub.notifiers and "a" not in hub.dispatcher.lanes
    reason = f"held: integration removed in configuration revision {removed_in}"
    for message in (waiting, inflight):
        d = await status_is(hub, message.id, "held")
        assert d["last_error"] == reason, d
    await cleanups(hub)
    assert (await delivery(hub, inflight.id))["attempts"] == 1, "the in-flight send was recorded, then held"

    # Messages route by the new revision now; the held ones wait.
    r = await hub.notify(Message("to keep"))
    assert (await hub.wait(r.id))["deliveries"][0]["integration"] == "keep"

    doc["integrations"]["a"] = hook(sink, retry=slow_retries)
    await all_running([hub], await commit(store, doc))
    for message in (waiting, inflight):
        d = await status_is(hub, message.id, "delivered")
        assert d["last_error"] is None


async def test_a_message_routed_just_before_the_switch_is_held_not_lost(
    make_hub: Any, make_config: Any, store: Store, sink: Sink
) -> None:
    """A hub that doesn't dispatch (an API process) writes deliveries by the routes it runs: one
    it wrote for an integration the revision removed ends held too, once it switched."""
    data = {"integrations": {"a": hook(sink), "b": hook(sink)}, "default": {"to": ["a"]}}
    api = await make_hub(data, dispatch=False, watch=False)
    doc = document_of(make_config(data))
    del doc["integrations"]["a"]
    doc["default"] = {"to": ["b"]}
    config = to_config(doc, api.file_config)
    # The commit lands while the API process still runs the old routes.
    number = await commit(store, doc)
    r = await api.notify(Message("routed by the old revision"))
    assert (await delivery(api, r.id))["integration"] == "a"
    switch = await api.apply_config(config, number)
    await switch.done()
    d = await delivery(api, r.id)
    assert d["status"] == "held" and d["last_error"] == f"held: integration removed in configuration revision {number}"


# -- routes switch atomically ------------------------------------------------------------------------
async def test_routes_switch_atomically(make_hub: Any, make_config: Any, sink: Sink) -> None:
    names = ["a", "b", "c", "d"]
    old = {"integrations": {n: hook(sink, f"/{n}") for n in names},
           "routes": [{"name": "first", "match": {"labels": {"team": "x"}}, "to": ["a"], "continue": True},
                      {"name": "second", "match": {"labels": {"team": "x"}}, "to": ["b"]}],
           "default": {"to": ["a"]}}
    new = copy.deepcopy(old)
    new["routes"][0]["to"], new["routes"][1]["to"] = ["c"], ["d"]
    hub = await make_hub(old, dispatch=False)
    configs = [to_config(document_of(make_config(d)), hub.file_config) for d in (new, old)]
    stop = asyncio.Event()
    receipts: list[Any] = []

    async def send() -> None:
        while not stop.is_set():
            receipts.append(await hub.notify(Message("m", labels={"team": "x"})))

    async def switch() -> None:
        for i in range(20):
            await hub.apply_config(configs[i % 2], hub.revision + 1)
            routed = len(receipts)
            while len(receipts) < routed + 3:  # some messages under each, some across the switch
                await asyncio.sleep(0)
        stop.set()

    await asyncio.gather(switch(), *(send() for _ in range(8)))
    seen = {tuple(sorted(d.integration for d in r.deliveries)) for r in receipts}
    assert seen == {("a", "b"), ("c", "d")}, seen


# -- a revision this process can't run ------------------------------------------------------------------
async def test_an_unrunnable_revision_leaves_the_old_one_running_and_says_why(
    make_hub: Any, make_config: Any, store: Store, sink: Sink
) -> None:
    data = {"integrations": {"a": hook(sink)}, "default": {"to": ["a"]}}
    hub = await make_hub(data)
    running = hub.revision
    doc = document_of(make_config(data))
    # Another process's file had this value; ours doesn't.
    doc["integrations"]["b"] = {"kind": "webhook", "url": sink.url, "secret": "${file:integrations.b.secret}"}
    with structlog.testing.capture_logs() as logs:
        bad = await commit(store, doc)

        async def recorded() -> bool:
            async with store.read() as conn:
                return any(p.problem for p in await live.processes(conn))

        await eventually(recorded, timeout=SWITCH_WITHIN)
    assert hub.revision == running and "b" not in hub.notifiers
    assert hub.watcher is not None and "integrations.b.secret" in (hub.watcher.problem or "")
    async with store.read() as conn:
        (row,) = await live.processes(conn)
    assert row.revision == running and "integrations.b.secret" in (row.problem or "")
    lines = [e for e in logs if e["event"] == "config.revision_not_applied"]
    assert len(lines) == 1 and lines[0]["revision"] == bad and lines[0]["running"] == running
    r = await hub.notify(Message("still works"))
    assert (await hub.wait(r.id))["deliveries"][0]["status"] == "delivered"

    # A vault secret that isn't stored: refused the same way.
    doc["integrations"]["b"]["secret"] = "${vault:not-stored}"
    await commit(store, doc)

    async def vault_problem() -> bool:
        return "not-stored" in (hub.watcher.problem or "")  # type: ignore[union-attr]

    await eventually(vault_problem, timeout=SWITCH_WITHIN)
    assert hub.revision == running

    # The next good revision runs, and the problem is gone.
    del doc["integrations"]["b"]
    doc["integrations"]["c"] = hook(sink)
    good = await commit(store, doc)
    await all_running([hub], good)

    async def cleared() -> bool:
        async with store.read() as conn:
            return [(p.revision, p.problem) for p in await live.processes(conn)] == [(good, None)]

    await eventually(cleared, timeout=SWITCH_WITHIN)
    assert hub.watcher.problem is None


# -- disabled integrations hold too ----------------------------------------------------------------------
async def test_disabling_by_hand_holds_and_enabling_resumes(make_hub: Any, sink: Sink) -> None:
    data = {"integrations": {"a": hook(sink)}, "default": {"to": ["a"]}}
    api = await make_hub(data, dispatch=False)
    r = await api.notify(Message("waits"))
    await api.set_enabled("a", False)
    d = await delivery(api, r.id)
    assert d["status"] == "held" and d["last_error"] == "held: integration disabled by hand"
    await api.set_enabled("a", True)
    assert (await delivery(api, r.id))["status"] == "pending"
    worker = await make_hub(data)
    assert (await worker.wait(r.id))["deliveries"][0]["status"] == "delivered"


async def test_a_message_sent_while_disabled_is_held_with_the_reason_and_sent_once_enabled(
    make_hub: Any, sink: Sink
) -> None:
    data = {"integrations": {"a": hook(sink), "b": hook(sink)}, "default": {"to": ["a", "b"]}}
    hub = await make_hub(data)
    await hub.set_enabled("a", False)
    r = await hub.notify(Message("while a is off"))
    assert {d.integration: d.status for d in r.deliveries}["a"] == "held"

    async def by_name() -> dict[str, dict[str, Any]]:
        return {d["integration"]: d for d in (await hub.message(r.id))["deliveries"]}

    async def b_delivered() -> bool:
        return (await by_name())["b"]["status"] == "delivered"

    await eventually(b_delivered, timeout=10)
    a = (await by_name())["a"]
    assert (a["status"], a["last_error"], a["attempts"]) == ("held", "held: integration disabled by hand", 0)
    await hub.set_enabled("a", True)

    async def a_delivered() -> bool:
        return (await by_name())["a"]["status"] == "delivered"

    await eventually(a_delivered, timeout=10)


async def test_a_held_delivery_keeps_its_thread_waiting(make_hub: Any, sink: Sink) -> None:
    """DESIGN rule 9: a later message of a thread never overtakes a held one to the same integration."""
    data = {"integrations": {"a": hook(sink)}, "default": {"to": ["a"]}}
    api = await make_hub(data, dispatch=False)
    first = await api.notify(Message("firing", thread_key="incident-1"))
    await api.set_enabled("a", False)
    second = await api.notify(Message("resolved", thread_key="incident-1"))
    other = await api.notify(Message("other thread", thread_key="incident-2"))
    assert (await delivery(api, first.id))["status"] == "held"
    assert (await delivery(api, second.id))["status"] == "held", "written while its integration is disabled"
    async with api.store.write() as conn:  # type: ignore[union-attr]
        # As a writer that read the integration's state before the disable committed leaves them:
        await conn.execute(update(deliveries).where(deliveries.c.message_id.in_([second.id, other.id]))
                           .values(status="pending", last_error=None))
    async with api.store.write() as conn:  # type: ignore[union-attr]
        claimed = await outbox.claim(conn, "test", ["a"], 10, time.time(), 30)
    assert [c.message_id for c in claimed] == [other.id], "the held first one blocks its thread"
    await api.set_enabled("a", True)
    worker = await make_hub(data)
    for r in (first, second):
        await status_is(worker, r.id, "delivered")
    bodies = [x.json()["data"]["title"] for x in sink.received]
    assert bodies.index("firing") < bodies.index("resolved")


async def test_a_send_left_retrying_after_disabling_is_held(make_hub: Any, sink: Sink) -> None:
    data = {"integrations": {"a": hook(sink)}, "default": {"to": ["a"]}}
    hub = await make_hub(data)
    sink.script(Reply(503, delay=0.5))
    r = await hub.notify(Message("in flight"))
    await asyncio.wait_for(sink.arrived.wait(), 5)
    await hub.set_enabled("a", False)
    d = await status_is(hub, r.id, "held")
    assert d["attempts"] == 1 and d["last_error"] == "held: integration disabled by hand"
    await hub.set_enabled("a", True)
    await status_is(hub, r.id, "delivered")


# -- reload ----------------------------------------------------------------------------------------------
async def test_reload_file_imports_and_switches(make_config: Any, tmp_path: Any, db_url: str, sink: Sink) -> None:
    import yaml

    path = tmp_path / "tidings.yaml"
    data = {"server": {"database": db_url, "allow_destinations": ["127.0.0.1/32"]},
            "integrations": {"a": hook(sink)}, "default": {"to": ["a"]}}
    path.write_text(yaml.safe_dump(data))
    hub = Hub.from_config(path)
    async with hub:
        first = hub.revision
        data["integrations"]["b"] = hook(sink)
        path.write_text(yaml.safe_dump(data))
        assert await hub.reload_file() == first + 1 and "b" in hub.notifiers
        path.write_text("integrations: {a: {kind: webhook}}\nroutes: [\n")
        with pytest.raises(Exception) as refused:
            await hub.reload_file()
        assert "b" in hub.notifiers and hub.revision == first + 1, refused.value


async def test_catch_up_switches_at_once(make_hub: Any, make_config: Any, store: Store, sink: Sink) -> None:
    """After a commit in this process (the API's), the hub switches before it answers."""
    data = {"integrations": {"a": hook(sink)}, "default": {"to": ["a"]}}
    hubs = [await make_hub(data, watch_interval=60, listen=False), await make_hub(data, dispatch=False)]
    doc = document_of(make_config(data))
    doc["integrations"]["b"] = hook(sink)
    number = await commit(store, doc)
    for hub in hubs:
        assert await hub.catch_up() is True and hub.revision == number and "b" in hub.notifiers
        assert await hub.catch_up() is False
    async with store.read() as conn:
        assert [p.revision for p in await live.processes(conn)] == [number], "only the watching hub has a row"


async def test_messages_flow_while_revisions_change_and_none_is_lost_or_sent_twice(
    make_hub: Any, make_config: Any, store: Store, sink: Sink
) -> None:
    """Two dispatching hubs and an API hub; revisions change ``a``, remove ``b`` and bring it back
    while messages flow. Every delivery is sent exactly once, those of ``b`` after it came back."""
    base = {"integrations": {"a": hook(sink, "/a"), "b": hook(sink, "/b")}, "default": {"to": ["a", "b"]}}
    hubs = [await make_hub(base), await make_hub(base), await make_hub(base, dispatch=False, watch=True)]
    api = hubs[2]
    doc = document_of(make_config(base))
    receipts: list[Any] = []

    async def send(n: int) -> None:
        for i in range(n):
            receipts.append(await api.notify(Message(f"m{len(receipts)}-{i}")))

    for i in range(9):
        revised = copy.deepcopy(doc)
        if i % 3 == 0:
            revised["integrations"]["a"]["url"] = sink.url + f"/a{i}"
        elif i % 3 == 1:
            del revised["integrations"]["b"]
            revised["default"] = {"to": ["a"]}
        number, _ = await asyncio.gather(commit(store, revised), send(10))
        await asyncio.gather(all_running(hubs, number), send(10))
    assert "b" in hubs[0].notifiers

    async def all_delivered() -> bool:
        async with store.read() as conn:
            return not (await conn.execute(text(
                "SELECT count(*) FROM deliveries WHERE status <> 'delivered'"))).scalar()

    await eventually(all_delivered, timeout=30)
    async with store.read() as conn:
        ids = [r[0] for r in await conn.execute(text("SELECT id FROM deliveries"))]
    sent = [x.json()["id"] for x in sink.received]
    assert sorted(sent) == sorted(ids), "every delivery sent exactly once"
    assert len(ids) >= len(receipts) + 1
