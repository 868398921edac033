"""Local tasks in the store: the conn-level core every caller shares (API, CLI, Slack, the sync engine).

Each function runs in the caller's transaction (``async with store.write() as conn``) and appends
its audit entry there, so a change and its record commit together. What happens after the commit
(notifications, pushing the change to linked trackers) is the caller's, from the returned
:class:`TaskChange` (``sync.events.after_commit``).

Values are in task space (``sync.model``): ``status`` is the category, ``status_name`` the
project's own name for it. A name alone finds its category (:func:`category_for`): a well-known
name (``In Review``), else a name the project's tasks already use; any other name needs its category.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, select, text, update

from ..audit.chain import PG_LOCK_ID, Actor, Entry, append, append_many
from ..ids import new_id
from ..message import Priority
from ..store.engine import Conn
from ..store.pages import newest_first
from ..store.tables import memberships, nul_safe, sync_conflicts, task_links, task_numbers, tasks, users
from .model import CATEGORIES, FIELDS, normalize

KEY = re.compile(r"^(?:[Tt]-)?([0-9]{1,9})$")
DEFAULT_STATUS = {"todo": "todo", "in_progress": "in progress", "done": "done"}
"""The status name a task gets from its category when nobody named one."""
_CATEGORY_OF = {
    **{n: "todo" for n in ("todo", "to do", "open", "backlog", "new", "selected for development")},
    **{n: "in_progress" for n in ("in_progress", "in progress", "doing", "in review", "review", "started")},
    **{n: "done" for n in ("done", "closed", "resolved", "complete", "completed", "won't do", "wontfix", "cancelled")},
}
OPEN = "open"
STATUS_FILTERS = (*CATEGORIES, OPEN)
"""What ``list_tasks(status=...)`` takes: a category, or ``open`` (not done)."""
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9_-]{0,31}:\S{1,256}$")
"""An external login: ``<kind>:<login>`` (``github:octocat``, ``jira:557058:f58131cb-...``)."""
ASSIGNEE_HELP = "a project member's email, or an external login `<kind>:<login>` such as github:octocat"
STATUS_NAME_MAX = 64
LIST_MAX = 500


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
    """Field -> new value (all fields for a create; none for a delete)."""
    origin: str | None = None
    """The integration the change came from (sync), so it is not pushed back there."""
    before: dict[str, Any] = field(default_factory=dict)
    """Field -> value before an update (the keys of ``changed``)."""


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


def _text(name: str, value: Any, *, nullable: bool = False) -> Any:
    if value is None and (nullable or name == "description"):
        return value
    if not isinstance(value, str):
        raise TaskError(f"{name}: must be text")
    return nul_safe(value)


def _check_due(value: Any) -> None:
    try:
        dt.date.fromisoformat(str(value))
    except ValueError:
        raise TaskError(f"due: {str(value)[:40]!r} is not a date (YYYY-MM-DD)") from None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)):
        raise TaskError("due: a date, YYYY-MM-DD")


def check_fields(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked and normalized (task space plus ``status_name``); raises :class:`TaskError`.
    NUL (which PostgreSQL's text can't hold) becomes U+FFFD, as everywhere in the store."""
    unknown = set(values) - set(FIELDS) - {"status_name"}
    if unknown:
        raise TaskError(f"unknown task field(s): {', '.join(sorted(unknown))}")
    given = dict(values)
    for name in ("title", "description", "assignee", "due"):
        if name in given:
            given[name] = _text(name, given[name], nullable=name in ("assignee", "due"))
    if "labels" in given:
        if given["labels"] is not None and (not isinstance(given["labels"], list | tuple | set)
                                            or not all(isinstance(x, str) for x in given["labels"])):
            raise TaskError("labels: a list of text")
        given["labels"] = [nul_safe(x).strip() for x in given["labels"] or ()]
    out = normalize({k: v for k, v in given.items() if k != "status_name"})
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
    if out.get("due") is not None:
        _check_due(out["due"])
    if "labels" in out and (len(out["labels"]) > 100 or any(not label or len(label) > 100 for label in out["labels"])):
        raise TaskError("labels: at most 100, each 1 to 100 characters")
    assignee = out.get("assignee")
    if assignee is not None and (len(assignee) > 320 or not (EMAIL.match(assignee) or EXTERNAL.match(assignee))):
        raise TaskError(f"assignee: {assignee[:60]!r} is neither {ASSIGNEE_HELP}")
    if values.get("status_name") is not None:
        name = _text("status_name", values["status_name"]).strip()
        if not name or len(name) > STATUS_NAME_MAX:
            raise TaskError(f"status: a name of 1 to {STATUS_NAME_MAX} characters")
        out["status_name"] = name
    return out


