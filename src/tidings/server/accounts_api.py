"""``/api/v1``: users, projects, members and tokens.

Every route declares its permission with ``allow``: users and new projects need a site admin;
a project's members are read with ``member:read`` and managed with ``member:manage`` (owners);
one's own projects and tokens need only valid credentials (``SIGNED_IN``). Every change is
audited in its own transaction by the accounts functions, with the request's actor. A change of
roles, of a user's state or of tokens clears the token cache, so cached principals refresh at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..accounts.principal import SIGNED_IN, SITE, Principal
from ..accounts.projects import create_project, list_members, list_projects, remove_member, set_member
from ..accounts.sessions import end_user_sessions
from ..accounts.users import (
    AccountConflict,
    AccountError,
    UnknownAccount,
    create_user,
    get_user,
    list_users,
    set_disabled,
)
from ..security.tokens import TokenError, create_token, get_token, list_tokens, revoke_token, verify_token
from ..store.engine import Store
from ..store.tables import projects
from ..units import parse_duration
from . import account_models as m
from .auth import actor_of, allow, require
from .errors import error
from .schemas import api_errors
from .scoped import api_router

router = api_router("accounts")

LONGEST_TOKEN = 3650 * 86400.0
"""A token's expiry is at most this far away (ten years); none at all is allowed."""

UserPath = Annotated[str, Path(min_length=1, max_length=320, description="the user's email or id")]
ProjectPath = Annotated[str, Path(max_length=64, pattern=m.SLUG, description="the project's slug")]
_NO_USER = "No user has this email or id."
_NO_PROJECT = "No project has this slug."
_NOT_ADMIN = "Not a site admin (or a project-scoped token)."


def install(app: FastAPI) -> None:
    """Add the routes, and answer an accounts error with its status (404, 409 or 422)."""
    app.include_router(router)

    async def _account_error(_: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "status", 422)
        return error(status, {404: "not found", 409: "conflict"}.get(status, "invalid request"), str(exc))

    app.add_exception_handler(AccountError, _account_error)


def _store(request: Request) -> Store:
    store: Store = request.app.state.hub.store
    return store


def _refresh(request: Request) -> None:
    """Roles, users or tokens changed: cached token principals are asked for again."""
    request.app.state.tokens.clear()


@contextlib.contextmanager
def _raced(what: str) -> Iterator[None]:
    """Two requests creating the same thing at once: the loser gets 409, not a database error."""
    try:
        yield
    except IntegrityError:
        raise AccountConflict(f"{what} exists already") from None


# -- users -----------------------------------------------------------------------------------------
@router.get(
    "/users", dependencies=[allow(SITE)],
    response_model=list[m.UserOut],
    summary="List users",
    description="Every user, by email. Needs a site admin.",
    responses=api_errors(403, params=False, s403=_NOT_ADMIN),
)
async def get_users(request: Request) -> list[dict[str, Any]]:
    async with _store(request).read() as conn:
        return [u.public() for u in await list_users(conn)]


@router.post(
    "/users",
    status_code=201,
    dependencies=[allow(SITE)],
    response_model=m.UserOut,
    summary="Create a user",
    description="A user who can sign in with the given password (none: not until one is set with "
    "`tidings user set-password`). Needs a site admin.",
    responses=api_errors(403, 409, body=True, s403=_NOT_ADMIN, s409="A user with this email exists."),
)
async def post_user(payload: m.UserIn, request: Request) -> dict[str, Any]:
    with _raced(f"a user {payload.email}"):
        async with _store(request).write() as conn:
            user = await create_user(conn, actor_of(request), email=payload.email, name=payload.name,
                                     password=payload.password, site_admin=payload.site_admin)
    return user.public()


async def _set_disabled(request: Request, user: str, disabled: bool) -> dict[str, Any]:
    async with _store(request).write() as conn:
        changed = await set_disabled(conn, actor_of(request), user, disabled)
        if disabled:
            await end_user_sessions(conn, changed.id)
    _refresh(request)
    return changed.public()


@router.post(
    "/users/{user}/disable",
    dependencies=[allow(SITE)],
    response_model=m.UserOut,
    summary="Disable a user",
    description="The user can no longer sign in; their sessions end and their tokens stop working at once. "
    "Nothing of theirs is deleted. Needs a site admin.",
    responses=api_errors(403, 404, 409, s403=_NOT_ADMIN, s404=_NO_USER, s409="It is the last enabled site admin."),
)
async def disable_user(user: UserPath, request: Request) -> dict[str, Any]:
    return await _set_disabled(request, user, True)


