"""The pages every area shares: sign-in and out, ``/`` and ``/ui`` to the person's project, the
project switcher, static files, and what a page answers when it can't be shown (no session:
the sign-in page; the API refused: its words and status)."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import RedirectResponse, Response

from ..server.auth import DEFAULT_PROJECT, SESSION_COOKIE
from .client import Api, ApiError
from .forms import form_api
from .render import go, page, static_file
from .viewer import SignInNeeded, Viewer, viewer

router = APIRouter(include_in_schema=False)
PROJECT = r"^[a-z0-9][a-z0-9-]{0,62}$"
ProjectPath = Annotated[str, Path(pattern=PROJECT, max_length=63)]
_LOCAL = re.compile(r"^/ui(/[^\\]*)?$")


async def seen(request: Request, project: ProjectPath) -> tuple[Api, Viewer]:
    """The dependency of a project's page: the API as the person, and who they are."""
    api = Api(request)
    return api, await viewer(api, project)


Seen = Annotated[tuple[Api, Viewer], Depends(seen)]


def project_url(project: str, rest: str = "") -> str:
    return f"/ui/p/{quote(project, safe='')}/{rest}"


def _next(value: str | None) -> str:
    """A local UI path to return to after signing in (anything else: the start page)."""
    return value if value and _LOCAL.match(value) and not value.startswith("//") else "/ui/"


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/ui/", status_code=303)


@router.get("/ui")
@router.get("/ui/")
async def start(request: Request) -> Response:
    """To the first project the person may see (``default`` when they may see it)."""
    api = Api(request)
    try:
        who = await viewer(api, DEFAULT_PROJECT)
    except SignInNeeded:
        return RedirectResponse("/ui/login", status_code=303)
    first = DEFAULT_PROJECT if DEFAULT_PROJECT in who.projects else who.projects[0]
    return RedirectResponse(project_url(first), status_code=303)


@router.get("/ui/switch")
async def switch(request: Request, project: str = DEFAULT_PROJECT) -> Response:
    """The project switcher's target (a form that works without JavaScript)."""
    if not re.match(PROJECT, project):
        project = DEFAULT_PROJECT
    return RedirectResponse(project_url(project), status_code=303)


@router.get("/ui/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    return page(request, "login.html", None, next=_next(next), problem=None, email="")


@router.post("/ui/login")
async def login(request: Request) -> Response:
    """Sign in through the API's ``/auth/login`` (its limits, audit and cookie), then go on."""
    form, api = await form_api(request)
    email, target = form.get("email", ""), _next(form.get("next"))
    # as a form: the API then also refuses one posted from another site, or with no Origin/Referer (login CSRF)
    answer = await api.post("/auth/login", body=urlencode({"email": email, "password": form.get("password", "")}).encode(),
                            content_type="application/x-www-form-urlencoded")
    if not answer.ok:
        return page(request, "login.html", None, status=answer.status, next=target, email=email,
                    problem=answer.problem)
    response = go(request, target)
    for name, value in answer.headers.items():
        if name == "set-cookie":
            response.headers.append("set-cookie", value)
    return response


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    _, api = await form_api(request)
    answer = await api.post("/auth/logout")
    if not answer.ok:  # a refused sign-out (no CSRF token) leaves the session as it was; none left: SignInNeeded
        raise ApiError(answer)
    response = go(request, "/ui/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/ui/static/{name}")
async def static(name: str) -> Response:
    return static_file(name)


def install(app: FastAPI) -> None:
    app.include_router(router)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, _: SignInNeeded) -> Response:
        # back to the page after signing in; a form's target (a POST) is no page to go back to
        login = "/ui/login"
        if request.method == "GET":
            login += "?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)

    @app.exception_handler(ApiError)
    async def _refused(request: Request, exc: ApiError) -> Response:
        who = None
        project = request.path_params.get("project", DEFAULT_PROJECT)
        try:
            who = await viewer(Api(request), project)
        except SignInNeeded:
            pass
        return page(request, "error.html", who, status=exc.answer.status, problem=exc.answer.problem,
                    status_code=exc.answer.status)
