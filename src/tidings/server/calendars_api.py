"""ICS feeds: made, listed and revoked through the API; read by calendar clients at
``GET /calendars/{token}.ics``.

- ``POST .../calendars`` (``task:read``): ``mine: true`` makes a personal feed (the tasks of the
  project assigned to the caller); ``mine: false`` a feed of every task of the project, which needs
  ``task:write`` too. The answer holds the feed's URL with its token: the only time it is shown.
- ``GET .../calendars`` lists the caller's own feeds; an owner (``member:manage``) sees every feed.
- ``DELETE .../calendars/{id}`` revokes a feed: its creator or an owner. Another's feed is not found.
- ``GET /calendars/{token}.ics`` needs no credentials: the token is one (calendar clients can't send
  headers). An unknown or revoked token is 404, never 401, so nothing tells a guess apart. A strong
  ``ETag`` (the body's hash) and ``Last-Modified``; ``If-None-Match`` answers 304, and without it
  ``If-Modified-Since`` (RFC 9110 §13.2.2: If-None-Match wins when both come). The token is kept
  out of logs (``calendars.feeds.mask_path``).
"""

from __future__ import annotations

import email.utils
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ..accounts.principal import Principal, allowed
from ..calendars import feeds, ics
from ..errors import NotFound
from .auth import allow, require
from .errors import error
from .schemas import NOT_BLANK, Out, api_errors, errors
from .scoped import ActorDep, HubDep, ProjectDep, project_router
from .secrets_api import json_body

_NO_FEED = "No such project, or no live feed of this id in it that you may see."
EXAMPLE = {"name": "My due dates", "mine": True}


class FeedIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="FeedIn", json_schema_extra={"examples": [EXAMPLE]})

    name: str = Field(min_length=1, max_length=100, pattern=NOT_BLANK, description="the calendar's name in clients")
    mine: bool = Field(True, description="only the tasks assigned to me (else every task of the project: needs "
                       "`task:write`)")


class FeedOut(Out):
    id: str
    project: str
    name: str
    user: str | None = Field(description="a personal feed's user (its tasks are those assigned to them); null: "
                             "every task of the project")
    created_by: str | None
    created_at: float
    revoked_at: float | None
    last_used_at: float | None = Field(description="when a calendar client last read it (to the minute)")


class FeedCreated(FeedOut):
    url: str = Field(description="the feed's URL, with its token: shown this once; paste it into a calendar as a "
                     "subscription")


def _mine(principal: Principal) -> str:
    if principal.user_id is None:
        raise HTTPException(422, "a personal feed needs a user: this token belongs to nobody (use `mine: false`)")
    return principal.user_id


routes = APIRouter()


@routes.post(
    "/calendars",
    status_code=201,
    dependencies=[Depends(json_body)],
    response_model=FeedCreated,
    summary="Create a calendar feed",
    description="A new ICS feed of the project's tasks with a due date: the caller's (`mine: true`) or every task "
    "(`mine: false`, needs `task:write`). The answer's `url` holds the token: it is shown only now. Audited.",
    responses=api_errors(403, body=True),
)
async def post_feed(
    payload: Annotated[FeedIn, Body(openapi_examples={"feed": {"summary": "my due dates", "value": EXAMPLE}})],
    principal: Annotated[Principal, allow("task:read")], request: Request, hub: HubDep, project: ProjectDep,
    actor: ActorDep,
) -> dict[str, Any]:
    if payload.mine:
        user_id: str | None = _mine(principal)
    else:
        await require(request, "task:write", project)
        user_id = None
    async with hub.require_store().write() as conn:
        feed, token = await feeds.create_feed(conn, actor, project, payload.name, user_id=user_id,
                                              created_by=principal.user_id)
    return {**feed, "url": f"{str(request.base_url).rstrip('/')}/calendars/{token}.ics"}


@routes.get(
    "/calendars",
    response_model=list[FeedOut],
    summary="List calendar feeds",
    description="The project's live feeds the caller made; an owner sees every one. Never a token.",
    responses=api_errors(),
)
async def get_feeds(principal: Annotated[Principal, allow("task:read")], hub: HubDep,
                    project: ProjectDep) -> list[dict[str, Any]]:
    mine = None if allowed(principal, "member:manage", project) else (principal.user_id or "")
    async with hub.require_store().read() as conn:
        return await feeds.list_feeds(conn, project, created_by=mine)