@router.post(
    "/users/{user}/enable",
    dependencies=[allow(SITE)],
    response_model=m.UserOut,
    summary="Enable a user",
    description="Let a disabled user sign in again; their tokens work again. Needs a site admin.",
    responses=api_errors(403, 404, s403=_NOT_ADMIN, s404=_NO_USER),
)
async def enable_user(user: UserPath, request: Request) -> dict[str, Any]:
    return await _set_disabled(request, user, False)


# -- projects --------------------------------------------------------------------------------------
@router.get(
    "/projects",
    response_model=list[m.ProjectOut],
    summary="List projects",
    description="The projects the caller can see: every project for a site admin, else those it belongs to "
    "(for a project-scoped token, its project), each with the caller's role.",
    responses=api_errors(params=False),
)
async def get_projects(principal: Annotated[Principal, allow(SIGNED_IN)], request: Request) -> list[dict[str, Any]]:
    async with _store(request).read() as conn:
        rows = await list_projects(conn, principal)
    return [{**row, "role": principal.memberships.get(row["slug"])} for row in rows]


@router.post(
    "/projects",
    status_code=201,
    response_model=m.ProjectOut,
    summary="Create a project",
    description="A project, and with `owner` its first owner (in the same change). Needs a site admin.",
    responses=api_errors(403, 404, 409, body=True, s403=_NOT_ADMIN, s404="No user has the `owner`'s email or id.",
                         s409="A project with this slug exists."),
)
async def post_project(payload: m.ProjectIn, principal: Annotated[Principal, allow(SITE)],
                       request: Request) -> dict[str, Any]:
    actor = actor_of(request)
    role = None
    with _raced(f"a project {payload.slug}"):
        async with _store(request).write() as conn:
            row = await create_project(conn, actor, payload.slug, payload.name)
            if payload.owner is not None:
                owner = await set_member(conn, actor, payload.slug, payload.owner, "owner")
                role = "owner" if owner["user"] == principal.name else None
    if payload.owner is not None:
        _refresh(request)
    return {**row, "role": role}


@router.get(
    "/projects/{project}",
    response_model=m.ProjectOut,
    summary="A project",
    description="The project, with the caller's role in it. Needs `project:read` in it.",
    responses=api_errors(403, 404, s404=_NO_PROJECT),
)
async def get_project(project: ProjectPath, principal: Annotated[Principal, allow("project:read")],
                      request: Request) -> dict[str, Any]:
    async with _store(request).read() as conn:
        row = (await conn.execute(select(projects).where(projects.c.slug == project))).first()
    if row is None:
        raise UnknownAccount(f"no project {project}")
    return {**row._mapping, "role": principal.memberships.get(project)}


# -- members ---------------------------------------------------------------------------------------
@router.get(
    "/projects/{project}/members",
    dependencies=[allow("member:read")],
    response_model=list[m.MemberOut],
    summary="List a project's members",
    description="Who belongs to the project, with which role. Needs `member:read` in it.",
    responses=api_errors(403, 404, s404=_NO_PROJECT),
)
async def get_members(project: ProjectPath, request: Request) -> list[dict[str, Any]]:
    async with _store(request).read() as conn:
        return await list_members(conn, project)


@router.put(
    "/projects/{project}/members/{user}",
    dependencies=[allow("member:manage")],
    response_model=m.MemberChange,
    summary="Add a member or change a role",
    description="Make the user a member of the project with `role`, or change their role. Needs `member:manage` "
    "in the project (its owners, and site admins). A project's last owner can't be demoted.",
    responses=api_errors(403, 404, 409, body=True, s404="No such project or user.",
                         s409="The user is the project's last owner."),
)
async def put_member(project: ProjectPath, user: UserPath, payload: m.MemberIn, request: Request) -> dict[str, Any]:
    with _raced(f"{user} in project {project}"):
        async with _store(request).write() as conn:
            change = await set_member(conn, actor_of(request), project, user, payload.role)
    _refresh(request)
    return change


@router.delete(
    "/projects/{project}/members/{user}",
    dependencies=[allow("member:manage")],
    response_model=m.MemberChange,
    summary="Remove a member",
    description="The user no longer belongs to the project (their tokens scoped to it stop working there). "
    "Needs `member:manage` in the project. A project's last owner can't be removed.",
    responses=api_errors(403, 404, 409, s404="No such user, or not a member of the project.",
                         s409="The user is the project's last owner."),
)
async def delete_member(project: ProjectPath, user: UserPath, request: Request) -> dict[str, Any]:
    async with _store(request).write() as conn:
        target = await get_user(conn, user)
        if target is None:
            raise UnknownAccount(f"no user {user}")
        if not await remove_member(conn, actor_of(request), project, target.id):
            raise UnknownAccount(f"{target.email} is not a member of project {project}")
    _refresh(request)
    return {"project": project, "user": target.email, "role": None}


