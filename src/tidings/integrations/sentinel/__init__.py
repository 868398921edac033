"""Microsoft Sentinel through the Azure Monitor Logs Ingestion API: each message becomes one record
of a custom table (``Custom-<Table>_CL``, or a stream the DCR declares); a request carries several
records as a gzipped JSON array of at most 1 MB (measured uncompressed, as Azure's SDKs split
batches), with a bearer token from Entra ID client credentials (:mod:`.entra`).

``POST {endpoint}/dataCollectionRules/{dcr_immutable_id}/streams/{stream}?api-version=2023-01-01``.
The answers and what they mean: :mod:`.answers`. The record's columns: docs/sentinel.md.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import aiohttp
import orjson
from pydantic import Field, SecretStr, field_validator

from ...message import Message, Priority
from ...units import Size
from ..base import NO_OPTIONS, Attempt, BatchNotifier, HttpNotifier, IntegrationSettings, Outcome, RenderOptions
from ..http import HttpUrl, connection_error
from . import answers
from .answers import Next
from .entra import EntraToken, TokenFailure

MAX_REQUEST = 1024 * 1024
"""Azure's bound on one call: "1 MB", compressed and uncompressed (service limits); its 413 says
"Maximum allowed content length: 1048576 bytes (1 MB)", and its SDKs split batches there."""
DEFAULT_REQUEST = 1_000_000
"""A little under it by default, for a margin."""
SEVERITY = {
    Priority.CRITICAL: "High",
    Priority.HIGH: "High",
    Priority.MEDIUM: "Medium",
    Priority.LOW: "Low",
    Priority.INFO: "Informational",
}
"""Priority -> Sentinel's severities (those of SecurityAlert and SecurityIncident)."""
RECORD_EXTRA = 180
"""Bytes the send adds to a rendered record (TimeGenerated, MessageId, DeliveryId) and a comma."""
SENT_AT_SEND = "(set when sent)"
COMPRESS_INLINE = 64 * 1024
"""Bodies smaller than this are gzipped on the event loop, larger ones in a thread."""
LOOPBACK_NAMES = frozenset({"localhost"})


def _https(value: str) -> str:
    """https, except to a loopback address (a local stand-in or proxy)."""
    parts = urlsplit(value)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host in LOOPBACK_NAMES
    if parts.scheme != "https" and not loopback:
        raise ValueError("must be an https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or fragment")
    return value.rstrip("/")


class SentinelSettings(IntegrationSettings):
    outbound = ("endpoint", "authority_url")
    kind: Literal["sentinel"]
    endpoint: HttpUrl = Field(description="the logs ingestion endpoint: the Data Collection Endpoint's, or the"
                              " DCR's own (https://<name>.<region>-1.ingest.monitor.azure.com)")
    dcr_immutable_id: str = Field(pattern=r"^dcr-[0-9A-Za-z]{8,64}$",
                                  description="the data collection rule's immutable id (dcr-…)")
    stream: str = Field(pattern=r"^(Custom|Microsoft)-[A-Za-z0-9_]{1,100}$",
                        description="the DCR's input stream, e.g. Custom-TidingsAlerts_CL")
    tenant_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,253}$",
                           description="the Entra ID tenant (directory) id or its domain")
    client_id: str = Field(pattern=r"^[A-Za-z0-9\-]{1,64}$", description="the app registration's application (client) id")
    client_secret: SecretStr = Field(description="the app registration's client secret (write ${vault:NAME})")
    authority_url: HttpUrl = Field("https://login.microsoftonline.com",
                                   description="the Entra ID authority (https://login.microsoftonline.us for US"
                                   " Government, https://login.partner.microsoftonline.cn for Azure China)")
    scope: str = Field("https://monitor.azure.com//.default", min_length=1, max_length=500,
                       description="the token's scope (https://monitor.azure.us//.default for US Government,"
                       " https://monitor.azure.cn//.default for Azure China)")
    api_version: str = Field("2023-01-01", pattern=r"^\d{4}-\d{2}-\d{2}(-preview)?$")
    batch_max_records: int = Field(500, ge=1, le=10_000, description="records per request at most")
    max_request_bytes: Size = Field(DEFAULT_REQUEST, ge=4096, le=MAX_REQUEST,
                                    description="bytes of JSON per request at most, before gzip (Azure takes 1 MB)")

    @field_validator("endpoint", "authority_url")
    @classmethod
    def _secure(cls, v: str) -> str:
        return _https(v)


