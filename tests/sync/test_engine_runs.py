"""Runs as a whole: rate limits (waited out or resumed), errors per item, plans that write nothing,
and two trackers meeting through one task."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sync_helpers import SQLITE_ONLY, all_links, all_tasks, counts, edit_task, new_task, sweep, task

from tidings.sync.engine import RunState
from tidings.sync.model import AuthFailed, RateLimited, Rejected, Unavailable


async def test_a_short_rate_limit_mid_sweep_is_waited_out(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh", max_wait=5)
    for n in range(7):
        tracker.add(title=f"i{n}")
    tracker.fail("changes", None, RateLimited("secondary rate limit", 0.01))  # the second page
    tracker.fail("update", RateLimited("slow down", 0.01))
    run = await sweep(engine)
    assert (run.created, run.errors, run.stopped) == (7, 0, None)
    assert (run.stats.rate_limit_waits, run.stats.waited) == (1, 0.01)
    assert len(await all_tasks(hub)) == 7 and len(tracker.items) == 7

    [first, *_] = await all_tasks(hub)
    await edit_task(hub, first["id"], title="changed here")
    pushed = RunState("local")
    await engine.push_task(first["id"], pushed)  # the update is limited once, then goes through
    assert (pushed.updated, pushed.errors, pushed.stats.rate_limit_waits) == (1, 0, 1)
    assert tracker.items["1"].fields["title"] == "changed here"


@pytest.mark.parametrize("where", ["listing", "item"])
async def test_a_long_rate_limit_stops_the_run_and_the_next_resumes(hub: Any, make_engine: Any, where: str) -> None:
    engine, tracker = make_engine("gh", max_wait=5)
    for n in range(7):
        tracker.add(title=f"i{n}")
    if where == "listing":
        tracker.fail("changes", None, RateLimited("API rate limit exceeded", 3600))
    else:
        await new_task(hub, title="local one")
        tracker.fail("create", RateLimited("API rate limit exceeded", 3600))
    before = time.time()
    run = await sweep(engine)
    assert run.stopped is not None and "rate limited" in run.stopped
    assert run.resume_at is not None and run.resume_at >= before + 3600
    assert run.errors == 0  # a limit fails no item
    if where == "listing":
        assert run.created == 3 and run.mark == tracker.items["3"].updated_at
    resumed = await sweep(engine)
    assert resumed.stopped is None and resumed.errors == 0
    titles = sorted(t["title"] for t in await all_tasks(hub))
    expected = sorted([f"i{n}" for n in range(7)] + (["local one"] if where == "item" else []))
    assert titles == expected  # nothing lost, nothing twice
    assert len(tracker.items) == len(expected)
    assert {link["state"] for link in await all_links(hub)} == {"linked"}


async def test_item_errors_are_recorded_and_the_run_goes_on(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    for n in range(3):
        tracker.add(title=f"i{n}")
    await sweep(engine)
    t0, t1, t2 = await all_tasks(hub)
    for t in (t0, t1, t2):
        await edit_task(hub, t["id"], priority="high")
    tracker.fail("update", Unavailable("502 Bad Gateway"), Unavailable("502"), Unavailable("502"),
                 Rejected("422 Validation Failed: priority"))
    run = await sweep(engine)
    assert (run.errors, run.updated, run.stopped) == (2, 1, None)
    assert [p["error"].split(":")[0] for p in run.problems] == ["unavailable", "Rejected"]
    assert [p["task"] for p in run.problems] == [t0["id"], t1["id"]]
    failed = [link for link in await all_links(hub) if link["error"]]
    assert len(failed) == 2 and all(link["claimed_by"] is None for link in failed)
    again = await sweep(engine)  # the export pass retries items whose last sync failed
    assert (again.errors, again.updated) == (0, 2)
    assert [s.fields["priority"] for s in tracker.items.values()] == ["high"] * 3
    assert not [link for link in await all_links(hub) if link["error"]]


@SQLITE_ONLY
async def test_a_refused_credential_stops_the_run(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    tracker.add(title="x")
    tracker.fail("changes", AuthFailed("401 Bad credentials"))
    run = await sweep(engine)
    assert run.stopped == "authentication failed: 401 Bad credentials" and run.resume_at is None
    assert await all_tasks(hub) == [] and run.mark is None


@SQLITE_ONLY
async def test_an_item_the_tracker_keeps_refusing_does_not_stop_the_sweep(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh")
    tracker.add(title="ok")
    tracker.add(title="")  # a task needs a title: that item is refused here
    tracker.add(title="ok too")
    run = await sweep(engine)
    assert (run.created, run.errors) == (2, 1) and "title" in run.problems[0]["error"]
    assert run.mark == tracker.items["3"].updated_at  # refused for good: the mark does not wait for it


async def test_a_plan_writes_nothing_and_says_everything(hub: Any, make_engine: Any) -> None:
    engine, tracker = make_engine("gh", conflict="manual")
    a, b, c, d = (tracker.add(title=x, priority="low") for x in "abcd")
    await sweep(engine)
    ta, tb, tc, td = await all_tasks(hub)
    tracker.edit(a, title="a there")  # → update_task
    await edit_task(hub, tb["id"], priority="high", status="done")  # → update_remote + transition
    await edit_task(hub, tc["id"], title="c here")
    tracker.edit(c, title="c there")  # → conflict
    tracker.delete(d, listed=True)  # → unlink
    tracker.add(title="new there")  # → create_task
    await new_task(hub, title="new here")  # → create_remote
    rows, calls = await counts(hub), dict(tracker.calls)
    writes = tracker.writes

    plan = RunState("plan", dry=True)
    mark, etag = engine._test_cursor
    await engine.sweep(plan, mark, etag)
    assert await counts(hub) == rows and tracker.writes == writes
    assert tracker.calls["create"] == calls.get("create", 0)
    actions = sorted((p["action"], p["task"], p["remote"]) for p in plan.planned)
    assert actions == sorted([
        ("update_task", ta["key"], "gh#1"), ("update_remote", tb["key"], "gh#2"), ("transition", tb["key"], "gh#2"),
        ("conflict", tc["key"], "gh#3"), ("unlink", td["key"], "gh#4"), ("create_task", None, "gh#5"),
        ("create_remote", "T-5", None),
    ])
    by_action = {p["action"]: p for p in plan.planned}
    assert by_action["conflict"]["fields"] == {"title": {"base": "c", "local": "c here", "remote": "c there"}}
    assert by_action["transition"]["fields"] == {"status": "done"}
    assert (plan.created, plan.updated, plan.conflicts, plan.errors) == (2, 3, 1, 0)

    real = await sweep(engine)  # the run does what the plan said
    assert (real.created, real.updated, real.conflicts) == (plan.created, plan.updated, plan.conflicts)


async def test_two_trackers_meet_through_the_task(hub: Any, make_engine: Any) -> None:
    github, gh = make_engine("gh", carries=("title", "description", "status", "assignee", "labels"))
    jira, jr = make_engine("jira")
    gh_id = gh.add(title="crash on save", labels=["bug"], assignee="github:octocat")
    await sweep(github)
    [t] = await all_tasks(hub)
    run = RunState("local")
    await jira.push_task(t["id"], run)  # what hub.sync does with the task change (origin: gh)
    assert run.created == 1
    [issue] = jr.items.values()
    assert (issue.fields["title"], issue.fields["labels"], issue.fields["assignee"]) == (
        "crash on save", ["bug"], "github:octocat")

    jr.edit(issue.id, status="in_progress", priority="critical")
    await sweep(jira)
    t = await task(hub, t["id"])
    assert (t["category"], t["priority"]) == ("in_progress", "critical")
    await github.push_task(t["id"], RunState("local"))
    assert gh.items[gh_id].fields["status"] == "in_progress"
    assert gh.items[gh_id].history == [{"status": "in_progress"}]  # GitHub carries no priority

    echo_gh, echo_jira = await sweep(github), await sweep(jira)  # the writes come back: nothing moves
    assert (echo_gh.updated, echo_jira.updated, echo_gh.created, echo_jira.created) == (0, 0, 0, 0)
    assert len(await all_tasks(hub)) == 1 and len(gh.items) == 1 and len(jr.items) == 1
