"""Generic webhook: POST the message as JSON, signed with Standard Webhooks headers when a
``whsec_`` secret is set (https://www.standardwebhooks.com)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import orjson
from pydantic import Field, SecretStr, field_validator
from standardwebhooks import Webhook

from ... import __version__
from ...message import Message
from ..base import (
    NO_OPTIONS,
    Attempt,
    IntegrationSettings,
    Notifier,
    Outcome,
    RenderOptions,
    http_session,
    is_vault_ref,
)
from ..http import HttpUrl, classify_status, connection_error, read_snippet

_SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|signature|cookie|password", re.IGNORECASE)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an HTTP token (RFC 9110)
_RESERVED_HEADERS = {"content-type", "content-length", "webhook-id", "webhook-timestamp", "webhook-signature", "host"}


class WebhookSettings(IntegrationSettings):
    kind: Literal["webhook"]
    url: HttpUrl = Field(description="where to POST; http(s)")
    secret: SecretStr | None = Field(None, description="whsec_... to sign with Standard Webhooks")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    method: Literal["POST", "PUT"] = "POST"

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        raw = v.get_secret_value()
        if not is_vault_ref(raw) and not raw.startswith("whsec_"):
            raise ValueError("a Standard Webhooks secret starts with 'whsec_' (base64 after it)")
        if not is_vault_ref(raw):
            try:
                Webhook(raw)
            except Exception:
                raise ValueError("the part after 'whsec_' must be base64") from None
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by tidings")
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r}: line breaks are not allowed")
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header {name!r}: not a valid header name (letters, digits and !#$%&'*+-.^_`|~)")
        return v

    def secret_values(self) -> list[str]:
        found = super().secret_values()
        for k, v in self.headers.items():
            if _SENSITIVE_HEADER.search(k):
                # The whole value, and the credential after a scheme ("Bearer <token>"): a peer
                # that echoes the token alone must not leak it either.
                found += [v, v.split()[-1]] if v.split() else [v]
        parts = urlsplit(self.url)
        found += [p for p in (parts.password, parts.query) if p]
        found += [value for _, value in parse_qsl(parts.query) if value]
        return found


class WebhookNotifier(Notifier):
    kind = "webhook"
    Settings = WebhookSettings
    concurrency = 16
    timeout = 10.0
    settings: WebhookSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: aiohttp.ClientSession | None = None
        secret = self.settings.secret.get_secret_value() if self.settings.secret else None
        self._signer = Webhook(secret) if secret else None

    async def open(self) -> None:
        headers = {"User-Agent": f"tidings/{__version__}", **self.settings.headers}
        self._session = http_session(self.effective_concurrency, self.effective_timeout, headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> dict[str, Any]:
        fields = [{"name": name, "value": value} for name, value in message.fields]
        return {"type": "message", "data": {**message.to_dict(), "fields": fields}}

    def body(self, payload: dict[str, Any], attempt: Attempt) -> bytes:
        """The exact bytes sent: the rendered payload with the ids that make it idempotent."""
        envelope = {
            "id": attempt.delivery_id,
            "message_id": attempt.message_id,
            "timestamp": dt.datetime.fromtimestamp(attempt.created_at, dt.UTC).isoformat(),
            **payload,
        }
        return orjson.dumps(envelope)

    async def send(self, payload: dict[str, Any], attempt: Attempt) -> Outcome:
        if self._session is None:
            await self.open()
        assert self._session is not None
        body = self.body(payload, attempt)
        headers = {"Content-Type": "application/json", "Idempotency-Key": attempt.delivery_id}
        if self._signer is not None:
            now = dt.datetime.now(dt.UTC)
            headers["webhook-id"] = attempt.delivery_id
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            headers["webhook-signature"] = self._signer.sign(attempt.delivery_id, now, body.decode())
        try:
            async with self._session.request(
                self.settings.method, self.settings.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                snippet = "" if 200 <= resp.status < 300 else await read_snippet(resp)
                return classify_status(resp.status, resp.headers, snippet)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return connection_error(exc)
