"""UI pages: a project's OAuth connections (``/api/v1/projects/{project}/connections``): health,
account, scopes, expiry; *Connect* / *Reconnect* through ``/oauth/{integration}/start`` (the
provider's consent page), *Refresh* now and *Disconnect*."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from .client import Api, project_api
from .forms import form_api
from .pages import ProjectPath, Seen, project_url, seen
from .render import go, page
from .tokens import refused
from .viewer import Viewer

router = APIRouter(include_in_schema=False)
Name = Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]


def _local(url: str) -> str:
    """``start_url`` as a path on this server: the page works whatever ``public_url`` says."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def _page(request: Request, api: Api, who: Viewer, *, status: int = 200, problems: list[str] | None = None) -> Response:
    items = await api.need(project_api(who.project, "connections"))
    for item in items:
        item["start_path"] = _local(item["start_url"])
    return page(request, "connections.html", who, status=status, section="connections", items=items,
                problems=problems or [])


@router.get("/ui/p/{project}/connections")
async def connections(request: Request, seen: Seen) -> Response:
    api, who = seen
    return await _page(request, api, who)


@router.post("/ui/p/{project}/connections/{name}/{act}")
async def change(request: Request, project: ProjectPath, name: Name,
                 act: Annotated[str, Path(pattern="^(refresh|disconnect)$")]) -> Response:
    _, api = await form_api(request)
    path = project_api(project, f"connections/{name}")
    answer = await (api.post(f"{path}/refresh") if act == "refresh" else api.delete(path))
    if not answer.ok:
        problems = refused(answer)
        _, who = await seen(request, project)
        return await _page(request, api, who, status=answer.status, problems=problems)
    if act == "disconnect":
        flash = f"{name} disconnected"
    else:
        outcome = answer.data["outcome"]
        flash = {"refreshed": f"{name} refreshed", "not_due": f"{name}: no refresh needed yet",
                 "refused": f"{name}: the provider refused the refresh: connect it again",
                 "failed": f"{name}: the refresh failed for now ({answer.data.get('last_error') or 'no answer'})"
                 }.get(outcome, f"{name}: {outcome}")
    return go(request, project_url(project, "connections"), flash=flash)
