"""``/api/v1/config``: configuration revisions (list, show, diff, rollback), and what every route
that writes the configuration shares (``integrations_api`` and ``routes_api`` use it; what readers
see is ``config_views``).

- Every answer about the configuration carries ``ETag: "<current revision>"``.
- Every write needs ``If-Match``: the ETag the writer read (428 without; ``*``: whatever is
  current). A write whose project changed since that revision answers 412 with the current
  revision; a change to another project in between is no conflict (``revisions.commit``'s scope).
- ``server.config_source: file`` makes every write 409 (the file is the only source).
- A write is one transaction: the head is read under the pointer's lock, the edit applied to it,
  secrets given as values stored in the vault, the revision validated (422 with one line per
  problem, nothing stored) and committed (audited). Then this process switches to it at once;
  other processes follow within seconds.
- The source of a revision is ``ui`` for a session (a browser signed in), ``api`` for a token. Its
  comment is the ``X-Tidings-Comment`` header (or a rollback's ``comment``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import orjson
import structlog
from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.exceptions import HTTPException

from ..accounts import SITE, Forbidden, Principal, allowed
from ..audit import append
from ..config import revisions
from ..config.document import Document, normalize, project_part, to_config
from ..config.edits import EditConflict, EditError
from ..delivery.queries import count_pending, kill_deliveries
from ..errors import ConfigError, NotFound, TidingsError
from ..hub import Hub
from ..integrations.base import VAULT_REF
from ..security.redact import clip, redact_value, register
from ..store.tables import secrets as secrets_table
from . import config_models as m
from .auth import actor_of, allow, principal_of, require
from .config_views import mask_document
from .errors import error, precondition_failed
from .schemas import api_errors
from .scoped import PreconditionRequired, ProjectDep, api_router, scoped

log = structlog.get_logger("tidings.server")

IfMatch = Annotated[str | None, Header(
    alias="If-Match", max_length=100, pattern=r'^\s*(\*|(W/)?"?[0-9]{1,18}"?)\s*$',
    description="the revision the change is based on: the `ETag` of what you read (`\"12\"`), or `*` for whatever "
    "is current. Required: without it the answer is 428",
)]
Comment = Annotated[str | None, Header(alias="X-Tidings-Comment", max_length=m.COMMENT_MAX,
                                       description="the revision's comment")]
READ_ONLY = ("the configuration is read-only here: server.config_source is `file`, so only tidings.yaml changes it "
             "(edit the file, then `tidings config reload` or SIGHUP)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def etag(number: int) -> str:
    return f'"{number}"'


WRITE_ERRORS = {"s409": "`server.config_source` is `file` (read-only configuration), or the change conflicts with "
                "what exists (a name taken, deliveries pending): `detail` says which.",
                "s412": "`If-Match` names a revision this project has changed since: the answer's `ETag` and "
                "`revision` give the current one; read again and re-apply the change.",
                "s422": "Invalid input, or the configuration it would make is invalid: `detail` (and `problems`) "
                "has one line per problem, with its path, as `tidings config validate` prints them."}


def write_errors(*statuses: int, body: bool = True, **why: str) -> dict[int | str, dict[str, Any]]:
    return api_errors(403, 409, 412, 428, *statuses, body=body, **{**WRITE_ERRORS, **why})


# -- errors ----------------------------------------------------------------------------------------
class PendingDeliveries(TidingsError):
    """Deleting an integration whose deliveries are not finished, without ``force`` (HTTP 409)."""


class OperatorOnly(TidingsError):
    """A write that sets or changes what only a site admin may (``allow_destinations``): HTTP 403."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def install(app: FastAPI) -> None:
    """The routes, and the answers to the configuration's errors."""
    app.include_router(router)

    async def _stale(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, revisions.StaleRevision)
        number = exc.current.number if exc.current else 0
        return precondition_failed(exc, "revision", number, number)

    async def _invalid(_: Request, exc: Exception) -> JSONResponse:
        problems = redact_value(list(getattr(exc, "problems", [str(exc)])))
        return JSONResponse({"error": "invalid configuration", "detail": problems, "problems": problems},
                            status_code=422)

    def _status(status: int, name: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handler(_: Request, exc: Exception) -> JSONResponse:
            return error(status, name, str(exc))

        return handler

    handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[JSONResponse]]] = {
        revisions.StaleRevision: _stale,
        ConfigError: _invalid,
        EditError: _invalid,
        PreconditionRequired: _status(428, "precondition required"),
        revisions.ReadOnlyConfig: _status(409, "read-only configuration"),
        EditConflict: _status(409, "conflict"),
        PendingDeliveries: _status(409, "deliveries pending"),
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)


# -- reading ---------------------------------------------------------------------------------------
def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


