"""A project's recipients, their preferences and groups through the API.

Like the resource routes of ``api``, every route exists under ``/api/v1/projects/{project}`` and,
for the project ``default``, under ``/api/v1``. Another project's recipient is not found (404).

- Reading needs ``recipient:read`` (everyone in the project), changing ``recipient:write``
  (owners) — except what a person decides for themselves: a user linked to a recipient (its
  ``user``) may set and unset that recipient's preferences, and change its ``quiet_hours`` and
  ``timezone``, with ``recipient:read`` alone.
- A recipient's ``ETag`` is its version (``"3"``); a change or a delete needs ``If-Match`` (428
  without, 412 with the current recipient when it changed meanwhile).
- A Teams workflow URL is written in plain text and stored in the vault: answers say ``teams: true``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..accounts import allowed
from ..errors import NotFound
from ..recipients.edit import editing
from ..recipients.prefs import list_preferences, set_preference, unset_preference
from ..recipients.store import (
    RecipientError,
    StaleRecipient,
    create_group,
    create_recipient,
    delete_group,
    delete_recipient,
    get_group,
    list_groups,
    list_recipients,
    require_recipient,
    set_group_members,
    update_recipient,
)
from .auth import allow, principal_of, require
from .errors import error, precondition_failed
from .schemas import NO_NUL, NOT_BLANK, Out, api_errors
from .scoped import ActorDep, HubDep, ProjectDep, if_match_header, project_router, version_of
from .secrets_api import json_body

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,63}$"
TOPIC_PATTERN = r"^([a-z0-9][a-z0-9_.\-]{0,63})?$"
CHANNEL_PATTERN = r"^([a-z0-9][a-z0-9_\-]{0,63})?$"
ETAG = {"ETag": {"description": "the recipient's version, quoted (`\"3\"`): send it back as `If-Match`",
                 "schema": {"type": "string"}}}
_NO_ONE = "No such project, or no recipient of this name in it."
_NO_GROUP = "No such project, or no group of this name in it."
WHY = {"s409": "The name is taken by a recipient or a group of the project.",
       "s412": "The recipient changed since the version `If-Match` names: `recipient` is the current one and the "
               "`ETag` its version; re-apply the change to it.",
       "s428": "The write needs `If-Match`: the `ETag` of the recipient you read, or `*`.",
       "s422": "Invalid input: `detail` says which field and why (an unknown time zone, a user who is not a member "
               "of the project, a Teams URL that is not https...)."}
EXAMPLE = {"name": "ann", "display_name": "Ann Lee", "email": "ann@example.com", "slack_user": "U024BE7LH",
           "timezone": "Europe/Berlin"}

IfMatch = Annotated[str | None, if_match_header("recipient", "`*`")]
Name = Annotated[str, Path(description="the recipient's name (`@name` in a route's `to`)", pattern=NAME_PATTERN)]
GroupName = Annotated[str, Path(description="the group's name (`@name` in a route's `to`)", pattern=NAME_PATTERN)]


# -- models ----------------------------------------------------------------------------------------
class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, min_length=1, max_length=200, pattern=NOT_BLANK)
    email: str | None = Field(None, max_length=320, pattern=NO_NUL, description="where the email integration mails them")
    slack_user: str | None = Field(None, max_length=32, pattern=r"^[UW][A-Z0-9]{2,31}$",
                                   description="a Slack user id (`U024BE7LH`): the Slack integration DMs them")
    teams: str | None = Field(None, max_length=2000, pattern=NO_NUL, description=(
        "their Microsoft Teams workflow URL, in plain text: stored in the vault, answered as `teams: true`"))
    timezone: str | None = Field(None, max_length=64, pattern=NOT_BLANK, description="IANA name: `Europe/Berlin`")
    user: str | None = Field(None, max_length=320, pattern=NOT_BLANK,
                             description="the tidings user (email or id, a member of the project) this person is")
    quiet_hours: dict[str, Any] | None = Field(None, description=(
        "their own quiet hours (else the project's), as in `projects.<slug>.quiet_hours` of the configuration: "
        "`{\"windows\": [{\"days\": \"mon-fri\", \"start\": \"19:00\", \"end\": \"08:00\"}], \"policy\": {...}}`"),
        json_schema_extra={"examples": [{"windows": [{"days": "weekends"}]}]})

    def values(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, mode="json", exclude={"name"})


class RecipientIn(_Fields):
    model_config = ConfigDict(title="RecipientIn", json_schema_extra={"examples": [EXAMPLE]})

    name: str = Field(pattern=NAME_PATTERN, description="the handle routes name as `@name`; can't change later")


class RecipientPatch(_Fields):
    model_config = ConfigDict(title="RecipientPatch", json_schema_extra={"examples": [{"timezone": "America/New_York"}]})


class RecipientOut(Out):
    id: str
    project: str
    name: str
    display_name: str
    email: str | None
    slack_user: str | None
    teams: bool = Field(description="whether a Teams workflow URL is stored (never the URL)")
    timezone: str
    user: str | None = Field(description="the linked tidings user's email")
    user_id: str | None
    quiet_hours: dict[str, Any] | None
    version: int = Field(description="every change adds one; the `ETag`")
    created_at: float
    updated_at: float


class RecipientPage(Out):
    items: list[RecipientOut]


class Deleted(Out):
    name: str
    deleted: bool


class PreferenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="PreferenceIn", json_schema_extra={
        "examples": [{"topic": "deploys", "channel": "email", "enabled": False}]})

    topic: str = Field("", max_length=64, pattern=TOPIC_PATTERN, description="a topic; `''`: any topic")
    channel: str = Field("", max_length=64, pattern=CHANNEL_PATTERN, description="an integration's name; `''`: any")
    enabled: bool


class PreferenceOut(Out):
    topic: str
    channel: str
    enabled: bool
    updated_at: float
    updated_by: str | None


class PreferenceUnset(Out):
    topic: str
    channel: str
    unset: bool


class Preferences(Out):
    recipient: str
    items: list[PreferenceOut]


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="GroupIn", json_schema_extra={
        "examples": [{"name": "oncall", "description": "who answers at night", "members": ["ann"]}]})

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = Field(None, max_length=500, pattern=NO_NUL)
    members: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(default_factory=list, max_length=500)


class MembersIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="MembersIn", json_schema_extra={
        "examples": [{"members": ["ann", "bob"]}]})

    members: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(max_length=500, description="in order")


class GroupOut(Out):
    id: str
    project: str
    name: str
    description: str | None
    members: list[str] = Field(description="recipient names, in order")
    created_at: float
    updated_at: float


class GroupPage(Out):
    items: list[GroupOut]


# -- helpers ---------------------------------------------------------------------------------------
def _tagged(response: Response, recipient: dict[str, Any]) -> dict[str, Any]:
    response.headers["ETag"] = f'"{recipient["version"]}"'
    return recipient


OWN_FIELDS = frozenset({"quiet_hours", "timezone"})
"""What the user linked to a recipient may change of them without ``recipient:write``: when they
are not to be disturbed (their addresses and link stay the owners')."""


async def _may_change(request: Request, hub: Any, project: str, name: str, *, own: bool = True) -> dict[str, Any]:
    """The recipient, when the caller may make the change: with ``recipient:write``, or (``own``:
    a change a person may make of themselves) as the user linked to them; else 403 (audited,
    naming ``recipient:write``)."""
    async with hub.require_store().read() as conn:
        recipient = await require_recipient(conn, project, name)
    principal = await principal_of(request)
    mine = own and principal.user_id is not None and principal.user_id == recipient["user_id"]
    if not mine and not allowed(principal, "recipient:write", project):
        await require(request, "recipient:write", project)
    return recipient


# -- recipients ------------------------------------------------------------------------------------
routes = APIRouter()


@routes.get("/recipients", dependencies=[allow("recipient:read")], response_model=RecipientPage,
            summary="List recipients", description="The project's recipients, by name.", responses=api_errors())
async def get_recipients(hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    async with hub.require_store().read() as conn:
        return {"items": await list_recipients(conn, project)}


@routes.post(
    "/recipients", status_code=201, dependencies=[allow("recipient:write"), Depends(json_body)],
    response_model=RecipientOut, summary="Create a recipient",
    description="A person of the project with their addresses: `email`, `slack_user`, `teams` (a workflow URL, kept "
    "in the vault), a `timezone`, the tidings `user` they are, their own `quiet_hours`. Audited (`recipient.create`).",
    responses={201: {"headers": ETAG}, **api_errors(403, 409, body=True, **WHY)},
)
async def post_recipient(
    payload: Annotated[RecipientIn, Body(openapi_examples={"ann": {"summary": "a person", "value": EXAMPLE}})],
    response: Response, hub: HubDep, project: ProjectDep, actor: ActorDep,
) -> dict[str, Any]:
    values = payload.values()
    async with editing(hub, project, secret="teams" in values) as conn:
        made = await create_recipient(conn, project, payload.name, values, actor=actor, vault=hub.vault)
    return _tagged(response, made)


@routes.get("/recipients/{name}", dependencies=[allow("recipient:read")], response_model=RecipientOut,
            summary="A recipient", description="One recipient; the `ETag` is its version.",
            responses={200: {"headers": ETAG}, **api_errors(404, s404=_NO_ONE)})
async def read_recipient(name: Name, response: Response, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    async with hub.require_store().read() as conn:
        return _tagged(response, await require_recipient(conn, project, name))


_OWN_403 = ("Neither `recipient:write` nor the recipient's own user changing only what a person may change of "
            "themselves.")


@routes.patch(
    "/recipients/{name}", dependencies=[allow("recipient:read"), Depends(json_body)], response_model=RecipientOut,
    summary="Change a recipient",
    description="Set the fields given (`null` clears `email`, `slack_user`, `teams`, `user`, `quiet_hours`); needs "
    "`If-Match`. The name can't change. A change that changes nothing keeps the version. Owners (`recipient:write`) "
    "change any field; a person their own `quiet_hours` and `timezone` (the user linked to the recipient, with "
    "`recipient:read` alone). Audited (`recipient.update`, before and after).",
    responses={200: {"headers": ETAG}, **api_errors(403, 404, 412, 428, body=True, s403=_OWN_403, s404=_NO_ONE,
                                                    **WHY)},
)
async def patch_recipient(
    name: Name, payload: RecipientPatch, request: Request, response: Response, hub: HubDep, project: ProjectDep,
    actor: ActorDep, if_match: IfMatch = None,
) -> dict[str, Any]:
    values = payload.values()
    await _may_change(request, hub, project, name, own=set(values) <= OWN_FIELDS)
    expect = version_of(if_match, "recipient")
    async with editing(hub, project, secret="teams" in values) as conn:
        changed = await update_recipient(conn, project, name, values, actor=actor, vault=hub.vault,
                                         expect_version=expect)
    return _tagged(response, changed)


@routes.delete(
    "/recipients/{name}", dependencies=[allow("recipient:write")], response_model=Deleted, summary="Delete a recipient",
    description="Delete the recipient, their preferences, their group memberships and their Teams URL; needs "
    "`If-Match`. Audited (`recipient.delete`).",
    responses=api_errors(403, 404, 412, 428, s404=_NO_ONE, **WHY),
)
async def remove_recipient(
    name: Name, hub: HubDep, project: ProjectDep, actor: ActorDep, if_match: IfMatch = None,
) -> dict[str, Any]:
    expect = version_of(if_match, "recipient")
    async with editing(hub, project, secret=True) as conn:
        await delete_recipient(conn, project, name, actor=actor, vault=hub.vault, expect_version=expect)
    return {"name": name, "deleted": True}


# -- preferences -----------------------------------------------------------------------------------
@routes.get("/recipients/{name}/preferences", dependencies=[allow("recipient:read")], response_model=Preferences,
            summary="A recipient's preferences",
            description="The recipient's own on/off choices per topic and channel (`''`: any). What is not listed "
                        "falls to the next level: channel, global, then the project's defaults.",
            responses=api_errors(404, s404=_NO_ONE))
async def get_preferences(name: Name, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    async with hub.require_store().read() as conn:
        recipient = await require_recipient(conn, project, name)
        return {"recipient": name, "items": await list_preferences(conn, recipient["id"])}


_PREF_403 = ("Neither `recipient:write` nor the recipient's own user: a person may change only their own "
             "preferences.")


@routes.put(
    "/recipients/{name}/preferences", dependencies=[allow("recipient:read"), Depends(json_body)],
    response_model=PreferenceOut, summary="Set a preference",
    description="Turn `topic` × `channel` on or off for the recipient (`''`: any). Owners set anyone's; a person "
    "their own (the user linked to the recipient). A topic the project marks `required` can't be turned off (409). "
    "Audited (`preference.set`).",
    responses=api_errors(403, 404, 409, body=True, s403=_PREF_403, s404=_NO_ONE,
                         s409="The topic is required in this project: it can't be turned off."),
)
async def put_preference(
    name: Name, payload: PreferenceIn, request: Request, hub: HubDep, project: ProjectDep, actor: ActorDep,
) -> dict[str, Any]:
    await _may_change(request, hub, project, name)
    async with editing(hub, project) as conn:
        recipient = await require_recipient(conn, project, name)
        settings = hub.config.projects.get(project)
        return await set_preference(conn, recipient, payload.topic, payload.channel, payload.enabled,
                                    actor=actor, settings=settings)


@routes.delete(
    "/recipients/{name}/preferences", dependencies=[allow("recipient:read")], response_model=PreferenceUnset,
    summary="Unset a preference",
    description="Forget the recipient's choice for `topic` × `channel`: the next level decides again. The same rule "
    "as setting one: owners, or the person themselves. Audited (`preference.unset`); 404 when there was none.",
    responses=api_errors(403, 404, s403=_PREF_403, s404="No such recipient, or no preference for this topic and channel."),
)
async def delete_preference(
    name: Name, request: Request, hub: HubDep, project: ProjectDep, actor: ActorDep,
    topic: Annotated[str, Query(max_length=64, pattern=TOPIC_PATTERN, description="`''` (or left out): any")] = "",
    channel: Annotated[str, Query(max_length=64, pattern=CHANNEL_PATTERN, description="`''` (or left out): any")] = "",
) -> dict[str, Any]:
    await _may_change(request, hub, project, name)
    async with editing(hub, project) as conn:
        recipient = await require_recipient(conn, project, name)
        gone = await unset_preference(conn, recipient, topic, channel, actor=actor)
    if not gone:
        raise NotFound(f"{name} has no preference for topic {topic or '(any)'} on channel {channel or '(any)'}")
    return {"topic": topic, "channel": channel, "unset": True}


class TopicOut(Out):
    name: str
    required: bool = Field(description="nobody can turn it off")
    description: str | None


class TopicPage(Out):
    items: list[TopicOut]


@routes.get("/topics", dependencies=[allow("recipient:read")], response_model=TopicPage,
            summary="List topics",
            description="The project's topics (`projects.<slug>.topics` of the configuration), by name: what a "
                        "recipient's preferences turn on and off; a `required` one can't be turned off.",
            responses=api_errors())
async def get_topics(hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    settings = hub.config.projects.get(project)
    topics = settings.topics if settings is not None else {}
    return {"items": [{"name": name, "required": t.required, "description": t.description}
                      for name, t in sorted(topics.items())]}


class ProjectQuietHours(Out):
    quiet_hours: dict[str, Any] | None = Field(description=(
        "`projects.<slug>.quiet_hours` of the configuration: the default of every recipient without their own "
        "(`null`: none)"))


@routes.get("/quiet-hours", dependencies=[allow("recipient:read")], response_model=ProjectQuietHours,
            summary="The project's quiet hours",
            description="The quiet hours of the project's configuration (`projects.<slug>.quiet_hours`): what "
                        "applies to each recipient without their own, read in the recipient's time zone (in the "
                        "project's `timezone` for those in UTC). Changed in the configuration, not here.",
            responses=api_errors())
async def get_quiet_hours(hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    settings = hub.config.projects.get(project)
    quiet = settings.quiet_hours if settings is not None else None
    return {"quiet_hours": quiet.model_dump(mode="json", exclude_none=True) if quiet is not None else None}


# -- groups ----------------------------------------------------------------------------------------
@routes.get("/recipient-groups", dependencies=[allow("recipient:read")], response_model=GroupPage,
            summary="List groups", description="The project's groups of recipients, with their members in order.",
            responses=api_errors())
async def get_groups(hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    async with hub.require_store().read() as conn:
        return {"items": await list_groups(conn, project)}


@routes.post(
    "/recipient-groups", status_code=201, dependencies=[allow("recipient:write"), Depends(json_body)],
    response_model=GroupOut, summary="Create a group",
    description="A named set of recipients (`@name` in a route's `to`); a group and a recipient never share a name. "
    "Audited (`recipient_group.create`).",
    responses=api_errors(403, 409, body=True, s409="The name is taken by a recipient or a group of the project."),
)
async def post_group(payload: GroupIn, hub: HubDep, project: ProjectDep, actor: ActorDep) -> dict[str, Any]:
    async with editing(hub, project) as conn:
        return await create_group(conn, project, payload.name, members=payload.members,
                                  description=payload.description, actor=actor)


@routes.get("/recipient-groups/{name}", dependencies=[allow("recipient:read")], response_model=GroupOut,
            summary="A group", description="One group, with its members in order.",
            responses=api_errors(404, s404=_NO_GROUP))
async def read_group(name: GroupName, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    async with hub.require_store().read() as conn:
        return await get_group(conn, project, name)


@routes.put(
    "/recipient-groups/{name}/members", dependencies=[allow("recipient:write"), Depends(json_body)],
    response_model=GroupOut, summary="Set a group's members",
    description="Replace the members with `members` (recipient names of the project), in this order. Audited "
    "(`recipient_group.members`).",
    responses=api_errors(403, 404, body=True, s404=_NO_GROUP),
)
async def put_members(name: GroupName, payload: MembersIn, hub: HubDep, project: ProjectDep,
                      actor: ActorDep) -> dict[str, Any]:
    async with editing(hub, project) as conn:
        return await set_group_members(conn, project, name, payload.members, actor=actor)


@routes.delete("/recipient-groups/{name}", dependencies=[allow("recipient:write")], response_model=Deleted,
               summary="Delete a group", description="Delete the group (its recipients stay). Audited "
               "(`recipient_group.delete`).", responses=api_errors(403, 404, s404=_NO_GROUP))
async def remove_group(name: GroupName, hub: HubDep, project: ProjectDep, actor: ActorDep) -> dict[str, Any]:
    async with editing(hub, project) as conn:
        await delete_group(conn, project, name, actor=actor)
    return {"name": name, "deleted": True}


router = project_router(routes, "recipients", s404=_NO_ONE)


def install(app: FastAPI) -> None:
    """The routes, and the answers to the recipients' errors (412 with the current recipient)."""
    app.include_router(router)

    async def _refused(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RecipientError)
        if isinstance(exc, StaleRecipient):
            return precondition_failed(exc, "recipient", exc.current, exc.current["version"])
        names = {404: "not found", 409: "conflict", 422: "invalid request"}
        return error(exc.status, names.get(exc.status, "error"), str(exc))

    app.add_exception_handler(RecipientError, _refused)
