"""Splunk HTTP Event Collector (HEC): each message becomes one event; a request carries several
events concatenated (the HEC format, not a JSON array), up to ``batch_max_events`` and
``batch_max_bytes``. With ``ack: true`` (indexer acknowledgement on the token) a request names
its channel and a delivery counts as delivered only once Splunk acknowledges its ackId.

The answers and what they mean: :mod:`.hec`. The mapping of a message to an event: docs/splunk.md.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import Field, SecretStr, field_validator

from ...message import Message, Priority
from ...units import Duration, Size
from ..base import NO_OPTIONS, Attempt, BatchNotifier, HttpNotifier, IntegrationSettings, Outcome, RenderOptions
from ..http import HttpUrl, connection_error
from . import hec

EVENT_PATH = "/services/collector/event"
ACK_PATH = "/services/collector/ack"
HEALTH_PATH = "/services/collector/health"
SEVERITY = {
    Priority.CRITICAL: "critical",
    Priority.HIGH: "high",
    Priority.MEDIUM: "medium",
    Priority.LOW: "low",
    Priority.INFO: "informational",
}
"""Priority -> the Common Information Model's ``severity`` values."""
ENVELOPE_EXTRA = 160
"""Bytes the send adds to a rendered event (time, ids), for the size bound."""
ACK_FIRST_POLL = 0.05
ACK_MAX_POLL = 1.0
CHANNEL_NAMESPACE = uuid.UUID("9b5d3c4e-3f1a-5e0b-8c7d-2a6f4b1e0d93")