# -- writing ---------------------------------------------------------------------------------------
def parse_if_match(value: str | None) -> int | Literal["*"]:
    """``If-Match``'s revision: ``"12"`` (or ``W/"12"``, or ``12``) or ``*``."""
    if value is None or not value.strip():
        raise PreconditionRequired(
            "this write needs If-Match: the ETag of the configuration you read (`If-Match: \"12\"`), or "
            "`If-Match: *` to apply it to whatever is current")
    text = value.strip()
    if text == "*":
        return "*"
    bare = text.removeprefix("W/").strip('"')
    if not bare.isdigit() or len(bare) > 18:
        raise EditError([f"header.If-Match: {clip(text, 40)!r} is not a revision: give the ETag you read (\"12\") or *"])
    return int(bare)


def comment_of(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if _CONTROL.search(value) or len(value) > m.COMMENT_MAX:
        raise EditError([f"comment: at most {m.COMMENT_MAX} characters, without control characters"])
    return value.strip()


def source_of(principal: Principal) -> revisions.Source:
    """``ui`` for a signed-in browser (a session), ``api`` for a token."""
    return "ui" if principal.auth_method == "session" else "api"


def check_writable(hub: Hub) -> None:
    if hub.file_config.server.config_source == "file":
        raise revisions.ReadOnlyConfig(READ_ONLY)


@dataclass
class Edit:
    """What a write changes: the new document, secrets to store (vault name -> value), integrations
    it deletes, and what more the answer needs."""

    document: Document
    secrets: dict[str, str] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    literal: Document | None = None
    """The document with the secrets as given (not as references): validated too, so that a value
    the kind refuses (a Slack token without ``xoxb-``) is refused before it is stored."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Written:
    revision: revisions.Revision
    changed: bool
    edit: Edit
    killed: int = 0


async def _stale(conn: Any, head: revisions.Revision | None, expected: int | str, scope: str | None) -> bool:
    """What ``revisions.commit`` refuses, known before the edit is made (a stale write gets 412,
    not whatever the edit would say about a document its writer never saw)."""
    if expected == "*" or (head.number if head else 0) == expected:
        return False
    if head is None or not isinstance(expected, int) or expected < 1:
        return True
    try:
        base = await revisions.get(conn, expected)
    except NotFound:
        return True
    return project_part(base.document, scope) != project_part(head.document, scope)


async def _missing_secrets(conn: Any, old: Document, new: Document, stored: dict[str, str]) -> list[str]:
    """Problems for ``${vault:NAME}`` references of changed integrations whose secret is not in the vault."""
    wanted: dict[str, str] = {}
    for name, entry in new["integrations"].items():
        if not isinstance(entry, dict) or old["integrations"].get(name) == entry:
            continue
        for key, value in entry.items():
            if isinstance(value, str) and (ref := VAULT_REF.match(value)) and ref.group(1) not in stored:
                wanted[f"integrations.{name}.{key}"] = ref.group(1)
    if not wanted:
        return []
    found = {r.name for r in await conn.execute(select(secrets_table.c.name).where(
        secrets_table.c.name.in_(sorted(set(wanted.values())))))}
    return [f"{path}: no secret {secret!r} in the vault (store it with `tidings secret set {secret}`)"
            for path, secret in wanted.items() if secret not in found]


def plain_credentials(doc: Document, config: Any) -> list[str]:
    """Credentials a revision would keep in plain text: a value outside the secret fields that
    holds what the integration counts as a secret (a password or token in a webhook URL, a
    sensitive header). Secret fields go to the vault; these can't, so they are refused."""
    problems = []
    for name, settings in config.integrations.items():
        secrets = [s for s in settings.secret_values() if len(s) >= 4]
        entry = doc["integrations"].get(name)
        for key, value in (entry.items() if isinstance(entry, dict) else ()):
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            if secrets and any(secret in text for secret in secrets):
                problems.append(
                    f"integrations.{name}.{key}: holds a credential that every revision would keep in plain text;"
                    " write that part as ${ENV_VAR} (taken from each server's environment) or use a secret field")
    return problems


async def commit_edit(
    request: Request,
    project: str | None,
    make: Callable[[Document, bool], Edit],
    *,
    if_match: str | None,
    comment: str | None = None,
    force: bool = False,
) -> Written:
    """Apply ``make`` (the head's document, whether the caller is a site admin -> an :class:`Edit`)
    to the current revision and commit the result as one revision, in one transaction with the
    secrets it stores and the deliveries it kills; then switch this process to it."""
    hub = hub_of(request)
    check_writable(hub)
    expected = parse_if_match(if_match)
    comment = comment_of(comment)
    principal = await principal_of(request)
    admin = allowed(principal, SITE)
    actor = actor_of(request)
    vault = hub.vault
    rotated = False
    try:
        async with (vault.transaction() if vault is not None else hub.require_store().write()) as conn:
            await revisions.lock_state(conn)
            head = await revisions.current(conn)
            if await _stale(conn, head, expected, project):
                raise revisions.StaleRevision(head, expected)
            old = head.document if head is not None else normalize({})
            edit = make(copy.deepcopy(old), admin)
            document = normalize(edit.document)
            if edit.secrets:
                if vault is None or not vault.available:
                    raise EditError([f"{path}: the server has no secret key (TIDINGS_SECRET_KEY or tidings.key), so a "
                                     "secret can't be stored; give a reference (${vault:NAME} or ${ENV}) instead"
                                     for path in edit.extra.get("secret_paths", ["settings"])])
                register(list(edit.secrets.values()))
            if problems := await _missing_secrets(conn, old, document, edit.secrets):
                raise ConfigError(problems)
            for name in edit.deleted:
                pending = await count_pending(conn, name)
                if pending and not force:
                    raise PendingDeliveries(
                        f"integration {name!r} has {pending} deliveries not finished (pending, retrying, held or "
                        "sending); delete it with force=true to end them as dead (retryable by hand if it comes back)")
            for name, value in edit.secrets.items():
                info = await vault.put(conn, name, value, actor=actor)  # type: ignore[union-attr]
                rotated = rotated or not info["created"]

            def validate(doc: Document) -> None:
                if problems := plain_credentials(doc, to_config(doc, hub.file_config)):
                    raise ConfigError(problems)
                if edit.literal is not None:
                    to_config(edit.literal, hub.file_config)

            revision, made = await revisions.commit(
                conn, document, actor=actor, source=source_of(principal), comment=comment, expected=expected,
                scope=project, validate=validate)
            killed = 0
            for name in edit.deleted:
                reason = f"integration {name} deleted in revision {revision.number} by {revision.author}"
                count = await kill_deliveries(conn, [name], reason)
                if count:
                    await append(conn, actor, "delivery.kill", target=f"integration/{name}", project=project,
                                 after={"count": count, "reason": reason, "revision": revision.number})
                killed += count
    except OperatorOnly as exc:
        try:
            await require(request, SITE)  # audits the refusal; a site admin never gets here
        except Forbidden:
            raise HTTPException(403, f"{exc.path} is set by site admins only (it lets an integration reach private "
                                "networks): this needs the permission 'site:admin'") from None
        raise
    if rotated and vault is not None:
        await vault.purge()
    if made:
        await switch(hub)
    if edit.secrets and hub.vault_watch is not None:
        try:  # a rotated value under an unchanged reference: this process takes it now
            await hub.vault_watch.check()
        except Exception as exc:  # stored already; the periodic check tries again
            log.warning("vault.check_failed", error=clip(f"{type(exc).__name__}: {exc}", 300))
    return Written(revision, made or bool(edit.secrets), edit, killed)


async def switch(hub: Hub) -> None:
    """Make this process run the new revision now (other processes follow by themselves)."""
    try:
        await hub.catch_up()
    except Exception as exc:  # committed already; the watcher's own polling catches up
        log.warning("config.switch_failed", error=clip(f"{type(exc).__name__}: {exc}", 300))


# -- routes ----------------------------------------------------------------------------------------
router = api_router("configuration")
_NOT_ADMIN = "Not a site admin (or a project-scoped token)."
_NO_REVISION = "No revision has this number."


def _summary(revision: revisions.Revision, current: int) -> dict[str, Any]:
    return {**revision.summary(), "current": revision.number == current}


@router.get(
    "/config/revisions",
    dependencies=[allow(SITE)],
    response_model=m.RevisionPage,
    summary="List configuration revisions",
    description="Every revision, newest first, `limit` at a time (pass `next` as `before` for the next page): "
    "number, author, time, source, comment; not the documents. Needs a site admin.",
    responses={200: {"headers": m.ETAG}, **api_errors(403, s403=_NOT_ADMIN)},
)
async def list_revisions(
    request: Request, response: Response,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="the `next` of the previous page")] = None,
) -> dict[str, Any]:
    async with hub_of(request).require_store().read() as conn:
        current = await revisions.current_number(conn)
        items = await revisions.history(conn, limit=limit + 1, before=before)
    response.headers["ETag"] = etag(current)
    return {"items": [_summary(r, current) for r in items[:limit]],
            "next": items[limit - 1].number if len(items) > limit else None}


