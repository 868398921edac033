"""What every ``/api/v1`` area is built of: its router (:func:`api_router`), the dependencies its
handlers take (the hub, the actor, the project), and for an area of project-scoped things the pair
of registrations (:func:`project_router`).

A project-scoped area writes its routes once, relative, on an ``APIRouter()`` of its own;
:func:`project_router` registers each of them twice: under ``/api/v1/projects/{project}`` and, for
the project ``default``, under ``/api/v1``. A handler takes its project from :data:`ProjectDep`
and sees only that project's things: another project's id is not found (404), whatever exists
there."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.exceptions import RequestValidationError

from ..audit import Actor
from ..errors import NotFound, TidingsError
from ..hub import Hub
from ..integrations.base import PROJECT_SLUG
from .auth import DEFAULT_PROJECT, actor_of, principal_of
from .schemas import errors

PAGE = "the `next` of the previous page"
"""How a list's ``before`` parameter is described."""
NOTHING_THERE = "No such project, or nothing in it has this id or name."
"""The 404 of a project-scoped route, unless its area says it better."""


class PreconditionRequired(TidingsError):
    """A write without ``If-Match`` (HTTP 428)."""


IF_MATCH_PATTERN = r'^\s*(\*|(W/)?"?[0-9]{1,18}"?)\s*$'


def if_match_header(what: str, star: str = "`*`") -> object:
    """The ``If-Match`` header of a versioned thing's writes: the version its change is based on
    (malformed: 422; absent: :func:`version_of` answers 428)."""
    return Header(alias="If-Match", max_length=100, pattern=IF_MATCH_PATTERN,
                  description=f"the version the change is based on: the `ETag` of the {what} you read (`\"3\"`), or "
                  f"{star}. Required: without it the answer is 428")


def version_of(if_match: str | None, what: str) -> int | None:
    """``If-Match``'s version (``None`` for ``*``); 428 without one."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequired(f"this write needs If-Match: the ETag of the {what} you read "
                                   "(`If-Match: \"3\"`), or `If-Match: *` to apply it to whatever is current")
    text = if_match.strip()
    return None if text == "*" else int(text.removeprefix("W/").strip('"'))


async def known_query(request: Request) -> None:
    """A query parameter the route doesn't take is refused (422), not ignored: a misspelt filter
    (``?statsu=dead``) would otherwise answer everything. Credentials are checked first: a caller
    without them learns nothing about a route's parameters (401, not 422)."""
    await principal_of(request)
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    known = {p.alias for p in dependant.query_params}  # the routes' own: no dependency here takes any
    problems = [{"type": "extra_forbidden", "loc": ("query", name), "msg": "Unknown query parameter", "input": None}
                for name in sorted(set(request.query_params) - known)]
    problems += [{"type": "too_long", "loc": ("query", name), "msg": "Give it once", "input": None}
                 for name in sorted(known) if len(request.query_params.getlist(name)) > 1]
    if problems:
        raise RequestValidationError(problems)


async def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(hub_of)]
ActorDep = Annotated[Actor, Depends(actor_of)]
"""Who makes a change (for its audit entry); resolved after the route's ``allow``."""


async def project_of(request: Request, hub: HubDep) -> str:
    """The project of the request: the path's ``{project}`` (404 when there is no such project;
    this runs after ``allow``, so only a caller allowed there learns it), else ``default``."""
    project: str = request.path_params.get("project", DEFAULT_PROJECT)
    if project != DEFAULT_PROJECT and not await hub.project_exists(project):
        raise NotFound(f"no project {project!r}")
    return project


ProjectDep = Annotated[str, Depends(project_of)]
_SLUG = re.compile(PROJECT_SLUG)


async def scoped(
    request: Request,
    project: Annotated[str, Path(description="the project's slug",
                                 json_schema_extra={"pattern": PROJECT_SLUG, "maxLength": 64})],
) -> None:
    """Declares the path's project in the OpenAPI document, and refuses a malformed one (422) once
    the caller is known (no credentials: 401, as everywhere), before ``allow`` would audit a refusal
    in a project no one can make. :func:`project_of` reads it, after ``allow``."""
    if not _SLUG.fullmatch(project):
        await principal_of(request)
        raise RequestValidationError([{"type": "string_pattern_mismatch", "loc": ("path", "project"), "input": None,
                                       "msg": "a project slug is lower-case letters, digits and '-' (at most 64)"}])


def api_router(*tags: str) -> APIRouter:
    """An ``/api/v1`` router whose routes refuse query parameters they don't take (:func:`known_query`)."""
    return APIRouter(prefix="/api/v1", tags=list(tags), dependencies=[Depends(known_query)])


def project_router(routes: APIRouter, *tags: str, s404: str = NOTHING_THERE) -> APIRouter:
    """:func:`api_router` with every route of ``routes`` on the project ``default``, and under
    ``/projects/{project}`` (:func:`scoped`), where ``s404`` says what a 404 means unless the route says it."""
    router = api_router(*tags)
    router.include_router(routes)
    router.include_router(routes, prefix="/projects/{project}", dependencies=[Depends(scoped)],
                          responses=errors(404, 422, s404=s404))
    return router


__all__ = ["PAGE", "ActorDep", "HubDep", "ProjectDep", "PreconditionRequired", "api_router", "if_match_header",
           "known_query", "project_of", "project_router", "scoped", "version_of"]