@routes.delete(
    "/calendars/{feed_id}",
    response_model=FeedOut,
    summary="Revoke a calendar feed",
    description="Its URL answers 404 from now on. The feed's creator or an owner. Audited.",
    responses=api_errors(404, s404=_NO_FEED),
)
async def delete_feed(
    feed_id: Annotated[str, Path(max_length=36, pattern=r"^[A-Za-z0-9-]+$")],
    principal: Annotated[Principal, allow("task:read")], hub: HubDep, project: ProjectDep, actor: ActorDep,
) -> dict[str, Any]:
    mine = None if allowed(principal, "member:manage", project) else (principal.user_id or "")
    async with hub.require_store().write() as conn:
        feed = await feeds.revoke_feed(conn, actor, project, feed_id, created_by=mine)
    if feed is None:
        raise NotFound(f"no feed {feed_id!r} in project {project}")
    return feed


router = project_router(routes, "calendars", s404=_NO_FEED)

feed_router = APIRouter(tags=["calendars"])
ICS = {"text/calendar": {"schema": {"type": "string"}}}


@feed_router.get(
    "/calendars/{token}.ics",
    summary="A calendar feed",
    description="The feed's tasks as iCalendar (RFC 5545), for a calendar client's subscription. No credentials: "
    "the token in the URL is one. 404 for an unknown or revoked token. `If-None-Match` with the `ETag` answers 304;"
    " without it, `If-Modified-Since` at or after `Last-Modified` does.",
    response_class=Response,
    responses={200: {"content": ICS, "headers": {"ETag": {"schema": {"type": "string"}},
                                                  "Last-Modified": {"schema": {"type": "string"}}}},
               304: {"description": "Not modified"}, **errors(400, 404, 422, s404="No such feed.")},
)
async def read_feed(
    token: str, hub: HubDep, if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
    if_modified_since: Annotated[str | None, Header(alias="If-Modified-Since")] = None,
) -> Response:
    async with hub.require_store().read() as conn:
        feed = await feeds.feed_by_token(conn, token)
        items = await feeds.feed_tasks(conn, feed) if feed is not None else []
        changed = await feeds.last_changed(conn, feed) if feed is not None else 0.0
    if feed is None:
        return error(404, "not found", "no such calendar feed")
    body = ics.render(feed["name"], items)
    tag = ics.etag(body)
    headers = {"ETag": tag, "Last-Modified": email.utils.formatdate(_last_modified(changed), usegmt=True),
               "Cache-Control": "private, max-age=300"}
    if feeds.due_touch(feed):
        async with hub.require_store().write() as conn:
            await feeds.touch(conn, feed)
    if if_none_match is not None and (if_none_match.strip() == "*" or tag in
                                      [t.strip().removeprefix("W/") for t in if_none_match.split(",")]):
        return Response(status_code=304, headers=headers)
    if if_none_match is None and _not_modified_since(if_modified_since, changed):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/calendar; charset=utf-8", headers=headers)


def _last_modified(changed: float, now: float | None = None) -> int:
    """The whole second to send as ``Last-Modified`` for content last changed at ``changed``.

    HTTP dates have whole seconds, so a second change within the second of the first would look
    unmodified. The end of ``changed``'s second is sent once that second is over (no later change
    can fall in it, and the date is not in the future); until then its start, which
    :func:`_not_modified_since` never finds covering ``changed``: such a feed is sent again."""
    now = time.time() if now is None else now
    end = int(changed) + 1
    return end if now >= end else int(changed)


def _not_modified_since(header: str | None, changed: float) -> bool:
    """Whether ``If-Modified-Since: header`` covers a feed last changed at ``changed``: strictly
    before that date (see :func:`_last_modified`). An unparsable date is ignored, as RFC 9110 says."""
    if not header:
        return False
    try:
        since = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return False
    if since is None or since.tzinfo is None:
        return False
    return changed < since.timestamp()