def input_values(given: dict[str, Any]) -> dict[str, Any]:
    """What people write (API, CLI) as task-space values: ``status`` is a category or the
    project's name for a status, ``category`` says what a name means; ``due`` may be a date."""
    out = {k: v for k, v in given.items() if k not in ("status", "category")}
    for name in ("status", "category", "priority"):
        if name in given and given[name] is None:
            raise TaskError(f"{name}: can't be null")
    if isinstance(out.get("due"), dt.date):
        out["due"] = out["due"].isoformat()
    status, category = given.get("status"), given.get("category")
    if category is not None:
        out["status"] = category
    if status is not None:
        if status in CATEGORIES and category is None:
            out["status"] = status
        else:
            out["status_name"] = status
    return out


async def category_for(conn: Conn, project: str, name: str) -> str | None:
    """The category of status ``name`` in ``project``: a well-known name's, else the one the
    project's most recently changed task of that name has; ``None`` when neither."""
    known = category_of(name)
    if known is not None:
        return known
    return (await conn.execute(
        select(tasks.c.category).where(tasks.c.project == project, func.lower(tasks.c.status) == name.strip().lower())
        .order_by(tasks.c.updated_at.desc()).limit(1)
    )).scalar()


async def _resolve_status(conn: Conn, project: str, v: dict[str, Any]) -> None:
    """A ``status_name`` given without its category gets the category it has in ``project``."""
    name = v.get("status_name")
    if name and "status" not in v:
        category = await category_for(conn, project, name)
        if category is None:
            raise TaskError(f"status: {name!r} is not a status project {project} knows: give its category too "
                            f"(one of {', '.join(CATEGORIES)})")
        v["status"] = category


async def check_assignee(conn: Conn, project: str, assignee: str | None) -> str | None:
    """``assignee`` as stored: an email must be a tidings user's (enabled) who is a member of
    ``project`` or a site admin, and is stored as that user's email; an external login as given."""
    if assignee is None or not EMAIL.match(assignee):
        return assignee
    row = (await conn.execute(
        select(users.c.email, users.c.disabled, users.c.site_admin, memberships.c.role)
        .select_from(users.outerjoin(memberships, and_(memberships.c.user_id == users.c.id,
                                                       memberships.c.project == project)))
        .where(users.c.email == assignee.strip().lower())
    )).first()
    if row is None:
        raise TaskError(f"assignee: no tidings user {assignee!r}; give {ASSIGNEE_HELP}")
    if row.disabled:
        raise TaskError(f"assignee: the user {row.email} is disabled")
    if row.role is None and not row.site_admin:
        raise TaskError(f"assignee: {row.email} is not a member of project {project}")
    return str(row.email)


async def get_task(conn: Conn, project: str, key: str) -> dict[str, Any] | None:
    """A project's task by key (``T-12``, ``12``) or id."""
    number = parse_key(key)
    where = tasks.c.number == number if number is not None else tasks.c.id == key.strip()
    row = (await conn.execute(select(tasks).where(tasks.c.project == project, where))).first()
    return as_dict(row) if row else None


async def get_task_by_id(conn: Conn, task_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(tasks).where(tasks.c.id == task_id))).first()
    return as_dict(row) if row else None


async def _next_numbers(conn: Conn, project: str, count: int) -> int:
    """The first of the project's next ``count`` task numbers (taken together), counted in
    ``task_numbers`` so that a deleted task's number is never given again. On PostgreSQL creates
    are serialized first, so parallel ones never take the same number (``ux_tasks_number``): the
    lock is the audit chain's, which every create takes anyway to append its entry and holds until
    commit (so this adds no wait), and one lock can't be taken in two orders (no deadlock with a
    caller that appended an entry first). SQLite has one writer at a time."""
    if conn.dialect.name == "postgresql":
        await conn.execute(_LOCK, {"id": PG_LOCK_ID})
    last = (await conn.execute(_LAST, {"project": project})).scalar()
    highest = (await conn.execute(_HIGHEST, {"project": project})).scalar_one()
    first = max(last or 0, highest) + 1
    stop = first + count - 1
    if last is None:
        await conn.execute(task_numbers.insert().values(project=project, last=stop))
    else:
        await conn.execute(_SET_LAST, {"b_project": project, "b_last": stop})
    return int(first)


