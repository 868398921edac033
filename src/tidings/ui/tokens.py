"""UI pages: the signed-in person's API tokens (``/api/v1/tokens``): create one (shown once, with a
copy button), revoke one. Also what the pages outside a project share: who is looking, and a
secret shown once after a redirect."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from ..server.auth import DEFAULT_PROJECT
from .client import Answer, Api
from .forms import form_api
from .render import go, page
from .viewer import Viewer, viewer

router = APIRouter(include_in_schema=False)
ONCE_COOKIE = "tidings_once"
EXPIRIES = [("", "Never (until revoked)"), ("1d", "1 day"), ("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days"),
            ("365d", "1 year")]


async def seen_site(request: Request) -> tuple[Api, Viewer]:
    """The dependency of a page outside a project: the menu's project is ``default`` when the
    person may see it, else their first."""
    api = Api(request)
    who = await viewer(api, DEFAULT_PROJECT)
    if DEFAULT_PROJECT not in who.projects and who.projects:
        who = dataclasses.replace(who, project=who.projects[0])
    return api, who


SeenSite = Annotated[tuple[Api, Viewer], Depends(seen_site)]


def keep_once(request: Request, response: Response, what: str, secret: str) -> Response:
    """Keep ``secret`` for the next page this browser opens under ``/ui`` (and no longer): a
    reload, the back button or another tab doesn't show it again. An HttpOnly cookie of a minute."""
    response.set_cookie(ONCE_COOKIE, quote(f"{what}\n{secret}"), max_age=60, path="/ui", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


def take_once(request: Request, what: str) -> str | None:
    """The secret kept for this page, or None (wrong page, none, or shown already)."""
    raw = unquote(request.cookies.get(ONCE_COOKIE) or "")
    kind, _, secret = raw.partition("\n")
    return secret if kind == what and secret else None


def shown(response: Response, request: Request) -> Response:
    """Forget the kept secret once a page showed it."""
    if request.cookies.get(ONCE_COOKIE):
        response.delete_cookie(ONCE_COOKIE, path="/ui")
    return response


def refused(answer: Answer) -> list[str]:
    """An error answer's lines; a lapsed session sends the person to sign in."""
    return answer.problems


async def _page(request: Request, api: Api, who: Viewer, *, status: int = 200, problems: list[str] | None = None,
                form: dict[str, Any] | None = None) -> Response:
    items = await api.need("/api/v1/tokens")
    new = take_once(request, "token")
    response = page(request, "tokens.html", who, status=status, section="tokens",
                    items=list(reversed(items)), new_token=new, problems=problems or [], form=form or {},
                    expiries=EXPIRIES, now=time.time())
    return shown(response, request) if new else response


@router.get("/ui/tokens")
async def tokens(request: Request, seen: SeenSite) -> Response:
    api, who = seen
    return await _page(request, api, who)


@router.post("/ui/tokens")
async def create(request: Request) -> Response:
    form, api = await form_api(request)
    body = {"name": form.get("name", "").strip(), "project": form.get("project") or None,
            "expires": form.get("expires") or None}
    answer = await api.post("/api/v1/tokens", json=body)
    if not answer.ok:
        problems = refused(answer)
        _, who = await seen_site(request)
        return await _page(request, api, who, status=answer.status, problems=problems, form=body)
    return keep_once(request, go(request, "/ui/tokens", flash=f"Token {answer.data['name']} created"), "token",
                     answer.data["token"])


@router.post("/ui/tokens/{token_id}/revoke")
async def revoke(request: Request, token_id: Annotated[str, Path(max_length=64)]) -> Response:
    _, api = await form_api(request)
    answer = await api.delete(f"/api/v1/tokens/{quote(token_id, safe='')}")
    if not answer.ok:
        problems = refused(answer)
        _, who = await seen_site(request)
        return await _page(request, api, who, status=answer.status, problems=problems)
    return go(request, "/ui/tokens", flash=f"Token {answer.data['name']} revoked")