# -- tokens ----------------------------------------------------------------------------------------
def _shown(token: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in token.items() if k != "user_id"}


def _own(principal: Principal, token: dict[str, Any]) -> bool:
    """Whether ``token`` is the caller's own: its user's, and for a scoped caller in its project."""
    if token["user_id"] != principal.user_id:
        return False
    return principal.token_project is None or token["project"] == principal.token_project


@router.get(
    "/tokens",
    response_model=list[m.TokenOut],
    summary="List tokens",
    description="The caller's own tokens (revoked ones too), oldest first; for a project-scoped token, its "
    "user's tokens scoped to the same project. A site admin may ask for another user's with `user`. Never "
    "the tokens themselves.",
    responses=api_errors(403, 404, s403="`user` needs a site admin.", s404=_NO_USER),
)
async def get_tokens(
    principal: Annotated[Principal, allow(SIGNED_IN)], request: Request,
    user: Annotated[str | None, Query(min_length=1, max_length=320, description="another user's (email or id)")] = None,
) -> list[dict[str, Any]]:
    store = _store(request)
    if user is None:
        rows = await list_tokens(store, user=principal.user_id) if principal.user_id else [
            t for t in await list_tokens(store) if t["user"] is None]
        return [t for t in rows if principal.token_project is None or t["project"] == principal.token_project]
    await require(request, SITE)
    async with store.read() as conn:
        target = await get_user(conn, user)
    if target is None:
        raise UnknownAccount(f"no user {user}")
    return await list_tokens(store, user=target.id)


def _expiry(expires: str | None) -> float | None:
    if expires is None:
        return None
    seconds = parse_duration(expires)
    if not 0 < seconds <= LONGEST_TOKEN:
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "expires"), "input": None,
                                       "msg": "expires must be more than 0s and at most 3650d"}])
    return time.time() + seconds


@router.post(
    "/tokens",
    status_code=201,
    response_model=m.NewToken,
    summary="Create a token",
    description="A token for the caller, answered this once (only its hash is kept). With `project` it acts "
    "only in that project, which the caller must belong to; a project-scoped token makes tokens scoped to its "
    "own project only.",
    responses=api_errors(403, 404, body=True, s403="The caller doesn't belong to `project`, or is a token scoped "
                         "to another project.", s404=_NO_PROJECT),
)
async def post_token(payload: m.TokenIn, principal: Annotated[Principal, allow(SIGNED_IN)],
                     request: Request) -> dict[str, Any]:
    store = _store(request)
    project = payload.project or principal.token_project
    expires_at = _expiry(payload.expires)
    if project is not None:
        await require(request, "project:read", project)
        async with store.read() as conn:
            if (await conn.execute(select(projects.c.slug).where(projects.c.slug == project))).first() is None:
                raise UnknownAccount(f"no project {project}")
    try:
        token = await create_token(store, payload.name, user=principal.user_id, project=project,
                                   expires_at=expires_at, actor=actor_of(request))
    except TokenError as exc:  # the user or project went away meanwhile
        raise UnknownAccount(str(exc)) from None
    info = await verify_token(store, token)
    made = await get_token(store, info.id) if info else None
    if made is None:  # revoked already by someone else: still answered once
        raise UnknownAccount("the token was revoked as it was made")
    return {**_shown(made), "token": token}


@router.delete(
    "/tokens/{token_id}",
    response_model=m.TokenOut,
    summary="Revoke a token",
    description="The token stops working at once. One's own tokens (a project-scoped token: those scoped to the "
    "same project); a site admin, anyone's. Revoking a revoked token changes nothing.",
    responses=api_errors(403, 404, s403="Another user's token needs a site admin.", s404="No token has this id."),
)
async def delete_token(
    token_id: Annotated[str, Path(min_length=1, max_length=64, description="the token's id (from the list)")],
    principal: Annotated[Principal, allow(SIGNED_IN)], request: Request,
) -> dict[str, Any]:
    store = _store(request)
    token = await get_token(store, token_id)
    if token is None:
        raise UnknownAccount(f"no token {token_id}")
    if not _own(principal, token):
        await require(request, SITE)
    await revoke_token(store, token_id=token_id, actor=actor_of(request))
    _refresh(request)
    return _shown(await get_token(store, token_id) or token)
