"""A project's tasks through the API: list (filters, pages), read, create, change, delete.

Like the resource routes of ``api``, every route exists under ``/api/v1/projects/{project}`` and,
for the project ``default``, under ``/api/v1``. Another project's task is not found (404).

- A task's ``ETag`` is its version, quoted (``"3"``). A change or a delete needs ``If-Match``: the
  ETag read (428 without; ``*``: whatever is current). A task changed since answers 412 with the
  current task in ``task`` and its ``ETag``: nothing is overwritten.
- ``status`` is the project's own name for a task's status (``In Review``) and ``category`` what it
  means (``todo``, ``in_progress``, ``done``). Writing ``status`` alone: a category, a well-known
  name or a name the project's tasks use finds its category; any other name needs ``category``.
- Each change is audited in its transaction, then routed as a message (``source: tasks``) and
  handed to the sync (``sync.events.after_commit``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from ..errors import NotFound
from ..message import Priority
from ..store.engine import Conn
from ..sync.events import after_commit
from ..sync.model import CATEGORIES
from ..sync.tasks import (
    ASSIGNEE_HELP,
    LIST_MAX,
    STATUS_FILTERS,
    STATUS_NAME_MAX,
    StaleTask,
    TaskError,
    create_task,
    delete_task,
    get_task,
    input_values,
    list_tasks,
    task_view,
    update_task,
)
from .auth import allow
from .errors import error, precondition_failed
from .schemas import _SPACE, NO_NUL, NOT_BLANK, Out, api_errors
from .scoped import ActorDep, HubDep, ProjectDep, if_match_header, project_router, version_of
from .secrets_api import json_body

_NOT = f"{_SPACE}\\x00"
ASSIGNEE_PATTERN = (rf"^(?:[^@{_NOT}]+@[^@{_NOT}]+\.[^@{_NOT}]+"
                    rf"|[a-z][a-z0-9_-]{{0,31}}:[^{_NOT}]{{1,256}})$")
"""The shapes ``sync.tasks.check_fields`` accepts (``\\s`` there is :data:`_SPACE` here), for the schema."""
KEY_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
ETAG = {"ETag": {"description": "the task's version, quoted (`\"3\"`): send it back as `If-Match`",
                 "schema": {"type": "string"}}}
LOCATION = {"Location": {"description": "the new task's URL", "schema": {"type": "string"}}}
_NO_TASK = "No such project, or no task of this key or id in it."
WHY = {"s412": "The task changed since the version `If-Match` names: `task` is the current task and the `ETag` "
               "its version; re-apply the change to it.",
       "s428": "The write needs `If-Match`: the `ETag` of the task you read, or `*`.",
       "s422": "Invalid input: `detail` has one line per problem, with its path (an unknown status name without "
               "its `category`, an assignee who is not a member of the project...)."}

IfMatch = Annotated[str | None, if_match_header("task", "`*` for whatever is current")]
TaskKey = Annotated[str, Path(description="`T-12`, `12` or the task's id", pattern=KEY_PATTERN)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NOT_BLANK)]
PriorityName = Literal[tuple(p.value for p in Priority)]  # type: ignore[valid-type]
Category = Literal[CATEGORIES]  # type: ignore[valid-type]
def _iso_only(value: Any) -> Any:
    """A date-time as text (pydantic would take a number as Unix time too, which the schema doesn't say)."""
    if isinstance(value, str) and not re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError("an ISO 8601 date-time: 2030-01-31T12:00:00Z")
    return value


Since = Annotated[dt.datetime, BeforeValidator(_iso_only)]
EXAMPLE = {"title": "Rotate the database password", "description": "Before **Friday**; see the runbook.",
           "status": "In Review", "priority": "high", "assignee": "github:octocat", "labels": ["ops", "security"],
           "due": "2030-06-30"}


# -- models ----------------------------------------------------------------------------------------
class _TaskFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(None, max_length=100_000, pattern=NO_NUL, description="Markdown")
    status: str | None = Field(None, min_length=1, max_length=STATUS_NAME_MAX, pattern=NOT_BLANK,
                               description="the project's name for the status (`In Review`), or a category")
    category: Category | None = Field(None, description="what `status` means; needed with a name the project "
                                      "doesn't use yet")
    priority: PriorityName | None = None
    assignee: str | None = Field(None, max_length=320, pattern=ASSIGNEE_PATTERN, description=ASSIGNEE_HELP)
    labels: list[Label] | None = Field(None, max_length=100)
    due: dt.date | None = Field(None, description="YYYY-MM-DD")


class TaskIn(_TaskFields):
    model_config = ConfigDict(title="TaskIn", json_schema_extra={"examples": [EXAMPLE]})

    title: str = Field(min_length=1, max_length=1000, pattern=NOT_BLANK)


class TaskPatch(_TaskFields):
    model_config = ConfigDict(title="TaskPatch", json_schema_extra={"examples": [{"status": "done"}]})

    title: str | None = Field(None, min_length=1, max_length=1000, pattern=NOT_BLANK)


class TaskOut(Out):
    id: str
    key: str = Field(description="`T-<number>`: what people type")
    number: int
    project: str
    title: str
    description: str = Field(description="Markdown")
    status: str = Field(description="the project's name for its status")
    category: Category = Field(description="what the status means")  # type: ignore[valid-type]
    priority: PriorityName  # type: ignore[valid-type]
    assignee: str | None = Field(description="a tidings user's email or an external login (`github:octocat`)")
    labels: list[str]
    due: str | None = Field(description="YYYY-MM-DD")
    version: int = Field(description="every change adds one; the `ETag`")
    created_by: str | None
    created_at: float = Field(description="Unix time, seconds")
    updated_at: float


class LinkOut(Out):
    integration: str
    remote_key: str | None = Field(description="`owner/repo#12`, `PROJ-12`")
    remote_url: str | None
    state: str = Field(description="`creating`, `linked`, `unlinked` or `deleted` (the remote item is gone)")
    synced_at: float | None
    error: str | None = Field(description="the last sync error of this item")


class TaskDetail(TaskOut):
    links: list[LinkOut] = Field(description="the task's items in trackers")
    conflicts: int = Field(description="sync conflicts waiting for a person")


class TaskPage(Out):
    items: list[TaskOut]
    next: int | None = Field(description="pass as `before` for the next page; null on the last one")


class Unlinked(Out):
    integration: str
    remote_key: str | None


class TaskDeleted(Out):
    id: str
    key: str
    deleted: bool
    unlinked: list[Unlinked] = Field(description="its tracker items, now unlinked: a sync does not import them again")


# -- helpers ---------------------------------------------------------------------------------------
async def _task(conn: Conn, project: str, key: str) -> dict[str, Any]:
    task = await get_task(conn, project, key)
    if task is None:
        raise NotFound(f"no task {key!r} in project {project}")
    return task


def _tagged(response: Response, task: dict[str, Any]) -> None:
    response.headers["ETag"] = f'"{task["version"]}"'


# -- routes ----------------------------------------------------------------------------------------
routes = APIRouter()


@routes.get(
    "/tasks",
    dependencies=[allow("task:read")],
    response_model=TaskPage,
    summary="List tasks",
    description="The project's tasks, newest first, `limit` at a time (pass `next` as `before` for the next page). "
    "Filters combine: `status` (a category, or `open` for not done), `assignee` (exactly), `label`, `q` (in the "
    "title, ignoring case), `updated_since`.",
    responses=api_errors(),
)
async def get_tasks(
    hub: HubDep,
    project: ProjectDep,
    status: Annotated[Literal[STATUS_FILTERS] | None, Query(description="a category, or `open`")] = None,  # type: ignore[valid-type]
    assignee: Annotated[str | None, Query(max_length=320, pattern=NO_NUL)] = None,
    label: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL, description="text in the title")] = None,
    updated_since: Annotated[Since | None, Query(description="changed at or after (ISO 8601; UTC if no offset)")] = None,
    limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**31, description="the `next` of the previous page")] = None,
) -> dict[str, Any]:
    since = None
    if updated_since is not None:
        since = (updated_since if updated_since.tzinfo else updated_since.replace(tzinfo=dt.UTC)).timestamp()
    async with hub.require_store().read() as conn:
        return await list_tasks(conn, project, status=status, assignee=assignee, label=label, q=q,
                                updated_since=since, limit=limit, before=before)


