"""Local tasks in the store: the conn-level core every caller shares (API, CLI, Slack, the sync engine).

Each function runs in the caller's transaction (``async with store.write() as conn``) and appends
its audit entry there, so a change and its record commit together. What happens after the commit
(notifications, pushing the change to linked trackers) is the caller's, from the returned
:class:`TaskChange`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from ..audit.chain import Actor, append
from ..ids import new_id
from ..message import Priority
from ..store.engine import Conn
from ..store.tables import tasks
from .model import CATEGORIES, FIELDS, normalize

KEY = re.compile(r"^(?:[Tt]-)?([0-9]{1,9})$")
DEFAULT_STATUS = {"todo": "todo", "in_progress": "in progress", "done": "done"}
"""The status name a task gets from its category when nobody named one."""
_CATEGORY_OF = {
    **{n: "todo" for n in ("todo", "to do", "open", "backlog", "new", "selected for development")},
    **{n: "in_progress" for n in ("in_progress", "in progress", "doing", "in review", "review", "started")},
    **{n: "done" for n in ("done", "closed", "resolved", "complete", "completed", "won't do", "wontfix", "cancelled")},
}


class TaskError(ValueError):
    """A task write that can't be done as asked (a bad value, an unknown key); its text says why."""


class StaleTask(TaskError):
    """``If-Match`` named an older version than the task's: someone changed it meanwhile."""

    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__(f"task {current['key']} changed meanwhile: it is at version {current['version']}")
        self.current = current


@dataclass
class TaskChange:
    """One committed change, for what follows the commit (notify, push to trackers)."""

    action: str
    """``task.create``, ``task.update`` or ``task.delete``."""
    task: dict[str, Any]
    changed: dict[str, Any] = field(default_factory=dict)
    """Field -> new value (all fields for a create)."""
    origin: str | None = None
    """The integration the change came from (sync), so it is not pushed back there."""


def category_of(status: str) -> str | None:
    """The category a status name belongs to by default, or ``None`` when it's not a known name."""
    return _CATEGORY_OF.get(status.strip().lower())


def parse_key(key: str) -> int | None:
    """``T-12`` or ``12`` -> 12; anything else (a task id) -> ``None``."""
    m = KEY.match(key.strip())
    return int(m.group(1)) if m else None


def as_dict(row: Any) -> dict[str, Any]:
    """A task row as the API answers it."""
    d = dict(row._mapping)
    d["key"] = f"T-{d['number']}"
    d["labels"] = list(d["labels"] or [])
    return d


def task_fields(task: dict[str, Any]) -> dict[str, Any]:
    """A task's synced fields in task space (``status`` is its category)."""
    return normalize({
        "title": task["title"], "description": task["description"], "status": task["category"],
        "priority": task["priority"], "assignee": task["assignee"], "labels": task["labels"], "due": task["due"],
    })


def check_fields(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked and normalized (task space plus ``status_name``); raises :class:`TaskError`."""
    unknown = set(values) - set(FIELDS) - {"status_name"}
    if unknown:
        raise TaskError(f"unknown task field(s): {', '.join(sorted(unknown))}")
    out = normalize({k: v for k, v in values.items() if k != "status_name"})
    if "title" in out and not out["title"]:
        raise TaskError("title: must not be empty")
    if "title" in out and len(out["title"]) > 1000:
        raise TaskError("title: at most 1000 characters")
    if "description" in out and len(out["description"]) > 100_000:
        raise TaskError("description: at most 100000 characters")
    if "status" in out and out["status"] not in CATEGORIES:
        raise TaskError(f"status: one of {', '.join(CATEGORIES)}")
    if "priority" in out and out["priority"] not in {p.value for p in Priority}:
        raise TaskError(f"priority: one of {', '.join(p.value for p in Priority)}")
    if out.get("due") is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(out["due"])):
        raise TaskError("due: a date, YYYY-MM-DD")
    if "labels" in out and (len(out["labels"]) > 100 or any(not l or len(l) > 100 for l in out["labels"])):
        raise TaskError("labels: at most 100, each 1 to 100 characters")
    if out.get("assignee") is not None and len(str(out["assignee"])) > 320:
        raise TaskError("assignee: at most 320 characters")
    if "status_name" in values and values["status_name"] is not None:
        out["status_name"] = str(values["status_name"]).strip()[:64]
    return out


async def get_task(conn: Conn, project: str, key: str) -> dict[str, Any] | None:
    """A project's task by key (``T-12``, ``12``) or id."""
    number = parse_key(key)
    where = tasks.c.number == number if number is not None else tasks.c.id == key.strip()
    row = (await conn.execute(select(tasks).where(tasks.c.project == project, where))).first()
    return as_dict(row) if row else None


async def get_task_by_id(conn: Conn, task_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(tasks).where(tasks.c.id == task_id))).first()
    return as_dict(row) if row else None