_LOCK = text("SELECT pg_advisory_xact_lock(:id)")
_LAST = select(task_numbers.c.last).where(task_numbers.c.project == bindparam("project"))
_HIGHEST = select(func.coalesce(func.max(tasks.c.number), 0)).where(tasks.c.project == bindparam("project"))
_SET_LAST = (update(task_numbers).where(task_numbers.c.project == bindparam("b_project"))
             .values(last=bindparam("b_last")))
_INSERT = tasks.insert()
# Built once: an import creates tasks by the thousand.


async def create_task(
    conn: Conn, project: str, values: dict[str, Any], *, actor: Actor, origin: str | None = None,
) -> TaskChange:
    """A new task from task-space ``values`` (``title`` required; ``status_name`` optional).
    A local change (no ``origin``) may assign only members (:func:`check_assignee`); a tracker's
    assignee comes through its mapping, as configured."""
    return (await create_tasks(conn, project, [values], actor=actor, origin=origin))[0]


async def create_tasks(
    conn: Conn, project: str, values: Sequence[dict[str, Any]], *, actor: Actor, origin: str | None = None,
) -> list[TaskChange]:
    """New tasks, numbered in this order, as :func:`create_task` makes one (each audited), with
    one insert and one audit append for all (a sweep page's new items). Raises :class:`TaskError`
    on the first value a task can't take: nothing is written then."""
    checked = []
    for given in values:
        v = check_fields(given)
        if not v.get("title"):
            raise TaskError("title: required")
        await _resolve_status(conn, project, v)
        if origin is None and v.get("assignee"):
            v["assignee"] = await check_assignee(conn, project, v["assignee"])
        checked.append(v)
    if not checked:
        return []
    number = await _next_numbers(conn, project, len(checked))
    now = time.time()
    rows = []
    for i, v in enumerate(checked):
        category = v.get("status", "todo")
        rows.append({
            "id": new_id(), "project": project, "number": number + i, "title": v["title"],
            "description": v.get("description", ""), "status": v.get("status_name") or DEFAULT_STATUS[category],
            "category": category, "priority": v.get("priority", Priority.MEDIUM.value), "assignee": v.get("assignee"),
            "labels": v.get("labels", []), "due": v.get("due"), "version": 1,
            "created_by": actor.name or actor.id, "created_at": now, "updated_at": now,
        })
    await conn.execute(_INSERT, rows if len(rows) > 1 else rows[0])
    made = [{**row, "key": f"T-{row['number']}"} for row in rows]
    await append_many(conn, actor, [Entry("task.create", target=t["key"], project=project, after=_audited(t))
                                    for t in made])
    return [TaskChange("task.create", t, task_fields(t), origin) for t in made]


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
    await _resolve_status(conn, task["project"], v)
    current = task_fields(task)
    changes: dict[str, Any] = {k: val for k, val in v.items() if k != "status_name" and current.get(k) != val}
    if origin is None and changes.get("assignee"):
        changes["assignee"] = await check_assignee(conn, task["project"], changes["assignee"])
        if changes["assignee"] == current["assignee"]:
            del changes["assignee"]
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
    before = {k: (task["status"] if k == "status_name" else current.get(k)) for k in changes}
    return TaskChange("task.update", after, dict(changes), origin, before)


async def delete_task(
    conn: Conn, task: dict[str, Any], *, actor: Actor, expect_version: int | None = None, origin: str | None = None,
) -> TaskChange:
    """Delete ``task`` (as read in this transaction). Its links stay, with no task and state
    ``unlinked`` (``deleted`` ones keep theirs), so a sync doesn't import the remote item again;
    its parked conflicts go with it."""
    if expect_version is not None and expect_version != task["version"]:
        raise StaleTask(task)
    linked = (await conn.execute(
        select(task_links.c.integration, task_links.c.remote_key, task_links.c.state)
        .where(task_links.c.task_id == task["id"]).order_by(task_links.c.integration)
    )).all()
    await conn.execute(update(task_links).where(task_links.c.task_id == task["id"], task_links.c.state != "deleted")
                       .values(state="unlinked"))
    await conn.execute(update(task_links).where(task_links.c.task_id == task["id"]).values(task_id=None))
    await conn.execute(delete(sync_conflicts).where(sync_conflicts.c.task_id == task["id"]))
    result = await conn.execute(delete(tasks).where(tasks.c.id == task["id"], tasks.c.version == task["version"]))
    if result.rowcount != 1:
        fresh = await get_task_by_id(conn, task["id"])
        if fresh is None:
            raise TaskError(f"task {task['key']} was deleted meanwhile")
        raise StaleTask(fresh)
    unlinked = [{"integration": r.integration, "remote_key": r.remote_key} for r in linked]
    await append(conn, actor, "task.delete", target=task["key"], project=task["project"], before=_audited(task),
                 after={"unlinked": unlinked} if unlinked else None)
    return TaskChange("task.delete", {**task, "unlinked": unlinked}, {}, origin)


