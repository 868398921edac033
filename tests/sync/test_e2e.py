"""Two-way sync end to end: a served, dispatching hub with a ``github`` and a ``jira`` integration mapped to
one project, the GitHub and Jira stand-ins (tests/peers) answering as the vendors document and posting
their signed webhooks back to ``/hooks/<name>`` (DESIGN.md "Sync"; issue 14's scenarios)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sync.e2e_support import MAYA, REPO, World
from sync.service_fakes import until
from sync.sync_helpers import counts

pytestmark = pytest.mark.slow


def _seed_both(gh: Any, jira: Any) -> None:
    gh.open_issue(REPO, "Login page is slow", body="It takes **5 s**.", labels=["bug", "priority:high", "good first issue"])
    gh.open_issue(REPO, "Old cleanup", labels=["chore"])
    gh.edit(REPO, 2, state="closed")
    gh.open_pull(REPO, "A pull request is no task")
    [one, two] = jira.seed("OPS", 2)
    jira.edit(one.key, summary="Rotate the database password", description="Before *Friday*", priority="Highest",
              assignee=MAYA, labels=["ops"], duedate="2030-06-30")
    jira.move(two.key, "In Progress")


async def test_initial_import_of_both_sides_meets_through_one_task(make_world: Any) -> None:
    w: World = await make_world(seed=_seed_both)
    tasks = await w.tasks()
    assert sorted(t["title"] for t in tasks) == ["Login page is slow", "Old cleanup", "Rotate the database password",
                                                "Seeded issue 2"]
    by_title = {t["title"]: await w.linked_both(t["key"]) for t in tasks}
    slow = by_title["Login page is slow"]
    assert (slow["priority"], slow["labels"], slow["category"]) == ("high", ["bug", "good first issue"], "todo")
    jira_slow = w.jira_issue(slow)
    # Jira refuses a label with a space: the labels stay out of that issue's sync, the rest goes (a fix:
    # the create was refused, so the task never reached Jira).
    assert (jira_slow.summary, jira_slow.priority, jira_slow.labels, jira_slow.status) == (
        "Login page is slow", "High", [], "To Do")
    assert "5 s" in str(jira_slow.description)
    assert w.gh_issue(by_title["Old cleanup"]).state == "closed"
    assert w.jira_issue(by_title["Old cleanup"]).status == "Done"
    rotate = by_title["Rotate the database password"]
    assert (rotate["priority"], rotate["assignee"], rotate["due"], rotate["labels"]) == (
        "critical", "maya@example.com", "2030-06-30", ["ops"])
    gh_rotate = w.gh_issue(rotate)
    assert gh_rotate.title == "Rotate the database password" and "priority:critical" in gh_rotate.labels
    assert "Friday" in (gh_rotate.body or "")
    progress = by_title["Seeded issue 2"]
    assert progress["category"] == "in_progress"
    assert "in progress" in w.gh_issue(progress).labels
    # Each item is linked once; the pull request is not a task; 2 GitHub issues were created, 2 Jira ones.
    assert len(w.gh.repo(REPO).issues) == 5 and len(w.jira.issues) == 4


async def _one_new(w: World, title: str) -> dict[str, Any]:
    """The task called ``title``, once it is linked on both sides."""
    async def found() -> dict[str, Any] | None:
        return next((t for t in await w.tasks() if t["title"] == title), None)

    t = await until(found, what=f"a task {title!r}")
    return await w.linked_both(t["key"])


async def test_edits_on_each_side_arrive_by_webhook(make_world: Any) -> None:
    w: World = await make_world()
    w.gh.open_issue(REPO, "From GitHub", body="First words")
    t = await _one_new(w, "From GitHub")
    number, key = int(t["links"][0]["remote_key"].rsplit("#")[1]), w.jira_issue(t).key
    w.gh.edit(REPO, number, title="Renamed on GitHub", labels=["ui", "priority:low"])
    await until(lambda: (w.jira.issue(key).summary, w.jira.issue(key).labels, w.jira.issue(key).priority)
                == ("Renamed on GitHub", ["ui"], "Low"), what="the GitHub edit in Jira")
    w.jira.edit(key, summary="Renamed in Jira", description="New *words*", assignee=MAYA)
    await until(lambda: w.gh.issue(REPO, number).title == "Renamed in Jira", what="the Jira edit on GitHub")
    await w.quiet()
    t = await w.task(t["key"])
    assert (t["title"], t["labels"], t["priority"], t["assignee"]) == (
        "Renamed in Jira", ["ui"], "low", "maya@example.com")
    assert "words" in t["description"] and "words" in (w.gh.issue(REPO, number).body or "")
    runs = (await w.api.get("/api/v1/sync/runs", params={"limit": 100})).json()["items"]
    assert {r["trigger"] for r in runs} >= {"webhook", "local"} and not [r for r in runs if r["errors"]]


@pytest.mark.parametrize("policy", ["newest", "local", "remote", "manual"])
async def test_the_same_field_edited_on_both_sides(make_world: Any, policy: str) -> None:
    w: World = await make_world(github={"conflict": policy})
    w.gh.open_issue(REPO, "Base title")
    t = await _one_new(w, "Base title")
    number, key = w.gh_issue(t).number, w.jira_issue(t).key
    await w.quiet()
    hook = w.gh.hook_url
    w.gh.hook_url = None  # the GitHub edit is not told: the local edit meets it when it is pushed
    w.gh.advance(120)  # ... and is the newer one
    w.gh.edit(REPO, number, title="Remote title")
    await w.patch(t["key"], title="Local title")
    await w.quiet()
    w.gh.hooks(hook, "github hook secret")  # type: ignore[arg-type]
    winner = {"newest": "Remote title", "local": "Local title", "remote": "Remote title"}.get(policy)
    conflicts = (await w.api.get("/api/v1/sync/conflicts")).json()["items"]
    if winner is not None:
        assert conflicts == []
        assert ((await w.task(t["key"]))["title"], w.gh.issue(REPO, number).title, w.jira.issue(key).summary) == (
            winner, winner, winner)
        return
    # manual: parked, nothing overwritten on GitHub; the task kept its own value (and Jira got it).
    [c] = conflicts
    assert (c["field"], c["local"], c["remote"], c["base"], c["integration"]) == (
        "title", "Local title", "Remote title", "Base title", "github")
    assert ((await w.task(t["key"]))["title"], w.gh.issue(REPO, number).title) == ("Local title", "Remote title")
    assert (await w.task(t["key"]))["conflicts"] == 1
    r = await w.api.post(f"/api/v1/sync/conflicts/{c['id']}/resolve", json={"value": "Agreed title"})
    assert r.status_code == 200, r.text
    await w.quiet()
    assert ((await w.task(t["key"]))["title"], w.gh.issue(REPO, number).title, w.jira.issue(key).summary) == (
        "Agreed title", "Agreed title", "Agreed title")
    assert (await w.api.get("/api/v1/sync/conflicts")).json()["items"] == []
    assert (await w.api.post(f"/api/v1/sync/conflicts/{c['id']}/resolve", json={"choose": "local"})).status_code == 409


def _seed_two_workflows(gh: Any, jira: Any) -> None:
    jira.seed("OPS", 1, type="Bug", summary="A bug (review workflow)")
    jira.seed("OPS", 1, type="Task", summary="A task (simple workflow)")


async def test_status_round_trips_through_both_jira_workflows_and_github(make_world: Any) -> None:
    w: World = await make_world(seed=_seed_two_workflows)
    bug = await _one_new(w, "A bug (review workflow)")
    task = await _one_new(w, "A task (simple workflow)")
    assert (bug["status"], bug["category"], task["status"]) == ("Backlog", "todo", "To Do")

    def where(t: dict[str, Any]) -> tuple[str, str, bool]:
        issue = w.gh_issue(t)
        return w.jira_issue(t).status, issue.state, "in progress" in issue.labels

    # Changed here: each tracker follows by its own means (transitions in Jira, a label or closing on GitHub).
    for category, bug_status, task_status, gh_state, label in [
        ("in_progress", "In Review", "In Progress", "open", True),
        ("done", "Done", "Done", "closed", False),
        ("todo", "Backlog", "To Do", "open", False),
    ]:
        for t, jira_status in ((bug, bug_status), (task, task_status)):
            await w.patch(t["key"], status=category)
            await until(lambda t=t, s=jira_status: where(t) == (s, gh_state, label),  # type: ignore[misc]
                        what=f"{t['key']} {category} on both trackers")
    await w.quiet()
    # Changed in Jira, through the review workflow: GitHub follows through the task.
    key = w.jira_issue(bug).key
    for jira_status, category, gh_state, label in [("Selected for Development", "todo", "open", False),
                                                   ("In Review", "in_progress", "open", True),
                                                   ("Done", "done", "closed", False),
                                                   ("Backlog", "todo", "open", False)]:
        w.jira.move(key, jira_status)
        await until(lambda s=jira_status, st=gh_state, lb=label: where(bug) == (s, st, lb),  # type: ignore[misc]
                    what=f"Jira {jira_status} on GitHub")
        await w.quiet()
        got = await w.task(bug["key"])
        assert got["category"] == category
        if category != "todo":  # a new name in the same category is no change to sync (only categories are)
            assert got["status"] == jira_status
    # Changed on GitHub: the simple workflow follows.
    number = w.gh_issue(task).number
    for fields, jira_status in [({"labels": ["in progress"]}, "In Progress"), ({"state": "closed"}, "Done"),
                                ({"state": "open", "labels": []}, "To Do")]:
        w.gh.edit(REPO, number, **fields)
        await until(lambda s=jira_status: w.jira_issue(task).status == s, what=f"GitHub {fields} in Jira")
        await w.quiet()
    assert not (await w.api.get("/api/v1/sync/runs", params={"status": "partial"})).json()["items"]


async def test_parallel_opened_and_labeled_webhooks_make_one_task(make_world: Any) -> None:
    w: World = await make_world()
    hook = w.gh.hook_url
    w.gh.hook_url = None
    w.gh.open_issue(REPO, "Brand new", labels=["bug"])
    w.gh.hooks(hook, "github hook secret")  # type: ignore[arg-type]
    r = w.gh.repo(REPO)
    issue = w.gh.issue(REPO, 1)
    payloads = [{"action": action, "issue": w.gh.render(r, issue), "repository": w.gh._repository(r),
                 "sender": {"login": "octocat"}, **extra}
                for action, extra in (("opened", {}), ("labeled", {"label": {"name": "bug"}}))]
    statuses = await asyncio.gather(*(w.gh.post_webhook("issues", p) for p in payloads))
    assert statuses == [202, 202] or all(s in (200, 202) for s in statuses), statuses
    await _one_new(w, "Brand new")
    await w.quiet()
    assert len(await w.tasks()) == 1 and len(w.jira.issues) == 1 and w.gh.calls["POST issues"] == 0


async def test_our_own_writes_come_back_as_webhooks_without_a_loop(make_world: Any) -> None:
    w: World = await make_world()
    w.gh.open_issue(REPO, "Echo me")
    t = await _one_new(w, "Echo me")
    await w.quiet()
    gh0, jira0 = w.gh_writes(), w.jira_writes()
    w.gh.edit(REPO, w.gh_issue(t).number, title="Echo once")
    await until(lambda: w.jira_issue(t).summary == "Echo once", what="the edit in Jira")
    await w.quiet()
    # One write to Jira (the edit); its webhook comes back and writes nothing; GitHub is not written.
    assert (w.gh_writes() - gh0, w.jira_writes() - jira0) == (0, 1), (w.gh.calls, w.jira.calls)
    await w.patch(t["key"], priority="critical")
    await w.quiet()
    assert (w.gh_writes() - gh0, w.jira_writes() - jira0) == (1, 2)
    for name in ("github", "jira"):  # nothing left to do: a sweep writes nothing either
        run = await w.sweep(name)
        assert (run["status"], run["created"], run["updated"], run["errors"]) == ("ok", 0, 0, 0), run
    await w.quiet()
    assert (w.gh_writes() - gh0, w.jira_writes() - jira0) == (1, 2)


async def test_a_create_whose_answer_is_lost_is_not_made_twice(make_world: Any) -> None:
    w: World = await make_world()
    w.jira.drop_next_create()
    w.gh.drop_next("POST")
    r = await w.api.post("/api/v1/tasks", json={"title": "Made here, answer lost"})
    assert r.status_code == 201, r.text
    await w.linked_both(r.json()["key"])
    await w.quiet()
    assert len(w.jira.issues) == 1 and len(w.gh.repo(REPO).issues) == 1
    assert w.jira.calls["POST /rest/api/3/issue"] == 1 and w.gh.calls["POST issues"] == 1


async def test_a_rate_limit_mid_sweep_is_waited_out(make_world: Any) -> None:
    w: World = await make_world()
    w.gh.seed(REPO, 101)  # two pages: the limit meets the second
    w.gh.stall(0, method="GET")  # the first page passes, the second meets the secondary limit
    w.gh.secondary_limit(status=403, retry_after=1)
    w.jira.fail(429, retry_after=1, method="POST", path="/rest/api/3/issue", times=2)
    run = await w.sweep("github")
    assert (run["status"], run["created"], run["errors"]) == ("ok", 101, 0), run
    assert run["rate_limit_waits"] >= 1 and run["waited"] >= 1
    await w.quiet(timeout=60)
    tasks = await w.tasks()
    assert len(tasks) == 101 and len(w.jira.issues) == 101
    runs = (await w.api.get("/api/v1/sync/runs", params={"limit": 200})).json()["items"]
    assert not [r for r in runs if r["errors"] or r["status"] == "failed"], runs
    assert sum(r["rate_limit_waits"] for r in runs if r["integration"] == "jira") >= 1


async def test_a_remote_deletion_unlinks_and_the_task_stays(make_world: Any) -> None:
    w: World = await make_world()
    w.gh.open_issue(REPO, "Doomed on GitHub")
    gone = await _one_new(w, "Doomed on GitHub")
    w.jira.seed("OPS", 1, summary="Doomed in Jira")
    await w.sweep("jira")
    gone2 = await _one_new(w, "Doomed in Jira")
    await w.quiet()
    w.gh.delete(REPO, w.gh_issue(gone).number)
    w.jira.delete(w.jira_issue(gone2).key)

    async def states(key: str) -> dict[str, str]:
        return {x["integration"]: x["state"] for x in (await w.task(key))["links"]}

    await until(lambda: states(gone["key"]), what="x")
    await until(lambda: _eq(states(gone["key"]), {"github": "deleted", "jira": "linked"}), what="GitHub unlinked")
    await until(lambda: _eq(states(gone2["key"]), {"github": "linked", "jira": "deleted"}), what="Jira unlinked")
    await w.quiet()
    assert {t["key"] for t in await w.tasks()} == {gone["key"], gone2["key"]}
    assert len(w.jira.issues) == 1 and len(w.gh.repo(REPO).issues) == 2  # nothing made again
    await w.patch(gone["key"], title="Still here")
    await until(lambda: w.jira_issue(gone).summary == "Still here", what="the other tracker still synced")


async def _eq(value: Any, want: Any) -> bool:
    return bool(await value == want)


async def test_a_task_created_through_the_api_appears_in_both_trackers(make_world: Any) -> None:
    w: World = await make_world()
    r = await w.api.post("/api/v1/tasks", json={"title": "Rotate keys", "description": "See **runbook**",
                                                "priority": "high", "labels": ["ops"], "status": "in_progress",
                                                "due": "2030-01-31"})
    assert r.status_code == 201, r.text
    t = await w.linked_both(r.json()["key"])
    issue, jira = w.gh_issue(t), w.jira_issue(t)
    assert (issue.title, issue.state, sorted(issue.labels)) == ("Rotate keys", "open", ["in progress", "ops", "priority:high"])
    assert "**runbook**" in (issue.body or "")
    assert (jira.summary, jira.status, jira.priority, jira.labels, jira.duedate) == (
        "Rotate keys", "In Progress", "High", ["ops"], "2030-01-31")


async def test_a_plan_through_the_api_shows_actions_and_writes_nothing(make_world: Any) -> None:
    w: World = await make_world()
    hook = w.gh.hook_url
    w.gh.hook_url = None
    w.gh.open_issue(REPO, "Not yet imported")
    w.jira.seed("OPS", 1, summary="Not yet imported either")
    before = (await counts(w.hub), w.gh_writes(), w.jira_writes(), len(w.gh.repo(REPO).issues), len(w.jira.issues))
    r = await w.api.get("/api/v1/sync/plan")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert {(i["integration"], i["action"]) for i in items} >= {("github", "create_task"), ("jira", "create_task")}, items
    after = (await counts(w.hub), w.gh_writes(), w.jira_writes(), len(w.gh.repo(REPO).issues), len(w.jira.issues))
    assert after == before
    w.gh.hooks(hook, "github hook secret")  # type: ignore[arg-type]
