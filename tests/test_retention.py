"""Retention on SQLite and PostgreSQL: finished rows older than their period go (in batches, with
what hangs off them); anything still to send or process stays, however old."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sink import Sink
from sqlalchemy import func, insert, select

from tidings import Message
from tidings.config.models import RetentionSettings
from tidings.ids import new_id
from tidings.retention import Pruner, prune
from tidings.store.tables import acks, dedup, deliveries, events, groups, inbox, messages, silences, threads

DAY = 86400.0
LATER = 31 * DAY
"""Prune as if this much time had passed: everything written by the test is then 31 days old."""


async def count(hub: Any, table: Any) -> int:
    async with hub.store.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar())


async def finished_and_waiting(make_hub: Any, sink: Sink) -> tuple[Any, list[str], str]:
    """Two finished messages (delivered and acknowledged; dead) and one still waiting."""
    config = {
        "integrations": {"ops": {"kind": "webhook", "url": sink.url + "/hook", "retry": {"max_attempts": 1}}},
        "default": {"to": ["inbox"]},
    }
    hub = await make_hub(config)
    sink.script(400)
    done = [await hub.notify(Message("delivered")), await hub.notify(Message("refused"), to=["ops"])]
    for r in done:
        await hub.wait(r.id)
    await hub.ack(done[0].id, by="alice", via="api")
    await hub.stop()  # nobody sends from here on: the next delivery keeps waiting
    writer = await make_hub(config, dispatch=False)
    waiting = await writer.notify(Message("still to send"), to=["ops"])
    return writer, [r.id for r in done], waiting.id


async def test_finished_messages_go_with_their_deliveries_acks_and_inbox_items(make_hub: Any, sink: Sink) -> None:
    hub, done, waiting = await finished_and_waiting(make_hub, sink)
    assert (await count(hub, messages), await count(hub, deliveries), await count(hub, acks)) == (3, 3, 1)
    settings = hub.config.retention

    dry = await prune(hub.store, settings, dry_run=True, now=time.time() + LATER)
    assert dry["messages"] == 2 and dry["inbox"] == 1
    assert await count(hub, messages) == 3, "a dry run deletes nothing"

    pruned = await prune(hub.store, settings, now=time.time() + LATER, batch=1)  # one row per transaction
    assert pruned["messages"] == 2 and pruned["inbox"] == 1
    async with hub.store.read() as conn:
        left = [r.id for r in await conn.execute(select(messages.c.id))]
        left_deliveries = [r.message_id for r in await conn.execute(select(deliveries.c.message_id))]
    assert left == [waiting] and left_deliveries == [waiting], "the waiting delivery stays, however old"
    assert await count(hub, acks) == 0 and await count(hub, inbox) == 0
    with pytest.raises(Exception, match="no message"):
        await hub.message(done[0])


async def test_rows_younger_than_their_period_stay(make_hub: Any, sink: Sink) -> None:
    hub, _, _ = await finished_and_waiting(make_hub, sink)
    assert await prune(hub.store, hub.config.retention) == dict.fromkeys(
        ["messages", "events", "inbox", "sync_runs", "dedup", "silences", "threads", "groups"], 0
    )
    ten_days = await prune(hub.store, RetentionSettings(messages=60 * DAY, inbox=5 * DAY), now=time.time() + 10 * DAY)
    assert ten_days["messages"] == 0 and ten_days["inbox"] == 1
    assert await count(hub, messages) == 3


async def test_null_keeps_forever(make_hub: Any, sink: Sink) -> None:
    hub, _, _ = await finished_and_waiting(make_hub, sink)
    forever = RetentionSettings(messages=None, events=None, inbox=None, sync_runs=None)
    assert await prune(hub.store, forever, now=time.time() + 1000 * DAY) == {"dedup": 0}
    assert await count(hub, messages) == 3 and await count(hub, inbox) == 1


async def test_events_windows_silences_threads_and_groups(make_hub: Any) -> None:
    hub = await make_hub(dispatch=False)
    now = time.time()
    event = {"integration": "gh", "kind": "github", "event_type": "ping", "received_at": now, "headers": {},
             "body": b"{}", "attempts": 0, "next_attempt_at": now}
    async with hub.store.write() as conn:
        await conn.execute(insert(events), [
            {**event, "id": new_id(), "delivery_key": "done", "status": "processed"},
            {**event, "id": new_id(), "delivery_key": "failed", "status": "failed"},
            {**event, "id": new_id(), "delivery_key": "waiting", "status": "received"},
        ])
        await conn.execute(insert(dedup), [
            {"key": "closed", "seen_at": now - 600, "expires_at": now - 300},
            {"key": "open", "seen_at": now, "expires_at": now + 300},
        ])
        await conn.execute(insert(silences), [
            {"id": new_id(), "matchers": {"a": "b"}, "until": now + 60, "created_at": now, "created_by": "t"},
        ])
        await conn.execute(insert(threads), [
            {"integration": "slack", "key": "k1", "thread_key": "t1", "ref": {}, "message_id": "m",
             "created_at": now, "updated_at": now},
        ])
        await conn.execute(insert(groups), [
            {"id": new_id(), "route": "r", "key": "flushed", "labels": {}, "created_at": now, "updated_at": now,
             "flush_at": None, "pending": 0, "total": 3, "firing": False},
            {"id": new_id(), "route": "r", "key": "due", "labels": {}, "created_at": now, "updated_at": now,
             "flush_at": now + 30, "pending": 2, "total": 2, "firing": True},
        ])
    assert (await prune(hub.store, hub.config.retention))["dedup"] == 1, "a closed window goes at once"
    async with hub.store.read() as conn:
        assert [r.key for r in await conn.execute(select(dedup.c.key))] == ["open"]
    pruned = await prune(hub.store, hub.config.retention, now=now + LATER)
    assert pruned == {"messages": 0, "events": 2, "inbox": 0, "sync_runs": 0, "dedup": 1, "silences": 1, "threads": 1,
                      "groups": 1}
    async with hub.store.read() as conn:
        assert [r.status for r in await conn.execute(select(events.c.status))] == ["received"]
        assert [r.key for r in await conn.execute(select(groups.c.key))] == ["due"]


async def test_a_dispatching_hub_prunes_in_the_background(
    make_hub: Any, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Pruner, "FIRST_RUN", 0.0)
    hub = await make_hub({"retention": {"messages": 1.0, "inbox": 1.0, "interval": 0.1}})
    receipt = await hub.notify(Message("soon gone"))
    await hub.wait(receipt.id)  # delivered well within the second it is kept
    deadline = time.monotonic() + 10
    while (await count(hub, messages) or await count(hub, inbox)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await count(hub, messages) == 0 and await count(hub, inbox) == 0
    assert "tidings_pruned_rows_total" in hub.metrics.render().decode()


def test_retention_settings_parse_durations_and_null() -> None:
    from tidings.config import parse_config

    cfg = parse_config({"retention": {"messages": "90d", "events": None, "interval": "15m"}})
    assert cfg.retention.messages == 90 * DAY and cfg.retention.events is None
    assert cfg.retention.inbox == 30 * DAY and cfg.retention.interval == 900.0


async def test_a_row_that_changed_after_it_was_found_stays(
    make_hub: Any, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dead message is found; before it is deleted its delivery is retried by hand: it stays."""
    import tidings.retention as retention

    hub, done, _ = await finished_and_waiting(make_hub, sink)
    dead = done[1]
    delivery_id = (await hub.message(dead))["deliveries"][0]["id"]
    found = retention._select_due

    def found_then_retried(rule: Any, now: float, limit: int | None) -> Any:
        query = found(rule, now, limit)
        if rule.table is messages:
            # Found while finished, as the read transaction saw it; retried right after.
            query = select(messages.c.id).where(messages.c.id == dead)
        return query

    monkeypatch.setattr(retention, "_select_due", found_then_retried)
    await hub.retry(delivery_id)
    pruned = await prune(hub.store, hub.config.retention, now=time.time() + LATER)
    assert pruned["messages"] == 0
    assert (await hub.message(dead))["deliveries"][0]["status"] == "pending"


