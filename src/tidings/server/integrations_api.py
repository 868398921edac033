"""A project's integrations and routes through the API, each write one configuration revision
(see ``config_api`` for ETag, If-Match, read-only mode and how a write commits); the kinds'
settings schemas; tests of draft settings.

Like the resource routes of ``api``, every route here exists under ``/api/v1/projects/{project}``
and, for the project ``default``, under ``/api/v1``. Another project's integration or route is not
found (404). Secret fields given as values are stored in the vault as ``<project>/<integration>/<field>``
and the revision holds ``${vault:...}``; no answer holds a secret's value.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import time
from functools import cache
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from starlette.exceptions import HTTPException

from ..accounts import SITE, Forbidden, Principal, allowed
from ..accounts.principal import SIGNED_IN
from ..config import edits
from ..config.document import Document, is_reference, secret_fields, to_config
from ..errors import ConfigError, VaultError
from ..hub import Hub
from ..integrations.base import DEFAULT_PROJECT, Context, Notifier, Outcome, not_connected, secret_refs
from ..integrations.receiver import Receiver
from ..integrations.registry import KINDS, integration_class, kinds, settings_model
from ..oauth.names import is_connection_secret
from ..security.outbound import Destinations
from ..security.redact import register
from ..threads import Threads
from . import config_models as m
from . import schemas
from .auth import allow, principal_of, require
from .config_api import (
    Comment,
    Edit,
    IfMatch,
    OperatorOnly,
    commit_edit,
    etag,
    write_errors,
)
from .config_views import head_of, settings_view
from .schemas import api_errors
from .scoped import HubDep, ProjectDep, api_router, project_router
from .secrets_api import json_body

log = structlog.get_logger("tidings.server")
OPERATOR_ONLY = ("allow_destinations",)
"""Settings only a site admin may set or change: they open the outbound guard."""


# -- kinds -----------------------------------------------------------------------------------------
@cache
def kind_info(kind: str) -> dict[str, Any]:
    """``kind``'s description, capabilities, secret fields and settings JSON Schema (secret fields
    ``writeOnly`` with ``format: password``; without ``kind`` and ``project``, which a route sets)."""
    cls = integration_class(kind)
    schema = settings_model(kind).model_json_schema()
    properties = schema.get("properties", {})
    for name in ("kind", "project"):
        properties.pop(name, None)
    schema["required"] = [r for r in schema.get("required", []) if r not in ("kind", "project")]
    secrets = list(secret_fields(kind))
    for name in secrets:
        properties[name].update(writeOnly=True, format="password")
    doc = importlib.import_module(cls.__module__).__doc__ or ""
    description = " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "`").rstrip(":")
    return {"kind": kind, "description": description, "sends": issubclass(cls, Notifier),
            "receives": issubclass(cls, Receiver), "secret_fields": secrets, "schema": schema}


kinds_router = api_router("configuration")


@kinds_router.get(
    "/integrations/kinds",
    dependencies=[allow(SIGNED_IN)],
    response_model=m.KindList,
    summary="Integration kinds",
    description="Every kind of integration with its description, whether it sends and receives, and the JSON "
    "Schema of its settings (secret fields are `writeOnly`, `format: password`): what a form needs. "
    "An integration named `kinds` is reached at `/api/v1/projects/default/integrations/kinds`.",
    responses=api_errors(params=False),
)
async def list_kinds() -> dict[str, Any]:
    return {"items": [kind_info(k) for k in kinds()]}


# -- helpers ---------------------------------------------------------------------------------------
def _secret_paths(name: str, kind: str, entry: dict[str, Any]) -> list[str]:
    return [f"integrations.{name}.{f}" for f in secret_fields(kind) if isinstance(entry.get(f), str)
            and entry[f] and not is_reference(entry[f])]


def _keep_masked(name: str, entry: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """``entry`` where a secret field holds what a reader was shown (``{"set": ..., "masked": ...}``)
    given back: the stored value stays."""
    kind = entry.get("kind")
    if kind not in KINDS:
        return entry
    out = dict(entry)
    for field in secret_fields(kind):
        if isinstance(out.get(field), dict):
            if old is None or old.get("kind") != kind or field not in old:
                raise edits.EditError([f"integrations.{name}.{field}: give the secret's value or a reference; a "
                                       "masked value keeps only what is stored"])
            out[field] = old[field]
    return out


def _vaulted(project: str, name: str, entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``entry`` with each secret given as a value replaced by ``${vault:<project>/<name>/<field>}``,
    and those values by vault name."""
    kind = entry.get("kind")
    if kind not in KINDS:
        return entry, {}
    out, stored = dict(entry), {}
    for field in secret_fields(kind):
        value = out.get(field)
        if isinstance(value, str) and value and not is_reference(value):
            secret = f"{project}/{name}/{field}"
            stored[secret] = value
            out[field] = f"${{vault:{secret}}}"
    return out, stored


