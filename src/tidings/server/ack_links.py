"""Acknowledging a message over HTTP: ``POST /api/v1/messages/{id}/ack`` for API callers
(permission ``message:ack``), and the signed links of emails and Teams cards, which work without
signing in: ``GET /l/ack/{token}`` shows a small confirmation page (mail scanners and link
previews fetch a GET: it must change nothing), its button posts to ``POST /l/ack/{token}``.

A link names its message and expiry, signed (``recipients/links.py``); a forged, altered,
expired or other-purpose token (an unsubscribe link) is refused with 400 and a page saying why.
The acknowledgement is recorded once (``acks.record_ack``), audited with the caller's address,
and stops the message's escalation."""

from __future__ import annotations

import datetime as dt
import html
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse

from ..audit import Actor
from ..errors import NotFound
from ..recipients.links import read_ack
from ..security.signed import LinkError
from .auth import allow, request_id
from .schemas import Ack, api_errors
from .scoped import ActorDep, HubDep, ProjectDep, project_router

VIA = ("email", "teams", "link")
"""What a link may say it came from (``?via=``); anything else is recorded as ``link``."""


class Acked(Ack):
    message_id: str
    created: bool


routes = APIRouter()


@routes.post(
    "/messages/{message_id}/ack",
    dependencies=[allow("message:ack")],
    response_model=Acked,
    summary="Acknowledge a message",
    description="Record that you took the message in hand: its escalation stops. A message is acknowledged "
    "once; acknowledging it again answers the first acknowledgement with `created: false`.",
    responses=api_errors(404),
)
async def ack_message(message_id: str, hub: HubDep, project: ProjectDep, actor: ActorDep) -> dict[str, Any]:
    held, created = await hub.ack(message_id, by=actor.name or "api", via="api", project=project, actor=actor)
    return {"message_id": message_id, **held, "created": created}


api_router = project_router(routes, "api")

links_router = APIRouter(tags=["links"], include_in_schema=False)
"""Pages for people following a link, not API: answers (errors too) are HTML, outside the OpenAPI document."""
ViaQuery = Annotated[str, Query(description="where the link was: email, teams (anything else reads as link)")]


@links_router.get("/l/ack/{token}", response_class=HTMLResponse, summary="An acknowledge link",
                  description="A confirmation page for a signed acknowledge link; its button posts to the same URL.")
async def ack_page(token: str, hub: HubDep, via: ViaQuery = "link") -> HTMLResponse:
    try:
        message_id = read_ack(hub.signer(), token)
        message = await hub.message(message_id)
    except LinkError as exc:
        return _page(400, "This link does not work", str(exc))
    except NotFound:
        return _page(404, "Nothing to acknowledge", "This message no longer exists.")
    title = html.escape(message["title"])
    if message["acks"]:
        return _page(200, f"Already acknowledged: {title}", _said(message["acks"][0]), escaped=True)
    form = ('<form method="post"><button type="submit" style="font-size:16px;padding:8px 16px">Acknowledge</button>'
            "</form>")
    return _page(200, f"Acknowledge: {title}",
                 f"<p>{html.escape(message['priority'].upper())} · {_when(message['created_at'])}</p>{form}",
                 escaped=True)


@links_router.post("/l/ack/{token}", response_class=HTMLResponse, summary="Acknowledge by link",
                   description="Acknowledge the message a signed link names (no sign-in: the link is the credential).")
async def ack_by_link(token: str, request: Request, hub: HubDep, via: ViaQuery = "link") -> HTMLResponse:
    try:
        message_id = read_ack(hub.signer(), token)
        client = request.client
        actor = Actor("user", name=f"ack link ({_via(via)})", auth_method="link", ip=client.host if client else None,
                      user_agent=request.headers.get("user-agent"), request_id=request_id(request))
        held, created = await hub.ack(message_id, by="link", via=_via(via), actor=actor)
    except LinkError as exc:
        return _page(400, "This link does not work", str(exc))
    except NotFound:
        return _page(404, "Nothing to acknowledge", "This message no longer exists.")
    return _page(200, "Acknowledged" if created else "Already acknowledged", _said(held), escaped=True)


def _via(via: str) -> str:
    return via if via in VIA else "link"


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _said(ack: dict[str, Any]) -> str:
    return f"<p>by {html.escape(ack['by'])} via {html.escape(ack['via'])} at {_when(ack['at'])}</p>"


def _page(status: int, heading: str, text: str, *, escaped: bool = False) -> HTMLResponse:
    body = text if escaped else f"<p>{html.escape(text)}</p>"
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>tidings</title></head>'
            f'<body style="font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em">'
            f"<h1 style=\"font-size:20px\">{heading if escaped else html.escape(heading)}</h1>{body}</body></html>")
    # The token is in the URL: no referrer, no caching, no indexing; nothing runs on the page.
    return HTMLResponse(page, status_code=status, headers={
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"})


def install(app: FastAPI) -> None:
    app.include_router(api_router)
    app.include_router(links_router)