@router.get(
    "/config/revisions/{number}",
    dependencies=[allow(SITE)],
    response_model=m.RevisionDetail,
    summary="A configuration revision",
    description="One revision with its document (integrations, routes, the default route). Secrets appear only as "
    "references; anything else in a secret field is masked. Needs a site admin.",
    responses={200: {"headers": m.ETAG}, **api_errors(403, 404, s403=_NOT_ADMIN, s404=_NO_REVISION)},
)
async def get_revision(
    request: Request, response: Response, number: Annotated[int, Path(ge=1, le=2**62)],
) -> dict[str, Any]:
    async with hub_of(request).require_store().read() as conn:
        current = await revisions.current_number(conn)
        revision = await revisions.get(conn, number)
    response.headers["ETag"] = etag(current)
    return {**_summary(revision, current), "document": mask_document(revision.document)}


@router.get(
    "/config/diff",
    dependencies=[allow(SITE)],
    response_model=m.DiffOut,
    summary="Compare two revisions",
    description="What changed from revision `from` to revision `to`, per integration and route, secrets never "
    "shown. `to` defaults to the current revision, `from` to the one before `to`. Needs a site admin.",
    responses={200: {"headers": m.ETAG}, **api_errors(403, 404, s403=_NOT_ADMIN, s404=_NO_REVISION)},
)
async def diff_revisions(
    request: Request, response: Response,
    from_: Annotated[int | None, Query(alias="from", ge=0, le=2**62, description="the older revision; 0: nothing")] = None,
    to: Annotated[int | None, Query(ge=1, le=2**62, description="the newer revision (default: the current one)")] = None,
) -> dict[str, Any]:
    from ..config.diff import diff_documents, format_diff

    async with hub_of(request).require_store().read() as conn:
        current = await revisions.current_number(conn)
        to = current if to is None else to
        if to < 1:
            raise NotFound("no configuration revision yet")
        new = await revisions.get(conn, to)
        from_ = to - 1 if from_ is None else from_
        old = (await revisions.get(conn, from_)).document if from_ >= 1 else None
    changes = diff_documents(mask_document(old) if old is not None else None, mask_document(new.document))
    response.headers["ETag"] = etag(current)
    return {"from": from_, "to": to, "changes": redact_value(changes), "text": redact_value(format_diff(changes))}