def _check_operator(old: dict[str, Any] | None, new: dict[str, Any] | None, admin: bool, name: str) -> None:
    if admin:
        return
    for field in OPERATOR_ONLY:
        if (old or {}).get(field) != (new or {}).get(field) and ((old or {}).get(field) or (new or {}).get(field)):
            raise OperatorOnly(f"integrations.{name}.{field}")


def _integration_edit(project: str, name: str, old: dict[str, Any] | None, new: dict[str, Any], doc: Document,
                      admin: bool) -> Edit:
    """The edit that makes ``new`` integration ``name``'s settings (secrets to the vault)."""
    new = _keep_masked(name, new, old)
    _check_operator(old, new, admin, name)
    paths = _secret_paths(name, str(new.get("kind")), new) if new.get("kind") in KINDS else []
    stored_entry, stored = _vaulted(project, name, new)
    document = (edits.add_integration(doc, project, name, stored_entry) if old is None
                else edits.replace_integration(doc, project, name, stored_entry))
    literal = None
    if stored:
        literal = copy.deepcopy(document)
        literal["integrations"][name] = {**stored_entry, **{f: new[f] for f in secret_fields(new["kind"]) if f in new}}
    return Edit(document, secrets=stored, literal=literal, extra={"secret_paths": paths})


async def _view(hub: Hub, name: str, entry: dict[str, Any], revision: int) -> dict[str, Any]:
    return {"name": name, "kind": entry.get("kind"), "project": edits.project_of(entry),
            "settings": await settings_view(hub, entry), "revision": revision}


def _tagged(response: Response, number: int) -> None:
    response.headers["ETag"] = etag(number)


# -- integrations ----------------------------------------------------------------------------------
routes = APIRouter()
_NO_INTEGRATION = "No integration of this name in the project."
_READ = {200: {"headers": m.ETAG}}
PatchBody = Annotated[dict[str, Any], Body(openapi_examples={"change": {
    "summary": "change a setting, remove another",
    "value": {"url": "https://hooks.example.com/v2", "description": None}}})]


@routes.post(
    "/integrations",
    status_code=201,
    dependencies=[allow("integration:write"), Depends(json_body)],
    response_model=m.IntegrationWritten,
    summary="Create an integration",
    description="Add an integration to the project: one new revision. Secret fields given as values are stored in "
    "the vault and the revision refers to them; references (`${vault:NAME}`, `${ENV}`) are kept. Needs `If-Match`. "
    "Setting `allow_destinations` needs a site admin.",
    responses={201: {"headers": m.ETAG}, **write_errors()},
)
async def create_integration(
    payload: m.IntegrationIn, request: Request, response: Response, hub: HubDep, project: ProjectDep,
    if_match: IfMatch = None, comment: Comment = None,
) -> dict[str, Any]:
    given = payload.settings.get("project", project)
    if given != project:
        raise edits.EditError([f"settings.project: {given!r} is not this project ({project!r}); create it through "
                               "/api/v1/projects/<project>/integrations"])
    entry = {**payload.settings, "kind": payload.kind, "project": project}
    written = await commit_edit(
        request, project, lambda doc, admin: _integration_edit(project, payload.name, None, entry, doc, admin),
        if_match=if_match, comment=comment)
    _tagged(response, written.revision.number)
    stored = written.revision.document["integrations"][payload.name]
    return {**await _view(hub, payload.name, stored, written.revision.number), "changed": written.changed}


