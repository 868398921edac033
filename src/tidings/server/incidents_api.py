"""Incidents of tidings watching itself through the API (``watch/``, docs/watching.md).

Like the resource routes of ``api``, every route here exists under ``/api/v1/projects/{project}``
and, for the project ``default``, under ``/api/v1``; another project's incident is not found.
Reading them takes ``logs:read`` (members and owners: incidents name failing peers and carry their
errors, like delivery logs and the sync log).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import Field

from ..watch import KINDS, get_incident, list_incidents
from .auth import allow
from .schemas import NO_NUL, Out, api_errors
from .scoped import PAGE, HubDep, ProjectDep, project_router

routes = APIRouter()
IncidentId = Annotated[str, Path(max_length=36, description="the incident's id")]


class Incident(Out):
    id: str
    project: str
    subject: str = Field(description="what broke: `integration/NAME`, `inbound/NAME`, `sync/NAME`, `connection/NAME`")
    kind: Literal[KINDS]  # type: ignore[valid-type]
    status: Literal["open", "resolved"]
    detail: str | None = Field(description="the last error or why it opened (masked)")
    opened_at: float = Field(description="Unix time, seconds")
    updated_at: float
    notified_at: float | None = Field(description="when `alerts_to` was last told it is open; null: not told")
    resolved_at: float | None
    count: int = Field(description="occurrences while open")
    notice: str | None = Field(description="what became of the last notice: sent to whom, or why none went")


class IncidentPage(Out):
    items: list[Incident]
    next: str | None = Field(description="pass as `before` for the next page")


@routes.get(
    "/incidents",
    dependencies=[allow("logs:read")],
    response_model=IncidentPage,
    summary="List incidents",
    description="What tidings noticed about itself in this project (failing integrations, open circuits, dead"
    " deliveries, inbound verification failures, broken sync mappings and connections), newest first.",
    responses=api_errors(),
)
async def incidents(
    hub: HubDep, project: ProjectDep,
    status: Annotated[Literal["open", "resolved"] | None, Query()] = None,
    subject: Annotated[str | None, Query(max_length=300, pattern=NO_NUL, description="e.g. `integration/slack`")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(max_length=36, description=PAGE)] = None,
) -> dict[str, Any]:
    async with hub.require_store().read() as conn:
        return await list_incidents(conn, project, status=status, subject=subject, limit=limit, cursor=before)


@routes.get(
    "/incidents/{incident_id}",
    dependencies=[allow("logs:read")],
    response_model=Incident,
    summary="An incident",
    description="One incident: what broke, how often, whether and when `alerts_to` was told, and when it recovered.",
    responses=api_errors(404),
)
async def incident(incident_id: IncidentId, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    async with hub.require_store().read() as conn:
        return await get_incident(conn, project, incident_id)


router = project_router(routes, "incidents", s404="No such project, or no incident with this id in it.")
