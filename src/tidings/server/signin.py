"""``/auth``: signing in and out of the web UI, and who is asking.

``POST /auth/login`` checks an email and password and starts a server-side session: a row that
can be revoked, and the cookie ``tidings_session`` (HttpOnly, SameSite=Lax, Path=/, Secure when
the request came over https as uvicorn reports it, so X-Forwarded-Proto only from a trusted
proxy). The answer carries the session's CSRF token, which every unsafe request of the session
sends back as ``X-CSRF-Token`` (``server/auth.py`` refuses it otherwise), ``/auth/logout`` too.

Login CSRF (a foreign page signing the browser into the attacker's account): a JSON sign-in
can't be sent cross-site without a CORS preflight, which tidings never grants; a form sign-in
must carry an ``Origin`` (or ``Referer``) of this server; any sign-in whose Origin names another
site is refused.

A wrong password, an unknown email and a disabled account answer the same 401 after the same
work (a dummy hash is verified for unknown emails); each is audited as ``auth.login`` with the
outcome ``failed``, never with the password. Failed sign-ins are rate-limited (``login_limits``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from starlette.exceptions import HTTPException

from ..accounts import Unauthenticated
from ..accounts.principal import Principal
from ..accounts.sessions import end_session, find_session, start_session
from ..accounts.users import get_user, verify_login
from ..audit import Actor, append
from ..store.engine import Conn
from ..store.tables import projects
from . import account_models as m
from .auth import SESSION_COOKIE, actor_of, principal_of
from .errors import error
from .guard import is_json
from .login_limits import LoginLimits
from .schemas import errors

NO_STORE = {"Cache-Control": "no-store"}
"""Answers carrying a CSRF token are not cached anywhere."""


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    _limits(app)  # now: a storage that can't work (redis:// without the redis package) stops the start
    yield
    limits: LoginLimits | None = getattr(app.state, "login_limits", None)
    if limits is not None:
        app.state.login_limits = None
        await limits.close()


router = APIRouter(prefix="/auth", tags=["auth"], lifespan=_lifespan)


def _limits(app: Any) -> LoginLimits:
    limits: LoginLimits | None = getattr(app.state, "login_limits", None)
    if limits is None:
        limits = app.state.login_limits = LoginLimits(app.state.hub.config)
    return limits


def _invalid(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)])


def _read_form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body), errors="strict",
                          max_num_fields=10)
    except ValueError:  # UnicodeDecodeError too
        raise HTTPException(400, "not a form: percent-encoded UTF-8 name=value pairs joined by &") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise RequestValidationError([{"type": "too_long", "loc": ("body",), "msg": "Give each field once", "input": None}])
    return fields


async def _credentials(request: Request) -> tuple[m.LoginForm, bool]:
    """The posted credentials (JSON or a form), and whether a form posted them."""
    ctype = request.headers.get("content-type", "")
    body = await request.body()
    form = ctype.split(";")[0].strip().lower() == "application/x-www-form-urlencoded"
    if not form and not is_json(ctype.encode("latin-1")):
        raise HTTPException(415, "send the credentials as JSON (Content-Type: application/json) or as a form "
                                 "(application/x-www-form-urlencoded)")
    try:
        if form:
            return m.LoginForm.model_validate(_read_form(body)), True
        return m.LoginForm.model_validate(m.LoginIn.model_validate_json(body).model_dump()), False
    except ValidationError as exc:
        raise _invalid(exc) from None


def _site(url: str) -> str:
    """``host[:port]`` of a URL or Host header, lower-cased, without a default port."""
    netloc = (urlsplit(url).netloc if "://" in url else url).lower()
    return netloc.removesuffix(":80").removesuffix(":443")


def _foreign_origin(request: Request, form: bool) -> str | None:
    """Why a sign-in must be refused as cross-site (None: it may proceed)."""
    source = request.headers.get("origin")
    if source is None and form:
        source = request.headers.get("referer")
    if source is None:
        return "a sign-in form must be posted from this server's pages (no Origin or Referer header)" if form else None
    here = _site(request.headers.get("host", ""))
    if not here or _site(source) != here:
        return (f"sign-in from another site is refused: the request's Origin is not {here or 'this server'} "
                "(behind a proxy, pass the Host header through)")
    return None


def _attempt(request: Request, email: str) -> Actor:
    """The audit actor of a sign-in attempt: who it claims to be, from where."""
    return dataclasses.replace(actor_of(request), kind="user", name=email[:320], auth_method="password")


async def _audit_attempt(request: Request, actor: Actor, target: str, outcome: str, **after: Any) -> None:
    async with request.app.state.hub.store.write() as conn:
        await append(conn, actor, "auth.login", target=target, after=after or None, outcome=outcome)


_LOGIN_ERRORS = errors(
    400, 401, 403, 413, 415, 422, 429,
    s400="Malformed: invalid JSON, or a form that isn't one.",
    s401="Wrong email or password, or the account is disabled: the same answer for each.",
    s403="Posted from another site (its Origin is not this server), or a form without Origin or Referer.",
    s415="Neither JSON nor a form.",
    s429="Too many failed sign-ins for this account or from this address: wait as long as `Retry-After` says. "
    "The password was not checked.",
)
_LOGIN_ERRORS[429]["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


def _form_schema() -> dict[str, Any]:
    """The form's fields: all text (a form has no null), ``next`` optional."""
    schema = m.LoginForm.model_json_schema()
    schema["properties"]["next"] = {"type": "string", "maxLength": 2000, "pattern": m.LOCAL_PATH,
                                    "description": m.LoginForm.model_fields["next"].description}
    return schema