async def list_tasks(
    conn: Conn, project: str, *, status: str | None = None, assignee: str | None = None, label: str | None = None,
    q: str | None = None, updated_since: float | None = None, limit: int = 50, before: int | None = None,
    with_total: bool = False,
) -> dict[str, Any]:
    """``project``'s tasks, newest first (by number), ``limit`` at a time: ``{"items", "next"}``;
    pass ``next`` as ``before`` for the next page. ``status``: a category or ``open`` (not done);
    ``assignee``: exactly; ``label``: tasks that carry it; ``q``: in the title, ignoring case;
    ``updated_since``: changed at or after this time (epoch seconds). ``with_total``: also
    ``"total"``, how many match the filters (on every page)."""
    if status is not None and status not in STATUS_FILTERS:
        raise TaskError(f"status: one of {', '.join(STATUS_FILTERS)}")
    if not 1 <= limit <= LIST_MAX:
        raise TaskError(f"limit: 1 to {LIST_MAX}")
    query = select(tasks).where(tasks.c.project == project)
    if status == OPEN:
        query = query.where(tasks.c.category != "done")
    elif status is not None:
        query = query.where(tasks.c.category == status)
    if assignee is not None:
        query = query.where(tasks.c.assignee == (assignee.lower() if EMAIL.match(assignee) else assignee))
    if label is not None:
        query = query.where(_has_label(conn, nul_safe(label)))
    if q:
        query = query.where(func.lower(tasks.c.title).contains(nul_safe(q).lower(), autoescape=True))
    if updated_since is not None:
        query = query.where(tasks.c.updated_at >= updated_since)
    total = None
    if with_total:
        total = (await conn.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    page = await newest_first(conn, query, tasks.c.number, limit=limit, before=before, item=as_dict)
    if with_total:
        page["total"] = int(total or 0)
    return page


def _has_label(conn: Conn, label: str) -> Any:
    """The condition "``labels`` (a JSON list) holds ``label``", in each database's JSON functions."""
    if conn.dialect.name == "postgresql":
        clause = "EXISTS (SELECT 1 FROM json_array_elements_text(tasks.labels) AS l(v) WHERE l.v = :label)"
    else:
        clause = "EXISTS (SELECT 1 FROM json_each(tasks.labels) AS l WHERE l.value = :label)"
    return text(clause).bindparams(label=label)


async def links_of(conn: Conn, task_id: str) -> list[dict[str, Any]]:
    """The task's items in trackers (read-only here: the sync engine writes them)."""
    rows = await conn.execute(
        select(task_links.c.integration, task_links.c.remote_key, task_links.c.remote_url, task_links.c.state,
               task_links.c.synced_at, task_links.c.error)
        .where(task_links.c.task_id == task_id).order_by(task_links.c.integration)
    )
    return [dict(r._mapping) for r in rows]


async def open_conflicts(conn: Conn, task_id: str) -> int:
    """How many of the task's sync conflicts wait for a person."""
    return int((await conn.execute(
        select(func.count()).select_from(sync_conflicts)
        .where(sync_conflicts.c.task_id == task_id, sync_conflicts.c.resolved_at.is_(None))
    )).scalar_one())


async def task_view(conn: Conn, task: dict[str, Any]) -> dict[str, Any]:
    """``task`` with its links and the count of its open conflicts: what ``GET`` of one task shows."""
    return {**task, "links": await links_of(conn, task["id"]), "conflicts": await open_conflicts(conn, task["id"])}


def _audited(task: dict[str, Any]) -> dict[str, Any]:
    return {k: task[k] for k in ("title", "status", "category", "priority", "assignee", "labels", "due")}
