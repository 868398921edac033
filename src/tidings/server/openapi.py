"""The OpenAPI document: FastAPI's, plus ``POST /hooks/{integration}``, which is served by
:mod:`.hooks` as pure ASGI and is described here by a route that is never dispatched to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Path
from fastapi.openapi.utils import get_openapi

from . import schemas
from .schemas import errors

_DESCRIPTIONS = {
    "Priority": "How urgent a message is; critical is delivered first.",
    "Format": "How `body` is written; each channel converts it to what it can show.",
}

_documented = APIRouter(tags=["webhooks"])


@_documented.post(
    "/hooks/{integration}",
    response_model=None,
    summary="Receive a webhook",
    description="Where a platform (GitHub, Slack, Jira, Alertmanager, a Standard Webhooks sender...) sends its "
    "webhooks, one URL per receiving integration. The request is verified as that platform signs it (a signature "
    "header, a token or Basic credentials: see the integration's docs), stored as received, and answered at once; "
    "processing follows from the stored event. A repeated delivery id answers `duplicate`. Needs no API token.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The body exactly as the platform sends it: JSON for most, a form for Slack's "
            "interactivity and slash commands and for GitHub's form-encoded webhooks.",
            "content": {
                "application/json": {"schema": {}, "example": {"action": "opened", "issue": {"number": 1}}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            },
        }
    },
    responses={
        200: {
            "description": "Verified and stored (or a duplicate), or for a platform that expects a specific answer "
            "(Slack's `url_verification` challenge, a slash command's reply, GitHub's ping), that answer.",
            "content": {
                "application/json": {"schema": {"anyOf": [{"$ref": "#/components/schemas/HookAccepted"},
                                                          {"type": "object"}]}},
                "text/plain": {"schema": {"type": "string"}},
            },
        },
        **errors(400, 401, 404, 413, 415,
                 s400="Malformed: not the JSON or form the platform sends, or a field it always sends is missing.",
                 s401="The signature, token or credentials don't verify.",
                 s404="No integration of this name receives webhooks.",
                 s413="The body is larger than this integration accepts.",
                 s415="Not a content type this integration receives."),
    },
)
async def _hook(integration: str = Path(description="the name of a receiving integration")) -> None:
    raise NotImplementedError  # never routed: hooks.serve answers these requests


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=[*app.routes, *_documented.routes],
                tags=app.openapi_tags,
            )
            components = spec["components"]["schemas"]
            components["HookAccepted"] = schemas.HookAccepted.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            for name, text in _DESCRIPTIONS.items():
                if name in components:
                    components[name]["description"] = text
            # The stub's path parameter makes FastAPI promise a 422 that hooks.serve never answers.
            spec["paths"]["/hooks/{integration}"]["post"]["responses"].pop("422", None)
            _errors_as_json(spec)
            _prune(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _prune(spec: dict[str, Any]) -> None:
    """Drop component schemas nothing refers to (FastAPI's validation error models, input
    models' parts that an explicit schema replaced)."""
    schemas_ = spec["components"]["schemas"]
    prefix = "#/components/schemas/"
    used: set[str] = set()
    todo = [spec["paths"]]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix):] not in used:
                used.add(ref[len(prefix):])
                todo.append(schemas_.get(ref[len(prefix):]))
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    for name in set(schemas_) - used:
        del schemas_[name]


def _errors_as_json(spec: dict[str, Any]) -> None:
    """Error answers are JSON even from a route whose own answer is not (``/metrics``): FastAPI
    files every answer model under the route's media type."""
    for operations in spec["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" not in content and content:
                    response["content"] = {"application/json": next(iter(content.values()))}
