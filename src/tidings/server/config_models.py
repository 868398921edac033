"""What the configuration API (``config_api``, ``integrations_api``) takes and answers, as
pydantic models: the OpenAPI document is built from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..config.models import NAME
from ..integrations.registry import kinds
from .schemas import NO_NUL, Out

KIND = Literal[tuple(kinds())]  # type: ignore[valid-type]
COMMENT_MAX = 500
NAME_PATTERN = NAME.pattern
ETAG = {"ETag": {"description": "the current configuration revision, quoted (`\"12\"`): send it back as `If-Match`",
                 "schema": {"type": "string"}}}


# -- revisions -------------------------------------------------------------------------------------
class RevisionSummary(Out):
    number: int
    created_at: float = Field(description="Unix time, seconds")
    author: str = Field(description="who made it: a user's email, a token's name, `cli:<login>`, `system`")
    source: Literal["file", "api", "cli", "ui"] = Field(description="how it was made")
    comment: str | None
    digest: str = Field(description="SHA-256 of the document: equal documents, equal digests")
    parent: int | None = Field(description="the revision it was made on; null for the first")
    audit_seq: int | None = Field(description="the audit entry that records it (`/api/v1/audit`)")
    current: bool = Field(description="whether it is the one running now")


class RevisionPage(Out):
    items: list[RevisionSummary]
    next: int | None = Field(description="pass as `before` for the next page; null on the last one")


class RevisionDetail(RevisionSummary):
    document: dict[str, Any] = Field(description="integrations, routes and the default route, as written; secrets "
                                     "appear only as references (`${vault:NAME}`, `${ENV}`), anything else masked")


class DiffOut(Out):
    from_: int = Field(alias="from", description="the older revision")
    to: int
    changes: list[dict[str, Any]] = Field(description="one item per integration or route changed, secrets masked")
    text: str = Field(description="the same changes, readable, one line each")


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="RollbackIn", json_schema_extra={"examples": [{"to": 1}]})
    to: int = Field(ge=1, le=2**62, description="the revision whose document becomes current again")
    comment: str | None = Field(None, max_length=COMMENT_MAX, pattern=NO_NUL)


class RevisionMade(Out):
    revision: int = Field(description="the current revision after the write (also the answer's `ETag`)")
    changed: bool = Field(description="false: the write changed nothing, so no revision was made")


# -- integrations ----------------------------------------------------------------------------------
class IntegrationConfig(Out):
    name: str
    kind: str
    project: str
    settings: dict[str, Any] = Field(description="as written, without `kind` and `project`; each secret field as "
                                     "`{set, masked, reference}` (`masked`: `…abcd` at most), never its value")
    revision: int = Field(description="the revision this was read from (also the answer's `ETag`)")


class IntegrationWritten(IntegrationConfig):
    changed: bool = Field(description="false: the write changed nothing, so no revision was made")


class IntegrationList(Out):
    items: list[IntegrationConfig]
    revision: int


_EXAMPLE = {"name": "ops-hook", "kind": "webhook",
            "settings": {"url": "https://hooks.example.com/tidings", "description": "on-call hook"}}


class IntegrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="IntegrationIn", json_schema_extra={"examples": [_EXAMPLE]})
    name: str = Field(pattern=NAME_PATTERN, description="unique across projects: the webhook URL's last part")
    kind: KIND = Field(description="one of `GET /api/v1/integrations/kinds`")
    settings: dict[str, Any] = Field(default_factory=dict, description="the kind's settings (its JSON Schema in "
                                     "`GET /api/v1/integrations/kinds`); secret fields given as values go to the vault")


class Deleted(Out):
    name: str
    deleted: bool
    revision: int
    killed: int = Field(description="deliveries ended `dead` (a forced delete)")


class DraftIn(BaseModel):
    """A draft of the integration to test instead of the saved one: a whole definition (`kind` and
    `settings`) or a merge patch over the saved settings (`patch`)."""

    model_config = ConfigDict(extra="forbid", title="DraftIn", json_schema_extra={
        "examples": [{"patch": {"url": "https://hooks.example.invalid/new"}}]})
    kind: KIND | None = Field(None, description="with `settings`: the whole definition")
    settings: dict[str, Any] | None = None
    patch: dict[str, Any] | None = Field(None, description="a JSON merge patch over the saved settings")


class NewDraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="NewDraftIn", json_schema_extra={
        "examples": [{"kind": "webhook", "settings": {"url": "https://hooks.example.invalid/tidings"}}]})
    name: str = Field("draft", pattern=NAME_PATTERN, description="the name the test message carries")
    kind: KIND
    settings: dict[str, Any] = Field(default_factory=dict)


# -- routes ----------------------------------------------------------------------------------------
class RouteOut(Out):
    """A route as written (`name`, `match`, `to`, `continue`...) with its `index`."""

    index: int = Field(description="its place among the project's routes, tried in this order from 0")
    revision: int


class RouteList(Out):
    items: list[dict[str, Any]] = Field(description="the routes in the order they are tried, each with its `index`")
    revision: int


class RouteWritten(RouteOut):
    changed: bool


class RouteDeleted(Out):
    index: int
    deleted: bool
    revision: int


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", title="MoveIn", json_schema_extra={"examples": [{"to": 0}]})
    to: int = Field(ge=0, le=100_000, description="its new index among the project's routes")


class DefaultRouteOut(Out):
    to: list[str]
    revision: int


ROUTE_EXAMPLE = {"name": "critical", "match": {"priority": ">=high"}, "to": ["inbox"], "position": 0}
DEFAULT_EXAMPLE = {"to": ["inbox"]}


# -- kinds -----------------------------------------------------------------------------------------
class Kind(Out):
    kind: str
    description: str
    sends: bool = Field(description="its integrations can be route targets (some only when so configured)")
    receives: bool = Field(description="its integrations can receive webhooks (some only when so configured)")
    secret_fields: list[str] = Field(description="settings stored in the vault (`writeOnly` in the schema)")
    schema_: dict[str, Any] = Field(alias="schema", description="the JSON Schema of its settings (without `kind`"
                                    " and `project`)")


class KindList(Out):
    items: list[Kind]