@routes.post(
    "/tasks",
    status_code=201,
    dependencies=[allow("task:write"), Depends(json_body)],
    response_model=TaskDetail,
    summary="Create a task",
    description="A new task of the project (`title` required), numbered `T-<n>`. Audited, then routed as a "
    "message (`source: tasks`, `event_type: task.created`) and synced to the project's trackers.",
    responses={201: {"headers": {**ETAG, **LOCATION}}, **api_errors(403, body=True, **WHY)},
)
async def post_task(
    payload: Annotated[TaskIn, Body(openapi_examples={"task": {"summary": "a task", "value": EXAMPLE}})],
    request: Request, response: Response, hub: HubDep, project: ProjectDep, actor: ActorDep,
) -> dict[str, Any]:
    values = input_values(payload.model_dump(exclude_unset=True))
    async with hub.require_store().write() as conn:
        change = await create_task(conn, project, values, actor=actor)
        view = await task_view(conn, change.task)
    await after_commit(hub, change)
    _tagged(response, view)
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{view['key']}"
    return view


@routes.get(
    "/tasks/{key}",
    dependencies=[allow("task:read")],
    response_model=TaskDetail,
    summary="A task",
    description="One task, with its items in trackers (`links`) and how many sync conflicts wait for a person. "
    "The `ETag` is its version.",
    responses={200: {"headers": ETAG}, **api_errors(404, s404=_NO_TASK)},
)
async def read_task(key: TaskKey, response: Response, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    async with hub.require_store().read() as conn:
        view = await task_view(conn, await _task(conn, project, key))
    _tagged(response, view)
    return view


@routes.patch(
    "/tasks/{key}",
    dependencies=[allow("task:write"), Depends(json_body)],
    response_model=TaskDetail,
    summary="Change a task",
    description="Set the fields given (`null` clears `assignee`, `due`, `labels`, `description`); needs `If-Match`. "
    "A change that changes nothing keeps the version. Audited, routed as a message (`task.updated`) and synced.",
    responses={200: {"headers": ETAG}, **api_errors(403, 404, 412, 428, body=True, s404=_NO_TASK, **WHY)},
)
async def patch_task(
    key: TaskKey, payload: TaskPatch, response: Response, hub: HubDep, project: ProjectDep, actor: ActorDep,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    expect = version_of(if_match, "task")
    values = input_values(payload.model_dump(exclude_unset=True))
    async with hub.require_store().write() as conn:
        task = await _task(conn, project, key)
        change = await update_task(conn, task, values, actor=actor, expect_version=expect)
        view = await task_view(conn, change.task if change else task)
    await after_commit(hub, change)
    _tagged(response, view)
    return view


@routes.delete(
    "/tasks/{key}",
    dependencies=[allow("task:write")],
    response_model=TaskDeleted,
    summary="Delete a task",
    description="Delete the task; needs `If-Match`. Its tracker items stay as they are, unlinked (a sync does not "
    "import them again). Audited and routed as a message (`task.deleted`).",
    responses=api_errors(403, 404, 412, 428, s404=_NO_TASK, **WHY),
)
async def remove_task(
    key: TaskKey, hub: HubDep, project: ProjectDep, actor: ActorDep, if_match: IfMatch = None,
) -> dict[str, Any]:
    expect = version_of(if_match, "task")
    async with hub.require_store().write() as conn:
        change = await delete_task(conn, await _task(conn, project, key), actor=actor, expect_version=expect)
    await after_commit(hub, change)
    return {"id": change.task["id"], "key": change.task["key"], "deleted": True, "unlinked": change.task["unlinked"]}


router = project_router(routes, "tasks", s404=_NO_TASK)


def install(app: FastAPI) -> None:
    """The routes, and the answers to the tasks' errors (412 with the current task, 422)."""
    app.include_router(router)

    async def _stale(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StaleTask)
        return precondition_failed(exc, "task", exc.current, exc.current["version"])

    async def _invalid(_: Request, exc: Exception) -> JSONResponse:
        return error(422, "invalid task", [str(exc)])

    app.add_exception_handler(StaleTask, _stale)
    app.add_exception_handler(TaskError, _invalid)