@routes.get(
    "/integrations/{name}",
    dependencies=[allow("integration:read")],
    response_model=m.IntegrationConfig,
    summary="An integration's settings",
    description="The integration's settings as configured in the current revision, each secret masked "
    "(`{set, masked, reference}`), never its value. Health and figures are in the list of integrations.",
    responses={**_READ, **api_errors(404, s404=_NO_INTEGRATION)},
)
async def get_integration(
    name: Annotated[str, Path(max_length=64)], response: Response, hub: HubDep, project: ProjectDep,
) -> dict[str, Any]:
    number, doc = await head_of(hub)
    entry = edits.get_integration(doc, project, name)
    _tagged(response, number)
    return await _view(hub, name, entry, number)


@routes.patch(
    "/integrations/{name}",
    dependencies=[allow("integration:write"), Depends(json_body)],
    response_model=m.IntegrationWritten,
    summary="Change an integration",
    description="Apply a JSON merge patch (RFC 7396) to the integration's settings: a key given replaces its value, "
    "`null` removes it, an object merges into the object there. `kind` and `project` can't change. A secret field "
    "given as a value goes to the vault; given back as it was read (`{set, masked}`) it stays as stored. One new "
    "revision; needs `If-Match`. Changing `allow_destinations` needs a site admin.",
    responses={200: {"headers": m.ETAG}, **write_errors(404, s404=_NO_INTEGRATION)},
)
async def patch_integration(
    name: Annotated[str, Path(max_length=64)], patch: PatchBody, request: Request, response: Response, hub: HubDep,
    project: ProjectDep, if_match: IfMatch = None, comment: Comment = None,
) -> dict[str, Any]:
    def make(doc: Document, admin: bool) -> Edit:
        old = edits.get_integration(doc, project, name)
        new = edits.get_integration(edits.patch_integration(doc, project, name, patch), project, name)
        return _integration_edit(project, name, old, new, doc, admin)

    written = await commit_edit(request, project, make, if_match=if_match, comment=comment)
    _tagged(response, written.revision.number)
    stored = written.revision.document["integrations"][name]
    return {**await _view(hub, name, stored, written.revision.number), "changed": written.changed}


@routes.delete(
    "/integrations/{name}",
    dependencies=[allow("integration:write")],
    response_model=m.Deleted,
    summary="Delete an integration",
    description="Remove the integration: one new revision; needs `If-Match`. Refused (409) while it has deliveries "
    "not finished, unless `force=true`: they then end `dead` with the reason (retryable by hand if it comes back). "
    "Refused (422) while routes send to it: `detail` names them. Its vault secrets stay (`/api/v1/secrets`).",
    responses={200: {"headers": m.ETAG}, **write_errors(404, body=False, s404=_NO_INTEGRATION)},
)
async def delete_integration(
    name: Annotated[str, Path(max_length=64)], request: Request, response: Response, project: ProjectDep,
    force: Annotated[bool, Query(description="end its unfinished deliveries as dead")] = False,
    if_match: IfMatch = None, comment: Comment = None,
) -> dict[str, Any]:
    def make(doc: Document, _admin: bool) -> Edit:
        document = edits.remove_integration(doc, project, name)
        if targets := edits.routes_to(document, name):
            raise ConfigError([f"{path}: sends to {name!r}, which this deletes; remove or change the route first"
                               for path in targets])
        return Edit(document, deleted=[name])

    written = await commit_edit(request, project, make, if_match=if_match, comment=comment, force=force)
    _tagged(response, written.revision.number)
    return {"name": name, "deleted": True, "revision": written.revision.number, "killed": written.killed}


# -- tests of drafts -------------------------------------------------------------------------------
async def _require_admin_for(request: Request, path: str) -> None:
    try:
        await require(request, SITE)
    except Forbidden:
        raise HTTPException(403, f"{path} is set by site admins only (it lets an integration reach private "
                            "networks): this needs the permission 'site:admin'") from None


