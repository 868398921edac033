"""``/api/v1/secrets``: the credential manager over HTTP.

No route answers a value: a secret is shown as its metadata, the integrations that refer to it and
at most its last four characters. Secrets are site-wide today (a ``${vault:NAME}`` in tidings.yaml
serves every integration), so the permissions ``secret:read`` and ``secret:write`` are checked in
the project ``default``. The answer models ignore keys they don't name (unlike the other answers),
so nothing but metadata can ever reach a client."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from ..errors import VaultError
from ..hub import Hub
from ..security.credentials import SecretInUse, check_fits, delete_secret, list_secrets, references, show_secret
from ..security.redact import clip
from ..security.vault import MAX_VALUE, NAME_PATTERN, Vault, check_value
from . import errors
from .auth import actor_of, allow
from .guard import is_json
from .schemas import NO_NUL, api_errors
from .scoped import HubDep, api_router

log = structlog.get_logger("tidings.server")
router = api_router("secrets")

SecretName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=200,
                                 description="the name `${vault:NAME}` refers to (letters, digits, `_ . - /`)")]
NO_KEY = "No secret key is configured on the server (`TIDINGS_SECRET_KEY` or `tidings.key`)."


class _Meta(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    created_at: float = Field(description="Unix time, seconds")
    created_by: str | None = Field(description="who stored it first (a user's email, a token's name, `cli:<login>`)")
    updated_at: float = Field(description="when its stored form last changed (a new value or a new key)")
    rotated_at: float | None = Field(description="when it last got a new value; null if never")
    rotated_by: str | None
    last_used_at: float | None = Field(description="when an integration last used it (updated at most once a minute)")
    references: list[str] = Field(description="the integrations whose settings refer to it as `${vault:NAME}`")


class SecretInfo(_Meta):
    """A secret's metadata; never its value."""


class SecretDetail(_Meta):
    masked: str | None = Field(description="`…abcd`: the last 4 characters of a value of 16 or more, `…` alone for "
                               "a shorter one; null when the server's keys can't decrypt it")


class SecretStored(_Meta):
    created: bool = Field(description="true: a new secret; false: an existing one got a new value (a rotation)")


class SecretList(BaseModel):
    model_config = ConfigDict(extra="ignore")
    items: list[SecretInfo]


class SecretDeleted(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    deleted: bool
    purged: bool = Field(description="whether the database's files were wiped of it at once (SQLite: zeroed pages and "
                         "a truncated WAL; PostgreSQL: the table rewritten by VACUUM FULL); false: it is deleted, "
                         "and its old pages go at the next checkpoint or vacuum")
    references: list[str] = Field(description="the integrations that referred to it (a forced delete)")


class SecretValue(BaseModel):
    model_config = ConfigDict(extra="forbid", title="SecretValue",
                              json_schema_extra={"examples": [{"value": "xoxb-0000-0000-example"}]})
    value: str = Field(min_length=1, max_length=MAX_VALUE, pattern=NO_NUL,
                       description="the new value: text without NUL, at most 64 KiB of UTF-8; never answered back")


async def json_body(request: Request) -> None:
    """415 for a body not declared as JSON (the request guard checks only the message routes)."""
    if not is_json(request.headers.get("content-type", "").encode("latin-1")):
        raise HTTPException(415, "send the body as Content-Type: application/json")


async def vault_of(request: Request) -> Vault:
    vault: Vault | None = request.app.state.hub.vault
    if vault is None:
        raise HTTPException(503, "the hub is starting")
    return vault


VaultDep = Annotated[Vault, Depends(vault_of)]


@router.get(
    "/secrets",
    dependencies=[allow("secret:read")],
    response_model=SecretList,
    summary="List secrets",
    description="Every stored secret's metadata and the integrations referring to it; never a value.",
    responses=api_errors(403, 503, params=False),
)
async def get_secrets(hub: HubDep, vault: VaultDep) -> dict[str, Any]:
    return {"items": await list_secrets(vault, hub.config)}


@router.get(
    "/secrets/{name:path}",
    dependencies=[allow("secret:read")],
    response_model=SecretDetail,
    summary="A secret's metadata",
    description="One secret's metadata, the integrations referring to it and its value masked (`…abcd`). "
    "No route reveals a value.",
    responses=api_errors(403, 404, 503),
)
async def get_secret(name: SecretName, hub: HubDep, vault: VaultDep) -> dict[str, Any]:
    return await show_secret(vault, hub.config, name)


@router.put(
    "/secrets/{name:path}",
    dependencies=[allow("secret:write"), Depends(json_body)],
    response_model=SecretStored,
    summary="Store or rotate a secret",
    description="Store `value` as a new secret (201) or as the new value of an existing one (200, a rotation). "
    "Running integrations use a rotated value from their next send, without a restart. Audited "
    "(`secret.set` or `secret.rotate`, metadata only). A value that an integration referring to the secret would "
    "refuse (a Slack token without `xoxb-`...) is refused with 422.",
    responses={201: {"model": SecretStored, "description": "A new secret."},
               **api_errors(403, 404, 503, body=True, s503=NO_KEY)},
)
async def put_secret(
    name: SecretName, payload: SecretValue, hub: HubDep, vault: VaultDep, request: Request, response: Response
) -> Any:
    try:
        check_value(payload.value)
        check_fits(hub.config, name, payload.value)
    except ValueError as exc:
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "value"), "msg": str(exc)}]) from None
    try:
        info = await vault.set(name, payload.value, actor=actor_of(request))
    except VaultError as exc:
        return errors.error(503, "vault unavailable", str(exc))
    await _apply_now(hub)
    response.status_code = 201 if info["created"] else 200
    return {**info, "references": references(hub.config).get(name, [])}


@router.delete(
    "/secrets/{name:path}",
    dependencies=[allow("secret:write")],
    response_model=SecretDeleted,
    summary="Delete a secret",
    description="Delete a secret for good (see `purged`). Refused with 409 while integrations refer to it, unless "
    "`force=true`: they then keep the value they hold until their next start, which fails. Audited (`secret.delete`).",
    responses=api_errors(403, 404, 409, 503, s409="Integrations refer to the secret: `detail` names them."),
)
async def remove_secret(
    name: SecretName, hub: HubDep, vault: VaultDep, request: Request,
    force: Annotated[bool, Query(description="delete it although integrations refer to it")] = False,
) -> dict[str, Any]:
    try:
        deleted = await delete_secret(vault, hub.config, name, force=force, actor=actor_of(request))
    except SecretInUse as exc:
        raise HTTPException(409, str(exc)) from None
    return {"name": name, "deleted": True, "purged": deleted["purged"], "references": deleted["references"]}


async def _apply_now(hub: Hub) -> None:
    """This process's integrations take a rotated value at once (other processes within seconds)."""
    if hub.vault_watch is None:
        return
    try:
        await hub.vault_watch.check()
    except Exception as exc:  # stored already; the periodic check tries again
        log.warning("vault.check_failed", error=clip(f"{type(exc).__name__}: {exc}", 300))
