"""OAuth connections through the API: each connection-capable integration of a project with its
health, refresh now, disconnect (``oauth/keeper.py``). Never a token in any answer.

Like the resource routes of ``api``, every route here exists under ``/api/v1/projects/{project}``
and, for the project ``default``, under ``/api/v1``; another project's integration is not found.
``integration:read`` to see, ``integration:write`` to refresh or disconnect.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import Field

from ..oauth import keeper
from ..oauth.connections import HEALTHS
from .auth import allow
from .schemas import Out, api_errors
from .scoped import ActorDep, HubDep, ProjectDep, project_router

routes = APIRouter()
Name = Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9][a-z0-9_\-]*$",
                           description="the integration's name")]
_NO_CONNECTION = "No such project, or no integration of this name in it connects through OAuth."


class Connection(Out):
    integration: str
    project: str
    provider: str = Field(description="github, slack, google, microsoft or atlassian")
    health: Literal[HEALTHS] = Field(  # type: ignore[valid-type]
        description="`healthy`; `expiring`: the refresh token (or an access token without one) ends within 7 days, "
        "or refreshes keep failing: connect it again soon; `needs_reauth`: the provider refused a refresh (or the "
        "token ended): its deliveries are held until someone connects it again at `start_url`; `not_connected`: "
        "never connected, or disconnected")
    status: str = Field(description="`healthy`, `needs_reauth`, or `not_connected` (what was stored)")
    account: str | None = Field(description="who connected, as the provider names them (login, email, team)")
    account_id: str | None
    scopes: list[str] = Field(description="the scopes granted")
    expires_at: float | None = Field(description="when the access token expires (Unix time); null: never")
    access_expired: bool = Field(description="the access token has expired and no refresh has replaced it yet")
    refresh_expires_at: float | None = Field(description="when the refresh token expires; null: never, or none")
    has_refresh: bool = Field(description="a refresh token is stored (the connection is kept alive)")
    extra: dict[str, Any] | None = Field(description="provider facts: Slack team, Atlassian cloud id and site...")
    connected_at: float | None
    connected_by: str | None = Field(description="the tidings user who connected it")
    refreshed_at: float | None = Field(description="the last time tokens were stored (a connect or a refresh)")
    failures: int = Field(description="refreshes failed in a row (each tried again later)")
    last_error: str | None = Field(description="the last refresh error, secrets masked")
    notified_at: float | None = Field(description="when the owners were told it needs re-auth (once per incident)")
    configured: bool = Field(description="false: the integration left the configuration; its connection remains")
    start_url: str = Field(description="open this to connect it (again): `GET /oauth/{integration}/start`")


class Refreshed(Connection):
    outcome: Literal["refreshed", "failed", "refused", "not_due"] = Field(
        description="`refreshed`; `failed`: the token endpoint failed for now (see `last_error`; tried again "
        "later); `refused`: the provider refused the refresh token: the connection needs re-auth")


class Disconnected(Out):
    integration: str
    disconnected: bool


@routes.get(
    "/connections",
    dependencies=[allow("integration:read")],
    response_model=list[Connection],
    summary="List OAuth connections",
    description="Every integration of the project that connects through OAuth (`oauth: true`), with its "
    "connection's health, expiry, scopes, account, last refresh and last error; the not connected ones too, "
    "with the URL that connects them. Never a token.",
    responses=api_errors(params=False),
)
async def list_connections(hub: HubDep, project: ProjectDep) -> list[dict[str, Any]]:
    return await keeper.overview(hub, project)


@routes.get(
    "/connections/{name}",
    dependencies=[allow("integration:read")],
    response_model=Connection,
    summary="An OAuth connection",
    description="One integration's connection and its health. Never a token.",
    responses=api_errors(404, s404=_NO_CONNECTION),
)
async def get_connection(name: Name, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    return await keeper.one(hub, name, project)


@routes.post(
    "/connections/{name}/refresh",
    dependencies=[allow("integration:write")],
    response_model=Refreshed,
    summary="Refresh an OAuth connection now",
    description="Ask the provider for a new access token now (as the keeper does before expiry), one refresh at a "
    "time per connection across workers. The answer says how it went (`outcome`). Audited.",
    responses=api_errors(404, 409, s404="No such project, or this integration is not connected.",
                         s409="It needs re-auth, has no refresh token, or another worker is refreshing it now."),
)
async def refresh_connection(name: Name, hub: HubDep, project: ProjectDep, actor: ActorDep) -> dict[str, Any]:
    await keeper.one(hub, name, project)  # 404 for another project's
    try:
        return await keeper.refresh_now(hub, name, actor=actor)
    except keeper.RefreshRefused as exc:
        raise HTTPException(409, str(exc)) from None


@routes.delete(
    "/connections/{name}",
    dependencies=[allow("integration:write")],
    response_model=Disconnected,
    summary="Disconnect an OAuth connection",
    description="Forget the connection: its row and both tokens, in one transaction, audited (`oauth.disconnect`); "
    "the tokens are then purged from the database's files. The integration's next send is held as not connected "
    "until someone connects it again. The provider's grant is not revoked there: revoke the app at the provider too.",
    responses=api_errors(404, s404="No such project, or this integration is not connected."),
)
async def delete_connection(name: Name, hub: HubDep, project: ProjectDep, actor: ActorDep) -> dict[str, Any]:
    await keeper.one(hub, name, project)
    await keeper.disconnect(hub, name, actor=actor)
    return {"integration": name, "disconnected": True}


router = project_router(routes, "connections", s404=_NO_CONNECTION)
