"""Settings every integration kind shares: limits, retry and breaker policies, the project it belongs
to, and its secrets (``${vault:NAME}`` references, an OAuth connection's token)."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from limits import parse as parse_rate
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ..security.outbound import check_entry
from ..templates import Template
from ..units import Duration, Size

VAULT_REF = re.compile(r"^\$\{vault:([A-Za-z0-9_.\-/]+)\}$")
AllowEntry = Annotated[str, AfterValidator(check_entry)]
DEFAULT_PROJECT = "default"
"""The project of everything configured without one (and of the unscoped API routes)."""
PROJECT_SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
"""How a project slug is written (as ``accounts.projects.create_project`` checks it)."""


def is_vault_ref(value: str) -> bool:
    return bool(VAULT_REF.match(value))


class RetryPolicy(BaseModel):
    """Exponential backoff with full jitter: attempt n waits a random time up to
    ``min(cap, base * factor**(n-1))``; the delivery is dead after ``max_attempts`` or ``max_age``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    base: Duration = Field(5.0, gt=0)
    factor: float = Field(2.0, ge=1.0, le=10.0)
    cap: Duration = 3600.0
    max_attempts: int = Field(10, ge=1, le=1000)
    max_age: Duration = 86400.0


def _old_breaker_name(schema: dict[str, Any]) -> None:
    """`failures` (see BreakerPolicy._failures) in the JSON Schema too, so editors accept old files."""
    schema["properties"]["failures"] = {"type": "integer", "minimum": 1, "deprecated": True,
                                        "description": "the old name of min_calls"}


class BreakerPolicy(BaseModel):
    """Open when at least ``failure_rate`` of the sends of the last ``window`` failed (retryably),
    once the window holds ``min_calls`` sends. Open, it holds sends back for ``cool_off``, then lets
    ``trials`` sends through (half-open): their success closes it, a failure opens it again for
    twice as long, at most ``max_cool_off`` (never below ``cool_off``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_old_breaker_name)
    failure_rate: float = Field(0.5, gt=0.0, le=1.0, description="share of failed sends in the window that opens it")
    min_calls: int = Field(20, ge=1, le=100_000, description="sends the window must hold before it may open")
    window: Duration = Field(10.0, gt=0, description="the sliding window the failure rate is measured over")
    cool_off: Duration = Field(1.0, gt=0, description="the first time it stays open")
    max_cool_off: Duration = Field(4.0, gt=0, description="the longest it stays open while the peer stays down")
    trials: int = Field(1, ge=1, le=100, description="sends let through half-open; all must succeed to close it")

    @model_validator(mode="before")
    @classmethod
    def _failures(cls, data: Any) -> Any:
        """``failures: N`` (before the failure rate) still reads, as ``min_calls: N``."""
        if isinstance(data, dict) and "failures" in data:
            data = dict(data)
            if "min_calls" in data:
                raise ValueError("failures is the old name of min_calls: give one of them")
            data["min_calls"] = data.pop("failures")
        return data

    @property
    def longest_cool_off(self) -> float:
        return max(self.cool_off, self.max_cool_off)


class IntegrationSettings(BaseModel):
    """Settings every kind shares. Leave a limit out to get the kind's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    description: str = ""
    project: str = Field(
        DEFAULT_PROJECT, pattern=PROJECT_SLUG,
        description="the project it belongs to: only that project's routes and messages use it, only its"
        " members see it; created at start when missing",
    )
    rate_limit: str | None = Field(None, description="e.g. '4/second', '60/minute'")
    burst: int | None = Field(None, ge=1, le=10_000, description="sends allowed at once above the rate")
    concurrency: int | None = Field(None, ge=1, le=1_000)
    timeout: Duration | None = None
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    template: Template | None = Field(None, description="Jinja2 rewrite of title, body, fields")
    max_body: Size | None = Field(None, description="largest inbound webhook body accepted (default 5MiB)")
    allow_destinations: list[AllowEntry] = Field(
        default_factory=list,
        description="networks (10.0.0.0/8) and host names this integration may connect to although they are"
        " private, loopback or link-local; added to server.allow_destinations",
    )

    outbound: ClassVar[tuple[str, ...]] = ()
    """The fields holding a URL or host this integration connects to (checked by `config validate`)."""

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            parse_rate(v)
        except ValueError:
            raise ValueError(f"invalid rate {v!r}; write e.g. '4/second' or '60/minute'") from None
        return v

    def secret_values(self) -> list[str]:
        """Every secret in these settings, so that logs and errors can mask it."""
        out: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out.append(value.get_secret_value())
        return [v for v in out if v and not is_vault_ref(v)]

    def vault_refs(self) -> dict[str, str]:
        """Field name -> vault secret name, for secrets written as ``${vault:NAME}``."""
        refs: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and (m := VAULT_REF.match(value.get_secret_value())):
                refs[name] = m.group(1)
        return refs


class ConnectableSettings(IntegrationSettings):
    """Settings of a kind whose token may come from an OAuth connection instead of being pasted:
    with ``oauth: true`` the field :attr:`token_field` is filled from the vault secret the
    connection keeps current (``oauth/NAME/access``), so a refreshed token reaches the running
    integration like any rotated secret (``security/vault_watch.py``)."""

    oauth: bool = Field(
        False,
        description="take the token from this integration's OAuth connection (Connect in the UI, or `tidings connect"
        " NAME`) instead of a pasted one; the oauth.<provider> app registration must be configured",
    )

    oauth_provider: ClassVar[str] = ""
    """github, slack, google, microsoft or atlassian."""
    token_field: ClassVar[str] = "token"
    """The field the connection's access token fills."""


def secret_refs(name: str, settings: IntegrationSettings) -> dict[str, str]:
    """Field -> vault secret for integration ``name``: its ``${vault:NAME}`` fields and, with
    ``oauth: true``, its token field -> the connection's access token."""
    from ..oauth.names import access_secret

    refs = settings.vault_refs()
    if isinstance(settings, ConnectableSettings) and settings.oauth:
        refs[settings.token_field] = access_secret(name)
    return refs
