"""Local tasks in the store (``sync.tasks``): create, update, delete, list with filters and pages;
status names and their categories; who may be assigned; parallel creates; every change audited in
its transaction. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select

from tidings.accounts.projects import create_project, set_member
from tidings.accounts.users import create_user
from tidings.audit import SYSTEM, Actor
from tidings.audit.verify import read_entries
from tidings.ids import new_id
from tidings.store.engine import Store
from tidings.store.tables import sync_conflicts, task_links, tasks
from tidings.sync.tasks import (
    StaleTask,
    TaskError,
    create_task,
    create_tasks,
    delete_task,
    get_task,
    list_tasks,
    task_view,
    update_task,
)

ALICE = Actor("user", name="alice@example.com", auth_method="token")


@pytest.fixture
async def alpha(store: Store) -> Store:
    """The store with projects alpha and beta, alice a member of alpha, bob of beta only."""
    async with store.write() as conn:
        for slug in ("alpha", "beta"):
            await create_project(conn, SYSTEM, slug)
        await create_user(conn, SYSTEM, email="alice@example.com")
        await create_user(conn, SYSTEM, email="bob@example.com")
        await create_user(conn, SYSTEM, email="root@example.com", site_admin=True)
        await set_member(conn, SYSTEM, "alpha", "alice@example.com", "viewer")
        await set_member(conn, SYSTEM, "beta", "bob@example.com", "owner")
    return store


async def make(store: Store, project: str = "alpha", **values: Any) -> dict[str, Any]:
    async with store.write() as conn:
        return (await create_task(conn, project, {"title": "a task", **values}, actor=ALICE)).task


async def change(store: Store, key: str, values: dict[str, Any], **kwargs: Any) -> Any:
    async with store.write() as conn:
        task = await get_task(conn, "alpha", key)
        assert task is not None
        return await update_task(conn, task, values, actor=ALICE, **kwargs)


async def test_a_task_is_created_read_changed_and_audited(alpha: Store) -> None:
    made = await make(alpha, title="  Write the docs ", description="**bold**  \nline", labels=["b", "a", "a"],
                      due="2030-01-31", priority="high", assignee="Alice@Example.com")
    assert made["key"] == "T-1" and made["number"] == 1 and made["version"] == 1
    assert (made["title"], made["description"], made["labels"]) == ("Write the docs", "**bold**\nline", ["a", "b"])
    assert (made["status"], made["category"], made["assignee"]) == ("todo", "todo", "alice@example.com")
    assert made["created_by"] == "alice@example.com"
    async with alpha.read() as conn:
        for key in ("T-1", "t-1", "1", made["id"]):
            assert (await get_task(conn, "alpha", key))["id"] == made["id"], key  # type: ignore[index]
        assert await get_task(conn, "beta", "T-1") is None  # another project's
    # A change: only what differs, one version more, before and after in the audit entry.
    result = await change(alpha, "T-1", {"status": "in_progress", "title": "Write the docs", "due": None})
    assert result.changed == {"status": "in_progress", "status_name": "in progress", "due": None}
    assert result.before == {"status": "todo", "status_name": "todo", "due": "2030-01-31"}
    assert result.task["version"] == 2 and result.task["category"] == "in_progress"
    assert await change(alpha, "T-1", {"title": "Write the docs"}) is None  # nothing changes: no version
    entries = [e for e in await read_entries(alpha) if e["action"].startswith("task.")]
    assert [(e["action"], e["target"], e["project"], e["actor_name"]) for e in entries] == [
        ("task.create", "T-1", "alpha", "alice@example.com"), ("task.update", "T-1", "alpha", "alice@example.com")]
    assert entries[1]["before"] == {"category": "todo", "status": "todo", "due": "2030-01-31"}
    assert entries[1]["after"] == {"category": "in_progress", "status": "in progress", "due": None}


async def test_a_stale_version_is_refused_with_the_current_task(alpha: Store) -> None:
    await make(alpha)
    await change(alpha, "T-1", {"title": "second"})
    with pytest.raises(StaleTask) as caught:
        await change(alpha, "T-1", {"title": "third"}, expect_version=1)
    assert caught.value.current["version"] == 2 and caught.value.current["title"] == "second"
    assert (await change(alpha, "T-1", {"title": "third"}, expect_version=2)).task["version"] == 3


async def test_status_names_find_their_category(alpha: Store) -> None:
    # A well-known name alone.
    assert (await make(alpha, status_name="In Review"))["category"] == "in_progress"
    # The project's own name needs its category once; afterwards the name alone is enough.
    with pytest.raises(TaskError, match="'Blocked' is not a status project alpha knows: give its category"):
        await make(alpha, status_name="Blocked")
    blocked = await make(alpha, status_name="Blocked", status="in_progress")
    assert (blocked["status"], blocked["category"]) == ("Blocked", "in_progress")
    assert (await make(alpha, status_name="blocked"))["category"] == "in_progress"
    with pytest.raises(TaskError, match="give its category"):  # another project doesn't know it
        await make(alpha, "beta", status_name="Blocked")
    # A category alone gets its default name; a name given with it is kept.
    done = await change(alpha, blocked["key"], {"status": "done"})
    assert (done.task["status"], done.task["category"]) == ("done", "done")
    named = await change(alpha, blocked["key"], {"status_name": "Won't do"})
    assert (named.task["status"], named.task["category"], named.changed) == ("Won't do", "done", {"status_name": "Won't do"})
    moved = await change(alpha, blocked["key"], {"status_name": "Blocked"})
    assert (moved.task["status"], moved.task["category"]) == ("Blocked", "in_progress")
    for bad, why in (({"status": "later"}, "status: one of todo"), ({"status_name": " "}, "a name of 1 to 64"),
                     ({"status_name": "x" * 65}, "a name of 1 to 64")):
        with pytest.raises(TaskError, match=why):
            await make(alpha, **bad)


async def test_who_may_be_assigned(alpha: Store) -> None:
    assert (await make(alpha, assignee="github:octocat"))["assignee"] == "github:octocat"
    jira = "jira:557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"
    assert (await make(alpha, assignee=jira))["assignee"] == jira
    assert (await make(alpha, assignee="root@example.com"))["assignee"] == "root@example.com"  # a site admin
    for who, why in (("bob@example.com", "bob@example.com is not a member of project alpha"),
                     ("carol@example.com", "no tidings user 'carol@example.com'"),
                     ("octocat", "is neither a project member's email, or an external login"),
                     ("GitHub:octocat", "is neither"), ("github: octo cat", "is neither")):
        with pytest.raises(TaskError, match=why):
            await make(alpha, assignee=who)
    # A change from a tracker comes through its mapping: only its shape is checked.
    async with alpha.write() as conn:
        made = await create_task(conn, "alpha", {"title": "from jira", "assignee": "bob@example.com"}, actor=SYSTEM,
                                 origin="jira")
    assert made.task["assignee"] == "bob@example.com" and made.origin == "jira"
    unassigned = await change(alpha, made.task["key"], {"assignee": None})
    assert unassigned.task["assignee"] is None


BAD = [
    ({"title": ""}, "title: must not be empty"),
    ({"title": "x" * 1001}, "title: at most 1000"),
    ({"title": None}, "title: must be text"),
    ({"description": "x" * 100_001}, "description: at most 100000"),
    ({"priority": "urgent"}, "priority: one of critical"),
    ({"due": "2030-02-30"}, "due: '2030-02-30' is not a date"),
    ({"due": "20300101"}, "due: a date, YYYY-MM-DD"),
    ({"labels": "bug"}, "labels: a list of text"),
    ({"labels": ["x" * 101]}, "labels: at most 100, each"),
    ({"labels": [" "]}, "labels: at most 100, each"),
    ({"colour": "red"}, "unknown task field"),
]


async def test_bad_values_are_refused_with_their_reason(alpha: Store) -> None:
    for values, why in BAD:
        with pytest.raises(TaskError, match=why):
            await make(alpha, **values)
    async with alpha.read() as conn:
        assert (await conn.execute(select(tasks))).all() == []


async def test_nul_is_stored_as_a_replacement_character(alpha: Store) -> None:
    made = await make(alpha, title="a\x00b", labels=["x\x00"], description="\x00")
    async with alpha.read() as conn:
        stored = await get_task(conn, "alpha", made["key"])
    assert stored is not None and (stored["title"], stored["labels"], stored["description"]) == ("a\ufffdb", ["x\ufffd"], "\ufffd")


async def test_parallel_creates_take_numbers_one_after_another(alpha: Store) -> None:
    async def one(i: int) -> int:
        async with alpha.write() as conn:
            return int((await create_task(conn, "alpha", {"title": f"t{i}"}, actor=ALICE)).task["number"])

    numbers = await asyncio.gather(*(one(i) for i in range(12)))
    assert sorted(numbers) == list(range(1, 13))
    assert (await make(alpha, "beta"))["number"] == 1  # numbers are per project


async def test_tasks_created_together_are_numbered_in_order_each_audited_or_none_written(alpha: Store) -> None:
    """``create_tasks`` (a sweep page's imports): as many ``create_task`` in one go."""
    first = await make(alpha)
    async with alpha.write() as conn:
        assert await create_tasks(conn, "alpha", [], actor=ALICE) == []
        made = await create_tasks(conn, "alpha", [{"title": "two", "status": "done", "status_name": "Closed"},
                                                  {"title": "three", "labels": ["b", "a"]}],
                                  actor=SYSTEM, origin="gh")
    assert [c.task["key"] for c in made] == ["T-2", "T-3"] and first["key"] == "T-1"
    assert [(c.action, c.origin, c.changed["title"]) for c in made] == [("task.create", "gh", "two"), ("task.create", "gh", "three")]
    async with alpha.read() as conn:
        two, three = await get_task(conn, "alpha", "T-2"), await get_task(conn, "alpha", "T-3")
    assert two is not None and (two["status"], two["category"]) == ("Closed", "done")
    assert three is not None and three["labels"] == ["a", "b"]
    entries = [(e["action"], e["target"]) for e in await read_entries(alpha) if e["action"] == "task.create"]
    assert entries == [("task.create", "T-1"), ("task.create", "T-2"), ("task.create", "T-3")]
    with pytest.raises(TaskError, match="title"):
        async with alpha.write() as conn:
            await create_tasks(conn, "alpha", [{"title": "four"}, {"title": ""}], actor=ALICE)
    async with alpha.read() as conn:
        assert await get_task(conn, "alpha", "T-4") is None
    assert (await make(alpha))["key"] == "T-4"


async def test_a_deleted_task_leaves_its_links_unlinked(alpha: Store) -> None:
    task = await make(alpha)
    now = time.time()
    async with alpha.write() as conn:
        for integration, state in (("gh", "linked"), ("jira", "deleted")):
            await conn.execute(task_links.insert().values(
                id=new_id(), task_id=task["id"], project="alpha", integration=integration, state=state,
                remote_id=f"{integration}-1", remote_key=f"{integration.upper()}-1",
                remote_url=f"https://{integration}.example.com/1", created_at=now))
        await conn.execute(sync_conflicts.insert().values(
            id=new_id(), task_id=task["id"], project="alpha", integration="gh", field="title", base="a", local="b",
            remote="c", created_at=now))
    async with alpha.read() as conn:
        view = await task_view(conn, (await get_task(conn, "alpha", "T-1")) or {})
    assert [(x["integration"], x["remote_key"], x["state"]) for x in view["links"]] == [
        ("gh", "GH-1", "linked"), ("jira", "JIRA-1", "deleted")]
    assert view["conflicts"] == 1
    with pytest.raises(StaleTask):
        async with alpha.write() as conn:
            await delete_task(conn, task, actor=ALICE, expect_version=7)
    async with alpha.write() as conn:
        deleted = await delete_task(conn, task, actor=ALICE, expect_version=1)
    assert deleted.action == "task.delete" and deleted.task["unlinked"] == [
        {"integration": "gh", "remote_key": "GH-1"}, {"integration": "jira", "remote_key": "JIRA-1"}]
    async with alpha.read() as conn:
        assert await get_task(conn, "alpha", "T-1") is None
        links = (await conn.execute(select(task_links.c.integration, task_links.c.task_id, task_links.c.state)
                                    .order_by(task_links.c.integration))).all()
        assert [tuple(r) for r in links] == [("gh", None, "unlinked"), ("jira", None, "deleted")]
        assert (await conn.execute(select(sync_conflicts))).all() == []
    [entry] = [e for e in await read_entries(alpha) if e["action"] == "task.delete"]
    assert entry["target"] == "T-1" and entry["before"]["title"] == "a task"
    assert (await make(alpha))["number"] == 2  # a deleted task's number is not given again


async def test_lists_filter_and_page(alpha: Store) -> None:
    await make(alpha, title="Fix the login bug", labels=["bug", "auth"], assignee="alice@example.com")
    await make(alpha, title="Write docs", labels=["docs"], status="done")
    await make(alpha, title="100% done? no_", labels=["bug"], status="in_progress", assignee="github:octocat")
    await make(alpha, "beta", title="Fix beta", labels=["bug"])
    async with alpha.read() as conn:
        async def keys(**filters: Any) -> list[str]:
            return [t["key"] for t in (await list_tasks(conn, "alpha", **filters))["items"]]

        assert await keys() == ["T-3", "T-2", "T-1"]
        assert await keys(status="open") == ["T-3", "T-1"]
        assert await keys(status="done") == ["T-2"]
        assert await keys(label="bug") == ["T-3", "T-1"]
        assert await keys(label="bu") == []
        assert await keys(assignee="Alice@example.com") == ["T-1"]
        assert await keys(assignee="github:octocat") == ["T-3"]
        assert await keys(q="FIX") == ["T-1"]
        assert await keys(q="%") == ["T-3"] and await keys(q="_") == ["T-3"]  # no wildcards
        assert await keys(q="bug", label="bug", status="todo") == ["T-1"]
        assert await keys(updated_since=time.time() + 60) == []
        first = await list_tasks(conn, "alpha", limit=2)
        assert [t["key"] for t in first["items"]] == ["T-3", "T-2"] and first["next"] == 2
        second = await list_tasks(conn, "alpha", limit=2, before=first["next"])
        assert [t["key"] for t in second["items"]] == ["T-1"] and second["next"] is None
        with pytest.raises(TaskError, match="status: one of todo, in_progress, done, open"):
            await list_tasks(conn, "alpha", status="closed")
