"""How sync runs (``sync/service.py``, ``sync/runs.py``, ``sync/cursors.py``), on SQLite and PostgreSQL,
around a scripted engine (``service_fakes``): claims, queues, the sync log, failure notices."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select, update
from sync.service_fakes import Script, install, tracker, until

from tidings.accounts.projects import set_member
from tidings.accounts.users import create_user
from tidings.audit import SYSTEM
from tidings.store.tables import audit_log, messages, sync_cursors, sync_runs
from tidings.sync import cursors, runs
from tidings.sync.engine import RunState
from tidings.sync.model import AuthFailed, RateLimited, Rejected
from tidings.sync.service import INTERRUPTED, SyncService
from tidings.sync.tasks import TaskChange


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    return install(monkeypatch)


ALPHA = {
    "integrations": {"alpha-inbox": {"kind": "inbox", "project": "alpha"}},
    "routes": [{"project": "alpha", "match": {"labels": {"event_type": "sync.failing"}}, "to": ["alpha-inbox"]}],
}


async def _runs(hub: Any, **where: Any) -> list[Any]:
    q = select(sync_runs).order_by(sync_runs.c.id)
    for k, v in where.items():
        q = q.where(sync_runs.c[k] == v)
    async with hub.store.read() as conn:
        return list((await conn.execute(q)).all())


async def _cursor(hub: Any, name: str) -> Any:
    async with hub.store.read() as conn:
        return await cursors.holder(conn, name)


async def _due_now(hub: Any, *names: str) -> None:
    async with hub.store.write() as conn:
        await conn.execute(update(sync_cursors).where(sync_cursors.c.integration.in_(names)).values(next_run_at=0))


async def test_two_services_never_sweep_one_mapping_at_once(make_hub: Any, script: Script) -> None:
    """Two workers on one database share six mappings: each sweep runs once, on one of them,
    never twice at once, round after round."""
    names = [f"t{i}" for i in range(6)]
    hubs = [await make_hub(dispatch=False) for _ in range(2)]
    for hub in hubs:
        for name in names:
            tracker(hub, name)
    gate = asyncio.Event()

    async def held(_tracker: Any, run: Any, _mark: Any, _etag: Any) -> None:
        await gate.wait()
        run.unchanged += 2

    script.sweep = held
    services = [SyncService(hub, poll=0.02, concurrency=4) for hub in hubs]
    for s in services:
        s.start()
    try:
        for round_ in range(3):
            await until(lambda: sum(script.active.values()) == len(names), what="every mapping swept")
            # Both workers keep looking meanwhile: nothing more starts while the sweeps are held.
            for s in services:
                s.wake()
            await until(lambda: len(script.calls) == len(names) * (round_ + 1))
            assert set(script.active) == set(names) and all(v == 1 for v in script.active.values())
            gate.set()
            await until(lambda: sum(script.active.values()) == 0)
            await until(lambda: all(not s._sweeping for s in services))
            gate.clear()
            rows = await _runs(hubs[0], status="ok")
            assert len(rows) == len(names) * (round_ + 1)
            if round_ < 2:
                await _due_now(hubs[0], *names)
                for s in services:
                    s.wake()
    finally:
        gate.set()
        for s in services:
            await s.stop()
    assert all(v == 1 for v in script.most.values()), script.most
    assert sorted(c[1] for c in script.calls) == sorted(names * 3)
    for row in await _runs(hubs[0]):
        assert (row.trigger, row.status, row.unchanged, row.api_calls) == ("sweep", "ok", 2, 1)
    cursor = await _cursor(hubs[0], "t0")
    assert cursor.claimed_by is None and cursor.next_run_at > time.time() + 200  # due again after the interval


async def test_an_expired_claim_is_taken_over_and_its_run_marked_abandoned(store: Any) -> None:
    now = time.time()
    async with store.write() as conn:
        await cursors.ensure(conn, {"gh": "default"}, now)
        [row] = await cursors.claim_due(conn, ["gh"], "w1", 30, now, 5)
        run_id = await runs.insert_run(conn, "default", "gh", "sweep")
        await cursors.started(conn, "gh", run_id)
    async with store.write() as conn:
        assert await cursors.claim_due(conn, ["gh"], "w2", 30, now + 1, 5) == []  # held
        assert await cursors.claim_one(conn, "gh", "w2", 30, now + 1) is None
        assert not await cursors.renew(conn, "gh", "w2", 30, now + 1)
        assert await cursors.renew(conn, "gh", "w1", 30, now + 1)
    async with store.write() as conn:  # w1 died: its claim runs out
        [taken] = await cursors.claim_due(conn, ["gh"], "w2", 30, now + 60, 5)
        assert taken.claimed_by == "w2"
    async with store.read() as conn:
        left = await runs.get_run(conn, "default", run_id)
    assert (left["status"], left["error"]) == ("failed", runs.ABANDONED)


async def test_runs_are_recorded_with_counts_cost_and_the_cursor_moves_on(make_hub: Any, script: Script) -> None:
    hub = await make_hub(dispatch=False)
    tracker(hub, "gh", interval=60)

    async def sweep(_t: Any, run: RunState, mark: Any, etag: Any) -> None:
        run.created, run.updated, run.conflicts, run.errors = 2, 3, 1, 1
        run.problems.append({"remote": "12", "error": "422 Validation Failed\x00"})
        run.stats.not_modified += 1
        run.mark, run.list_etag = 1234.5, 'W/"abc"'

    script.sweep = sweep
    service = SyncService(hub, poll=0.02)
    service.start()
    try:
        [row] = await until(lambda: _runs(hub, status="partial"))
    finally:
        await service.stop()
    assert (row.trigger, row.created, row.updated, row.conflicts, row.errors, row.api_calls, row.not_modified) == (
        "sweep", 2, 3, 1, 1, 1, 1)
    assert row.problems == [{"remote": "12", "error": "422 Validation Failed"}] and row.ended_at >= row.started_at
    cursor = await _cursor(hub, "gh")
    # Items failed: the mark moves on, the first page's ETag is not kept (a 304 would hide them).
    assert (cursor.mark, cursor.list_etag, cursor.failures, cursor.last_run_id) == (1234.5, None, 0, row.id)
    assert row.started_at + 59 < cursor.next_run_at < time.time() + 61
    async with hub.store.read() as conn:
        page = await runs.list_runs(conn, "default", "gh", limit=5)
        assert [r["id"] for r in page["items"]] == [row.id] and "problems" not in page["items"][0]
        assert (await runs.get_run(conn, "default", row.id))["problems"][0]["remote"] == "12"


async def test_a_clean_sweep_keeps_its_etag_and_a_rate_limited_one_resumes_when_the_limit_ends(
    make_hub: Any, script: Script
) -> None:
    hub = await make_hub(dispatch=False)
    tracker(hub, "gh")
    resume = time.time() + 1000
    outcomes = iter(["ok", "limited"])

    async def sweep(_t: Any, run: RunState, mark: Any, etag: Any) -> None:
        if next(outcomes) == "ok":
            run.mark, run.list_etag = 10.0, '"e1"'
        else:
            assert (mark, etag) == (10.0, '"e1"')
            run.mark, run.stopped, run.resume_at = 20.0, "secondary rate limit", resume

    script.sweep = sweep
    service = SyncService(hub, poll=0.02)
    service.start()
    try:
        await until(lambda: _runs(hub, status="ok"))
        assert (await _cursor(hub, "gh")).list_etag == '"e1"'
        await _due_now(hub, "gh")
        service.wake()
        [limited] = await until(lambda: _runs(hub, status="rate_limited"))
    finally:
        await service.stop()
    assert limited.error == "secondary rate limit"
    cursor = await _cursor(hub, "gh")
    assert (cursor.mark, cursor.next_run_at, cursor.failures) == (20.0, resume, 0)


async def test_hints_are_deduplicated_and_taken_together(make_hub: Any, script: Script) -> None:
    hub = await make_hub(dispatch=False)
    tracker(hub, "gh")
    gate = asyncio.Event()

    async def item(method: str, _t: Any, key: str, run: Any) -> None:
        await gate.wait()
        if key == "bad":
            raise Rejected("422: title too long")
        run.updated += 1

    script.item = item
    service = SyncService(hub, window=0)
    service.hint("gh", "1")
    await until(lambda: script.calls)  # the first run is under way, held on item 1
    for key in ("2", "3", "2", "1", "bad", "3"):
        service.hint("gh", key)
    service.hint("nobody", "9")  # not a tracker: ignored
    gate.set()
    await service.settle()
    assert [c[2] for c in script.calls] == ["1", "2", "3", "1", "bad"]
    first, second = await _runs(hub)
    assert (first.trigger, first.status, first.updated, first.api_calls) == ("webhook", "ok", 1, 1)
    assert (second.status, second.updated, second.errors, second.api_calls) == ("partial", 3, 1, 4)
    assert second.problems == [{"remote": "bad", "error": "Rejected: 422: title too long"}]


async def test_a_rate_limit_puts_the_rest_of_the_hints_back(make_hub: Any, script: Script) -> None:
    hub = await make_hub(dispatch=False)
    tracker(hub, "gh")
    limited = {"2"}

    async def item(method: str, _t: Any, key: str, run: Any) -> None:
        if key in limited:
            limited.discard(key)
            raise RateLimited("429", wait=0.05)
        run.updated += 1

    script.item = item
    service = SyncService(hub, window=0)
    for key in ("1", "2", "3"):
        service.hint("gh", key)
    await service.settle()
    assert [c[2] for c in script.calls] == ["1", "2", "2", "3"]
    first, second = await _runs(hub)
    assert (first.status, first.updated, first.error) == ("rate_limited", 1, "rate limited: 429")
    assert (second.status, second.updated) == ("ok", 2)
    assert second.started_at >= first.ended_at


async def test_local_changes_go_to_every_tracker_of_the_project_but_their_origin(make_hub: Any, script: Script) -> None:
    hub = await make_hub(ALPHA, dispatch=False)
    tracker(hub, "gh", project="alpha")
    tracker(hub, "jira", project="alpha")
    tracker(hub, "other", project="default")
    tracker(hub, "off", project="alpha", enabled=False)
    service = SyncService(hub, window=0)
    task = {"id": "task-1", "project": "alpha"}
    service.local_changed(TaskChange("task.update", task, {"title": "x"}, origin="gh"))
    service.local_changed(TaskChange("task.update", task, {"title": "y"}, origin="gh"))
    await service.settle()
    assert script.calls == [("push_task", "jira", "task-1")]
    service.local_changed(TaskChange("task.create", {"id": "task-2", "project": "alpha"}, {}))
    await service.settle()
    assert sorted(script.calls[1:]) == [("push_task", "gh", "task-2"), ("push_task", "jira", "task-2")]
    assert [(r.integration, r.trigger, r.project) for r in await _runs(hub)][0] == ("jira", "local", "alpha")


async def test_a_failing_mapping_tells_its_owners_once(make_hub: Any, script: Script) -> None:
    hub = await make_hub(ALPHA, dispatch=False)
    async with hub.store.write() as conn:
        await create_user(conn, SYSTEM, email="olga@example.com")
        await set_member(conn, SYSTEM, "alpha", "olga@example.com", "owner")
    tracker(hub, "gh", project="alpha")

    async def item(method: str, _t: Any, key: str, run: Any) -> None:
        raise AuthFailed("401 Bad credentials")

    script.item = item
    service = SyncService(hub, window=0, fail_after=3)
    for n in range(5):
        service.hint("gh", str(n))
        await service.settle()
    rows = await _runs(hub)
    assert [r.status for r in rows] == ["failed"] * 5
    assert rows[0].error == "AuthFailed: 401 Bad credentials"
    cursor = await _cursor(hub, "gh")
    assert cursor.failures == 5 and cursor.notified_at is not None
    async with hub.store.read() as conn:
        sent = (await conn.execute(select(messages).where(messages.c.source == "tidings"))).all()
    assert len(sent) == 1 and sent[0].project == "alpha"
    labels = sent[0].data["labels"]
    assert (labels["event_type"], labels["integration"], labels["owners"]) == ("sync.failing", "gh", "olga@example.com")
    # A run that works resets the count; the notice waits an hour whatever happens.
    script.item = None
    service.hint("gh", "ok")
    await service.settle()
    assert (await _cursor(hub, "gh")).failures == 0


async def test_run_now_is_audited_and_a_mapping_under_way_answers_its_run(make_hub: Any, script: Script) -> None:
    hub = await make_hub(ALPHA, dispatch=False)
    tracker(hub, "gh", project="alpha")
    tracker(hub, "off", project="alpha", enabled=False)
    gate = asyncio.Event()

    async def held(*_: Any) -> None:
        await gate.wait()

    script.sweep = held
    service = SyncService(hub)
    [first] = await service.run_now("alpha")
    again = await service.run_now("alpha", "gh")
    assert again == [first]  # one sweep at a time: the manual run is the one under way
    gate.set()
    await service.settle()
    [row] = await _runs(hub)
    assert (row.id, row.trigger, row.status) == (first, "manual", "ok")
    async with hub.store.read() as conn:
        audited = (await conn.execute(select(audit_log).where(audit_log.c.action == "sync.run"))).all()
    assert [(a.project, a.after["runs"]) for a in audited] == [("alpha", [first]), ("alpha", [first])]
    with pytest.raises(Exception, match="disabled"):
        await service.run_now("alpha", "off")
    with pytest.raises(Exception, match="no sync mapping"):
        await service.run_now("alpha", "nope")
    assert await service.run_now("default") == []


async def test_a_plan_writes_nothing(make_hub: Any, script: Script) -> None:
    hub = await make_hub(dispatch=False)
    tracker(hub, "gh", enabled=False)
    tracker(hub, "broken")

    async def sweep(t: Any, run: RunState, mark: Any, etag: Any) -> None:
        if t.name == "broken":
            raise AuthFailed("401")
        assert run.dry and etag is None
        run.planned.append({"action": "create", "remote": "owner/repo#1", "fields": {"title": "x"}})

    script.sweep = sweep
    plan = await SyncService(hub).plan("default")
    assert plan == [
        {"integration": "gh", "action": "create", "remote": "owner/repo#1", "fields": {"title": "x"}},
        {"integration": "broken", "action": "error", "error": "AuthFailed: 401"},
    ]
    assert await _runs(hub) == []


async def test_stopping_interrupts_a_sweep_which_is_due_again_at_once(make_hub: Any, script: Script) -> None:
    hub = await make_hub(dispatch=False)
    tracker(hub, "gh")

    async def forever(_t: Any, run: RunState, *_: Any) -> None:
        run.mark = 5.0
        await asyncio.Event().wait()

    script.sweep = forever
    service = SyncService(hub, poll=0.02)
    service.start()
    await until(lambda: script.active.get("gh"))
    await service.stop()
    [row] = await _runs(hub)
    assert (row.status, row.error) == ("failed", INTERRUPTED)
    cursor = await _cursor(hub, "gh")
    assert (cursor.claimed_by, cursor.mark, cursor.failures) == (None, 5.0, 0)
    assert cursor.next_run_at <= time.time()


async def test_a_dispatching_hub_runs_the_service(make_hub: Any) -> None:
    hub = await make_hub()
    assert isinstance(hub.sync, SyncService) and hub.sync._task is not None


async def test_webhook_and_local_runs_a_dead_process_left_running_are_marked_abandoned(store: Any) -> None:
    now = time.time()
    async with store.write() as conn:
        old = [await runs.insert_run(conn, "default", "gh", t, now=now - 2 * runs.STALE_AFTER) for t in ("webhook", "local")]
        recent = await runs.insert_run(conn, "default", "gh", "webhook", now=now - 60)
        sweep = await runs.insert_run(conn, "default", "gh", "sweep", now=now - 2 * runs.STALE_AFTER)  # its claim says
        other = await runs.insert_run(conn, "default", "jira", "webhook", now=now - 2 * runs.STALE_AFTER)
    async with store.write() as conn:
        assert await runs.abandon_stale(conn, ["gh"], now) == 2
    async with store.read() as conn:
        states = {i: (await runs.get_run(conn, "default", i))["status"] for i in (*old, recent, sweep, other)}
    assert [states[i] for i in old] == ["failed", "failed"]
    assert (states[recent], states[sweep], states[other]) == ("running", "running", "running")
    async with store.read() as conn:
        assert (await runs.get_run(conn, "default", old[0]))["error"] == runs.ABANDONED


async def test_the_sweep_loop_marks_stale_runs(make_hub: Any, script: Script) -> None:
    hub = await make_hub(dispatch=False)
    tracker(hub, "gh")
    async with hub.store.write() as conn:
        stale = await runs.insert_run(conn, "default", "gh", "webhook", now=time.time() - 2 * runs.STALE_AFTER)
    service = SyncService(hub)
    await service._tick()
    async with hub.store.read() as conn:
        assert (await runs.get_run(conn, "default", stale))["status"] == "failed"
