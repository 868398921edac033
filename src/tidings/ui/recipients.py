"""UI pages: a project's recipients (the people messages are addressed to as ``@name``) and groups
(``/api/v1/projects/{project}/recipients``, ``.../recipient-groups``), and a recipient's
preferences per topic × channel (``.../recipients/{name}/preferences``), a required topic locked
on, and quiet hours (their own, else the project's: ``.../quiet-hours``). Like ``tidings recipient
...``: owners change anything; a person their own preferences, quiet hours and time zone."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from .client import Answer, Api, project_api
from .forms import form_api
from .pages import ProjectPath, Seen, project_url, seen
from .quiet_hours import DAY_NAMES, POLICIES, PRIORITIES, QuietForm, Row, form_of, read_form, shown, zone_of
from .render import go, page
from .tokens import refused
from .viewer import Viewer

router = APIRouter(include_in_schema=False)
Name = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$")]
CLEARABLE = ("email", "slack_user", "user")
"""Fields an empty input clears (``null``); ``display_name`` and ``timezone`` are kept when left empty."""


def _names(text: str) -> list[str]:
    """Members typed as ``ann, bob`` or one per line."""
    return [n.lstrip("@") for n in re.split(r"[\s,]+", text) if n]


def _stale(answer: Answer) -> list[str]:
    if answer.status == 412:
        return ["Someone changed this recipient meanwhile: reload the page to see their change, then make yours again."]
    return refused(answer)


# -- the list --------------------------------------------------------------------------------------
async def _list(request: Request, api: Api, who: Viewer, *, status: int = 200, problems: list[str] | None = None,
                where: str = "", form: dict[str, Any] | None = None) -> Response:
    base = project_api(who.project)
    items = (await api.need(f"{base}/recipients"))["items"]
    groups = (await api.need(f"{base}/recipient-groups"))["items"]
    project_quiet = await _project_quiet(api, who.project)
    return page(request, "recipients.html", who, status=status, section="recipients", items=items, groups=groups,
                problems=problems or [], where=where, form=form or {}, project_quiet=shown(project_quiet, None),
                project_zone=(project_quiet or {}).get("timezone"))


async def _project_quiet(api: Api, project: str) -> dict[str, Any] | None:
    """The project's quiet hours (``None`` when it has none, or the API doesn't say)."""
    answer = await api.get(project_api(project, "quiet-hours"))
    return answer.data.get("quiet_hours") if answer.ok and isinstance(answer.data, dict) else None


@router.get("/ui/p/{project}/recipients")
async def recipients(request: Request, seen: Seen) -> Response:
    api, who = seen
    return await _list(request, api, who)


async def _list_refused(request: Request, project: str, api: Api, answer: Answer, where: str,
                        form: dict[str, Any]) -> Response:
    problems = refused(answer)
    _, who = await seen(request, project)
    return await _list(request, api, who, status=answer.status, problems=problems, where=where, form=form)


def _fields(form: Any, *, creating: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key in ("display_name", "email", "slack_user", "timezone", "user"):
        value = form.get(key, "").strip()
        if value:
            body[key] = value
        elif key in CLEARABLE and not creating:
            body[key] = None
    teams = form.get("teams", "").strip()
    if teams:
        body["teams"] = teams
    elif form.get("teams_remove") == "on":
        body["teams"] = None
    return body


@router.post("/ui/p/{project}/recipients")
async def add(request: Request, project: ProjectPath) -> Response:
    form, api = await form_api(request)
    body = {"name": form.get("name", "").strip().lstrip("@"), **_fields(form, creating=True)}
    answer = await api.post(project_api(project, "recipients"), json=body)
    if not answer.ok:
        return await _list_refused(request, project, api, answer, "recipient", {**body, "teams": ""})
    name = answer.data["name"]
    return go(request, project_url(project, f"recipients/{name}"), flash=f"Recipient {name} added")


@router.post("/ui/p/{project}/recipient-groups")
async def add_group(request: Request, project: ProjectPath) -> Response:
    form, api = await form_api(request)
    body = {"name": form.get("group_name", "").strip().lstrip("@"), "members": _names(form.get("members", "")),
            "description": form.get("description", "").strip() or None}
    answer = await api.post(project_api(project, "recipient-groups"), json=body)
    if not answer.ok:
        return await _list_refused(request, project, api, answer, "group",
                                   {"group_name": body["name"], "members": form.get("members", ""),
                                    "description": body["description"]})
    return go(request, project_url(project, "recipients"), flash=f"Group {answer.data['name']} created")


@router.post("/ui/p/{project}/recipient-groups/{name}/members")
async def group_members(request: Request, project: ProjectPath, name: Name) -> Response:
    form, api = await form_api(request)
    answer = await api.put(project_api(project, f"recipient-groups/{name}/members"),
                           json={"members": _names(form.get("members", ""))})
    if not answer.ok:
        return await _list_refused(request, project, api, answer, "", {})
    return go(request, project_url(project, "recipients"), flash=f"Members of {name} saved")


@router.post("/ui/p/{project}/recipient-groups/{name}/delete")
async def delete_group(request: Request, project: ProjectPath, name: Name) -> Response:
    _, api = await form_api(request)
    answer = await api.delete(project_api(project, f"recipient-groups/{name}"))
    if not answer.ok:
        return await _list_refused(request, project, api, answer, "", {})
    return go(request, project_url(project, "recipients"), flash=f"Group {name} deleted")


# -- one recipient ---------------------------------------------------------------------------------
async def _one(request: Request, api: Api, who: Viewer, name: str, *, status: int = 200,
               problems: list[str] | None = None, where: str = "", form: dict[str, Any] | None = None,
               quiet: QuietForm | None = None) -> Response:
    base = project_api(who.project)
    recipient = await api.need(f"{base}/recipients/{name}")
    prefs = (await api.need(f"{base}/recipients/{name}/preferences"))["items"]
    topics = (await api.need(f"{base}/topics"))["items"]
    integrations = await api.get(f"{base}/integrations")
    channels = sorted(i["name"] for i in _listed(integrations.data)) if integrations.ok else []
    for extra in sorted({p["channel"] for p in prefs if p["channel"]} - set(channels)):
        channels.append(extra)
    required = {t["name"] for t in topics if t["required"]}
    rows = [""] + [t["name"] for t in topics] + sorted({p["topic"] for p in prefs if p["topic"]} - {t["name"] for t in topics})
    chosen = {(p["topic"], p["channel"]): p["enabled"] for p in prefs}
    may_own = who.can("recipient:write") or (recipient.get("user") is not None and recipient["user"] == who.email)
    project_quiet = await _project_quiet(api, who.project)
    zone = zone_of(recipient, project_quiet)
    own = recipient["quiet_hours"]
    return page(request, "recipient.html", who, status=status, section="recipients", r=recipient, prefs=prefs,
                topics=topics, required=required, rows=rows, channels=channels, chosen=chosen, may_own=may_own,
                problems=problems or [], where=where, form=form or {}, base=project_url(who.project, f"recipients/{name}"),
                quiet=shown(own, zone) if own else None, project_quiet=None if own else shown(project_quiet, zone),
                qform=quiet or form_of(own, recipient["timezone"]), days=DAY_NAMES, priorities=PRIORITIES,
                policies=POLICIES)


def _listed(data: Any) -> list[dict[str, Any]]:
    """The integrations list, whether it answers a list or ``{"items": [...]}``."""
    items = data.get("items", []) if isinstance(data, dict) else data or []
    return [i for i in items if isinstance(i, dict) and "name" in i]


@router.get("/ui/p/{project}/recipients/{name}")
async def recipient(request: Request, seen: Seen, name: Name) -> Response:
    api, who = seen
    return await _one(request, api, who, name)


async def _one_refused(request: Request, project: str, name: str, api: Api, problems: list[str], status: int,
                       where: str, form: dict[str, Any] | None = None, quiet: QuietForm | None = None) -> Response:
    _, who = await seen(request, project)
    return await _one(request, api, who, name, status=status, problems=problems, where=where, form=form, quiet=quiet)


def _etag(form: Any) -> dict[str, str]:
    version = form.get("version", "")
    return {"If-Match": f'"{version}"' if version.isdigit() else "*"}


@router.post("/ui/p/{project}/recipients/{name}")
async def edit(request: Request, project: ProjectPath, name: Name) -> Response:
    form, api = await form_api(request)
    body = _fields(form, creating=False)
    answer = await api.patch(project_api(project, f"recipients/{name}"), json=body, headers=_etag(form))
    if not answer.ok:
        return await _one_refused(request, project, name, api, _stale(answer), answer.status, "edit",
                                  {k: v for k, v in body.items() if k != "teams"})
    return go(request, project_url(project, f"recipients/{name}"), flash=f"{name} saved")


@router.post("/ui/p/{project}/recipients/{name}/delete")
async def delete(request: Request, project: ProjectPath, name: Name) -> Response:
    form, api = await form_api(request)
    answer = await api.delete(project_api(project, f"recipients/{name}"), headers=_etag(form))
    if not answer.ok:
        return await _one_refused(request, project, name, api, _stale(answer), answer.status, "")
    return go(request, project_url(project, "recipients"), flash=f"Recipient {name} deleted")


@router.post("/ui/p/{project}/recipients/{name}/preferences")
async def set_preference(request: Request, project: ProjectPath, name: Name) -> Response:
    form, api = await form_api(request)
    topic, channel = form.get("topic", ""), form.get("channel", "")
    path = project_api(project, f"recipients/{name}/preferences")
    state = form.get("state", "")
    if state == "unset":
        answer = await api.delete(path, params={"topic": topic, "channel": channel})
    else:
        answer = await api.put(path, json={"topic": topic, "channel": channel, "enabled": state == "on"})
    if not answer.ok:
        return await _one_refused(request, project, name, api, refused(answer), answer.status, "prefs",
                                  {"topic": topic, "channel": channel, "state": state})
    what = f"{topic or 'any topic'} on {channel or 'any channel'}"
    flash = f"{what}: back to the default" if state == "unset" else f"{what}: {'on' if state == 'on' else 'off'}"
    return go(request, project_url(project, f"recipients/{name}"), flash=flash)


@router.post("/ui/p/{project}/recipients/{name}/quiet-hours")
async def set_quiet_hours(request: Request, project: ProjectPath, name: Name) -> Response:
    """Save the form's quiet hours (``action=save``), or go back to the project's (``clear``), through
    the API; ``add`` shows one more empty row (nothing is saved)."""
    form, api = await form_api(request)
    quiet, action = read_form(form), form.get("action", "save")
    if action == "add":
        quiet.rows.append(Row())
        return await _one_refused(request, project, name, api, [], 200, "quiet", quiet=quiet)
    body: dict[str, Any] = {"quiet_hours": None}
    if action != "clear":
        body = {"quiet_hours": quiet.body(), **({"timezone": quiet.zone} if quiet.zone else {})}
    answer = await api.patch(project_api(project, f"recipients/{name}"), json=body, headers=_etag(form))
    if answer.status == 412:  # the form shows what is stored now
        return await _one_refused(request, project, name, api, [
            f"Someone changed {name} meanwhile: below are the quiet hours as they are now; make your change again."],
            412, "quiet")
    if not answer.ok:
        quiet.place(refused(answer))
        return await _one_refused(request, project, name, api, quiet.problems["other"], answer.status, "quiet",
                                  quiet=quiet.with_empty_row())
    flash = f"{name} has the project's quiet hours again" if action == "clear" else f"Quiet hours of {name} saved"
    return go(request, project_url(project, f"recipients/{name}"), flash=flash)
