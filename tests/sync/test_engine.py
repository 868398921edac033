"""The sync engine against an in-memory tracker: imports, exports, the 3-way merge under each
policy, the echo guard, per-item serialization, idempotent creates, deletions. On both databases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sync_helpers import SQLITE_ONLY, USER, all_links, all_tasks, audit_actions, edit_task, new_task, sweep, task

from tidings.sync import links
from tidings.sync.conflicts import ConflictError, list_conflicts
from tidings.sync.engine import RunState


async def test_initial_import_then_unchanged_sweeps_cost_one_304(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    for n in range(5):
        tracker.add(title=f"issue {n}", description="body\n", status="in_progress" if n == 2 else "todo",
                    labels=["bug", "ui"] if n == 1 else [], priority="high")
    run = await sweep(engine)
    assert (run.created, run.updated, run.errors, run.stopped) == (5, 0, 0, None)
    assert run.mark == max(s.updated_at for s in tracker.items.values())
    found = await all_tasks(hub)
    assert [t["title"] for t in found] == [f"issue {n}" for n in range(5)]
    assert found[1]["labels"] == ["bug", "ui"] and found[1]["priority"] == "high"
    assert (found[2]["category"], found[2]["status"]) == ("in_progress", "In Progress")
    assert found[0]["created_by"] == "sync:gh"
    linked = await all_links(hub, "gh")
    assert {(link["state"], link["remote_id"]) for link in linked} == {("linked", str(n + 1)) for n in range(5)}
    assert tracker.writes == 0 and run.stats.api_calls == 2  # two pages of three
    actions = [a for a, _, who in await audit_actions(hub) if who == "sync:gh"]
    assert actions.count("task.create") == 5 and actions.count("sync.link") == 5

    again = await sweep(engine)  # the overlap re-reads the newest: all skipped
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    third = await sweep(engine)  # same `since` as the last: the first page's ETag answers 304
    assert (third.stats.api_calls, third.stats.not_modified, third.unchanged) == (1, 1, 0)
    assert len(await all_tasks(hub)) == 5 and tracker.writes == 0


async def test_local_tasks_are_created_there_once(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    t = await new_task(hub, title="write docs", labels=["docs"], priority="low", due="2030-01-02")
    run = await sweep(engine)
    assert (run.created, run.errors) == (1, 0)
    [item] = tracker.items.values()
    [link] = await all_links(hub, "gh")
    assert item.marker == link["id"] and link["state"] == "linked" and link["remote_id"] == item.id
    assert (item.fields["title"], item.fields["labels"], item.fields["due"]) == ("write docs", ["docs"], "2030-01-02")
    assert link["synced_at"] == t["updated_at"]
    again = await sweep(engine)
    assert (again.created, again.updated, tracker.calls["create"], len(tracker.items)) == (0, 0, 1, 1)


async def test_edits_flow_both_ways_and_our_echo_changes_nothing(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    remote_id = tracker.add(title="first", priority="medium")
    await sweep(engine)
    [t] = await all_tasks(hub)

    tracker.edit(remote_id, title="renamed there", status="done")
    run = await sweep(engine)
    assert (run.updated, run.errors) == (1, 0)
    t = await task(hub, t["id"])
    assert (t["title"], t["category"], t["status"], t["version"]) == ("renamed there", "done", "Closed", 2)
    assert tracker.writes == 0

    await edit_task(hub, t["id"], priority="critical", description="more *detail*")
    run = await sweep(engine)
    assert (run.updated, run.errors) == (1, 0)
    assert tracker.items[remote_id].history == [{"priority": "critical", "description": "more *detail*"}]
    version = (await task(hub, t["id"]))["version"]

    # Our write comes back: as the next sweep, and as a webhook hint. Nothing is written anywhere.
    writes = tracker.writes
    echo = await sweep(engine)
    assert (echo.updated, echo.created, echo.unchanged) == (0, 0, 1)
    hint = RunState("webhook")
    await engine.sync_remote_id(remote_id, hint)  # a conditional fetch: 304
    assert (hint.updated, hint.unchanged, hint.stats.api_calls, hint.stats.not_modified) == (0, 1, 1, 1)
    await engine.sync_item(tracker.item(remote_id), RunState("webhook"))
    assert tracker.writes == writes and (await task(hub, t["id"]))["version"] == version
    [link] = await all_links(hub, "gh")
    assert link["remote_updated"] == tracker.items[remote_id].updated_at


@SQLITE_ONLY
async def test_the_echo_guard_holds_whatever_the_timing(hub: Any, make_engine: Any) -> None:
    """An echo read in the same second as the last sync, or late after a newer sync, is still ours."""
    engine, tracker = make_engine("gh")
    remote_id = tracker.add(title="a")
    await sweep(engine)
    [t] = await all_tasks(hub)
    await edit_task(hub, t["id"], title="b")
    await engine.push_task(t["id"], RunState("local"))
    echo = tracker.item(remote_id)
    tracker.items[remote_id].updated_at = echo.updated_at  # no newer time than ours
    run = RunState("webhook")
    await engine.sync_item(echo, run)
    await engine.sync_item(echo, run)
    assert (run.unchanged, run.updated) == (2, 0) and tracker.calls["update"] == 1


@SQLITE_ONLY
@pytest.mark.parametrize("policy", ["newest", "local", "remote", "manual"])
async def test_the_same_field_edited_on_both_sides(hub: Any, make_engine: Any, policy: str) -> None:
    engine, tracker = make_engine("gh", conflict=policy)
    remote_id = tracker.add(title="base")
    await sweep(engine)
    [t] = await all_tasks(hub)
    await edit_task(hub, t["id"], title="local")
    tracker.edit(remote_id, title="remote")  # later: the newest
    run = await sweep(engine)
    expected = {"newest": "remote", "local": "local", "remote": "remote", "manual": None}[policy]
    t = await task(hub, t["id"])
    if expected is None:
        assert (run.conflicts, run.updated) == (1, 0)
        assert (t["title"], tracker.items[remote_id].fields["title"]) == ("local", "remote")
        [c] = (await _conflicts(hub))
        assert (c["field"], c["base"], c["local"], c["remote"], c["task"]) == ("title", "base", "local", "remote", t["key"])
        [link] = await all_links(hub, "gh")
        assert link["base"]["title"] == "base"  # kept until a person chooses
        tracker.edit(remote_id, title="remote 2")  # the open conflict follows, no second one
        await sweep(engine)
        [c] = await _conflicts(hub)
        assert c["remote"] == "remote 2" and (await task(hub, t["id"]))["title"] == "local"
        return
    assert run.conflicts == 0 and (t["title"], tracker.items[remote_id].fields["title"]) == (expected, expected)
    assert await _conflicts(hub) == []


@SQLITE_ONLY
async def test_newest_lets_a_later_local_edit_win(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh", conflict="newest")
    remote_id = tracker.add(title="base")
    await sweep(engine)
    [t] = await all_tasks(hub)
    tracker.edit(remote_id, title="remote")
    await edit_task(hub, t["id"], title="local")
    await sweep(engine)
    assert (await task(hub, t["id"]))["title"] == "local" == tracker.items[remote_id].fields["title"]


@SQLITE_ONLY
@pytest.mark.parametrize("choice", ["local", "remote", None])
async def test_a_parked_conflict_is_resolved_by_a_person(hub: Any, make_engine: Any, choice: str | None) -> None:
    engine, tracker = make_engine("gh", conflict="manual")
    remote_id = tracker.add(title="base", priority="low")
    await sweep(engine)
    [t] = await all_tasks(hub)
    await edit_task(hub, t["id"], priority="high")
    tracker.edit(remote_id, priority="critical")
    await sweep(engine)
    [c] = await _conflicts(hub)
    run = await engine.resolve_conflict(c["id"], choice, "info", USER)  # type: ignore[arg-type]
    chosen = {"local": "high", "remote": "critical", None: "info"}[choice]
    assert (await task(hub, t["id"]))["priority"] == chosen == tracker.items[remote_id].fields["priority"]
    assert run.errors == 0 and await _conflicts(hub) == []
    [done] = await _conflicts(hub, open_only=False)
    assert (done["resolution"], done["resolved_by"]) == (chosen, "ann@example.com")
    assert ("sync.conflict.resolve", t["key"], "ann@example.com") in await audit_actions(hub)
    assert ("sync.conflict", t["key"], "sync:gh") in await audit_actions(hub)
    after = await sweep(engine)  # settled: nothing more to do, no new conflict
    assert (after.conflicts, after.updated) == (0, 0) and await _conflicts(hub) == []
    async with hub.store.read() as conn:
        assert len(await list_conflicts(conn, "default", task_id=t["id"], open_only=False)) == 1
        assert await list_conflicts(conn, "default", task_id="nope", open_only=False) == []
        assert await list_conflicts(conn, "other", open_only=False) == []
    with pytest.raises(ConflictError, match="already resolved"):
        await engine.resolve_conflict(c["id"], "local", None, USER)


@SQLITE_ONLY
async def test_labels_merge_as_sets(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh", conflict="manual")
    remote_id = tracker.add(title="t", labels=["a", "b"])
    await sweep(engine)
    [t] = await all_tasks(hub)
    await edit_task(hub, t["id"], labels=["a", "b", "c"])
    tracker.edit(remote_id, labels=["b", "d"])
    run = await sweep(engine)
    assert run.conflicts == 0
    assert (await task(hub, t["id"]))["labels"] == ["b", "c", "d"] == tracker.items[remote_id].fields["labels"]


@SQLITE_ONLY
async def test_directions_per_field(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh", fields={"title": "import", "priority": "export", "labels": "off"})
    remote_id = tracker.add(title="t", priority="low", labels=["remote"])
    await sweep(engine)
    [t] = await all_tasks(hub)
    assert (t["priority"], t["labels"]) == ("medium", [])  # neither came in
    await edit_task(hub, t["id"], title="local title", priority="high", labels=["local"])
    tracker.edit(remote_id, description="there")
    await sweep(engine)
    t = await task(hub, t["id"])
    fields = tracker.items[remote_id].fields
    assert (fields["title"], fields["priority"], fields["labels"]) == ("t", "high", ["remote"])
    assert (t["title"], t["description"], t["labels"]) == ("local title", "there", ["local"])
    tracker.edit(remote_id, title="remote title", priority="critical")
    await sweep(engine)
    t = await task(hub, t["id"])
    assert (t["title"], t["priority"]) == ("remote title", "high")
    assert tracker.items[remote_id].fields["priority"] == "critical"  # export only: not pushed again unasked


async def test_parallel_syncs_of_one_new_item_make_one_task(hub: Any, make_engine: Any, monkeypatch: Any) -> None:
    engine, tracker = make_engine("gh")
    remote_id = tracker.add(title="opened")
    item = tracker.item(remote_id)
    runs = [RunState("webhook") for _ in range(5)]
    await asyncio.gather(*(engine.sync_item(item, r) for r in runs))
    assert len(await all_tasks(hub)) == 1 and sum(r.created for r in runs) == 1

    # Without this process's lock, as separate workers would: the unique link decides.
    import contextlib

    monkeypatch.setattr("tidings.sync.engine.item_lock", lambda *a: contextlib.nullcontext())
    other_id = tracker.add(title="labeled")
    item = tracker.item(other_id)
    engines = [make_engine("gh")[0] for _ in range(5)]
    for e in engines:
        e.tracker = tracker
    runs = [RunState("webhook") for _ in range(5)]
    await asyncio.gather(*(e.sync_item(item, r) for e, r in zip(engines, runs, strict=True)))
    assert [t["title"] for t in await all_tasks(hub)] == ["opened", "labeled"]
    assert sum(r.created for r in runs) == 1 and sum(r.errors for r in runs) == 0


async def test_a_lost_create_answer_makes_no_duplicate(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    t = await new_task(hub, title="once only")
    tracker.lose_creates = 1
    run = RunState("local")
    await engine.push_task(t["id"], run)  # retried: finds what the lost create made
    assert (run.created, run.errors, len(tracker.items), tracker.calls["find_created"]) == (1, 0, 1, 1)
    [link] = await all_links(hub, "gh")
    assert link["state"] == "linked" and link["remote_id"] == "1"

    # The process "dies" after a lost answer: the link stays `creating`; the next push looks first.
    t2 = await new_task(hub, title="twice?")
    tracker.lose_creates = 1
    engine.retry_delays = ()
    failed = RunState("local")
    await engine.push_task(t2["id"], failed)
    assert failed.errors == 1 and "unavailable" in failed.problems[0]["error"]
    link = [link for link in await all_links(hub, "gh") if link["task_id"] == t2["id"]][0]
    assert link["state"] == "creating" and link["error"]
    retry = await sweep(engine)
    assert (retry.created, retry.errors, len(tracker.items), tracker.calls["create"]) == (0, 0, 2, 2)
    assert len(await all_tasks(hub)) == 2  # the item carrying our marker was linked, not imported
    link = [link for link in await all_links(hub, "gh") if link["task_id"] == t2["id"]][0]
    assert (link["state"], link["remote_id"], link["error"]) == ("linked", "2", None)


@SQLITE_ONLY
async def test_a_lost_create_found_by_push(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh", create="export")
    t = await new_task(hub, title="x")
    tracker.lose_creates = 1
    engine.retry_delays = ()
    await engine.push_task(t["id"], RunState("local"))
    run = RunState("local")
    await engine.push_task(t["id"], run)
    assert (run.created, len(tracker.items), tracker.calls["create"]) == (1, 1, 1)


async def test_remote_deletion_unlinks_and_keeps_the_task(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    a, b = tracker.add(title="a"), tracker.add(title="b")
    await sweep(engine)
    tracker.delete(a, listed=True)  # the sweep sees it deleted
    tracker.delete(b)  # gone: a webhook hint finds the 404
    await sweep(engine)
    await engine.sync_remote_id(b, RunState("webhook"))
    assert [link["state"] for link in await all_links(hub, "gh")] == ["deleted", "deleted"]
    assert [t["title"] for t in await all_tasks(hub)] == ["a", "b"]
    assert [x for x in await audit_actions(hub) if x[0] == "sync.unlink"] == [
        ("sync.unlink", "T-1", "sync:gh"), ("sync.unlink", "T-2", "sync:gh")]
    [t1, _] = await all_tasks(hub)
    await edit_task(hub, t1["id"], title="still here")
    run = await sweep(engine)
    assert (run.created, run.updated, tracker.calls["create"], tracker.calls["update"]) == (0, 0, 0, 0)


async def test_a_task_deleted_here_is_never_imported_again(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    remote_id = tracker.add(title="a")
    await sweep(engine)
    [link] = await all_links(hub, "gh")
    async with hub.store.write() as conn:  # what the task API's delete does
        from tidings.store.tables import tasks as tasks_table

        await links.update(conn, link["id"], state="unlinked")
        await conn.execute(tasks_table.delete())
    tracker.edit(remote_id, title="edited there")
    run = await sweep(engine)
    await engine.sync_remote_id(remote_id, run)
    assert (run.created, run.updated) == (0, 0) and await all_tasks(hub) == []


async def _conflicts(hub: Any, **kwargs: Any) -> list[dict[str, Any]]:
    async with hub.store.read() as conn:
        return await list_conflicts(conn, "default", **kwargs)


@SQLITE_ONLY
async def test_a_lease_left_by_a_dead_worker_expires(hub: Any, make_engine: Any) -> None:
    import time

    engine, tracker = make_engine("gh")
    remote_id = tracker.add(title="a")
    await sweep(engine)
    [link] = await all_links(hub, "gh")
    async with hub.store.write() as conn:  # another worker holds it, alive
        await links.update(conn, link["id"], claimed_by="elsewhere", claimed_until=time.time() + 0.3)
    tracker.edit(remote_id, title="b")
    run = RunState("webhook")
    await engine.sync_item(tracker.item(remote_id), run)  # waits for the lease to end, then syncs
    assert run.updated == 1 and (await all_tasks(hub))[0]["title"] == "b"
    [link] = await all_links(hub, "gh")
    assert (link["claimed_by"], link["claimed_until"]) == (None, None)


async def test_a_page_of_new_items_is_imported_all_or_nothing(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    a, b = tracker.add(title="a"), tracker.add(title="b")
    await engine.sync_item(tracker.item(b), RunState("webhook"))  # a webhook linked b meanwhile
    run = RunState("sweep")
    assert await engine.import_new([tracker.item(a), tracker.item(b)], run) is False
    assert [t["title"] for t in await all_tasks(hub)] == ["b"] and run.created == 0
    swept = await sweep(engine)  # the sweep then takes them one by one
    assert (swept.created, swept.errors) == (1, 0)
    assert sorted(t["title"] for t in await all_tasks(hub)) == ["a", "b"]


@SQLITE_ONLY
async def test_an_assignee_the_tracker_has_no_login_for_is_neither_written_nor_cleared(
        hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    tracker.logins = {"github:octocat"}
    t = await new_task(hub, title="from jira", assignee="jira:5b10ac8d82e05b22cc7d4ef5")
    run = await sweep(engine)
    assert (run.created, run.errors) == (1, 0)
    [remote_id] = tracker.items
    assert tracker.items[remote_id].fields.get("assignee") is None  # created without it, not refused

    tracker.edit(remote_id, title="renamed there")
    run = await sweep(engine)
    assert (run.updated, run.errors) == (1, 0)
    t = await task(hub, t["id"])
    assert (t["title"], t["assignee"]) == ("renamed there", "jira:5b10ac8d82e05b22cc7d4ef5")  # not cleared

    await edit_task(hub, t["id"], assignee="github:octocat")  # one it can hold: written
    run = await sweep(engine)
    assert tracker.items[remote_id].fields["assignee"] == "github:octocat"


async def test_an_item_read_before_another_run_wrote_it_is_read_again(hub: Any, make_engine: Any) -> None:
    """A webhook run read the item, then waited while a push wrote it: merging what it read would take
    the old value for a change made there and put it back into the task (seen end to end)."""
    engine, tracker = make_engine("gh")
    remote_id = tracker.add(title="A")
    await sweep(engine)
    [t] = await all_tasks(hub)
    await edit_task(hub, t["id"], title="B")
    gate, writing = asyncio.Event(), asyncio.Event()
    write = tracker.update

    async def held(*args: Any) -> None:
        writing.set()
        await gate.wait()
        await write(*args)

    tracker.update = held  # type: ignore[method-assign]
    push = asyncio.create_task(engine.push_task(t["id"], RunState("local")))
    await writing.wait()
    stale = tracker.item(remote_id)  # what a webhook run fetched just now: still "A"
    hook_run = RunState("webhook")
    hook = asyncio.create_task(engine.sync_item(stale, hook_run))
    while links._waiting.get(("gh", remote_id), 0) < 2:  # the webhook run waits for the push's lock
        await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(push, hook)
    assert ((await task(hub, t["id"]))["title"], tracker.items[remote_id].fields["title"]) == ("B", "B")
    assert hook_run.errors == 0


async def test_an_item_put_back_to_what_we_last_wrote_is_a_change_not_our_echo(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    remote_id = tracker.add(title="A")
    await sweep(engine)
    [t] = await all_tasks(hub)
    await edit_task(hub, t["id"], title="B")
    await engine.push_task(t["id"], RunState("local"))  # we write "B"
    for title in ("C", "B"):  # a person renames it, then puts our value back
        tracker.edit(remote_id, title=title)
        await engine.sync_remote_id(remote_id, RunState("webhook"))
        assert (await task(hub, t["id"]))["title"] == title


@SQLITE_ONLY
async def test_a_copy_listed_before_our_push_does_not_take_the_task_back(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    remote_id = tracker.add(title="first")
    await sweep(engine)
    [t] = await all_tasks(hub)
    listed = tracker.item(remote_id)  # a sweep's page, read before the push below

    await edit_task(hub, t["id"], title="renamed here")
    await engine.push_task(t["id"], RunState("local"))
    assert tracker.items[remote_id].fields["title"] == "renamed here"

    run = RunState("sweep")
    await engine.sync_item(listed, run)  # the old copy arrives late
    after = await task(hub, t["id"])
    assert after["title"] == "renamed here" and after["version"] == t["version"] + 1  # never taken back
    assert run.stats.api_calls == 1 and run.updated == 0  # it read the item again: our own echo
