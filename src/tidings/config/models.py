"""The shape of tidings.yaml, as pydantic models (and so as a JSON Schema for editors)."""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    create_model,
    field_validator,
)

from ..integrations.base import DEFAULT_PROJECT, PROJECT_SLUG, AllowEntry, IntegrationSettings, is_vault_ref
from ..integrations.registry import kinds, settings_model
from ..message import format_error
from ..oauth.settings import OAuthClient, ProviderName
from ..store.engine import DEFAULT_URL
from ..templates import Template
from ..units import Duration, Size
from .people import TOPIC, Escalation, ProjectSettings

NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8400, ge=1, le=65535)
    database: str = Field(DEFAULT_URL, description="sqlite:///path or postgresql://user@host/db")
    body_limit: Size = Field(1024 * 1024, description="largest accepted request body, e.g. 1MiB")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL", description="FULL survives power loss; NORMAL survives process crashes only"
    )
    gc_threshold: int | None = Field(
        20_000,
        ge=700,
        description="while the hub runs, the garbage collector's young-generation threshold (CPython's"
        " default is 700) and the start-up heap frozen; null leaves the collector alone",
    )
    allow_destinations: list[AllowEntry] = Field(
        default_factory=list,
        description="networks (10.0.0.0/8, 127.0.0.1) and host names integrations may connect to although"
        " they are private, loopback, link-local or cloud metadata addresses; everything else must be public",
    )
    config_source: Literal["both", "file", "database"] = Field(
        "both",
        description="where integrations, routes and the default route come from. both: the file is imported as a"
        " new revision whenever it changes (at start, `tidings config reload`, SIGHUP) and the API may change them"
        " too; file: the file only (the configuration API is read-only: GitOps); database: the API only (the file"
        " seeds the first revision)",
    )
    login_failures_per_account: int = Field(
        5, ge=1, le=10_000,
        description="failed sign-ins allowed per account (email) within login_failure_window; more answer 429"
        " without checking the password. Counted in dispatcher.rate_limit_storage (Redis: shared by every worker)",
    )
    login_failures_per_ip: int = Field(
        20, ge=1, le=100_000,
        description="failed sign-ins allowed per client address within login_failure_window; more answer 429",
    )
    login_failure_window: Duration = Field(
        900.0, description="the moving window the failed sign-ins are counted over (15m); at least 1s"
    )
    public_url: str | None = Field(
        None,
        description="where people and providers reach this server, e.g. https://tidings.example.com: the base of"
        " OAuth callback URLs (/oauth/NAME/callback), re-connect links and calendar feed URLs; default"
        " http://HOST:PORT",
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("an http(s) URL without query or fragment, e.g. https://tidings.example.com")
        return v.rstrip("/")

    @property
    def base_url(self) -> str:
        """``public_url``, or ``http://HOST:PORT`` without one."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @field_validator("login_failure_window")
    @classmethod
    def _window(cls, v: float) -> float:
        if v < 1:
            raise ValueError("at least 1s")
        return v


class DispatcherSettings(_Strict):
    enabled: bool = Field(True, description="run the dispatcher inside `tidings serve`")
    batch: int = Field(200, ge=1, le=5_000, description="deliveries claimed per query")
    max_inflight: int = Field(1_000, ge=1, le=100_000)
    lease: Duration = Field(120.0, description="a claimed delivery returns to the queue after this")
    poll_interval: Duration = Field(1.0, description="how often to look for work written by others")
    shutdown_timeout: Duration = 10.0
    rate_limit_storage: str = Field(
        "memory://",
        description="where rate limits are counted: memory:// (each process alone) or redis://host:6379/0"
        " (every worker sharing the Redis shares each integration's limit)",
    )

    @field_validator("rate_limit_storage")
    @classmethod
    def _storage(cls, v: str) -> str:
        if v != "memory://" and not v.startswith(("redis://", "rediss://")):
            raise ValueError("use memory:// or a redis:// (rediss://) URL")
        return v


DAY = 86400.0


class RetentionSettings(_Strict):
    """How long finished rows are kept (null: forever). Nothing still to send or process goes."""

    messages: Duration | None = Field(
        30 * DAY, description="sent messages with their deliveries; also ended silences, idle threads, old digests"
    )
    events: Duration | None = Field(30 * DAY, description="inbound webhook events, once processed")
    inbox: Duration | None = Field(30 * DAY, description="what the inbox integration received")
    sync_runs: Duration | None = Field(30 * DAY, description="the sync log: ended task sync runs")
    interval: Duration | None = Field(
        3600.0, description="how often a dispatching hub prunes; null: only `tidings db prune`"
    )


class AuditSettings(_Strict):
    """Signed checkpoints of the audit trail (a dispatching hub signs them; see docs/audit.md)."""

    checkpoint_every: int = Field(1000, ge=1, le=10_000_000, description="sign a checkpoint after this many new entries")
    checkpoint_interval: Duration = Field(
        3600.0, gt=0, description="...or once the oldest entry not yet signed is this old"
    )
    archive: str | None = Field(
        None, description="an s3 integration each new checkpoint is copied to (<prefix>/audit/checkpoints/<tree size>.json)"
    )


class RegexMatch(_Strict):
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
        return v


def _label_matcher(v: Any) -> str | list[str] | RegexMatch:
    """One error for a bad matcher, not one per form it might have been."""
    if isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)):
        return v
    if isinstance(v, dict):
        try:
            return RegexMatch.model_validate(v)
        except ValidationError as exc:
            raise ValueError("; ".join(format_error(e) for e in exc.errors())) from None
    raise ValueError("match a value, a list of values, or {regex: ...}")


LabelMatcher = Annotated[
    Any,
    PlainValidator(_label_matcher),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}},
                {"type": "object", "properties": {"regex": {"type": "string"}}, "required": ["regex"],
                 "additionalProperties": False},
            ]
        }
    ),
]


class Match(_Strict):
    """All given conditions must hold. Labels match exactly, any of a list, or by ``{regex: ...}``."""

    priority: str | list[str] | None = Field(None, description="'>=high', 'critical', or a list")
    labels: dict[str, LabelMatcher] = Field(default_factory=dict)
    source: str | list[str] | None = None

    @field_validator("priority")
    @classmethod
    def _priority(cls, v: str | list[str] | None) -> str | list[str] | None:
        from ..routing import parse_priority

        if v is not None:
            parse_priority(v)
        return v


class _Deliveries(_Strict):
    """What a route decides about the deliveries it creates."""

    cooldown: Duration = Field(300.0, description="same dedup_key inside this window is suppressed")
    template: Template | None = Field(None, description="Jinja2 rewrite for this route's deliveries")
    mention: Literal["here", "channel"] | None = Field(
        None, description="let critical messages alert the whole chat channel (Slack @here / @channel)"
    )
    group_by: list[str] | None = Field(
        None, description="fold messages sharing these labels into digests (Alertmanager's grouping)"
    )
    group_wait: Duration = Field(30.0, description="wait this long after a group's first message")
    group_interval: Duration = Field(300.0, description="at most one digest update per group this often")
    repeat_interval: Duration = Field(14400.0, description="remind of a still-firing group this often")
    topic: str | None = Field(
        None, pattern=TOPIC,
        description="the topic of the messages it routes (a message's `topic` label wins); preferences are per topic",
    )
    escalation: Escalation | None = Field(None, description="steps taken while a critical or high message stays unacknowledged")

    @field_validator("group_by")
    @classmethod
    def _labels(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("a label appears twice")
        return v


class Route(_Deliveries):
    name: str | None = Field(None, min_length=1, max_length=100, description="shown on each delivery it routes")
    project: str = Field(
        DEFAULT_PROJECT, pattern=PROJECT_SLUG,
        description="the project whose messages it routes; it sends only to that project's integrations",
    )
    match: Match = Field(default_factory=Match)
    to: list[str] = Field(min_length=1)
    continue_: bool = Field(False, alias="continue", description="also try the routes after this one")


class DefaultRoute(_Deliveries):
    """Where a message of the project ``default`` goes when no route matches it (other projects
    have no default route: end their routes with one without ``match``)."""

    to: list[str] = Field(default_factory=lambda: ["inbox"], min_length=1)


class ConfigBase(_Strict):
    server: ServerSettings = Field(default_factory=ServerSettings)
    dispatcher: DispatcherSettings = Field(default_factory=DispatcherSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    oauth: dict[ProviderName, OAuthClient] = Field(
        default_factory=dict,
        description="the app registered with each OAuth provider (github, slack, google, microsoft, atlassian):"
        " integrations with `oauth: true` connect through it; see docs/oauth.md",
    )
    integrations: dict[str, IntegrationSettings] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    default: DefaultRoute = Field(default_factory=DefaultRoute)
    projects: dict[str, ProjectSettings] = Field(
        default_factory=dict,
        description="per project: topics, default preferences and quiet hours, alerts_to; see docs/recipients.md",
    )
    _raw: dict[str, Any] | None = PrivateAttr(None)
    """What it was parsed from, before ``${ENV}`` interpolation (see ``config/document.py``)."""

    def integration_names(self) -> list[str]:
        return list(self.integrations)

    def project_names(self) -> list[str]:
        """Every project the file names (integrations' and routes'), ``default`` first."""
        named = {s.project for s in self.integrations.values()} | {r.project for r in self.routes} | set(self.projects)
        return [DEFAULT_PROJECT, *sorted(named - {DEFAULT_PROJECT})]

    def secret_values(self) -> list[str]:
        """Every secret written in the config (vault references aside): the database's and
        Redis' passwords and each integration's secrets, so that they can be masked."""
        found = [urlsplit(url).password or "" for url in (self.server.database, self.dispatcher.rate_limit_storage)]
        for settings in self.integrations.values():
            found += settings.secret_values()
        found += [v for c in self.oauth.values() if not is_vault_ref(v := c.client_secret.get_secret_value())]
        return [s for s in found if s]


@cache
def config_model() -> type[ConfigBase]:
    """The config model with ``integrations`` typed as the union of every registered kind."""
    members = tuple(settings_model(k) for k in kinds())
    union: Any = Annotated[Union[members], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007
    model: type[ConfigBase] = create_model(  # type: ignore[call-overload]
        "Config",
        __base__=ConfigBase,
        integrations=(dict[str, union], Field(default_factory=dict)),
    )
    return model


Config = ConfigBase
"""The type to annotate with; instances come from :func:`config_model`."""


def integration_name_problem(name: str) -> str | None:
    if not NAME.match(name):
        return f"integrations.{name}: a name is lowercase letters, digits, '-' and '_' (at most 64)"
    return None