@router.post(
    "/config/rollback",
    dependencies=[allow(SITE)],
    response_model=m.RevisionMade,
    summary="Roll back the configuration",
    description="Make a new revision whose document equals revision `to`'s (validated as any write; the history "
    "keeps everything in between). Needs `If-Match` and a site admin.",
    responses={200: {"headers": m.ETAG}, **write_errors(404, s403=_NOT_ADMIN, s404=_NO_REVISION)},
)
async def rollback(
    payload: m.RollbackIn, request: Request, response: Response, if_match: IfMatch = None,
) -> dict[str, Any]:
    check_writable(hub_of(request))
    async with hub_of(request).require_store().read() as conn:
        target = await revisions.get(conn, payload.to)
    written = await commit_edit(request, None, lambda _doc, _admin: Edit(target.document), if_match=if_match,
                                comment=payload.comment or f"rollback to revision {payload.to}")
    response.headers["ETag"] = etag(written.revision.number)
    return {"revision": written.revision.number, "changed": written.changed}


@router.get(
    "/projects/{project}/config/revisions",
    dependencies=[allow("integration:read"), Depends(scoped)],
    response_model=m.RevisionPage,
    summary="List a project's configuration revisions",
    description="The revisions that changed this project's integrations or routes (or, for `default`, its default "
    "route), newest first, `limit` at a time (pass `next` as `before` for the next page).",
    responses={200: {"headers": m.ETAG}, **api_errors(404, s404="No such project.")},
)
async def list_project_revisions(
    request: Request, response: Response, project: ProjectDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="the `next` of the previous page")] = None,
) -> dict[str, Any]:
    hub = hub_of(request)
    found: list[dict[str, Any]] = []
    following: int | None = None
    async with hub.require_store().read() as conn:
        current = await revisions.current_number(conn)
        batch = await revisions.history(conn, limit=_CHUNK, before=before)
        while batch and following is None:
            older = await revisions.history(conn, limit=_CHUNK, before=batch[-1].number)
            chain = [*batch, *older[:1]]
            for i, revision in enumerate(batch):
                parent = chain[i + 1] if i + 1 < len(chain) else None
                was = project_part(parent.document, project) if parent is not None else _empty_part(project)
                if project_part(revision.document, project) != was:
                    found.append(_summary(revision, current))
                    if len(found) == limit:
                        following = revision.number if revision.number > 1 else None
                        break
            if len(found) == limit:
                break
            batch = older
    response.headers["ETag"] = etag(current)
    return {"items": found, "next": following}


_CHUNK = 100


def _empty_part(project: str) -> Document:
    """What a project has before the first revision: nothing."""
    return {"integrations": {}, "routes": [], **({"default": {}} if project == "default" else {})}
