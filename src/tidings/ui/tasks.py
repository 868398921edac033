"""UI pages: the project's tasks (with their items on GitHub, Jira...) and the sync conflicts that
wait for a person to choose a side."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .client import Api, project_api
from .forms import form_api
from .pages import ProjectPath, Seen, project_url
from .render import go, page
from .viewer import Viewer, viewer

router = APIRouter(include_in_schema=False)

STATUS_FILTERS = (("open", "open (not done)"), ("todo", "to do"), ("in_progress", "in progress"), ("done", "done"))
PAGE_SIZE = 50



# -- tasks -----------------------------------------------------------------------------------------
@router.get("/ui/p/{project}/tasks")
async def tasks(request: Request, seen: Seen, status: str | None = None, q: str | None = None,
                assignee: str | None = None, label: str | None = None, before: str | None = None) -> Response:
    api, who = seen
    filters = {"status": status or None, "q": q or None, "assignee": assignee or None, "label": label or None}
    answer = await api.get(project_api(who.project, "tasks"), **filters, before=before or None, limit=PAGE_SIZE)
    data = answer.data if answer.ok else {"items": [], "next": None}
    # the list has no links: each task's own answer has them (in-process calls, a page at a time)
    details = await asyncio.gather(*(api.get(project_api(who.project, f"tasks/{quote(t['id'], safe='')}"))
                                     for t in data["items"]))
    items = [d.data if d.ok else {**t, "links": [], "conflicts": 0} for t, d in zip(data["items"], details, strict=True)]
    return page(request, "tasks.html", who, section="tasks", items=items, next=data.get("next"), filters=filters,
                problems=[] if answer.ok else answer.problems, status_filters=STATUS_FILTERS)


@router.get("/ui/p/{project}/tasks/{key}")
async def task_detail(request: Request, seen: Seen, key: str) -> Response:
    api, who = seen
    task = await api.need(project_api(who.project, f"tasks/{quote(key, safe='')}"))
    return page(request, "tasks_detail.html", who, section="tasks", task=task)


# -- sync conflicts --------------------------------------------------------------------------------
async def _conflicts_page(request: Request, api: Api, who: Viewer, *, task: str | None = None, show_all: bool = False,
                          status: int = 200, problems: list[str] | None = None) -> Response:
    answer = await api.get(project_api(who.project, "sync/conflicts"), task=task or None,
                           all="true" if show_all else None)
    items = answer.data["items"] if answer.ok else []
    titles: dict[str, str] = {}
    for task_id in list(dict.fromkeys(c["task_id"] for c in items))[:PAGE_SIZE]:
        found = await api.get(project_api(who.project, f"tasks/{quote(task_id, safe='')}"))
        if found.ok:
            titles[task_id] = found.data["title"]
    return page(request, "conflicts.html", who, status=status, section="conflicts", items=items, titles=titles,
                task=task, show_all=show_all, problems=(problems or []) + ([] if answer.ok else answer.problems))


@router.get("/ui/p/{project}/conflicts")
async def conflicts(request: Request, seen: Seen, task: str | None = None, all: bool = False) -> Response:
    api, who = seen
    return await _conflicts_page(request, api, who, task=task, show_all=all)


@router.post("/ui/p/{project}/conflicts/{conflict_id}/resolve")
async def resolve(request: Request, project: ProjectPath, conflict_id: str) -> Response:
    form, api = await form_api(request)
    choice = form.get("choose", "")
    body: dict[str, Any] = {"choose": choice} if choice in ("local", "remote") else {"choose": None}
    answer = await api.post(project_api(project, f"sync/conflicts/{quote(conflict_id, safe='')}/resolve"), json=body)
    if not answer.ok:
        return await _conflicts_page(request, api, await viewer(api, project), status=answer.status,
                                     problems=answer.problems)
    done = answer.data
    side = "tidings' value" if choice == "local" else f"{done['integration']}'s value"
    return go(request, project_url(project, "conflicts"),
              flash=f"Conflict on {done.get('task') or 'the task'} {done['field']} resolved: kept {side}")
