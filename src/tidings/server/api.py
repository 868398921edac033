"""``/api/v1``: messages, deliveries, integrations, events, silences, the inbox, previews.

Each route names its answer model (``schemas``), its error statuses (``schemas.api_errors``),
and a ``summary``/``description`` of its own, so no docstring meant for developers reaches the
OpenAPI document.

Every route here is registered twice (:func:`.scoped.project_router`): under
``/api/v1/projects/{project}`` and, for the project ``default``, under ``/api/v1`` as before."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..accounts import Principal, allowed
from ..delivery.queries import STATUSES
from ..errors import MessageError, NotFound
from ..hub import Hub
from ..inbound import EVENT_STATUSES
from ..message import Message, Priority
from ..silences import MAX_DURATION, MAX_MATCHERS, check_matchers, parse_silence_duration
from ..units import parse_duration
from . import messages, schemas
from .auth import actor_of, allow
from .config_models import ETAG, DraftIn
from .schemas import api_errors
from .scoped import PAGE, ActorDep, HubDep, ProjectDep, project_router

routes = APIRouter()
"""The resource routes, relative: :data:`router` includes them unscoped and under ``/projects/{project}``."""


class MessageIn(Message):
    """A message, and optionally the integrations to send it to (skipping the routes)."""

    model_config = ConfigDict(title="MessageIn", json_schema_extra=schemas.message_in_schema)

    to: list[str] | None = Field(None, description="integration names and @recipients; skips routing", max_length=50)
    send_at: str | None = Field(None, max_length=64, description="schedule it: an ISO 8601 time with an offset")
    delay: str | float | None = Field(None, description="schedule it this long from now: seconds, or 10m, 2h")

    def __init__(self, **data: Any) -> None:
        # Python callers may pass None for "" (a mapping's missing value); JSON null is refused, as the schema says.
        nulls = [*_nulls(data.get("labels"), "labels"), *_nulls(data.get("fields"), "fields")]
        if nulls:
            problems = [f"{path}: must be text, a number or a boolean, not null" for path in nulls]
            raise MessageError("; ".join(problems), problems)
        super().__init__(**data)

    def message(self) -> Message:
        return Message.from_stored(self.to_dict())


def _nulls(value: Any, name: str) -> list[str]:
    """The paths of null values in ``labels`` or ``fields`` (an object, or [name, value] pairs)."""
    if isinstance(value, dict):
        return [f"{name}.{k}" for k, v in value.items() if v is None]
    if isinstance(value, list):
        return [f"{name}[{i}]" for i, x in enumerate(value) if isinstance(x, list | tuple) and len(x) == 2 and x[1] is None]
    return []


MessageBody = Annotated[MessageIn, Body(openapi_examples={"alert": {"summary": "an alert", "value": schemas.MESSAGE_EXAMPLE}})]


@routes.post(
    "/messages",
    status_code=202,
    dependencies=[allow("message:send")],
    response_model=schemas.Accepted,
    summary="Send a message",
    description="Store the message and its deliveries (one per target, chosen by the routes or by `to`), then "
    "answer 202: from then on it is durable and is delivered in the background. With an `Idempotency-Key`, "
    "a repeat of the same request answers 200 with the first answer and `Idempotency-Replay: true`; the same "
    "key with a different request answers 422.",
    responses={
        202: {"description": "Stored; the deliveries are under way."},
        200: {"model": schemas.Accepted, "description": "A replay of an earlier request with the same `Idempotency-Key`.",
              "headers": {"Idempotency-Replay": {"description": "`true`", "schema": {"type": "string"}}}},
        **api_errors(body=True, s422="Invalid message, unknown integration in `to`, or an `Idempotency-Key` "
                     "reused for a different request: `detail` says which, with paths."),
    },
)
async def post_message(
    request: Request,
    payload: MessageBody,
    hub: HubDep,
    project: ProjectDep,
    idempotency_key: Annotated[
        str | None,
        Header(min_length=1, max_length=messages.IDEMPOTENCY_KEY_MAX,
               description="makes a retried request safe: the same key and body answer the first answer again"),
    ] = None,
) -> Response:
    # /api/v1/messages is served by messages.py before the framework; this route documents it, answers what that
    # leaves here, and serves the per-project form.
    receipt = await hub.notify(payload.message(), to=payload.to, idempotency_key=idempotency_key, project=project,
                               send_at=payload.send_at, delay=payload.delay,
                               actor=actor_of(request) if payload.send_at is not None or payload.delay is not None else None)
    status, body, headers = messages.accepted(receipt)
    return Response(body, status_code=status, media_type="application/json", headers={k.decode(): v.decode() for k, v in headers})


@routes.get(
    "/messages", dependencies=[allow("message:read")],
    response_model=schemas.MessagePage,
    summary="List messages",
    description="Newest first, `limit` at a time, each with its deliveries counted by status; pass `next` as "
    "`before` for the next page. `status` and `integration` keep the messages with a delivery in that status "
    "or to that integration (both: one delivery that is both); `since` those sent within that long (30m, 1h, 2d).",
    responses=api_errors(),
)
async def list_messages(
    hub: HubDep,
    project: ProjectDep,
    status: Annotated[Literal[STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
    integration: Annotated[str | None, Query(max_length=100)] = None,
    priority: Annotated[Priority | None, Query()] = None,
    since: Annotated[str | None, Query(pattern=schemas.DURATION, max_length=32, description="30m, 1h, 2d")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(max_length=36, description=PAGE)] = None,
) -> dict[str, Any]:
    return await hub.message_list(status=status, integration=integration,
                                  priority=priority.value if priority is not None else None,
                                  since=parse_duration(since) if since is not None else None,
                                  limit=limit, before=before, project=project)


@routes.get(
    "/messages/{message_id}",
    dependencies=[allow("message:read")],
    response_model=schemas.MessageOut,
    summary="A message and its deliveries",
    description="The message as stored, each delivery with its outcome, and its acknowledgements.",
    responses=api_errors(404),
)
async def get_message(message_id: str, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    return await hub.message(message_id, project=project)


@routes.delete(
    "/messages/{message_id}",
    dependencies=[allow("message:send")],
    response_model=schemas.Cancelled,
    summary="Cancel a scheduled message",
    description="A message scheduled with `send_at` or `delay` and not due yet is cancelled: it never gets a "
    "delivery. Cancelling it again answers the same. A message routed already (sent at once, or due and routed) "
    "answers 409 with the reason.",
    responses=api_errors(404, 409),
)
async def cancel_message(message_id: str, hub: HubDep, project: ProjectDep, actor: ActorDep) -> dict[str, Any]:
    return await hub.cancel(message_id, project=project, actor=actor)


@routes.get(
    "/deliveries", dependencies=[allow("message:read")],
    response_model=schemas.DeliveryPage,
    summary="List deliveries",
    description="Newest first, `limit` at a time; pass `next` as `before` for the next page.",
    responses=api_errors(),
)
async def list_deliveries(
    hub: HubDep,
    project: ProjectDep,
    status: Annotated[Literal[STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
    integration: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(description=PAGE)] = None,
) -> dict[str, Any]:
    return await hub.deliveries(status=status, integration=integration, limit=limit, before=before, project=project)


@routes.get(
    "/deliveries/summary", dependencies=[allow("message:read")],
    response_model=schemas.DeliverySummary,
    summary="Summarise deliveries",
    description="For a dashboard: the deliveries made in each of the last `minutes` minutes by their status now, "
    "how many wait (pending, sending, retrying, held) and since when, and how many are dead.",
    responses=api_errors(),
)
async def summarise_deliveries(
    hub: HubDep, project: ProjectDep, minutes: Annotated[int, Query(ge=1, le=1440)] = 60,
) -> dict[str, Any]:
    return await hub.delivery_summary(minutes=minutes, project=project)


class BulkRetryIn(BaseModel):
    model_config = ConfigDict(title="BulkRetry", extra="forbid", json_schema_extra={
        "examples": [{"integration": "slack", "status": "dead", "since": "1h"}]})
    status: Literal["dead", "retrying"] = Field("dead", description="which deliveries: `dead` (default) or `retrying`")
    integration: str | None = Field(None, min_length=1, max_length=100, description="only this integration's")
    since: str | None = Field(None, pattern=schemas.DURATION,
                              description="only those last changed within this long: 30m, 1h, 2d")


@routes.post(
    "/deliveries/retry",
    dependencies=[allow("delivery:retry")],
    response_model=schemas.Retried,
    summary="Retry deliveries in bulk",
    description="Send every matching delivery again now (after an outage), each with a fresh retry budget. "
    "Answers the ids retried (none is an empty list, not an error).",
    responses=api_errors(body=True),
)
async def retry_deliveries(
    payload: BulkRetryIn, hub: HubDep, project: ProjectDep, actor: ActorDep
) -> dict[str, Any]:
    since = parse_duration(payload.since) if payload.since is not None else None
    if since is not None and since <= 0:
        raise RequestValidationError([{"type": "greater_than", "loc": ("body", "since"), "input": payload.since,
                                       "msg": "since must be more than 0s"}])
    ids = await hub.retry_many(status=payload.status, integration=payload.integration, since=since,
                               by=f"api:{actor.name}", project=project, actor=actor)
    return {"retried": ids}


@routes.post(
    "/deliveries/{delivery_id}/retry",
    dependencies=[allow("delivery:retry")],
    response_model=schemas.Delivery,
    summary="Retry a delivery",
    description="Send a dead (or retrying) delivery again now, with a fresh retry budget.",
    responses=api_errors(404, 409, s409="The delivery is neither dead nor retrying."),
)
async def retry_delivery(delivery_id: str, hub: HubDep, project: ProjectDep, actor: ActorDep) -> dict[str, Any]:
    return await hub.retry(delivery_id, project=project, actor=actor)


@routes.get(
    "/integrations", dependencies=[allow("integration:read")],
    response_model=list[schemas.Integration],
    response_model_exclude_unset=True,  # a receiver has no limits or stats, a sender no inbound: absent, not null
    summary="List integrations",
    description="Every integration this process runs, with its health, limits, the last 24 hours' figures and its "
    "settings as configured in the current revision (secrets masked). The `ETag` is the current revision.",
    responses={200: {"headers": ETAG}, **api_errors(params=False)},
)
async def list_integrations(hub: HubDep, project: ProjectDep, response: Response) -> list[dict[str, Any]]:
    from .config_api import etag
    from .config_views import head_of, settings_view

    items = await hub.integrations(project=project)
    number, doc = await head_of(hub)
    public = hub.config.server.public_url
    for item in items:
        entry = doc["integrations"].get(item["name"])
        if isinstance(entry, dict):
            item["settings"] = await settings_view(hub, entry)
        if public and item.get("receives"):
            item["webhook_url"] = f"{public}/hooks/{quote(item['name'], safe='')}"
    response.headers["ETag"] = etag(number)
    return items


def _known(hub: Hub, name: str, project: str) -> None:
    if (name not in hub.notifiers and name not in hub.receivers) or hub.router.project_of.get(name) != project:
        raise NotFound(f"no integration {name!r}")


def _sender(hub: Hub, name: str, project: str) -> None:
    _known(hub, name, project)
    if name not in hub.notifiers:
        raise NotFound(f"integration {name!r} only receives: there is nothing to enable or disable")


@routes.post(
    "/integrations/{name}/test",
    dependencies=[allow("integration:test")],
    response_model=schemas.TestResult,
    summary="Test an integration",
    description="Send a test now, outside the queue, and report what the peer answered. "
    "Changes nothing: the integration stays as it is whatever the answer. With a body, test a draft instead of the "
    "running integration, without saving it: a whole definition (`kind` and `settings`) or a merge patch over the "
    "saved settings (`patch`); invalid draft settings answer 422 with one line per problem, and a draft that sets "
    "or changes `allow_destinations` needs a site admin.",
    responses=api_errors(403, 404, body=True),
)
async def test_integration(
    name: str, hub: HubDep, project: ProjectDep, request: Request,
    draft: Annotated[DraftIn | None, Body(openapi_examples={"patch": {
        "summary": "a new URL, before saving it", "value": {"patch": {"url": "https://hooks.example.invalid/new"}}}},
    )] = None,
) -> dict[str, Any]:
    if draft is not None and draft.model_fields_set:
        from .integrations_api import test_saved_draft

        return await test_saved_draft(request, hub, project, name, draft)
    _known(hub, name, project)
    outcome = await hub.test(name, project=project)
    return {
        "integration": name,
        "ok": outcome.ok,
        "status": outcome.status.value,
        "remote_id": outcome.remote_id,
        "error": outcome.error,
        "retry_after": outcome.retry_after,
    }


@routes.post(
    "/integrations/{name}/enable",
    dependencies=[allow("integration:write")],
    response_model=schemas.Enabled,
    summary="Enable an integration",
    description="Resume sending (after a peer disabled it with HTTP 410, or by hand); held deliveries go out.",
    responses=api_errors(404, s404="No integration of this name sends."),
)
async def enable_integration(name: str, hub: HubDep, project: ProjectDep, actor: ActorDep) -> dict[str, Any]:
    _sender(hub, name, project)
    await hub.set_enabled(name, True, project=project, actor=actor)
    return {"integration": name, "enabled": True}


@routes.post(
    "/integrations/{name}/disable",
    dependencies=[allow("integration:write")],
    response_model=schemas.Enabled,
    summary="Disable an integration",
    description="Hold its deliveries (nothing is lost) until it is enabled again.",
    responses=api_errors(404, s404="No integration of this name sends."),
)
async def disable_integration(name: str, hub: HubDep, project: ProjectDep, actor: ActorDep) -> dict[str, Any]:
    _sender(hub, name, project)
    await hub.set_enabled(name, False, project=project, actor=actor)
    return {"integration": name, "enabled": False}


@routes.get(
    "/events", dependencies=[allow("event:read")],
    response_model=schemas.EventPage,
    summary="List inbound events",
    description="Webhooks received, newest first, with how their processing went; `since` keeps those received "
    "within that long.",
    responses=api_errors(),
)
async def list_events(
    hub: HubDep,
    project: ProjectDep,
    integration: str | None = None,
    status: Annotated[Literal[EVENT_STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
    since: Annotated[str | None, Query(pattern=schemas.DURATION,
                                       description="only those received within this long: 30m, 1h, 2d")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(description=PAGE)] = None,
) -> dict[str, Any]:
    seconds = parse_duration(since) if since is not None else None
    if seconds is not None and seconds <= 0:
        raise RequestValidationError([{"type": "greater_than", "loc": ("query", "since"), "input": since,
                                       "msg": "since must be more than 0s"}])
    return await hub.event_list(integration=integration, status=status, limit=limit, before=before, project=project,
                                received_since=None if seconds is None else time.time() - seconds)


@routes.get(
    "/events/{event_id}",
    response_model=schemas.EventDetail,
    summary="An inbound event",
    description="One event, with the headers and body received. They are shown only to callers with "
    "`logs:read` (members and owners); for others (viewers) `redacted` is true, `headers` is empty and `body` null.",
    responses=api_errors(404),
)
async def get_event(
    event_id: str, principal: Annotated[Principal, allow("event:read")], hub: HubDep, project: ProjectDep
) -> dict[str, Any]:  # the principal first: allow() runs before project_of can say 404
    event = await hub.event(event_id, project=project)
    if not allowed(principal, "logs:read", project):
        event.update(headers={}, body=None, redacted=True)
    return event


@routes.post(
    "/events/{event_id}/replay",
    dependencies=[allow("event:replay")],
    response_model=schemas.Event,
    summary="Replay an inbound event",
    description="Process the event again; messages it already sent are not sent twice.",
    responses=api_errors(404, 409, s409="The event is being processed, or its integration no longer receives."),
)
async def replay_event(event_id: str, hub: HubDep, project: ProjectDep, actor: ActorDep) -> dict[str, Any]:
    return await hub.replay(event_id, project=project, actor=actor)


Text = Annotated[str, StringConstraints(pattern=schemas.NO_NUL)]


def _silence_schema(schema: dict[str, Any]) -> None:
    """The constraints the route checks (with the messages the CLI gives), stated in the schema."""
    props = schema["properties"]
    props["matchers"].update(
        propertyNames={"type": "string", "pattern": schemas.LABEL_NAME}, maxProperties=MAX_MATCHERS,
        additionalProperties={"type": "string", "minLength": 1, "maxLength": 500, "pattern": schemas.NO_NUL},
    )
    props["duration"]["pattern"] = schemas.DURATION
    schema["examples"] = [{"matchers": {"service": "db"}, "duration": "2h", "reason": "maintenance"}]


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_silence_schema)

    matchers: dict[str, str] = Field(description="label -> value; a message must carry all of them", min_length=1)
    duration: str = Field(
        description=f"how long, with its unit: 30m, 2h, 1d (more than 0s, at most {MAX_DURATION / 86400:.0f}d)"
    )
    reason: Text | None = Field(None, max_length=1000)
    created_by: Text = Field("api", max_length=200)


@routes.get(
    "/silences",
    dependencies=[allow("silence:read")],
    response_model=schemas.Silences,
    summary="List silences",
    description="The active silences, soonest to end first; with `state=ended`, those that have ended (ran out or "
    "were ended by hand), most recently ended first, `limit` of them.",
    responses=api_errors(),
)
async def list_silences(
    hub: HubDep,
    project: ProjectDep,
    state: Annotated[Literal["active", "ended"], Query(description="`active` (default) or `ended`")] = "active",
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many ended silences")] = 50,
) -> dict[str, Any]:
    if state == "ended":
        return {"items": [s.to_dict() for s in await hub.ended_silences(project=project, limit=limit)]}
    return {"items": [s.to_dict() for s in await hub.active_silences(project=project)]}


@routes.post(
    "/silences",
    status_code=201,
    dependencies=[allow("silence:write")],
    response_model=schemas.Silence,
    summary="Create a silence",
    description="Suppress new messages whose labels match all `matchers` for `duration`. "
    "The same matchers again extend the active silence.",
    responses=api_errors(body=True),
)
async def create_silence(payload: SilenceIn, hub: HubDep, project: ProjectDep, actor: ActorDep) -> dict[str, Any]:
    silence, _ = await hub.silence(
        check_matchers(payload.matchers), parse_silence_duration(payload.duration), by=payload.created_by,
        reason=payload.reason, project=project, actor=actor,
    )
    return silence.to_dict()


@routes.delete(
    "/silences/{silence_id}",
    dependencies=[allow("silence:write")],
    response_model=schemas.Silence,
    summary="End a silence",
    description="End a silence now.",
    responses=api_errors(404),
)
async def end_silence(
    silence_id: Annotated[str, Path(description="its id, or a unique start of it")], hub: HubDep, project: ProjectDep,
    actor: ActorDep,
) -> dict[str, Any]:
    silence = await hub.unsilence(silence_id, project=project, actor=actor)
    if silence is None:
        raise NotFound(f"no active silence {silence_id!r}")
    return silence.to_dict()


@routes.get(
    "/inbox", dependencies=[allow("message:read")],
    response_model=schemas.InboxPage,
    summary="List the inbox",
    description="What the inbox integrations received, newest first.",
    responses=api_errors(),
)
async def list_inbox(
    hub: HubDep,
    project: ProjectDep,
    integration: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description=PAGE)] = None,
) -> dict[str, Any]:
    return await hub.inbox(integration=integration, limit=limit, before=before, project=project)


@routes.post(
    "/preview", dependencies=[allow("message:read")],
    response_model=schemas.Previews,
    summary="Preview a message",
    description="Render the message for each target (chosen by the routes or by `to`) without sending it.",
    responses=api_errors(body=True),
)
async def preview(payload: MessageBody, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    return {"targets": hub.preview(payload.message(), payload.to, project)}


router = project_router(routes, "api")
"""``/api/v1``: every route of :data:`routes` on the project ``default``, and under ``/projects/{project}``."""