_LOGIN_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": m.LoginIn.model_json_schema()},
        "application/x-www-form-urlencoded": {"schema": _form_schema()},
    },
}


@router.post(
    "/login",
    response_model=m.LoginOut,
    summary="Sign in",
    description="Check an email and password and start a session: the answer sets the `tidings_session` cookie "
    "(HttpOnly, SameSite=Lax; Secure over https) and carries the session's CSRF token, to send back as "
    "`X-CSRF-Token` with every unsafe request. Accepts JSON or an HTML form; a form with `next` is answered "
    "303 to that path. Failed sign-ins are limited per account and per address (429).",
    openapi_extra={"requestBody": _LOGIN_BODY},
    responses={
        303: {"model": m.LoginOut, "description": "Signed in by a form with `next`: go there.",
              "headers": {"Location": {"description": "the `next` path", "schema": {"type": "string"}}}},
        **_LOGIN_ERRORS,
    },
)
async def login(request: Request) -> Response:
    fields, form = await _credentials(request)
    email = fields.email.strip().lower()
    attempt = _attempt(request, email)
    target = f"user/{email}"
    foreign = _foreign_origin(request, form)
    if foreign is not None:
        await _audit_attempt(request, attempt, target, "denied", reason="cross-site")
        return error(403, "forbidden", foreign)
    limits = _limits(request.app)
    keys = limits.keys(email, attempt.ip)
    refused = await limits.begin(keys)
    if refused is not None:
        await _audit_attempt(request, attempt, target, "denied", reason="rate limited", limit=refused.which)
        what = "this account" if refused.which == "account" else "this address"
        return error(429, "too many requests", f"too many failed sign-ins for {what}: try again in "
                     f"{refused.retry_after} s", {"Retry-After": str(refused.retry_after)})
    store = request.app.state.hub.store
    checked, user = False, None
    try:
        user = await verify_login(store, email, fields.password)
        checked = True
    finally:
        await limits.end(keys, failed=checked and user is None)
    if user is None:
        await _audit_attempt(request, attempt, target, "failed")
        raise Unauthenticated("wrong email or password")
    async with store.write() as conn:
        cookie, session = await start_session(conn, dataclasses.replace(attempt, id=user.id, name=user.email), user)
    body = m.LoginOut(user=m.UserOut(**user.public()), csrf_token=session.csrf, expires_at=session.expires_at)
    response = JSONResponse(body.model_dump(), headers=NO_STORE)
    if form and fields.next:
        response.status_code = 303
        response.headers["Location"] = fields.next
    _set_cookie(request, response, cookie, max(0, int(session.expires_at - time.time())))
    return response


def _set_cookie(request: Request, response: Response, value: str, max_age: int) -> None:
    response.set_cookie(SESSION_COOKIE, value, max_age=max_age, path="/", secure=request.url.scheme == "https",
                        httponly=True, samesite="lax")


@router.post(
    "/logout",
    response_model=m.SignedOut,
    summary="Sign out",
    description="End the session of the `tidings_session` cookie (it can't be used again) and clear the cookie. "
    "Like every unsafe request of a session, it needs the session's `X-CSRF-Token`.",
    responses=errors(400, 401, 403, s401="No live session: not signed in, or the session has ended already.",
                     s403="The `X-CSRF-Token` header is missing or wrong."),
)
async def logout(request: Request) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    principal = await principal_of(request) if cookie else None
    if cookie is None or principal is None or principal.auth_method != "session":
        raise Unauthenticated("no session to end: sign-out ends the session of the tidings_session cookie "
                              "(a token is revoked with DELETE /api/v1/tokens/{id})")
    async with request.app.state.hub.store.write() as conn:
        await end_session(conn, actor_of(request), cookie)
    response = JSONResponse({"signed_out": True}, headers=NO_STORE)
    _set_cookie(request, response, "", 0)
    return response


@router.get(
    "/me",
    response_model=m.Me,
    summary="Who is signed in",
    description="The user of this request's session or token, its projects and roles, and for a session its "
    "CSRF token (a page loaded after sign-in reads it here).",
    responses=errors(400, 401, s401="Neither a live session nor a valid token."),
)
async def me(request: Request) -> JSONResponse:
    principal = await principal_of(request)
    store = request.app.state.hub.store
    csrf = None
    async with store.write() if principal.auth_method == "session" else store.read() as conn:
        if principal.auth_method == "session":
            session = await find_session(conn, request.cookies.get(SESSION_COOKIE, ""))
            if session is None:  # ended since principal_of looked
                raise Unauthenticated("the session has ended: sign in again")
            csrf = session.csrf
        user = await get_user(conn, principal.user_id) if principal.user_id else None
        mine = await _projects(conn, principal)
    token = (m.TokenRef(id=principal.token_id, name=principal.token_name or "", project=principal.token_project)
             if principal.token_id else None)
    body = m.Me(user=m.UserOut(**user.public()) if user else None, site_admin=principal.site_admin,
                auth_method="session" if principal.auth_method == "session" else "token", token=token,
                projects=mine, csrf_token=csrf)
    return JSONResponse(body.model_dump(), headers=NO_STORE)


async def _projects(conn: Conn, principal: Principal) -> list[m.MyProject]:
    """The projects ``principal`` belongs to (for a scoped token: its project alone), with its roles."""
    slugs = [principal.token_project] if principal.token_project else sorted(principal.memberships)
    if not slugs:
        return []
    rows = await conn.execute(select(projects.c.slug, projects.c.name).where(projects.c.slug.in_(slugs))
                              .order_by(projects.c.slug))
    return [m.MyProject(slug=r.slug, name=r.name, role=principal.memberships.get(r.slug)) for r in rows]
