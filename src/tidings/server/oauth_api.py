"""Connecting an integration through OAuth (docs/oauth.md):

- ``GET /oauth/{integration}/start``: a signed-in person (session cookie) or a bearer token with
  ``integration:write`` on the integration's project is sent (302) to the provider;
- ``POST /api/v1[/projects/{project}]/integrations/{name}/connect`` → ``{"url": ...}``: the same
  address, for API and UI clients (and ``tidings connect`` on a headless server);
- ``GET /oauth/{integration}/callback``: public (the single-use ``state`` is the credential), answers
  a small page: *Connected NAME as ACCOUNT*, or why not (never a secret, never a 500).
"""

from __future__ import annotations

import html
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from ..accounts import Principal, allowed
from ..audit import Actor
from ..errors import NotFound
from ..hub import Hub
from ..oauth import flow
from ..oauth.errors import CallbackRefused, NotConnectable
from ..security.redact import redact
from . import errors
from .auth import allow, principal_of, require
from .schemas import api_errors
from .scoped import ActorDep, HubDep, ProjectDep, project_router

log = structlog.get_logger("tidings.server")
Name = Annotated[str, Path(max_length=100, description="the integration's name")]
_NOT_CONNECTABLE = "The integration can't connect through OAuth: `detail` says what is missing."


class ConnectUrl(BaseModel):
    url: str = Field(description="open it in a browser (signed in to the provider) to connect the integration")


async def _start(hub: Hub, integration: str, user_id: str | None) -> str | JSONResponse:
    if hub.vault is None:
        return errors.error(409, "conflict", "the vault is not set up (`tidings vault init`): tokens can't be kept")
    try:
        return await flow.start(hub.require_store(), hub.vault, hub.config, integration, user_id=user_id)
    except NotConnectable as exc:
        return errors.error(409, "conflict", str(exc))


routes = APIRouter()


@routes.post(
    "/integrations/{name}/connect",
    dependencies=[allow("integration:write")],
    response_model=ConnectUrl,
    summary="Connect through OAuth",
    description="A new authorization address for the integration (`oauth: true`): open it in a browser to connect "
    "it. Single use, valid ten minutes; the provider sends the person back to `/oauth/{name}/callback`.",
    responses=api_errors(403, 404, 409, s404="No integration of this name in the project.", s409=_NOT_CONNECTABLE),
)
async def connect(name: Name, request: Request, hub: HubDep, project: ProjectDep) -> Any:
    settings = hub.config.integrations.get(name)
    if settings is None or settings.project != project:
        raise NotFound(f"no integration {name!r} in project {project!r}")
    principal: Principal = await principal_of(request)
    url = await _start(hub, name, principal.user_id)
    return url if isinstance(url, JSONResponse) else {"url": url}


router = project_router(routes, "integrations", s404="No such project, or no integration of this name in it.")

pages = APIRouter(tags=["integrations"])


@pages.get("/oauth/{integration}/start", include_in_schema=False)
async def start(integration: Name, request: Request, hub: HubDep) -> Any:
    principal = await principal_of(request)
    settings = hub.config.integrations.get(integration)
    if settings is None or not allowed(principal, "integration:read", settings.project):
        return errors.error(404, "not found", f"no integration {integration!r}")
    await require(request, "integration:write", settings.project)
    if principal.auth_method == "session" and request.headers.get("sec-fetch-site") == "cross-site":
        # Another site sent a signed-in person here (the session cookie is SameSite=Lax): they
        # confirm with a click on this page, so a page elsewhere can't connect in their name.
        here = html.escape(f"/oauth/{integration}/start", quote=True)
        return _page(200, f"Connect {integration}?", f"Continue to connect {html.escape(integration)}: <a href=\"{here}\">"
                     "continue</a>", raw=True)
    url = await _start(hub, integration, principal.user_id)
    return url if isinstance(url, JSONResponse) else RedirectResponse(url, status_code=302)


@pages.get("/oauth/{integration}/callback", include_in_schema=False)
async def callback(integration: Name, request: Request, hub: HubDep, actor: ActorDep) -> HTMLResponse:
    params = {k: v for k, v in request.query_params.items() if k in ("state", "code", "error")}
    try:
        done = await flow.finish(hub, integration, params, actor=_anonymous(actor))
    except CallbackRefused as exc:
        return _page(400, f"{integration} was not connected", str(exc))
    except Exception as exc:  # a database down...: a page that says so, never a 500 with a trace
        log.error("oauth.callback_failed", integration=integration, error=f"{type(exc).__name__}: {redact(str(exc))}")
        return _page(503, f"{integration} was not connected", "tidings could not finish connecting: try again"
                                                               " in a moment (the server log says why)")
    who = f" as {done.account}" if done.account else ""
    more = " It was disabled: it is enabled again and its held deliveries are on their way." if done.enabled else ""
    return _page(200, f"Connected {integration}{who}", f"You can close this page.{more}")


def _anonymous(actor: Actor) -> Actor:
    """The callback's actor: nobody signed in (the flow's starter is taken from the state)."""
    return Actor("system", name="oauth callback", auth_method="oauth_state", ip=actor.ip, user_agent=actor.user_agent,
                 request_id=actor.request_id)


def _page(status: int, title: str, text: str, *, raw: bool = False) -> HTMLResponse:
    """A small page; ``text`` escaped unless ``raw`` (markup made here from escaped parts)."""
    t, body = html.escape(title), text if raw else html.escape(redact(text))
    return HTMLResponse(
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{t}</title>"
        f"<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\"><h1>{t}</h1><p>{body}</p></body></html>",
        status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                     "X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"})


def install(app: Any) -> None:
    app.include_router(router)
    app.include_router(pages)


__all__ = ["install", "pages", "router"]
