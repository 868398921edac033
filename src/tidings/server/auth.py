"""Who is asking (a bearer token or a session cookie) and whether they may: every ``/api`` route
declares its permission with :func:`allow`, which calls ``accounts.authorize`` and nothing else.

A refusal answers 401 (no or bad credentials) or 403 (naming the permission); a 403 is audited in
its own transaction."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..accounts import SITE, CsrfRefused, Forbidden, Principal, Unauthenticated, authorize
from ..accounts.sessions import csrf_ok, find_session
from ..accounts.users import get_user, principal_for
from ..audit import Actor, append
from ..security.tokens import hash_token, touch, verify_token

CACHE_SECONDS = 10.0
"""A verified token (with its user's roles) is trusted this long without asking the database again;
a revoked token, a disabled user or a changed role takes effect within this time."""

DEFAULT_PROJECT = "default"
SESSION_COOKIE = "tidings_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_BEARER_HINT = "send `Authorization: Bearer <token>` (create one with `tidings token create`) or sign in"


class TokenCache:
    """Digest of a token -> its :class:`Principal`, for :data:`CACHE_SECONDS`."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[Principal, float]] = {}

    def get(self, digest: str) -> Principal | None:
        hit = self._seen.get(digest)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, digest: str, principal: Principal) -> None:
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[digest] = (principal, time.monotonic() + CACHE_SECONDS)

    def clear(self) -> None:
        """Forget every cached token (after revoking one, changing roles...): the next request asks the database."""
        self._seen.clear()


bearer = HTTPBearer(
    scheme_name="token",
    bearerFormat="tidings API token",
    description="An API token made with `tidings token create`, sent as `Authorization: Bearer <token>`.",
    auto_error=False,
)
"""Describes the scheme in the OpenAPI document (Swagger UI's Authorize); :func:`authenticate`
still decides, so a refusal is the API's own 401 body."""


async def authenticate(state: Any, header: str) -> Principal:
    """The principal of an ``Authorization: Bearer`` header, or :class:`Unauthenticated`."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(_BEARER_HINT)
    token = token.strip()
    digest = hash_token(token)
    principal = state.tokens.get(digest)
    if principal is not None:
        return principal
    store = state.hub.store
    info = await verify_token(store, token)
    if info is None:
        raise Unauthenticated("invalid, expired or revoked token")
    if info.user_id is None:  # made before users existed: acts as the admin it was
        principal = Principal(None, info.name, site_admin=True, token_id=info.id, token_project=info.project,
                              token_name=info.name)
    else:
        async with store.read() as conn:
            user = await get_user(conn, info.user_id)
            if user is None or user.disabled:
                raise Unauthenticated("the token's user is disabled")
            principal = await principal_for(conn, user, auth_method="token", token_id=info.id,
                                            token_project=info.project)
        principal = Principal(principal.user_id, principal.name, principal.site_admin, principal.memberships,
                              "token", info.id, info.project, info.name)
    await touch(store, info)
    state.tokens.put(digest, principal)
    return principal


async def _from_session(request: Request, cookie: str) -> Principal:
    async with request.app.state.hub.store.write() as conn:
        session = await find_session(conn, cookie)
        if session is None:
            raise Unauthenticated("the session has ended: sign in again")
        principal = await principal_for(conn, session.user, auth_method="session")
        if request.method in SAFE_METHODS or csrf_ok(session, request.headers.get(CSRF_HEADER)):
            return principal
        request.state.principal = principal
        await append(conn, actor_of(request), "access.denied", target=f"{request.method} {request.url.path}",
                     after={"reason": "csrf"}, outcome="denied")
    raise CsrfRefused()


async def principal_of(request: Request) -> Principal:
    """The request's principal (bearer token first, else the session cookie), kept on
    ``request.state.principal``; :class:`Unauthenticated` when there is none."""
    known = getattr(request.state, "principal", None)
    if known is not None:
        return known
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if header is None and cookie:
        principal = await _from_session(request, cookie)
    else:
        principal = await authenticate(request.app.state, header or "")
    request.state.principal = principal
    return principal


def actor_of(request: Request) -> Actor:
    """The audit actor of a request: who, how, from where."""
    client = request.client
    return make_actor(getattr(request.state, "principal", None), client.host if client else None,
                      request.headers.get("user-agent"), request_id(request))


def make_actor(principal: Principal | None, ip: str | None, user_agent: str | None, rid: str) -> Actor:
    """The audit actor of ``principal`` calling from ``ip`` (also for the routes served before the framework)."""
    return Actor(
        "user" if principal is not None and principal.auth_method == "session" else "token",
        id=principal.user_id if principal else None,
        name=principal.name if principal else None,
        auth_method=principal.auth_method if principal else None,
        token_id=principal.token_id if principal else None,
        ip=ip,
        user_agent=user_agent,
        request_id=rid,
    )


def request_id(request: Request) -> str:
    """The caller's ``X-Request-ID`` (clipped) or one made for this request."""
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = (request.headers.get("x-request-id") or "")[:64] or uuid.uuid4().hex
        request.state.request_id = rid
    return rid


async def _audit_refusal(request: Request, principal: Principal, exc: Forbidden) -> None:
    async with request.app.state.hub.store.write() as conn:
        await append(conn, actor_of(request), "access.denied", target=f"{request.method} {request.url.path}",
                     project=exc.project, after={"permission": exc.permission}, outcome="denied")


async def require(request: Request, permission: str, project: str | None = None) -> Principal:
    """What :func:`allow` checks, for a check a route makes itself (a project named in the body, a
    user in the query): the principal when it may, else 401, or 403 audited."""
    principal = await principal_of(request)
    try:
        return authorize(principal, permission, project)
    except Forbidden as exc:
        await _audit_refusal(request, principal, exc)
        raise


def allow(permission: str) -> Any:
    """The dependency of a route that needs ``permission``: in the path's ``{project}`` (``default``
    for the unscoped routes), or site-wide for :data:`~tidings.accounts.SITE`. Returns the principal."""

    async def check(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
        project = None if permission == SITE else request.path_params.get("project", DEFAULT_PROJECT)
        return await require(request, permission, project)

    check.permission = permission  # type: ignore[attr-defined]  # read by the access-matrix test
    return Depends(check)

__all__ = ["CSRF_HEADER", "DEFAULT_PROJECT", "SESSION_COOKIE", "TokenCache", "actor_of", "allow", "authenticate",
           "bearer", "principal_of", "request_id", "require"]
