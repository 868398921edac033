"""UI pages: a project's members and their roles (``/api/v1/projects/{project}/members``), and for
site admins the people of the server (``/api/v1/users``: create, disable, enable) and its
projects (``POST /api/v1/projects``)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from ..accounts.roles import ROLES
from .client import Api, ApiError, project_api
from .forms import form_api
from .pages import ProjectPath, Seen, project_url, seen
from .render import go, page
from .tokens import SeenSite, keep_once, refused, seen_site, shown, take_once
from .viewer import Viewer

router = APIRouter(include_in_schema=False)
UserPath = Annotated[str, Path(min_length=1, max_length=320)]


def _user(user: str) -> str:
    return quote(user, safe="@")


# -- members ---------------------------------------------------------------------------------------
async def _members(request: Request, api: Api, who: Viewer, *, status: int = 200, problems: list[str] | None = None,
                   form: dict[str, Any] | None = None) -> Response:
    items = await api.need(project_api(who.project, "members"))
    return page(request, "members.html", who, status=status, section="members", items=items, roles=list(ROLES),
                problems=problems or [], form=form or {})


@router.get("/ui/p/{project}/members")
async def members(request: Request, seen: Seen) -> Response:
    api, who = seen
    return await _members(request, api, who)


async def _member_change(request: Request, project: str, user: str, role: str | None, done: str) -> Response:
    form, api = await form_api(request)
    path = project_api(project, f"members/{_user(user)}")
    answer = await (api.put(path, json={"role": role}) if role is not None else api.delete(path))
    if not answer.ok:
        problems = refused(answer)
        _, who = await seen(request, project)
        return await _members(request, api, who, status=answer.status, problems=problems,
                              form={"email": user, "role": role} if done == "added" else {})
    return go(request, project_url(project, "members"), flash=f"{answer.data['user']} {done}")


@router.post("/ui/p/{project}/members")
async def add_member(request: Request, project: ProjectPath) -> Response:
    form, _ = await form_api(request)
    return await _member_change(request, project, form.get("email", "").strip(), form.get("role", ""), "added")


@router.post("/ui/p/{project}/members/{user}/role")
async def change_role(request: Request, project: ProjectPath, user: UserPath) -> Response:
    form, _ = await form_api(request)
    role = form.get("role", "")
    return await _member_change(request, project, user, role, f"is now {role}")


@router.post("/ui/p/{project}/members/{user}/remove")
async def remove_member(request: Request, project: ProjectPath, user: UserPath) -> Response:
    return await _member_change(request, project, user, None, "removed from the project")


# -- people (site admins) --------------------------------------------------------------------------
async def _people(request: Request, api: Api, who: Viewer, *, status: int = 200, problems: list[str] | None = None,
                  form: dict[str, Any] | None = None, where: str = "") -> Response:
    users = await api.need("/api/v1/users")
    projects = await api.need("/api/v1/projects")
    password = take_once(request, "password")
    created = password.split("\n", 1) if password else None
    response = page(request, "people.html", who, status=status, section="people", users=users, projects=projects,
                    problems=problems or [], where=where, form=form or {},
                    new_password=({"email": created[0], "password": created[1]} if created and len(created) == 2
                                  else None))
    return shown(response, request) if password else response


@router.get("/ui/people")
async def people(request: Request, seen: SeenSite) -> Response:
    api, who = seen
    return await _people(request, api, who)


async def _people_refused(request: Request, api: Api, answer: Any, where: str, form: dict[str, Any]) -> Response:
    problems = refused(answer)
    _, who = await seen_site(request)
    try:
        return await _people(request, api, who, status=answer.status, problems=problems, form=form, where=where)
    except ApiError:  # not a site admin: the page can't be shown; the change's refusal is the answer
        raise ApiError(answer) from None


@router.post("/ui/people/users")
async def create_user(request: Request) -> Response:
    form, api = await form_api(request)
    password = form.get("password", "")
    generated = not password
    if generated:
        password = secrets.token_urlsafe(15)  # 20 characters: what `tidings user create` prints is as long
    body = {"email": form.get("email", "").strip(), "name": form.get("name", "").strip() or None,
            "password": password, "site_admin": form.get("site_admin") == "on"}
    answer = await api.post("/api/v1/users", json=body)
    if not answer.ok:
        return await _people_refused(request, api, answer, "user", {**body, "password": ""})
    response = go(request, "/ui/people", flash=f"User {answer.data['email']} created")
    return keep_once(request, response, "password", f"{answer.data['email']}\n{password}") if generated else response


@router.post("/ui/people/users/{user}/{act}")
async def disable_user(request: Request, user: UserPath,
                       act: Annotated[str, Path(pattern="^(disable|enable)$")]) -> Response:
    _, api = await form_api(request)
    answer = await api.post(f"/api/v1/users/{_user(user)}/{act}")
    if not answer.ok:
        return await _people_refused(request, api, answer, "", {})
    return go(request, "/ui/people", flash=f"{answer.data['email']} {act}d")


@router.post("/ui/people/projects")
async def create_project(request: Request) -> Response:
    form, api = await form_api(request)
    body = {"slug": form.get("slug", "").strip(), "name": form.get("project_name", "").strip() or None,
            "owner": form.get("owner", "").strip() or None}
    answer = await api.post("/api/v1/projects", json=body)
    if not answer.ok:
        return await _people_refused(request, api, answer, "project", {f"project_{k}": v for k, v in body.items()})
    return go(request, "/ui/people", flash=f"Project {answer.data['slug']} created")
