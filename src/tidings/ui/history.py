"""UI pages: configuration history — the revisions that changed the project, what a revision
changed (against the one before it, or what changed since, up to the current one), and rollback.

Comparing and rolling back are the API's site-admin routes (``/config/diff``, ``/config/rollback``):
the whole configuration, every project's. Others see the list only."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from ..accounts.principal import SITE
from .client import Api, ApiError, project_api
from .forms import form_api
from .pages import ProjectPath, Seen, project_url
from .render import go, page
from .viewer import Viewer, viewer

router = APIRouter(include_in_schema=False)
Number = Annotated[int, Path(ge=1, le=2**62)]
MARKS = {"added": "+", "removed": "−", "changed": "~", "moved": "↕"}


@router.get("/ui/p/{project}/config")
async def revisions(request: Request, seen: Seen, before: str | None = None) -> Response:
    api, who = seen
    data = await api.need(project_api(quote(who.project, safe=''), "config/revisions"), before=before or None,
                          limit=50)
    return page(request, "config.html", who, section="config", items=data["items"], next=data.get("next"),
                admin=who.can(SITE))


async def _revision_page(request: Request, api: Api, who: Viewer, number: int, against: str, *,
                         status: int = 200, problems: list[str] | None = None, stale: bool = False) -> Response:
    revision = await api.need(f"/api/v1/config/revisions/{number}")
    current = against == "current" and not revision["current"]
    diff = await api.call("GET", "/api/v1/config/diff",
                          params={"from": number, "to": None} if current else {"from": number - 1, "to": number})
    if not diff.ok:
        raise ApiError(diff)
    return page(request, "config_revision.html", who, status=status, section="config", revision=revision,
                diff=diff.data, against="current" if current else "previous", etag=diff.headers.get("etag", ""),
                problems=problems or [], stale=stale, marks=MARKS)


@router.get("/ui/p/{project}/config/{number}")
async def revision(request: Request, seen: Seen, number: Number, against: str = "previous") -> Response:
    api, who = seen
    return await _revision_page(request, api, who, number, against)


@router.post("/ui/p/{project}/config/rollback")
async def rollback(request: Request, project: ProjectPath) -> Response:
    form, api = await form_api(request)
    try:
        to = int(form.get("to", ""))
        shown = int(form.get("from", "") or to)
    except ValueError:
        to, shown = 0, 1
    body: dict[str, Any] = {"to": to}
    if (form.get("comment") or "").strip():
        body["comment"] = form["comment"].strip()
    answer = await api.post("/api/v1/config/rollback", json=body, headers={"If-Match": form.get("etag") or ""})
    if not answer.ok:
        who = await viewer(api, project)
        stale = answer.status == 412
        problems = (["Someone changed the configuration meanwhile: nothing was rolled back. Reload the page to see "
                     "the current revision, then decide again."] if stale else answer.problems)
        return await _revision_page(request, api, who, max(shown, 1), form.get("against", "previous"),
                                    status=answer.status, problems=problems, stale=stale)
    made = answer.data
    note = (f"Rolled back to revision {to}: the configuration is now revision {made['revision']}" if made["changed"]
            else f"Revision {to} is the configuration already: nothing changed")
    return go(request, project_url(project, "config"), flash=note)
