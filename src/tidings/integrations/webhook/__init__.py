"""Generic webhook, both ways (https://www.standardwebhooks.com):

- out: POST the message as JSON, signed with Standard Webhooks headers when ``secret`` is set;
- in: ``POST /hooks/{name}`` verified with ``receive_secret`` (``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature: v1,<base64>``, several for key rotation), the
  JSON payload turned into a message by a ``mapping`` of Jinja2 expressions.
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import re
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from ...message import Message
from ...templates import check_template, render_text
from ..base import (
    NO_OPTIONS,
    Attempt,
    HttpNotifier,
    IntegrationSettings,
    Outcome,
    RenderOptions,
    is_vault_ref,
)
from ..http import HttpUrl, classify_status, connection_error, read_snippet
from ..receiver import Inbound, InboundEvent, InboundRequest, Receiver, Rejected

_SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|signature|cookie|password", re.IGNORECASE)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an HTTP token (RFC 9110)
_RESERVED_HEADERS = {"content-type", "content-length", "webhook-id", "webhook-timestamp", "webhook-signature", "host"}


@functools.lru_cache(maxsize=256)
def _iso_time(epoch: float) -> str:
    """Deliveries written together share their creation time: format it once (1 µs each)."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


class Mapping(BaseModel):
    """Jinja2 expressions over ``payload`` (the JSON received), ``event_type`` and ``headers``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str = "{{ event_type }}"
    body: str = "{{ payload | tojson(indent=2) }}"
    priority: str = "medium"
    format: str = "plain"
    labels: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, str] = Field(default_factory=dict)
    thread_key: str | None = None
    dedup_key: str | None = None

    @model_validator(mode="after")
    def _compiles(self) -> Mapping:
        for source in (self.title, self.body, self.priority, self.format, self.thread_key, self.dedup_key,
                       *self.labels.values(), *self.fields.values()):
            if source is not None:
                check_template(source)
        return self


class WebhookReceive(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    mapping: Mapping = Field(default_factory=Mapping)
    to: list[str] | None = Field(None, description="send the messages here instead of routing them")


def _whsec(v: SecretStr | None) -> SecretStr | None:
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


class WebhookSettings(IntegrationSettings):
    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["url"]}, {"required": ["receive"]}]})
    outbound = ("url",)
    kind: Literal["webhook"]
    url: HttpUrl | None = Field(None, description="where to POST; http(s). Leave out to only receive")
    secret: SecretStr | None = Field(None, description="whsec_... to sign what is sent")
    receive_secret: SecretStr | None = Field(None, description="whsec_... that incoming requests are signed with")
    receive: WebhookReceive | None = Field(None, description="accept POST /hooks/{name} (needs receive_secret)")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    method: Literal["POST", "PUT"] = "POST"

    _secret = field_validator("secret", "receive_secret")(_whsec)

    @model_validator(mode="after")
    def _a_direction(self) -> WebhookSettings:
        if self.url is None and self.receive is None:
            raise ValueError("set url (to send), receive (to receive), or both")
        if self.receive is not None and self.receive_secret is None:
            raise ValueError("receive needs receive_secret (whsec_...): unsigned webhooks are refused")
        return self

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
        """Also sensitive headers' values and a URL with credentials (``user:password@``, a query):
        :func:`~tidings.security.redact.forms` derives what is sent of them (``Basic``, the
        token after ``Bearer``, each query value)."""
        found = super().secret_values()
        found += [v for k, v in self.headers.items() if _SENSITIVE_HEADER.search(k)]
        parts = urlsplit(self.url or "")
        if parts.password or parts.query:
            found.append(self.url or "")
        return found


class WebhookIntegration(HttpNotifier, Receiver):
    kind = "webhook"
    Settings = WebhookSettings
    concurrency = 16
    timeout = 10.0
    settings: WebhookSettings

    kept_headers = ("webhook-id", "webhook-timestamp", "user-agent")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        secret = self.settings.secret.get_secret_value() if self.settings.secret else None
        self._signer = Webhook(secret) if secret else None
        received = self.settings.receive_secret.get_secret_value() if self.settings.receive_secret else None
        self._verifier = Webhook(received) if received else None

    @classmethod
    def can_send(cls, settings: IntegrationSettings) -> bool:
        return getattr(settings, "url", None) is not None

    @classmethod
    def can_receive(cls, settings: IntegrationSettings) -> bool:
        return getattr(settings, "receive", None) is not None

    # -- receiving -------------------------------------------------------------------------
    def verify(self, request: InboundRequest) -> None:
        if self._verifier is None:
            raise Rejected(401, "this integration has no receive_secret")
        try:
            self._verifier.verify(request.body, dict(request.headers), json_parse=False)
        except WebhookVerificationError as exc:
            raise Rejected(401, f"signature check failed: {exc}") from None
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise Rejected(401, "signature check failed: malformed webhook-signature or body") from None

    def identify(self, request: InboundRequest) -> Inbound:
        payload = request.json()
        event_type = payload.get("type") if isinstance(payload, dict) else None
        return Inbound(str(event_type or "webhook"), request.headers["webhook-id"])

    def status_for(self, event_type: str) -> str:
        return "received"  # the mapping turns every event into a message

    async def process(self, event: InboundEvent, hub: Any) -> dict[str, Any]:
        assert self.settings.receive is not None
        m = self.settings.receive.mapping
        context = {"payload": event.json(), "event_type": event.event_type, "headers": event.headers}

        def text(source: str) -> str:
            return render_text(source, context)

        message = Message(
            title=text(m.title)[:500] or event.event_type,
            body=text(m.body),
            priority=text(m.priority).strip().lower() or "medium",
            format=text(m.format).strip().lower() or "plain",
            labels={"source": self.name, "event_type": event.event_type, **{k: text(v) for k, v in m.labels.items()}},
            fields={k: text(v) for k, v in m.fields.items()},
            thread_key=(text(m.thread_key) or None) if m.thread_key else None,
            dedup_key=(text(m.dedup_key) or None) if m.dedup_key else None,
        )
        return {"message": await self.emit(hub, event, message, to=self.settings.receive.to)}

    def session_headers(self) -> dict[str, str]:
        return {**super().session_headers(), **self.settings.headers}

    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> dict[str, Any]:
        fields = [{"name": name, "value": value} for name, value in message.fields]
        return {"type": "message", "data": {**message.to_dict(), "fields": fields}}

    def body(self, payload: dict[str, Any], attempt: Attempt) -> bytes:
        """The exact bytes sent: the rendered payload with the ids that make it idempotent."""
        envelope = {
            "id": attempt.delivery_id,
            "message_id": attempt.message_id,
            "timestamp": _iso_time(attempt.created_at),
            **payload,
        }
        return orjson.dumps(envelope)

    async def send(self, payload: dict[str, Any], attempt: Attempt) -> Outcome:
        session = self._session or await self.session()
        body = self.body(payload, attempt)
        headers = {"Content-Type": "application/json", "Idempotency-Key": attempt.delivery_id}
        if self._signer is not None:
            now = dt.datetime.now(dt.UTC)
            headers["webhook-id"] = attempt.delivery_id
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            headers["webhook-signature"] = self._signer.sign(attempt.delivery_id, now, body.decode())
        try:
            async with session.request(
                self.settings.method, self.settings.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                snippet = "" if 200 <= resp.status < 300 else await read_snippet(resp)
                return classify_status(resp.status, resp.headers, snippet)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return connection_error(exc)
