"""``/api/v1/audit``: the audit trail for people with ``audit:read`` (project owners see their
projects' entries, site admins every entry), and ``/api/v1/audit/verify`` for site admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request
from pydantic import Field
from sqlalchemy import select

from ..accounts import SITE, Forbidden, Principal, allowed
from ..audit import Problem, load_signer, verify_store
from ..audit.query import ACTION_FILTER, list_entries
from ..errors import NotFound
from ..store.tables import projects
from ..units import parse_duration
from . import schemas
from .auth import _audit_refusal, allow
from .schemas import api_errors
from .scoped import PAGE, HubDep, api_router

router = api_router("audit")
READ = "audit:read"


class AuditEntry(schemas.Out):
    seq: int = Field(description="gap-free, from 1")
    at: float = Field(description="Unix time, seconds (UTC)")
    actor: str = Field(description="`user`, `token` or `system`")
    actor_id: str | None
    actor_name: str | None = Field(description="an email, `cli:<login>`, a Slack user, `tidings`...")
    auth_method: str | None = Field(description="`token`, `session`, `cli`, `slack` or `system`")
    token_id: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    project: str | None = Field(description="null for site-wide acts (users, projects, keys)")
    action: str = Field(description="`silence.create`, `delivery.retry`, `token.revoke`...")
    target: str | None = Field(description="what it acted on: `silence/<id>`, `delivery/<id>`...")
    before: Any = Field(description="the state before (secrets masked), when meaningful")
    after: Any = Field(description="the state after (secrets masked)")
    outcome: str = Field(description="`ok`, or `denied` for a refusal")
    prev_hash: str
    hash: str = Field(description="SHA-256 over the previous hash and this entry (RFC 8785 JSON)")


class AuditPage(schemas.Out):
    items: list[AuditEntry]
    next: int | None = Field(description="pass as `before` for the next page; null on the last one")


class AuditProblem(schemas.Out):
    seq: int = Field(description="the first entry that was changed, deleted, inserted or reordered")
    reason: str


class AuditVerified(schemas.Out):
    ok: bool
    first: int | None = Field(description="the first entry verified")
    last: int | None = Field(description="the last entry verified")
    checkpoints: int = Field(description="signed checkpoints the chain matched")
    signatures_checked: bool = Field(description="false when the server has no signing key to check them with")
    problem: AuditProblem | None


ActorQ = Annotated[str | None, Query(min_length=1, max_length=320, pattern=schemas.NO_NUL,
                                     description="the actor's name (an email, `cli:root`), user id or token id")]
ActionQ = Annotated[str | None, Query(max_length=100, pattern=ACTION_FILTER,
                                      description="an action, or `prefix.*` (`silence.*`)")]
SinceQ = Annotated[str | None, Query(max_length=40, pattern=schemas.DURATION, description="only the last 30m, 1h, 7d...")]
LimitQ = Annotated[int, Query(ge=1, le=500)]
BeforeQ = Annotated[int | None, Query(ge=1, le=2**63 - 1, description=PAGE)]


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    seconds = parse_duration(value)
    if seconds <= 0:
        from fastapi.exceptions import RequestValidationError

        raise RequestValidationError([{"type": "greater_than", "loc": ("query", "since"), "input": value,
                                       "msg": "since must be more than 0s"}])
    return seconds


def _readable(principal: Principal) -> list[str] | None:
    """The projects whose entries ``principal`` may read; None: every entry (a site admin)."""
    if principal.site_admin and principal.token_project is None:
        return None
    candidates = [principal.token_project] if principal.token_project else list(principal.memberships)
    return [p for p in candidates if allowed(principal, READ, p)]


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="List audit entries",
    description="Newest first, `limit` at a time; pass `next` as `before` for the next page. Site admins see "
    "every entry (site-wide ones included); others see the entries of the projects where they hold `audit:read`.",
    responses=api_errors(403, s403="The token may not read the audit trail (or not that `project`'s)."),
)
async def list_audit(
    request: Request,
    principal: Annotated[Principal, allow(READ)],
    hub: HubDep,
    actor: ActorQ = None,
    action: ActionQ = None,
    project: Annotated[str | None, Query(min_length=1, max_length=64, pattern=schemas.NO_NUL)] = None,
    since: SinceQ = None,
    limit: LimitQ = 50,
    before: BeforeQ = None,
) -> dict[str, Any]:
    visible = _readable(principal)
    if project is not None and visible is not None and project not in visible:
        refusal = Forbidden(READ, project)
        await _audit_refusal(request, principal, refusal)
        raise refusal
    async with hub.require_store().read() as conn:
        return await list_entries(conn, actor=actor, action=action, project=project, projects=visible,
                                  since=_since(since), limit=limit, before=before)


@router.get(
    "/projects/{project}/audit",
    dependencies=[allow(READ)],
    response_model=AuditPage,
    summary="List a project's audit entries",
    description="The entries of one project, newest first, `limit` at a time (`next` as `before`).",
    responses=api_errors(403, 404, s404="No project of this name."),
)
async def list_project_audit(
    project: Annotated[str, Path(max_length=64, pattern=schemas.NO_NUL)],
    hub: HubDep,
    actor: ActorQ = None,
    action: ActionQ = None,
    since: SinceQ = None,
    limit: LimitQ = 50,
    before: BeforeQ = None,
) -> dict[str, Any]:
    async with hub.require_store().read() as conn:
        if (await conn.execute(select(projects.c.slug).where(projects.c.slug == project))).first() is None:
            raise NotFound(f"no project {project!r}")
        return await list_entries(conn, actor=actor, action=action, project=project, since=_since(since),
                                  limit=limit, before=before)


@router.get(
    "/audit/verify",
    dependencies=[allow(SITE)],
    response_model=AuditVerified,
    summary="Verify the audit trail",
    description="Recompute the hash chain from the first entry and check it against the signed checkpoints. "
    "`ok: false` names the first entry that was changed, deleted, inserted or reordered.",
    responses=api_errors(403, params=False, s403="Only site admins verify the whole trail."),
)
async def verify_audit(hub: HubDep) -> dict[str, Any]:
    signer = load_signer(hub.config_dir)
    result = await verify_store(hub.require_store(), signer.public_key if signer else None)
    out: dict[str, Any] = {"signatures_checked": signer is not None}
    if isinstance(result, Problem):
        return {**out, "ok": False, "first": None, "last": None, "checkpoints": 0,
                "problem": {"seq": result.seq, "reason": result.reason}}
    return {**out, "ok": True, "first": result.first, "last": result.last, "checkpoints": result.checkpoints,
            "problem": None}
