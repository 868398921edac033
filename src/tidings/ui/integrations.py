"""UI pages: a project's integrations — the list with health and figures, creating one from its
kind's settings schema, its page (settings, test, sync, enable/disable, delete) and its logs
(deliveries, inbound events with replay, sync runs). Everything through ``/api/v1``."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from . import schema_form
from .client import Api, ApiError, project_api
from .forms import form_api
from .pages import ProjectPath, Seen, project_url
from .render import go, page
from .viewer import Viewer, viewer

router = APIRouter(include_in_schema=False)
NamePath = Annotated[str, Path(max_length=64)]
TABS = (("settings", "Settings"), ("deliveries", "Deliveries"), ("events", "Inbound events"), ("sync", "Sync runs"))
CONFLICT = "Changed by someone else meanwhile: reload the page to see their change, then make yours again."
"""What a write refused with 412 says (the pages add a reload link)."""
_RECEIVING = re.compile(r"receiv|/hooks|incoming requests|webhook's secret|requests must|\bsends\b|basic_auth", re.I)
"""The secret settings a receiver checks requests with, told by their descriptions."""
UNFINISHED = ("pending", "retrying", "held", "sending")
"""The deliveries a delete ends (the API's words: "not finished")."""
_PENDING = re.compile(r"has (\d+) deliveries not finished")



def _page_url(project: str, name: str, rest: str = "") -> str:
    return project_url(project, f"integrations/{quote(name, safe='')}{rest}")


def health_of(item: dict[str, Any]) -> str:
    """What the list and the page show: the API's health, or "needs re-auth" for a connection that does."""
    if item.get("connection") == "needs_reauth":
        return "needs re-auth"
    return str(item.get("health") or "ok").replace("-", " ")


async def _kinds(api: Api) -> list[dict[str, Any]]:
    data = await api.need("/api/v1/integrations/kinds")
    return list(data["items"])


async def _listed(api: Api, project: str) -> tuple[list[dict[str, Any]], str]:
    """The project's integrations (health, figures, settings) and the current revision's ETag."""
    answer = await api.get(f"{project_api(project)}/integrations")
    if not answer.ok:
        raise ApiError(answer)
    return list(answer.data), answer.headers.get("etag", "")


# -- the list ----------------------------------------------------------------------------------------
@router.get("/ui/p/{project}/integrations")
async def integrations(request: Request, seen: Seen) -> Response:
    api, who = seen
    items, _ = await _listed(api, who.project)
    base = project_api(who.project)

    async def last_delivery(name: str) -> dict[str, Any] | None:
        answer = await api.get(f"{base}/deliveries", integration=name, limit=1)
        return answer.data["items"][0] if answer.ok and answer.data["items"] else None

    lasts = await asyncio.gather(*(last_delivery(i["name"]) if i.get("sends") else _none() for i in items))
    runs = await api.get(f"{base}/sync/runs", limit=200)
    last_sync: dict[str, dict[str, Any]] = {}
    for run in runs.data["items"] if runs.ok else []:
        last_sync.setdefault(run["integration"], run)
    rows = [{**item, "shown_health": health_of(item), "last_delivery": last,
             "last_sync": last_sync.get(item["name"])} for item, last in zip(items, lasts, strict=True)]
    return page(request, "integrations.html", who, section="integrations", rows=rows, sync_readable=runs.ok)


async def _none() -> None:
    return None


# -- creating ----------------------------------------------------------------------------------------
@router.get("/ui/p/{project}/new-integration")
async def new(request: Request, seen: Seen, kind: str | None = None) -> Response:
    api, who = seen
    kinds = await _kinds(api)
    _, tag = await _listed(api, who.project)
    chosen = next((k for k in kinds if k["kind"] == kind), None)
    fs = schema_form.fields(chosen["schema"], schema_form.common_fields(kinds)) if chosen else []
    return page(request, "integrations_new.html", who, section="integrations", kinds=kinds, chosen=chosen,
                fields=fs, etag=tag, name="", problems=[], name_problem=None)


@router.post("/ui/p/{project}/new-integration")
async def create(request: Request, project: ProjectPath) -> Response:
    form, api = await form_api(request)
    who = await viewer(api, project)
    kinds = await _kinds(api)
    chosen = next((k for k in kinds if k["kind"] == form.get("kind")), None)
    if chosen is None:
        return go(request, project_url(project, "new-integration"))
    common = schema_form.common_fields(kinds)
    fs = schema_form.fields(chosen["schema"], common, posted=form)
    settings, local = schema_form.new_settings(fs, form)
    name = form.get("name", "").strip()
    etag = form.get("etag", "")
    problems: list[str] = []
    conflict = False
    if not local:
        answer = await api.post(f"{project_api(project)}/integrations", json={"name": name, "kind": chosen["kind"],
                                                                         "settings": settings},
                                headers={"If-Match": etag} if etag else None)
        if answer.ok:
            return go(request, _page_url(project, name), flash=f"Integration {name} created")
        if answer.status == 412:
            conflict = True
            etag = answer.headers.get("etag", etag)
        else:
            by_field, problems = schema_form.place(answer.problems, fs)
            local.update(by_field)
    for f in schema_form.walk(fs):
        f.problem = local.get(f.name)
    return page(request, "integrations_new.html", who, status=422, section="integrations", kinds=kinds,
                chosen=chosen, fields=fs, etag=etag, name=name, problems=problems, name_problem=local.get("name"),
                conflict=conflict)


# -- one integration ---------------------------------------------------------------------------------
async def _detail(request: Request, api: Api, who: Viewer, name: str, *, status: int = 200, tab: str = "settings",
                  posted: Any = None, field_problems: dict[str, str] | None = None, problems: list[str] | None = None,
                  etag: str | None = None, result: dict[str, Any] | None = None,
                  conflict: bool = False) -> Response:
    project = who.project
    base = project_api(project)
    answer = await api.get(f"{base}/integrations/{quote(name, safe='')}")
    if not answer.ok:
        raise ApiError(answer)
    config = answer.data
    items, _ = await _listed(api, project)
    item = next((i for i in items if i["name"] == name), {"name": name, "kind": config["kind"], "health": None})
    kinds = await _kinds(api)
    kind = next((k for k in kinds if k["kind"] == config["kind"]), None)
    common = schema_form.common_fields(kinds)
    fs = schema_form.fields(kind["schema"], common, config["settings"], posted) if kind else []
    for f in schema_form.walk(fs):
        f.problem = (field_problems or {}).get(f.name)
    tab = tab if tab in dict(TABS) else "settings"
    logs: dict[str, Any] = {}
    before = request.query_params.get("before")  # ui.pager's "Older" link
    if tab == "deliveries":
        logs = await _log(api, f"{base}/deliveries", integration=name, limit=50, before=before)
    elif tab == "events":
        logs = await _log(api, f"{base}/events", integration=name, limit=50, before=before)
    elif tab == "sync":
        logs = await _log(api, f"{base}/sync/runs", integration=name, limit=20, before=before)
        if logs.get("items"):
            details = await asyncio.gather(*(api.get(f"{base}/sync/runs/{quote(r['id'], safe='')}")
                                             for r in logs["items"] if r.get("errors")))
            problems_of = {d.data["id"]: d.data.get("problems", []) for d in details if d.ok}
            for run in logs["items"]:
                run["problems"] = problems_of.get(run["id"], [])
    # server.public_url's (the API gives it): behind a proxy, the address providers reach is not this page's
    hook_url = item.get("webhook_url") or f"{str(request.base_url).rstrip('/')}/hooks/{quote(name, safe='')}"
    hook = hook_url if item.get("receives") else None
    secrets = [f for f in fs if f.secret and _RECEIVING.search(f.help)]
    return page(request, "integrations_detail.html", who, status=status, section="integrations", name=name,
                config=config, item={**item, "shown_health": health_of(item)}, public_hook=bool(item.get("webhook_url")),
                kind=kind, fields=fs, tab=tab,
                tabs=TABS, logs=logs, etag=etag or answer.headers.get("etag", ""), problems=problems or [],
                result=result, hook=hook, hook_url=hook_url, hook_secrets=secrets,
                syncs=bool(config["settings"].get("sync")),
                conflict=conflict, here=_page_url(project, name),
                running=any(r.get("status") == "running" for r in logs.get("items", [])) if tab == "sync" else False)


async def _log(api: Api, path: str, **params: Any) -> dict[str, Any]:
    answer = await api.get(path, **params)
    if answer.ok:
        return {"items": answer.data["items"], "next": answer.data.get("next")}
    return {"items": [], "next": None, "refused": answer.problem}


@router.get("/ui/p/{project}/integrations/{name}")
async def integration(request: Request, seen: Seen, name: NamePath, tab: str = "settings") -> Response:
    api, who = seen
    return await _detail(request, api, who, name, tab=tab)


@router.post("/ui/p/{project}/integrations/{name}")
async def save(request: Request, project: ProjectPath, name: NamePath) -> Response:
    form, api = await form_api(request)
    who = await viewer(api, project)
    path = f"{project_api(project)}/integrations/{quote(name, safe='')}"
    current = await api.get(path)
    if not current.ok:
        raise ApiError(current)
    kinds = await _kinds(api)
    kind = next((k for k in kinds if k["kind"] == current.data["kind"]), None)
    if kind is None:
        raise ApiError(current)
    fs = schema_form.fields(kind["schema"], schema_form.common_fields(kinds), current.data["settings"])
    patch, local = schema_form.merge_patch(fs, form, current.data["settings"])
    etag = form.get("etag", "")
    if local:
        return await _detail(request, api, who, name, status=422, posted=form, field_problems=local, etag=etag)
    answer = await api.patch(path, json=patch, headers={"If-Match": etag} if etag else None)
    if answer.ok:
        words = "Saved" if answer.data.get("changed") else "Nothing changed"
        return go(request, _page_url(project, name), flash=f"{words}: {name}")
    if answer.status == 412:
        return await _detail(request, api, who, name, status=412, posted=form, conflict=True, etag=etag)
    by_field, rest = schema_form.place(answer.problems, fs, extra=())
    return await _detail(request, api, who, name, status=answer.status, posted=form, field_problems=by_field,
                         problems=rest, etag=etag)


@router.post("/ui/p/{project}/integrations/{name}/test")
async def test(request: Request, project: ProjectPath, name: NamePath) -> Response:
    _, api = await form_api(request)
    who = await viewer(api, project)
    answer = await api.post(f"{project_api(project)}/integrations/{quote(name, safe='')}/test")
    result = answer.data if answer.ok else {"ok": False, "status": "refused", "error": answer.problem}
    if request.headers.get("hx-request") and request.query_params.get("part") == "test_result":
        return page(request, "integrations_detail.html", who, name=name, result=result)
    return await _detail(request, api, who, name, result=result)


async def _act(request: Request, project: str, name: str, method: str, rest: str, done: str,
               json: Any = None, back: str = "") -> Response:
    _, api = await form_api(request)
    answer = await api.call(method, f"{project_api(project)}{rest}", json=json)
    if answer.ok:
        return go(request, _page_url(project, name, back), flash=done)
    who = await viewer(api, project)
    tab = back.removeprefix("?tab=") if back else "settings"
    return await _detail(request, api, who, name, status=answer.status, problems=answer.problems, tab=tab)


@router.post("/ui/p/{project}/integrations/{name}/enable")
async def enable(request: Request, project: ProjectPath, name: NamePath) -> Response:
    return await _act(request, project, name, "POST", f"/integrations/{quote(name, safe='')}/enable",
                      f"{name} enabled: held deliveries go out")


@router.post("/ui/p/{project}/integrations/{name}/disable")
async def disable(request: Request, project: ProjectPath, name: NamePath) -> Response:
    return await _act(request, project, name, "POST", f"/integrations/{quote(name, safe='')}/disable",
                      f"{name} disabled: its deliveries are held until it is enabled")


@router.post("/ui/p/{project}/integrations/{name}/sync")
async def sync_now(request: Request, project: ProjectPath, name: NamePath) -> Response:
    return await _act(request, project, name, "POST", "/sync", f"Sync of {name} started", json={"integration": name},
                      back="?tab=sync")


@router.post("/ui/p/{project}/integrations/{name}/events/{event_id}/replay")
async def replay(request: Request, project: ProjectPath, name: NamePath,
                 event_id: Annotated[str, Path(max_length=64)]) -> Response:
    return await _act(request, project, name, "POST", f"/events/{quote(event_id, safe='')}/replay",
                      f"Event {event_id[:8]} replayed", back="?tab=events")


@router.get("/ui/p/{project}/integrations/{name}/delete")
async def delete_page(request: Request, seen: Seen, name: NamePath) -> Response:
    api, who = seen
    return await _delete_page(request, api, who, name)


async def _delete_page(request: Request, api: Api, who: Viewer, name: str, status: int = 200,
                       refusal: dict[str, Any] | None = None) -> Response:
    base = project_api(who.project)
    items, tag = await _listed(api, who.project)
    item = next((i for i in items if i["name"] == name), None)
    if item is None:
        raise ApiError(await api.get(f"{base}/integrations/{quote(name, safe='')}"))
    waiting = 0
    if item.get("sends"):
        counts = await asyncio.gather(*(api.get(f"{base}/deliveries", integration=name, status=status, limit=500)
                                        for status in UNFINISHED))
        waiting = sum(len(a.data["items"]) for a in counts if a.ok)
    routes = await api.get(f"{base}/routes")
    senders = [r.get("name") or f"route {r.get('index')}" for r in (routes.data.get("items", []) if routes.ok else [])
               if name in (r.get("to") or [])]
    return page(request, "integrations_delete.html", who, status=status, section="integrations", name=name,
                item=item, waiting=waiting, routes=senders, etag=tag, refusal=refusal)


@router.post("/ui/p/{project}/integrations/{name}/delete")
async def delete(request: Request, project: ProjectPath, name: NamePath) -> Response:
    form, api = await form_api(request)
    force = form.get("force") == "true"
    answer = await api.delete(f"{project_api(project)}/integrations/{quote(name, safe='')}",
                              params={"force": "true"} if force else None,
                              headers={"If-Match": form["etag"]} if form.get("etag") else None)
    if answer.ok:
        killed = answer.data.get("killed") or 0
        extra = f"; {killed} unfinished deliveries ended as dead" if killed else ""
        return go(request, project_url(project, "integrations"), flash=f"Integration {name} deleted{extra}")
    who = await viewer(api, project)
    found = _PENDING.search(answer.problem)
    refusal = {"status": answer.status, "lines": [CONFLICT] if answer.status == 412 else answer.problems,
               "pending": int(found.group(1)) if answer.status == 409 and found else None}
    return await _delete_page(request, api, who, name, status=answer.status, refusal=refusal)