class SplunkSettings(IntegrationSettings):
    outbound = ("url",)
    kind: Literal["splunk"]
    url: HttpUrl = Field(description="the HEC base URL, e.g. https://splunk.example.com:8088")
    token: SecretStr = Field(description="the HEC token (a GUID); sent as 'Authorization: Splunk <token>'")
    index: str | None = Field(None, description="the index to write to (the token's default index when left out)")
    sourcetype: str = Field("tidings:message", description="the events' sourcetype")
    source: str = Field("tidings", description="the events' source")
    host: str | None = Field(None, description="the events' host (Splunk's default: the sender's address)")
    ack: bool = Field(False, description="indexer acknowledgement (must be on for the token too): a delivery is"
                      " delivered only once Splunk acknowledges it was indexed")
    channel: str | None = Field(None, description="the X-Splunk-Request-Channel GUID; one derived from the"
                                " integration's name when left out")
    ack_timeout: Duration = Field(10.0, gt=0, le=300, description="how long a send waits for its"
                                  " acknowledgement before the events are sent again")
    batch_max_events: int = Field(100, ge=1, le=10_000, description="events per request at most")
    batch_max_bytes: Size = Field(512 * 1024, ge=4096, le=800 * 1024 * 1024, description="bytes per request at"
                                  " most (Splunk's max_content_length was 1MB in older versions)")

    @field_validator("url")
    @classmethod
    def _base(cls, v: str) -> str:
        v = v.rstrip("/")
        for suffix in (EVENT_PATH, "/services/collector"):
            v = v.removesuffix(suffix)
        return v

    @field_validator("channel")
    @classmethod
    def _guid(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                uuid.UUID(v)
            except ValueError:
                raise ValueError("a channel is a GUID, e.g. 0e8a8b2c-6f1d-4c5e-9a7b-3d2f1e0c9b8a") from None
        return v


class SplunkNotifier(HttpNotifier, BatchNotifier):
    kind = "splunk"
    Settings = SplunkSettings
    settings: SplunkSettings
    concurrency = 4
    timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self.channel = s.channel or str(uuid.uuid5(CHANNEL_NAMESPACE, self.name))
        self._events_url = s.url + EVENT_PATH
        self._ack_url = f"{s.url}{ACK_PATH}?channel={self.channel}"
        self._headers = {"Content-Type": "application/json"}
        if s.ack:
            self._headers["X-Splunk-Request-Channel"] = self.channel
        self._request_timeout = aiohttp.ClientTimeout(total=s.timeout or self.timeout, connect=10.0)

    @property
    def effective_max_batch(self) -> int:
        return self.settings.batch_max_events

    @property
    def effective_timeout(self) -> float:
        """A send's bound: the request, and with ack on the wait for the acknowledgement."""
        request = self.settings.timeout or self.timeout
        return request + self.settings.ack_timeout if self.settings.ack else request

    def session_headers(self) -> dict[str, str]:
        return {**super().session_headers(), "Authorization": f"Splunk {self.settings.token.get_secret_value()}"}

    # -- the event --------------------------------------------------------------------------
    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> dict[str, Any]:
        s = self.settings
        envelope: dict[str, Any] = {"source": s.source, "sourcetype": s.sourcetype}
        if s.host:
            envelope["host"] = s.host
        if s.index:
            envelope["index"] = s.index
        severity = SEVERITY[message.priority]
        envelope["event"] = {
            "title": message.title,
            "body": message.body,
            "format": message.format._value_,
            "priority": message.priority._value_,
            "severity": severity,
            "labels": dict(message.labels),
            "fields": {f.name: f.value for f in message.fields},
            "links": [{"label": link.label, "url": link.url} for link in message.links],
            "thread_key": message.thread_key,
            "dedup_key": message.dedup_key,
            "resolves": message.resolves,
            "project": self.project,
            "source": message.labels.get("source"),
        }
        indexed = {"priority": message.priority._value_, "severity": severity, "project": self.project,
                   "thread_key": message.thread_key, "dedup_key": message.dedup_key}
        envelope["fields"] = {k: v for k, v in indexed.items() if v is not None}
        return envelope

    def event(self, payload: dict[str, Any], attempt: Attempt) -> bytes:
        """One event as sent: the rendered one with its time and the ids of the message and delivery."""
        event = {**payload["event"], "id": attempt.message_id, "delivery_id": attempt.delivery_id}
        return orjson.dumps({"time": round(attempt.created_at, 3), **payload, "event": event})

    def batch_cut(self, payloads: list[Any]) -> int:
        size = 0
        for n, payload in enumerate(payloads):
            size += len(orjson.dumps(payload)) + ENVELOPE_EXTRA
            if size > self.settings.batch_max_bytes:
                return max(1, n)
        return len(payloads)

    # -- sending ----------------------------------------------------------------------------
    async def send_batch(self, payloads: list[Any], attempts: list[Attempt]) -> list[Outcome]:
        session = self._session or await self.session()
        body = b"".join(self.event(p, a) for p, a in zip(payloads, attempts, strict=True))
        try:
            async with session.post(self._events_url, data=body, headers=self._headers, allow_redirects=False,
                                    timeout=self._request_timeout) as resp:
                raw = await resp.content.read(64 * 1024)
                failed = hec.classify(resp.status, resp.headers, raw, len(payloads))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return [connection_error(exc)] * len(payloads)
        if failed is not None:
            return failed
        if not self.settings.ack:
            return [Outcome.delivered()] * len(payloads)
        ack = hec.ack_id(raw)
        if ack is None:
            return [Outcome.retry("Splunk HEC answered without an ackId: is indexer acknowledgement on for the"
                                  " token?")] * len(payloads)
        return [await self._acknowledged(ack)] * len(payloads)

    async def _acknowledged(self, ack: int) -> Outcome:
        """Poll ``/services/collector/ack`` for ``ack`` with backoff, up to ``ack_timeout``."""
        session = self._session or await self.session()
        deadline = time.monotonic() + self.settings.ack_timeout
        delay = ACK_FIRST_POLL
        body = orjson.dumps({"acks": [ack]})
        while True:
            try:
                async with session.post(self._ack_url, data=body, headers=self._headers, allow_redirects=False,
                                        timeout=self._request_timeout) as resp:
                    raw = await resp.content.read(64 * 1024)
                    failed = hec.classify(resp.status, resp.headers, raw, 1)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                return Outcome.retry(f"polling ackId {ack}: {connection_error(exc).error}")
            if failed is not None:
                outcome = failed[0]
                return outcome if outcome.disable else Outcome.retry(f"polling ackId {ack}: {outcome.error}")
            answer = hec.parse_answer(raw) or {}
            acks = answer.get("acks")
            if isinstance(acks, dict) and acks.get(str(ack)) is True:
                return Outcome.delivered(f"{self.channel}/{ack}")
            if time.monotonic() + delay > deadline:
                return Outcome.retry(f"ackId {ack} not acknowledged within {self.settings.ack_timeout:g}s;"
                                     " the events are sent again (at least once: Splunk may index them twice)")
            await asyncio.sleep(delay)
            delay = min(delay * 2, ACK_MAX_POLL)

    async def test(self) -> Outcome:
        """HEC's health, then the token (and, with ack on, the channel) without sending an event:
        an empty request is answered 400 "No data" once the token is good."""
        session = self._session or await self.session()
        s = self.settings
        try:
            async with session.get(s.url + HEALTH_PATH, allow_redirects=False, timeout=self._request_timeout) as resp:
                raw = await resp.content.read(64 * 1024)
                if resp.status != 200:
                    return hec.classify(resp.status, resp.headers, raw, 1)[0]  # type: ignore[index]
            async with session.post(self._events_url, data=b"", headers=self._headers, allow_redirects=False,
                                    timeout=self._request_timeout) as resp:
                raw = await resp.content.read(64 * 1024)
                answer = hec.parse_answer(raw) or {}
                if not (resp.status == 400 and answer.get("code") == 5):
                    failed = hec.classify(resp.status, resp.headers, raw, 1)
                    return failed[0] if failed else Outcome.permanent("Splunk HEC accepted an empty request:"
                                                                      " is this a HEC endpoint?")
            if s.ack:
                async with session.post(self._ack_url, data=b'{"acks":[]}', headers=self._headers,
                                        allow_redirects=False, timeout=self._request_timeout) as resp:
                    raw = await resp.content.read(64 * 1024)
                    failed = hec.classify(resp.status, resp.headers, raw, 1)
                    if failed:
                        return failed[0]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return connection_error(exc)
        return Outcome.delivered(f"{s.url}: HEC healthy, token accepted{', indexer acknowledgement on' if s.ack else ''}")
