"""``oauth:`` in tidings.yaml: the app registered with each provider (client id and secret), and
where to reach the provider when it is not the public cloud (GitHub Enterprise, a test server)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

ProviderName = Literal["github", "slack", "google", "microsoft", "atlassian"]
PROVIDER_NAMES: tuple[str, ...] = ("github", "slack", "google", "microsoft", "atlassian")


class OAuthClient(BaseModel):
    """One provider's app registration."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    client_id: str = Field(min_length=1, max_length=500, description="the app's client id")
    client_secret: SecretStr = Field(
        description="the app's client secret; write it as ${vault:NAME} (tidings secret set NAME)"
    )
    scopes: list[str] | None = Field(
        None, description="the scopes to ask for; default: what tidings' integrations of this provider use"
    )
    tenant: str = Field(
        "organizations", pattern=r"^[A-Za-z0-9.\-]{1,100}$",
        description="microsoft only: the Entra ID tenant (a tenant id or domain, organizations, common)",
    )
    authorize_url: str | None = Field(None, description="the provider's authorization endpoint, if not the public one")
    token_url: str | None = Field(None, description="the provider's token endpoint, if not the public one")
    api_url: str | None = Field(
        None, description="the provider's API base, if not the public one (GitHub Enterprise: https://HOST/api/v3)"
    )

    @field_validator("authorize_url", "token_url", "api_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError("an http(s) URL")
        return v.rstrip("/") if v else v

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and any(not s or any(c.isspace() for c in s) for s in v):
            raise ValueError("each scope is one word without spaces")
        return v
