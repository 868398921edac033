"""Task sync through the API: run now, plan, the sync log, parked conflicts (``sync/service.py``).

Like the resource routes of ``api``, every route here exists under ``/api/v1/projects/{project}``
and, for the project ``default``, under ``/api/v1``; another project's run or conflict is not found.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.exceptions import HTTPException

from ..sync.runs import STATUSES, TRIGGERS
from ..sync.service import SyncRefused, SyncService
from .auth import allow
from .schemas import NO_NUL, Out, api_errors
from .scoped import PAGE, ActorDep, HubDep, ProjectDep, project_router
from .secrets_api import json_body

routes = APIRouter()
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]
RunId = Annotated[str, Path(max_length=36, description="the run's id")]
ConflictId = Annotated[str, Path(max_length=36, description="the conflict's id")]
_NO_MAPPING = "No such project, or no sync mapping of this name in it."


class SyncRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"integration": "github"}]})
    integration: Name | None = Field(None, description="only this mapping (a tracker integration); default: all")


class RunsStarted(Out):
    runs: list[str] = Field(description="the ids of the runs started (or already under way) for each mapping")


class PlanItem(Out):
    integration: str
    action: str = Field(description="`create`, `update`, `transition`, `conflict`...; `error` when the peer refused")


class Plan(Out):
    items: list[PlanItem]


class SyncRun(Out):
    id: str
    project: str
    integration: str
    trigger: Literal[TRIGGERS]  # type: ignore[valid-type]
    status: Literal[STATUSES]  # type: ignore[valid-type]
    started_at: float = Field(description="Unix time, seconds")
    ended_at: float | None
    created: int
    updated: int
    unchanged: int
    conflicts: int
    errors: int = Field(description="items that failed (their errors are the run's `problems`)")
    api_calls: int
    not_modified: int = Field(description="requests the tracker answered 304 Not Modified")
    rate_limit_waits: int
    waited: float = Field(description="seconds spent waiting on rate limits")
    error: str | None = Field(description="why the run failed or stopped")


class SyncRunPage(Out):
    items: list[SyncRun]
    next: str | None = Field(description="pass as `before` for the next page")


class SyncRunDetail(SyncRun):
    problems: list[dict[str, Any]] = Field(description="per-item errors (at most 100): `remote` or `task`, `error`")


class ConflictOut(Out):
    id: str
    task_id: str
    task: str | None = Field(description="the task's key (`T-12`)")
    project: str
    integration: str
    field: str
    base: Any = Field(description="the value both sides last agreed on")
    local: Any
    remote: Any
    created_at: float
    resolved_at: float | None
    resolved_by: str | None
    resolution: Any


class ConflictList(Out):
    items: list[ConflictOut]


Value = Annotated[str, StringConstraints(max_length=100_000, pattern=NO_NUL)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)]


def _one_side(schema: dict[str, Any]) -> None:
    """Exactly one of ``choose`` and ``value``, said in the schema as the route checks it."""
    schema["properties"]["choose"] = {"type": "string", "enum": ["local", "remote"],
                                      "description": schema["properties"]["choose"].get("description")}
    schema["oneOf"] = [{"required": ["choose"]}, {"required": ["value"]}]
    schema["examples"] = [{"choose": "remote"}, {"value": "Fix the login page"}]


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_side)
    choose: Literal["local", "remote"] | None = Field(None, description="keep the task's value or the tracker's")
    value: Value | list[Label] | None = Field(
        None, description="or this value, written to both sides (text, a list of labels, or null to clear it)")

    @model_validator(mode="after")
    def _one(self) -> ResolveIn:
        given = self.model_fields_set & {"choose", "value"}
        if len(given) != 1 or ("choose" in given and self.choose is None):
            raise ValueError("give either `choose` (local or remote) or `value`")
        return self


async def _json_if_body(request: Request) -> None:
    """A body, when there is one, is JSON (415 otherwise); no body is fine."""
    if await request.body():
        await json_body(request)


def _refused(exc: SyncRefused) -> HTTPException:
    return HTTPException(409, str(exc))


@routes.post(
    "/sync",
    status_code=202,
    dependencies=[allow("sync:run"), Depends(_json_if_body)],
    response_model=RunsStarted,
    summary="Run sync now",
    description="Sweep the project's sync mappings (or the one named by `integration`) now, in the background: "
    "answers 202 with the run ids (follow them in `GET .../sync/runs/{id}`). A mapping a worker is sweeping "
    "already answers that run's id. Audited as `sync.run`.",
    responses=api_errors(404, 409, body=True, s404=_NO_MAPPING, s409="The mapping's sync is disabled."),
)
async def run_sync(
    hub: HubDep, project: ProjectDep, actor: ActorDep,
    payload: Annotated[SyncRunIn | None, Body(openapi_examples={"one": {"summary": "one mapping",
                                                                        "value": {"integration": "github"}}})] = None,
) -> dict[str, Any]:
    try:
        ids = await SyncService.of(hub).run_now(project, payload.integration if payload else None, actor=actor)
    except SyncRefused as exc:
        raise _refused(exc) from None
    return {"runs": ids}


@routes.get(
    "/sync/plan",
    dependencies=[allow("sync:run")],
    response_model=Plan,
    summary="Plan a sync",
    description="What a sweep of each mapping (disabled ones too) would create, update, transition and which "
    "conflicts it would raise, without writing anything: run it before turning a mapping on.",
    responses=api_errors(404, s404=_NO_MAPPING),
)
async def plan_sync(
    hub: HubDep, project: ProjectDep, integration: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    return {"items": await SyncService.of(hub).plan(project, integration)}


@routes.get(
    "/sync/runs",
    dependencies=[allow("logs:read")],
    response_model=SyncRunPage,
    summary="List sync runs",
    description="The sync log, newest first, `limit` at a time; pass `next` as `before` for the next page.",
    responses=api_errors(),
)
async def list_sync_runs(
    hub: HubDep, project: ProjectDep,
    integration: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[Literal[STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(max_length=36, description=PAGE)] = None,
) -> dict[str, Any]:
    from ..sync.runs import list_runs

    async with hub.require_store().read() as conn:
        return await list_runs(conn, project, integration, status=status, limit=limit, cursor=before)


@routes.get(
    "/sync/runs/{run_id}",
    dependencies=[allow("logs:read")],
    response_model=SyncRunDetail,
    summary="A sync run",
    description="One run with its counts, cost and per-item problems.",
    responses=api_errors(404),
)
async def get_sync_run(run_id: RunId, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    from ..sync.runs import get_run

    async with hub.require_store().read() as conn:
        return await get_run(conn, project, run_id)


@routes.get(
    "/sync/conflicts",
    dependencies=[allow("task:read")],
    response_model=ConflictList,
    summary="List sync conflicts",
    description="Fields changed on both sides under the `manual` policy, each with both values and the base, "
    "oldest first: open ones, or all with `all=true`; one task's with `task` (`T-12`, `12` or its id).",
    responses=api_errors(404, s404="No such project, or no task of this key."),
)
async def list_sync_conflicts(
    hub: HubDep, project: ProjectDep,
    task: Annotated[str | None, Query(max_length=64)] = None,
    all: Annotated[bool, Query(description="resolved ones too")] = False,
) -> dict[str, Any]:
    from ..errors import NotFound
    from ..sync.conflicts import list_conflicts
    from ..sync.tasks import get_task

    async with hub.require_store().read() as conn:
        task_id = None
        if task is not None:
            found = await get_task(conn, project, task)
            if found is None:
                raise NotFound(f"no task {task!r}")
            task_id = found["id"]
        return {"items": await list_conflicts(conn, project, task_id=task_id, open_only=not all)}


@routes.post(
    "/sync/conflicts/{conflict_id}/resolve",
    dependencies=[allow("task:write"), Depends(json_body)],
    response_model=ConflictOut,
    summary="Resolve a sync conflict",
    description="Settle a parked conflict: `{\"choose\": \"local\"}` keeps the task's value, `\"remote\"` the "
    "tracker's, `{\"value\": ...}` writes that value to both. Audited.",
    responses=api_errors(404, 409, body=True, s409="Resolved already, or its integration no longer syncs."),
)
async def resolve_sync_conflict(
    conflict_id: ConflictId, payload: ResolveIn, hub: HubDep, project: ProjectDep, actor: ActorDep,
) -> dict[str, Any]:
    try:
        return await SyncService.of(hub).resolve(
            conflict_id, choice=payload.choose, value=payload.value if "value" in payload.model_fields_set else None,
            project=project, actor=actor)
    except SyncRefused as exc:
        raise _refused(exc) from None
    except ValueError as exc:  # the engine refused the value (a bad status, an empty title...)
        raise HTTPException(422, str(exc)) from None


router = project_router(routes, "sync")
