"""``kind: jira`` settings: the webhook's authentication, how issues read as messages, and the
optional ``sync:`` mapping with the REST credentials it needs (``email`` + ``api_token``, or an
OAuth connection: ``oauth: true``)."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from ...message import Priority
from ...sync.model import Category
from ...sync.settings import SyncSettings
from ..base import ConnectableSettings, is_vault_ref
from ..http import HttpUrl
from .ticket_settings import JiraTickets

TOKEN_MIN = 16
PROJECT_KEY = r"^[A-Z][A-Z0-9_]{0,254}$"
DEFAULT_PRIORITIES: dict[Priority, str] = {
    Priority.CRITICAL: "Highest", Priority.HIGH: "High", Priority.MEDIUM: "Medium", Priority.LOW: "Low",
    Priority.INFO: "Lowest",
}


class JiraSync(SyncSettings):
    """One Jira project in two-way sync with the integration's project's tasks."""

    project: str = Field(..., pattern=PROJECT_KEY, description="the Jira project key (OPS)")
    jql: str | None = Field(
        None, max_length=2000,
        description="an extra JQL filter ANDed to 'project = KEY' (labels = sync); issues outside it are not read",
    )
    issue_type: str = Field("Task", min_length=1, max_length=255, description="the issue type of issues tidings creates")
    priorities: dict[Priority, str] = Field(
        default_factory=lambda: dict(DEFAULT_PRIORITIES),
        description="tidings priority -> Jira priority name written (critical=Highest, high=High, medium=Medium,"
        " low=Low, info=Lowest); reading also maps these names back",
    )
    status_names: dict[Category, str] = Field(
        default_factory=dict,
        description="category (todo, in_progress, done) -> the Jira status preferred when several statuses of"
        " that category can be reached (In Review rather than In Progress)",
    )

    @field_validator("priorities")
    @classmethod
    def _all_priorities(cls, v: dict[Priority, str]) -> dict[Priority, str]:
        return {**DEFAULT_PRIORITIES, **{p: name.strip() for p, name in v.items()}}

    @field_validator("jql")
    @classmethod
    def _no_order(cls, v: str | None) -> str | None:
        if v is not None and re.search(r"\border\s+by\b", v, re.I):
            raise ValueError("leave ORDER BY out: tidings orders by updated time itself")
        return v.strip() or None if v is not None else None


class JiraSettings(ConnectableSettings):
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["secret"]}, {"required": ["token"]}, {"required": ["sync"]}, {"required": ["tickets"]},
    ]})
    oauth_provider: ClassVar[str] = "atlassian"
    token_field: ClassVar[str] = "api_token"
    kind: Literal["jira"]
    secret: SecretStr | None = Field(
        None, description="the webhook's secret: requests must carry X-Hub-Signature: sha256=<HMAC of the body>"
    )
    token: SecretStr | None = Field(
        None, description=f"requests must carry ?token=<this> in the URL (at least {TOKEN_MIN} characters)"
    )
    base_url: HttpUrl | None = Field(
        None, description="the Jira site (https://example.atlassian.net): for links (default: from issue.self),"
        " and the REST API of sync (required then, unless oauth: true: the connection names the site)",
    )
    priority_map: dict[str, Priority] = Field(
        default_factory=dict, description="Jira priority name -> tidings priority, over the defaults (case-insensitive)"
    )
    default_priority: Priority = Field(Priority.MEDIUM, description="for issues without a priority, or one not mapped")
    email: str | None = Field(None, max_length=320, description="the Atlassian account's email, for sync (Basic auth)")
    api_token: SecretStr | None = Field(
        None, description="an API token of that account (id.atlassian.com > Security > API tokens), for sync;"
        " write it as ${vault:NAME}; with oauth: true the connection's access token fills it",
    )
    sync: JiraSync | None = Field(None, description="two-way sync of a Jira project with this project's tasks")
    # -- tickets (integrations/jira/tickets.py) -------------------------------------------------
    tickets: JiraTickets | None = Field(
        None, description="open one issue per alert routed here (needs base_url and the REST credentials)"
    )

    @model_validator(mode="after")
    def _tickets_rest(self) -> JiraSettings:
        if self.tickets is not None:
            missing = [] if self.oauth else [n for n in ("base_url", "email", "api_token") if getattr(self, n) in (None, "")]
            if missing:
                raise ValueError(f"tickets needs {', '.join(missing)} (the Jira site and an account's email + API token),"
                                 " or oauth: true (an Atlassian connection)")
        return self
    # -- end of tickets ---------------------------------------------------------------------------

    @model_validator(mode="after")
    def _authenticated(self) -> JiraSettings:
        if self.secret is None and self.token is None and self.sync is None and self.tickets is None:
            raise ValueError(
                "set secret (Jira signs each request with it) or token (sent as ?token=... in the URL): "
                "unauthenticated webhooks are refused"
            )
        if self.sync is not None and not self.oauth:
            missing = [n for n in ("base_url", "email", "api_token") if getattr(self, n) in (None, "")]
            if missing:
                raise ValueError(f"sync needs {', '.join(missing)} (the Jira site and an account's email + API token),"
                                 " or oauth: true (an Atlassian connection)")
        return self

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value():
            raise ValueError("must not be empty")
        return v

    @field_validator("api_token")
    @classmethod
    def _api_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("token")
    @classmethod
    def _token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        raw = v.get_secret_value()
        if not is_vault_ref(raw):
            if len(raw) < TOKEN_MIN:
                raise ValueError(f"use at least {TOKEN_MIN} random characters (e.g. `openssl rand -hex 24`)")
            if not re.fullmatch(r"[A-Za-z0-9._~-]+", raw):
                raise ValueError("use URL-safe characters only (letters, digits, '-', '_', '.', '~')")
        return v

    @field_validator("priority_map")
    @classmethod
    def _lower(cls, v: dict[str, Priority]) -> dict[str, Priority]:
        return {k.strip().lower(): p for k, p in v.items()}
