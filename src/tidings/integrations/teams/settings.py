"""What a Teams integration is configured with: its webhook URL (a credential, masked everywhere),
the mode it speaks (Power Automate workflow or Office 365 connector), the card version and the
largest request sent."""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from ...units import Size
from ..base import IntegrationSettings, is_vault_ref
from ..http import check_http_url

TEAMS_LIMIT = 28_000
"""Bytes Teams accepts at most in one request (28 KB); ``max_bytes`` can't go above it."""
DEFAULT_MAX_BYTES = 20_000
Mode = Literal["workflows", "connector"]
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_SECRET_PART = 16  # path segments at least this long are credentials too (connector ids, workflow ids)


def detect_mode(url: str) -> Mode | None:
    """``workflows`` for Power Automate URLs, ``connector`` for Office 365 connector URLs, else None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = parts.path.lower()
    if (
        host.endswith(".logic.azure.com")
        or host.endswith(".powerplatform.com")
        or "powerautomate" in host
        or "/powerautomate/" in path
        or "/workflows/" in path
    ):
        return "workflows"
    if (
        host.endswith(".webhook.office.com")
        or (host in ("outlook.office.com", "outlook.office365.com") and path.startswith("/webhook"))
        or "/webhookb2/" in path
    ):
        return "connector"
    return None


def url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL (never quoting it: it is the credential), or None: an
    absolute http(s) URL, https unless on loopback."""
    try:
        check_http_url(url)
    except ValueError as exc:
        return str(exc)
    parts = urlsplit(url)
    if parts.scheme != "https" and (parts.hostname or "") not in _LOOPBACK:
        return "must be https:// (it carries its own credential)"
    return None


def url_secrets(url: str) -> list[str]:
    """The URL and its parts a peer or a proxy might echo alone: the query (``sig=``) and the long
    path segments (connector and workflow ids)."""
    parts = urlsplit(url)
    found = [url, *(p for p in (parts.query, parts.path) if len(p) >= _SECRET_PART)]
    found += [value for _, value in parse_qsl(parts.query) if value]
    found += [seg for seg in parts.path.split("/") if len(seg) >= _SECRET_PART]
    return found


class TeamsSettings(IntegrationSettings):
    outbound = ("webhook_url",)
    kind: Literal["teams"]
    webhook_url: SecretStr = Field(
        description="the Workflows (or connector) webhook URL; a credential, masked everywhere"
    )
    mode: Literal["auto", "workflows", "connector"] = Field(
        "auto", description="auto: read it from the URL (logic.azure.com / powerautomate: workflows; webhook.office.com: connector)"
    )
    card_version: Literal["1.5", "1.4"] = "1.5"
    max_bytes: Size = Field(DEFAULT_MAX_BYTES, ge=4_096, le=TEAMS_LIMIT, description="largest request sent (bytes)")

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        if is_vault_ref(raw):
            return v
        if problem := url_problem(raw):  # never echo the URL: it is the credential
            raise ValueError(f"the webhook URL {problem}")
        return v

    @model_validator(mode="after")
    def _mode(self) -> TeamsSettings:
        raw = self.webhook_url.get_secret_value()
        if self.mode == "auto" and not is_vault_ref(raw) and detect_mode(raw) is None:
            raise ValueError(
                "mode: can't tell from the webhook URL whether it is a Power Automate workflow or an "
                "Office 365 connector; set mode: workflows or mode: connector"
            )
        return self

    @property
    def resolved_mode(self) -> Mode:
        if self.mode != "auto":
            return self.mode
        return detect_mode(self.webhook_url.get_secret_value()) or "workflows"

    def secret_values(self) -> list[str]:
        """The URL, and its parts a peer or a proxy might echo alone: the query (``sig=``) and
        the long path segments (connector and workflow ids)."""
        found = super().secret_values()
        raw = self.webhook_url.get_secret_value()
        if is_vault_ref(raw):
            return found
        return found + url_secrets(raw)[1:]
