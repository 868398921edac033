"""``/api/v1``: messages, deliveries, integrations, events, silences, the inbox, previews."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, Field

from ..delivery.queries import STATUSES
from ..errors import NotFound
from ..hub import Hub
from ..inbound import EVENT_STATUSES
from ..message import Message
from ..security.tokens import TokenInfo
from ..silences import MAX_DURATION, parse_matchers, parse_silence_duration
from ..units import Duration
from . import messages
from .auth import require_token

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)])


async def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(hub_of)]


class MessageIn(Message):
    """A message, and optionally the integrations to send it to (skipping the routes)."""

    to: list[str] | None = Field(None, description="integration names; skips routing", max_length=50)

    def message(self) -> Message:
        return Message.from_stored(self.to_dict())


class DeliveryOut(BaseModel):
    id: str
    integration: str
    status: str


class Accepted(BaseModel):
    id: str
    deliveries: list[DeliveryOut]


@router.post(
    "/messages",
    status_code=202,
    response_model=Accepted,
    responses={200: {"description": "a replay of an earlier request with the same Idempotency-Key"}},
)
async def post_message(
    payload: MessageIn,
    hub: HubDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=messages.IDEMPOTENCY_KEY_MAX)] = None,
) -> Response:
    """Store and route a message. Answers 202 once it and its deliveries are committed.

    Served by :mod:`.messages` before the framework; this route documents it and answers only
    what that one leaves to the router."""
    receipt = await hub.notify(payload.message(), to=payload.to, idempotency_key=idempotency_key)
    status, body, headers = messages.accepted(receipt)
    return Response(body, status_code=status, media_type="application/json", headers={k.decode(): v.decode() for k, v in headers})


@router.get("/messages/{message_id}")
async def get_message(message_id: str, hub: HubDep) -> dict[str, Any]:
    return await hub.message(message_id)


@router.get("/deliveries")
async def list_deliveries(
    hub: HubDep,
    status: Annotated[Literal[STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
    integration: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(description="the `next` of the previous page")] = None,
) -> dict[str, Any]:
    return await hub.deliveries(status=status, integration=integration, limit=limit, before=before)


class BulkRetryIn(BaseModel):
    """Which deliveries to retry: all in ``status``, optionally of one integration and recent."""

    model_config = {"extra": "forbid"}
    status: Literal["dead", "retrying"] = "dead"
    integration: str | None = Field(None, min_length=1, max_length=100)
    since: Duration | None = Field(None, gt=0, description="only those last changed within this long, e.g. 1h")


class BulkRetryOut(BaseModel):
    retried: list[str]


@router.post("/deliveries/retry", response_model=BulkRetryOut)
async def retry_deliveries(payload: BulkRetryIn, hub: HubDep, token: Annotated[TokenInfo, Depends(require_token)]) -> dict[str, Any]:
    """Send every matching delivery again now (after an outage), with a fresh retry budget."""
    ids = await hub.retry_many(status=payload.status, integration=payload.integration, since=payload.since, by=f"api:{token.name}")
    return {"retried": ids}


@router.post("/deliveries/{delivery_id}/retry")
async def retry_delivery(delivery_id: str, hub: HubDep) -> dict[str, Any]:
    """Send a dead (or waiting) delivery again now, with a fresh retry budget."""
    return await hub.retry(delivery_id)


@router.get("/integrations")
async def list_integrations(hub: HubDep) -> list[dict[str, Any]]:
    return await hub.integrations()


def _known(hub: Hub, name: str) -> None:
    if name not in hub.notifiers and name not in hub.receivers:
        raise NotFound(f"no integration {name!r}")


@router.post("/integrations/{name}/test")
async def test_integration(name: str, hub: HubDep) -> dict[str, Any]:
    """Check the integration now and report what its peer answered."""
    _known(hub, name)
    outcome = await hub.test(name)
    return {
        "integration": name,
        "ok": outcome.ok,
        "status": outcome.status.value,
        "remote_id": outcome.remote_id,
        "error": outcome.error,
        "retry_after": outcome.retry_after,
    }


@router.post("/integrations/{name}/enable")
async def enable_integration(name: str, hub: HubDep) -> dict[str, Any]:
    _known(hub, name)
    await hub.set_enabled(name, True)
    return {"integration": name, "enabled": True}


@router.post("/integrations/{name}/disable")
async def disable_integration(name: str, hub: HubDep) -> dict[str, Any]:
    _known(hub, name)
    await hub.set_enabled(name, False)
    return {"integration": name, "enabled": False}


@router.get("/events")
async def list_events(
    hub: HubDep,
    integration: str | None = None,
    status: Annotated[Literal[EVENT_STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(description="the `next` of the previous page")] = None,
) -> dict[str, Any]:
    """Inbound events, newest first, with how their processing went."""
    return await hub.event_list(integration=integration, status=status, limit=limit, before=before)


@router.get("/events/{event_id}")
async def get_event(event_id: str, hub: HubDep) -> dict[str, Any]:
    """One inbound event, with the headers and body received."""
    return await hub.event(event_id)


@router.post("/events/{event_id}/replay")
async def replay_event(event_id: str, hub: HubDep) -> dict[str, Any]:
    """Process an event again (what it already sent is not sent twice)."""
    return await hub.replay(event_id)


class SilenceIn(BaseModel):
    matchers: dict[str, str] = Field(description="label -> value; a message must carry all of them", min_length=1)
    duration: str = Field(description=f"how long, with its unit: 30m, 2h, 1d (at most {MAX_DURATION / 86400:.0f}d)")
    reason: str | None = Field(None, max_length=1000)
    created_by: str = Field("api", max_length=200)


@router.get("/silences")
async def list_silences(hub: HubDep) -> dict[str, Any]:
    """The active silences, soonest to end first."""
    return {"items": [s.to_dict() for s in await hub.active_silences()]}


@router.post("/silences", status_code=201)
async def create_silence(payload: SilenceIn, hub: HubDep) -> dict[str, Any]:
    """Suppress new messages whose labels match all ``matchers`` for ``duration``."""
    matchers = parse_matchers([f"{k}={v}" for k, v in payload.matchers.items()])
    silence, _ = await hub.silence(
        matchers, parse_silence_duration(payload.duration), by=payload.created_by, reason=payload.reason
    )
    return silence.to_dict()


@router.delete("/silences/{silence_id}")
async def end_silence(silence_id: str, hub: HubDep) -> dict[str, Any]:
    """End a silence now (its id, or a unique start of it)."""
    silence = await hub.unsilence(silence_id)
    if silence is None:
        raise NotFound(f"no active silence {silence_id!r}")
    return silence.to_dict()


@router.get("/inbox")
async def list_inbox(
    hub: HubDep,
    integration: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="the `next` of the previous page")] = None,
) -> dict[str, Any]:
    """What the inbox integrations received, newest first."""
    return await hub.inbox(integration=integration, limit=limit, before=before)


@router.post("/preview")
async def preview(payload: MessageIn, hub: HubDep) -> dict[str, Any]:
    """Render the message for each target without sending it."""
    return {"targets": hub.preview(payload.message(), payload.to)}