class SentinelNotifier(HttpNotifier, BatchNotifier):
    kind = "sentinel"
    Settings = SentinelSettings
    settings: SentinelSettings
    concurrency = 4
    timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self._request_timeout = aiohttp.ClientTimeout(total=s.timeout or self.timeout, connect=10.0)
        self._url = (f"{s.endpoint}/dataCollectionRules/{quote(s.dcr_immutable_id)}/streams/{quote(s.stream)}"
                     f"?api-version={s.api_version}")
        form = {"grant_type": "client_credentials", "client_id": s.client_id,
                "client_secret": s.client_secret.get_secret_value(), "scope": s.scope}
        self.tokens = EntraToken(f"{s.authority_url}/{quote(s.tenant_id)}/oauth2/v2.0/token", form,
                                 self._request_timeout)

    @property
    def effective_max_batch(self) -> int:
        return self.settings.batch_max_records

    @property
    def effective_timeout(self) -> float:
        """A send's bound: a token and the request, twice (a refused token is replaced once)."""
        return 4 * (self.settings.timeout or self.timeout)

    # -- the record -------------------------------------------------------------------------
    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> dict[str, Any]:
        record: dict[str, Any] = {
            "MessageTitle": message.title,  # "Title" is a column name Azure reserves
            "Body": message.body,
            "Format": message.format.value,
            "Severity": SEVERITY[message.priority],
            "Priority": message.priority.value,
            "Project": self.project,
            "Source": message.labels.get("source"),
            "EventType": message.labels.get("event_type"),
            "Labels": dict(message.labels),
            "Fields": {f.name: f.value for f in message.fields},
            "Links": [{"label": link.label, "url": link.url} for link in message.links],
            "ThreadKey": message.thread_key,
            "DedupKey": message.dedup_key,
            "Resolves": message.resolves,
        }
        return {k: v for k, v in record.items() if v is not None}

    def preview(self, payload: Any) -> Any:
        return {"TimeGenerated": SENT_AT_SEND, **payload, "MessageId": SENT_AT_SEND, "DeliveryId": SENT_AT_SEND}

    def record(self, payload: dict[str, Any], attempt: Attempt) -> bytes:
        """One record as sent: the rendered one with its time and the ids of the message and delivery."""
        when = datetime.datetime.fromtimestamp(attempt.created_at, datetime.UTC)
        stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return orjson.dumps({"TimeGenerated": stamp, **payload, "MessageId": attempt.message_id,
                             "DeliveryId": attempt.delivery_id})

    def batch_cut(self, payloads: list[Any]) -> int:
        size = 2
        for n, payload in enumerate(payloads):
            size += len(orjson.dumps(payload)) + RECORD_EXTRA
            if size > self.settings.max_request_bytes:
                return max(1, n)
        return len(payloads)

    # -- sending ----------------------------------------------------------------------------
    async def send_batch(self, payloads: list[Any], attempts: list[Attempt]) -> list[Outcome]:
        return await self._send([self.record(p, a) for p, a in zip(payloads, attempts, strict=True)])

    async def _send(self, records: list[bytes]) -> list[Outcome]:
        """Send ``records`` in one request, or in halves when they are too large together."""
        size = sum(len(r) for r in records) + len(records) + 1
        limit = self.settings.max_request_bytes
        if len(records) == 1 and size > limit:
            return [Outcome.permanent(f"the record is {size} bytes of JSON; Azure takes at most {limit} per request")]
        if size <= limit:
            outcome, then = await self._post(b"[" + b",".join(records) + b"]", len(records))
            if then is not Next.SPLIT:
                return [outcome] * len(records)
        mid = len(records) // 2
        left, right = await asyncio.gather(self._send(records[:mid]), self._send(records[mid:]))
        return left + right

    async def _post(self, body: bytes, records: int) -> tuple[Outcome, Next]:
        """One ingestion request; a token the API refuses (401) is replaced once."""
        session = self._session or await self.session()
        if len(body) < COMPRESS_INLINE:
            data = gzip.compress(body, compresslevel=6)
        else:  # a large batch takes milliseconds to compress: not on the event loop
            data = await asyncio.to_thread(gzip.compress, body, 6)
        refused = False
        while True:
            try:
                token = await self.tokens.get(session)
            except TokenFailure as failed:
                return failed.outcome, Next.DONE
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                       "Content-Encoding": "gzip"}
            try:
                async with session.post(self._url, data=data, headers=headers, allow_redirects=False,
                                        timeout=self._request_timeout) as resp:
                    raw = await resp.content.read(64 * 1024)
                    outcome, then = answers.classify(resp.status, resp.headers, raw, records, token)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                return connection_error(exc), Next.DONE
            if then is not Next.NEW_TOKEN:
                return outcome, then
            self.tokens.drop(token)
            if refused:
                return outcome, Next.DONE
            refused = True

    async def test(self) -> Outcome:
        """A new token from Entra ID: proves the tenant, the client id and the secret. Nothing is
        ingested (the API has no dry run), so the DCR, the stream and the role are proven by the
        first delivery."""
        session = self._session or await self.session()
        try:
            await self.tokens.get(session, fresh=True)
        except TokenFailure as failed:
            return failed.outcome
        s = self.settings
        return Outcome.delivered(f"Entra ID issued a token for {s.client_id} (scope {s.scope}); nothing was"
                                 f" ingested: the DCR, the stream {s.stream} and the role are checked by the first"
                                 " delivery")
