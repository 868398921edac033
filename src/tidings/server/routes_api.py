"""A project's routes through the API, in order (insert, change, move, delete), and the project
``default``'s default route; each write one configuration revision (see ``config_api``). Every
route here exists under ``/api/v1/projects/{project}`` and, for the project ``default``, under
``/api/v1``. A project's routes are numbered from 0 in the order they are tried, among its routes
only; a route is named by that index or by its ``name``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request, Response

from ..config import edits
from ..config.document import Document
from ..errors import NotFound
from ..integrations.base import DEFAULT_PROJECT
from . import config_models as m
from .auth import allow
from .config_api import Comment, Edit, IfMatch, commit_edit, etag, write_errors
from .config_views import head_of
from .schemas import api_errors
from .scoped import HubDep, ProjectDep, project_router
from .secrets_api import json_body

_NO_DEFAULT = ("only the project 'default' has a default route; other projects end their routes with one "
               "without `match`")
_READ = {200: {"headers": m.ETAG}}
PatchBody = Annotated[dict[str, Any], Body(openapi_examples={"change": {
    "summary": "match critical messages only, no cooldown", "value": {"match": {"priority": "critical"},
                                                                      "cooldown": None}}})]
routes = APIRouter()


def _tagged(response: Response, number: int) -> None:
    response.headers["ETag"] = etag(number)


RouteKey = Annotated[str, Path(max_length=100, description="its index among the project's routes, or its name")]
RouteBody = Annotated[dict[str, Any], Body(openapi_examples={"route": {
    "summary": "a route, inserted first", "value": m.ROUTE_EXAMPLE}})]
_NO_ROUTE = "No route of the project has this index or name."


def _route_item(index: int, route: dict[str, Any], number: int) -> dict[str, Any]:
    return {"index": index, **{k: v for k, v in route.items() if k != "project"}, "revision": number}


def _position(body: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    body = dict(body)
    position = body.pop("position", None)
    if position is not None and (not isinstance(position, int) or isinstance(position, bool) or position < 0):
        raise edits.EditError(["position: a route index (0 or more)"])
    return body, position


@routes.get(
    "/routes",
    dependencies=[allow("integration:read")],
    response_model=m.RouteList,
    summary="List routes",
    description="The project's routes as configured in the current revision, in the order they are tried, each "
    "with its `index`.",
    responses={**_READ, **api_errors(params=False)},
)
async def list_routes(response: Response, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    number, doc = await head_of(hub)
    _tagged(response, number)
    items = [_route_item(i, r, number) for i, (_, r) in enumerate(edits.routes_of(doc, project))]
    for item in items:
        item.pop("revision")
    return {"items": items, "revision": number}


async def _commit_route(
    request: Request, response: Response, project: str, place: Callable[[Document], tuple[Document, int]],
    if_match: str | None, comment: str | None,
) -> dict[str, Any]:
    """Commit what ``place`` makes of the current document (the new document, the route's index)
    as one revision; the route as stored, at its index."""
    placed: list[int] = []

    def make(doc: Document, _admin: bool) -> Edit:
        document, index = place(doc)
        placed.append(index)
        return Edit(document)

    written = await commit_edit(request, project, make, if_match=if_match, comment=comment)
    _tagged(response, written.revision.number)
    index = placed[-1]
    stored = edits.routes_of(written.revision.document, project)[index][1]
    return {**_route_item(index, stored, written.revision.number), "changed": written.changed}


@routes.post(
    "/routes",
    status_code=201,
    dependencies=[allow("integration:write"), Depends(json_body)],
    response_model=m.RouteWritten,
    summary="Add a route",
    description="Insert a route (`match`, `to`, `name`...) at `position` among the project's routes (default: "
    "last): one new revision; needs `If-Match`.",
    responses={201: {"headers": m.ETAG}, **write_errors()},
)
async def create_route(
    body: RouteBody, request: Request, response: Response, project: ProjectDep,
    if_match: IfMatch = None, comment: Comment = None,
) -> dict[str, Any]:
    route, position = _position(body)
    return await _commit_route(request, response, project, lambda doc: edits.insert_route(doc, project, route, position),
                               if_match, comment)


@routes.get(
    "/routes/{route}",
    dependencies=[allow("integration:read")],
    response_model=m.RouteOut,
    summary="A route",
    description="One route of the project, by its index or its name (an index wins over a name made of digits).",
    responses={**_READ, **api_errors(404, s404=_NO_ROUTE)},
)
async def get_route(route: RouteKey, response: Response, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    number, doc = await head_of(hub)
    index = edits.find_route(doc, project, route)
    _tagged(response, number)
    return _route_item(index, edits.routes_of(doc, project)[index][1], number)


@routes.patch(
    "/routes/{route}",
    dependencies=[allow("integration:write"), Depends(json_body)],
    response_model=m.RouteWritten,
    summary="Change a route",
    description="Apply a JSON merge patch (RFC 7396) to the route; `position` moves it. `project` can't change. "
    "One new revision; needs `If-Match`.",
    responses={200: {"headers": m.ETAG}, **write_errors(404, s404=_NO_ROUTE)},
)
async def patch_route(
    route: RouteKey, patch: PatchBody, request: Request, response: Response, project: ProjectDep,
    if_match: IfMatch = None, comment: Comment = None,
) -> dict[str, Any]:
    patch, position = _position(patch)

    def place(doc: Document) -> tuple[Document, int]:
        index = edits.find_route(doc, project, route)
        document = edits.patch_route(doc, project, index, patch)
        if position is None:
            return document, index
        return edits.move_route(document, project, index, position), position

    return await _commit_route(request, response, project, place, if_match, comment)


@routes.post(
    "/routes/{route}/move",
    dependencies=[allow("integration:write"), Depends(json_body)],
    response_model=m.RouteWritten,
    summary="Move a route",
    description="Move the route to index `to` among the project's routes (the others keep their order): one new "
    "revision; needs `If-Match`.",
    responses={200: {"headers": m.ETAG}, **write_errors(404, s404=_NO_ROUTE)},
)
async def move_route(
    route: RouteKey, payload: m.MoveIn, request: Request, response: Response, project: ProjectDep,
    if_match: IfMatch = None, comment: Comment = None,
) -> dict[str, Any]:
    def place(doc: Document) -> tuple[Document, int]:
        return edits.move_route(doc, project, edits.find_route(doc, project, route), payload.to), payload.to

    return await _commit_route(request, response, project, place, if_match, comment)


@routes.delete(
    "/routes/{route}",
    dependencies=[allow("integration:write")],
    response_model=m.RouteDeleted,
    summary="Delete a route",
    description="Remove the route (the ones after it move up): one new revision; needs `If-Match`.",
    responses={200: {"headers": m.ETAG}, **write_errors(404, body=False, s404=_NO_ROUTE)},
)
async def delete_route(
    route: RouteKey, request: Request, response: Response, project: ProjectDep,
    if_match: IfMatch = None, comment: Comment = None,
) -> dict[str, Any]:
    removed: list[int] = []

    def make(doc: Document, _admin: bool) -> Edit:
        index = edits.find_route(doc, project, route)
        removed.append(index)
        return Edit(edits.remove_route(doc, project, index))

    written = await commit_edit(request, project, make, if_match=if_match, comment=comment)
    _tagged(response, written.revision.number)
    return {"index": removed[-1], "deleted": True, "revision": written.revision.number}


@routes.get(
    "/default-route",
    dependencies=[allow("integration:read")],
    response_model=m.DefaultRouteOut,
    summary="The default route",
    description="Where a message of the project `default` goes when no route matches it. Only `default` has one.",
    responses={**_READ, **api_errors(404, params=False, s404=_NO_DEFAULT)},
)
async def get_default_route(response: Response, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    if project != DEFAULT_PROJECT:
        raise NotFound(_NO_DEFAULT)
    number, doc = await head_of(hub)
    _tagged(response, number)
    return {"to": ["inbox"], **doc.get("default", {}), "revision": number}


@routes.put(
    "/default-route",
    dependencies=[allow("integration:write"), Depends(json_body)],
    response_model=m.DefaultRouteOut,
    summary="Replace the default route",
    description="Replace the project `default`'s default route (`to`, and optionally `cooldown`, `template`, "
    "`group_by`...): one new revision; needs `If-Match`.",
    responses={200: {"headers": m.ETAG}, **write_errors(404, s404=_NO_DEFAULT)},
)
async def put_default_route(
    body: Annotated[dict[str, Any], Body(openapi_examples={"inbox": {"summary": "to the inbox",
                                                                     "value": m.DEFAULT_EXAMPLE}})],
    request: Request, response: Response, project: ProjectDep, if_match: IfMatch = None, comment: Comment = None,
) -> dict[str, Any]:
    if project != DEFAULT_PROJECT:
        raise NotFound(_NO_DEFAULT)
    written = await commit_edit(request, project, lambda doc, _admin: Edit(edits.set_default_route(doc, body)),
                                if_match=if_match, comment=comment)
    _tagged(response, written.revision.number)
    return {"to": ["inbox"], **written.revision.document.get("default", {}), "revision": written.revision.number,
            "changed": written.changed}


router = project_router(routes, "configuration")