async def test_draft(request: Request, hub: Hub, project: str, name: str, entry: dict[str, Any],
                     old: dict[str, Any] | None) -> dict[str, Any]:
    """Test ``entry`` (integration ``name``'s draft settings, with ``kind``) without saving it:
    validated (422), built as a temporary integration behind the outbound guard, tested, closed."""
    entry = _keep_masked(name, {**entry, "project": project}, old)
    principal: Principal = await principal_of(request)
    try:
        _check_operator(old, entry, allowed(principal, SITE), name)
    except OperatorOnly as exc:
        await _require_admin_for(request, exc.path)
    entry = {k: v for k, v in entry.items() if not (k == "project" and v == DEFAULT_PROJECT)}
    config = to_config({"integrations": {"inbox": {"kind": "inbox"}, name: entry}, "routes": [],
                        "default": {"to": ["inbox"]}}, hub.file_config)
    settings = config.integrations[name]
    resolved: dict[str, str] = {}
    problems = []
    unconnected = False
    for field, secret in secret_refs(name, settings).items():
        try:
            resolved[field] = await hub.vault.get(secret) if hub.vault is not None else ""
        except VaultError as exc:
            if is_connection_secret(secret) and (hub.vault is None or await hub.vault.info(secret) is None):
                unconnected = True  # oauth: true, no connection yet: not a config error, the test says so
            else:
                problems.append(f"integrations.{name}.{field}: {exc}")
    if problems:
        raise ConfigError(problems)
    if unconnected:
        return _draft_result(name, Outcome.permanent(not_connected(name)))
    if resolved:
        settings = type(settings).model_validate({**settings.model_dump(), **resolved})
    values = settings.secret_values()
    register(values)
    context = Context(store=hub.require_store(), threads=Threads(hub.require_store()), secrets=set(values),
                      destinations=Destinations.parse(hub.config.server.allow_destinations),
                      oauth=dict(hub.config.oauth))
    integration = integration_class(settings.kind)(name, settings, context)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(integration.effective_timeout + 5):
            outcome = await integration.test()
    except TimeoutError:
        outcome = Outcome.retry(f"timed out after {integration.effective_timeout:g}s")
    finally:
        await integration.close()
    outcome = outcome.as_test()
    log.info("config.draft_tested", integration=name, project=project, status=outcome.status.value,
             ms=round((time.perf_counter() - started) * 1000, 1))
    return _draft_result(name, outcome)


def _draft_result(name: str, outcome: Outcome) -> dict[str, Any]:
    return {"integration": name, "ok": outcome.ok, "status": outcome.status.value, "remote_id": outcome.remote_id,
            "error": outcome.error, "retry_after": outcome.retry_after, "draft": True}


async def test_saved_draft(request: Request, hub: Hub, project: str, name: str, draft: m.DraftIn) -> dict[str, Any]:
    """``POST .../integrations/{name}/test`` with a body: the saved integration with ``draft`` applied."""
    _, doc = await head_of(hub)
    old = edits.get_integration(doc, project, name)
    if draft.patch is not None and (draft.settings is not None or draft.kind is not None):
        raise edits.EditError(["body: give either `patch` or `kind` and `settings`, not both"])
    if draft.patch is not None:
        entry = edits.get_integration(edits.patch_integration(doc, project, name, draft.patch), project, name)
    else:
        entry = {**(draft.settings or {}), "kind": draft.kind or old["kind"]}
        if entry.get("project", project) != project:
            raise edits.EditError([f"settings.project: can't change ({project!r})"])
    return await test_draft(request, hub, project, name, entry, old)


@routes.post(
    "/integrations/test",
    dependencies=[allow("integration:test"), Depends(json_body)],
    response_model=schemas.TestResult,
    summary="Test a new integration's draft",
    description="Build an integration from `kind` and `settings` without saving anything, send its test (through "
    "the outbound guard, as any send) and report what the peer answered. Invalid settings answer 422 with one line "
    "per problem. Setting `allow_destinations` needs a site admin.",
    responses=api_errors(403, body=True),
)
async def test_new_draft(payload: m.NewDraftIn, request: Request, hub: HubDep, project: ProjectDep) -> dict[str, Any]:
    _, doc = await head_of(hub)
    existing = doc["integrations"].get(payload.name)
    old = existing if isinstance(existing, dict) and edits.project_of(existing) == project else None
    return await test_draft(request, hub, project, payload.name, {**payload.settings, "kind": payload.kind}, old)


router = project_router(routes, "configuration")