async def create_task(
    conn: Conn, project: str, values: dict[str, Any], *, actor: Actor, origin: str | None = None,
) -> TaskChange:
    """A new task from task-space ``values`` (``title`` required; ``status_name`` optional)."""
    v = check_fields(values)
    if not v.get("title"):
        raise TaskError("title: required")
    category = v.get("status", "todo")
    now = time.time()
    number = (await conn.execute(
        select(func.coalesce(func.max(tasks.c.number), 0)).where(tasks.c.project == project)
    )).scalar_one() + 1
    row = {
        "id": new_id(), "project": project, "number": number, "title": v["title"],
        "description": v.get("description", ""), "status": v.get("status_name") or DEFAULT_STATUS[category],
        "category": category, "priority": v.get("priority", Priority.MEDIUM.value), "assignee": v.get("assignee"),
        "labels": v.get("labels", []), "due": v.get("due"), "version": 1,
        "created_by": actor.name or actor.id, "created_at": now, "updated_at": now,
    }
    await conn.execute(tasks.insert().values(**row))
    task = {**row, "key": f"T-{number}"}
    await append(conn, actor, "task.create", target=task["key"], project=project, after=_audited(task))
    return TaskChange("task.create", task, task_fields(task), origin)


async def update_task(
    conn: Conn, task: dict[str, Any], values: dict[str, Any], *, actor: Actor,
    expect_version: int | None = None, origin: str | None = None, at: float | None = None,
) -> TaskChange | None:
    """Apply ``values`` to ``task`` (as read in this transaction); ``None`` when nothing changes.
    ``expect_version`` (from ``If-Match``) must be the task's version, else :class:`StaleTask`.
    ``at``: the change's time when it is older than now (a remote edit merged later)."""
    if expect_version is not None and expect_version != task["version"]:
        raise StaleTask(task)
    v = check_fields(values)
    current = task_fields(task)
    changes: dict[str, Any] = {k: val for k, val in v.items() if k != "status_name" and current.get(k) != val}
    status_name = v.get("status_name")
    if "status" in changes and not status_name:
        status_name = DEFAULT_STATUS[changes["status"]]
    if status_name and status_name != task["status"]:
        changes["status_name"] = status_name
    if not changes:
        return None
    row: dict[str, Any] = {("category" if k == "status" else "status" if k == "status_name" else k): val
                           for k, val in changes.items()}
    row["version"] = task["version"] + 1
    row["updated_at"] = max(time.time() if at is None else at, task["updated_at"])
    result = await conn.execute(
        tasks.update().where(tasks.c.id == task["id"], tasks.c.version == task["version"]).values(**row)
    )
    if result.rowcount != 1:
        fresh = await get_task_by_id(conn, task["id"])
        raise StaleTask(fresh or task)
    after = {**task, **row}
    await append(conn, actor, "task.update", target=task["key"], project=task["project"],
                 before={k: task.get(k) for k in row if k not in ("version", "updated_at")},
                 after={k: after[k] for k in row if k not in ("version", "updated_at")})
    return TaskChange("task.update", after, {k: v for k, v in changes.items()}, origin)


def _audited(task: dict[str, Any]) -> dict[str, Any]:
    return {k: task[k] for k in ("title", "status", "category", "priority", "assignee", "labels", "due")}
