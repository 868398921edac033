"""The ``github`` integration's settings: the webhook's secret, the repositories it accepts, and
the optional ``sync:`` mapping with the credentials the tracker calls GitHub's REST API with."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from ...sync.settings import SyncSettings
from ..base import ConnectableSettings
from ..http import HttpUrl

REPOSITORY = re.compile(r"^[A-Za-z0-9_.\-]+/(\*|[A-Za-z0-9_.\-]+)$")
_ONE_REPOSITORY = re.compile(r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")
PriorityName = Literal["critical", "high", "medium", "low", "info"]
DEFAULT_PRIORITY_LABELS: dict[str, str] = {p: f"priority:{p}" for p in ("critical", "high", "medium", "low", "info")}


class GitHubSync(SyncSettings):
    """Which repository's issues sync with the project's tasks, and how GitHub's values map.

    GitHub has only open and closed: ``todo`` is open, ``in_progress`` open with
    ``in_progress_label``, ``done`` closed (as completed or as not planned). Priority is a label.
    Due dates are not synced: GitHub's milestones are shared by many issues, not a date per issue."""

    repository: str = Field(description="owner/name of the repository whose issues sync")
    priority_labels: dict[PriorityName, str] = Field(
        default_factory=lambda: dict(DEFAULT_PRIORITY_LABELS),
        description="tidings priority -> the GitHub label that says it; a priority left out is written as no label",
    )
    default_priority: PriorityName = Field(
        "medium", description="the priority of an issue that carries none of the priority labels"
    )
    in_progress_label: str = Field(
        "in progress", min_length=1, max_length=50,
        description="the label that marks an open issue as in progress (GitHub itself has only open and closed)",
    )

    @field_validator("repository")
    @classmethod
    def _repository(cls, v: str) -> str:
        if not _ONE_REPOSITORY.match(v):
            raise ValueError(f"{v!r} is not owner/name")
        return v

    @field_validator("priority_labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        names = [n.strip() for n in v.values()]
        if any(not n or len(n) > 50 for n in names):
            raise ValueError("each label is 1 to 50 characters (GitHub's limit)")
        if len({n.lower() for n in names}) != len(names):
            raise ValueError("two priorities share a label (GitHub's label names ignore case)")
        return {k: n.strip() for k, n in v.items()}

    @model_validator(mode="after")
    def _in_progress_apart(self) -> GitHubSync:
        if self.in_progress_label.lower() in {n.lower() for n in self.priority_labels.values()}:
            raise ValueError("in_progress_label must differ from the priority labels")
        return self


class GitHubSettings(ConnectableSettings):
    oauth_provider: ClassVar[str] = "github"
    token_field: ClassVar[str] = "token"
    kind: Literal["github"]
    secret: SecretStr | None = Field(
        description="the webhook's secret: the same value as in GitHub's webhook settings (or ${vault:NAME});"
        " may be null with sync (no webhook: the sweep alone keeps tasks in sync)"
    )
    repositories: list[str] | None = Field(
        None,
        description="accept events of these repositories only (owner/name or owner/*); others are recorded as ignored",
    )
    sync: GitHubSync | None = Field(None, description="keep the project's tasks in two-way sync with one repository")
    token: SecretStr | None = Field(
        None, description="for sync: a personal access token (fine-grained: Issues read/write, Metadata read;"
        " classic: repo), as ${vault:NAME}; or oauth: true (the token of the GitHub App's or OAuth App's connection)"
    )
    app_id: int | None = Field(None, ge=1, description="for sync as a GitHub App: its app id")
    installation_id: int | None = Field(None, ge=1, description="for sync as a GitHub App: the installation's id")
    private_key: SecretStr | None = Field(
        None, description="for sync as a GitHub App: its private key (PEM), as ${vault:NAME}"
    )
    api_url: HttpUrl = Field(
        "https://api.github.com", description="GitHub's REST API (GitHub Enterprise Server: https://HOST/api/v3)"
    )

    outbound: ClassVar[tuple[str, ...]] = ("api_url",)

    @model_validator(mode="before")
    @classmethod
    def _secret_optional_with_sync(cls, data: Any) -> Any:
        """Without ``sync`` the secret stays required (reported as missing, as before)."""
        if isinstance(data, dict) and data.get("sync") is not None and "secret" not in data:
            data = {**data, "secret": None}
        return data

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().strip():
            raise ValueError("must not be empty: set the same secret here and on the GitHub webhook")
        return v

    @field_validator("repositories")
    @classmethod
    def _repositories(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("an empty list would ignore every event; leave repositories out to accept all")
        for name in v:
            if not REPOSITORY.match(name):
                raise ValueError(f"{name!r} is not owner/name (or owner/*)")
        return v

    @model_validator(mode="after")
    def _credentials(self) -> GitHubSettings:
        app = (self.app_id, self.installation_id, self.private_key)
        if self.secret is None and self.sync is None:
            raise ValueError("secret: required unless sync is set")
        if self.sync is None:
            return self
        token = self.token is not None or self.oauth
        if token and any(v is not None for v in app):
            raise ValueError("sync: give one of token, oauth: true or app_id + installation_id + private_key, not both")
        if not token and not all(v is not None for v in app):
            raise ValueError("sync needs credentials: token (a personal access token), oauth: true (a connection:"
                             " a GitHub App's user token or an OAuth App's token), or app_id + installation_id"
                             " + private_key (a GitHub App)")
        return self