async def test_a_message_still_waiting_in_a_digest_stays(make_hub: Any) -> None:
    from tidings.store.tables import group_members

    hub = await make_hub(dispatch=False)
    receipt = await hub.notify(Message("folded"))
    now = time.time()
    group_id = new_id()
    async with hub.store.write() as conn:
        await conn.execute(update_deliveries_to("grouped", receipt.id))
        await conn.execute(insert(groups), [{"id": group_id, "route": "r", "key": "k", "labels": {}, "created_at": now,
                                            "updated_at": now, "flush_at": now + 30, "pending": 1, "total": 1}])
        await conn.execute(insert(group_members), [{"group_id": group_id, "message_id": receipt.id, "created_at": now}])
    assert (await prune(hub.store, hub.config.retention, now=now + LATER))["messages"] == 0
    async with hub.store.write() as conn:
        await conn.execute(group_members.update().values(flushed_at=now))
    assert (await prune(hub.store, hub.config.retention, now=now + LATER))["messages"] == 1


def update_deliveries_to(status: str, message_id: str) -> Any:
    return deliveries.update().where(deliveries.c.message_id == message_id).values(status=status)


async def test_ended_sync_runs_go_and_a_running_one_stays(make_hub: Any) -> None:
    from tidings.store.tables import sync_runs
    from tidings.sync import runs

    hub = await make_hub(dispatch=False)
    async with hub.store.write() as conn:
        ended = await runs.insert_run(conn, "default", "gh", "sweep")
        running = await runs.insert_run(conn, "default", "gh", "webhook")
        await conn.execute(sync_runs.update().where(sync_runs.c.id == ended).values(status="ok", ended_at=time.time()))
    assert (await prune(hub.store, hub.config.retention))["sync_runs"] == 0  # not old yet
    assert (await prune(hub.store, hub.config.retention, now=time.time() + LATER))["sync_runs"] == 1
    async with hub.store.read() as conn:
        assert [r.id for r in await conn.execute(select(sync_runs.c.id))] == [running]
