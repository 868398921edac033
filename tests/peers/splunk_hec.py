"""A Splunk HTTP Event Collector stand-in on 127.0.0.1, answering as Splunk documents HEC
("Format events for HTTP Event Collector", "Troubleshoot HTTP Event Collector", "About HTTP Event
Collector Indexer Acknowledgment"):

- ``POST /services/collector/event`` (and ``/services/collector``): the body is a stream of JSON
  event objects, concatenated with optional whitespace between them (not a JSON array: a value
  that is not an object is "Invalid data format"). Events are read in order and indexed until the
  first bad one, which is answered 400 with ``invalid-event-number`` (its 0-based position): code 6
  for what is not JSON or not an object, 12/13 for a missing/blank ``event``, 7 for an index the
  token may not write, 15 for indexed ``fields`` that are not strings or lists of strings. An empty
  body is code 5 "No data" (after the token was checked).
- ``Authorization: Splunk <token>``: none 401 code 2, another scheme 401 code 3, unknown 403 code 4,
  disabled 403 code 1.
- Indexer acknowledgement (``ack=True``): ``X-Splunk-Request-Channel`` is required (400 code 10),
  must be a GUID (400 code 11); each accepted request gets the next ``ackId`` of its channel
  (from 0), acknowledged ``ack_delay`` seconds later (never with ``None``). ``POST
  /services/collector/ack?channel=`` ``{"acks": [ids]}`` -> ``{"acks": {"id": bool}}``; an id
  reported true is forgotten, as Splunk does. With ``ack=False`` the ack endpoint is 400 code 14.
- ``GET /services/collector/health``: 200 code 17, or 503 code 18 while ``unhealthy``.

Fault injection, for the next event requests (``fail(...)``, ``times=``): ``busy`` (503 code 9 with
``Retry-After``), ``error`` (500 code 8), ``throttled`` (429), ``reset`` (the connection dropped
before an answer), ``delay`` (answer late), ``invalid_at`` (event N refused as code 6).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SUCCESS = {"text": "Success", "code": 0}
_DECODER = json.JSONDecoder()
_WS = " \t\r\n"


@dataclass
class Fault:
    kind: str
    retry_after: int | None = None
    seconds: float = 0.0
    index: int = 0


@dataclass
class Indexed:
    event: dict[str, Any]
    channel: str | None
    request: int


@dataclass
class SplunkHec:
    tokens: set[str] = field(default_factory=lambda: {"00000000-1111-2222-3333-444444444444"})
    disabled_tokens: set[str] = field(default_factory=set)
    indexes: set[str] | None = field(default_factory=lambda: {"main", "security"})
    """The indexes the token may write (None: any)."""
    ack: bool = False
    ack_delay: float | None = 0.0
    unhealthy: bool = False
    port: int = 0
    indexed: list[Indexed] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    """Events in each event request that reached the parser."""
    arrivals: list[float] = field(default_factory=list)
    """``time.monotonic()`` when each event request arrived."""
    ack_polls: int = 0
    _faults: deque[Fault] = field(default_factory=deque)
    _next_ack: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _acked_at: dict[tuple[str, int], float | None] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    # -- control ----------------------------------------------------------------------------
    def fail(self, kind: str, times: int = 1, **kw: Any) -> None:
        for _ in range(times):
            self._faults.append(Fault(kind, **kw))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[dict[str, Any]]:
        return [i.event for i in self.indexed]

    async def start(self, sock: Any = None) -> None:
        """Listen on ``port`` (0: any free one), or on the bound socket ``sock``."""
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/services/collector/event", self._event)
        app.router.add_post("/services/collector", self._event)
        app.router.add_post("/services/collector/ack", self._ack)
        app.router.add_get("/services/collector/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.SockSite(self._runner, sock) if sock is not None else web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        await self._runner.cleanup()

    # -- answers ----------------------------------------------------------------------------
    @staticmethod
    def _answer(status: int, text: str, code: int, headers: dict[str, str] | None = None,
                **extra: Any) -> web.Response:
        return web.json_response({"text": text, "code": code, **extra}, status=status, headers=headers)

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization")
        if not header:
            return self._answer(401, "Token is required", 2)
        scheme, _, token = header.partition(" ")
        if scheme != "Splunk" or not token:
            return self._answer(401, "Invalid authorization", 3)
        if token in self.disabled_tokens:
            return self._answer(403, "Token disabled", 1)
        if token not in self.tokens:
            return self._answer(403, "Invalid token", 4)
        return None

    def _channel(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        channel = request.headers.get("X-Splunk-Request-Channel") or request.query.get("channel")
        if not self.ack:
            return channel, None
        if not channel:
            return None, self._answer(400, "Data channel is missing", 10)
        try:
            uuid.UUID(channel)
        except ValueError:
            return None, self._answer(400, "Invalid data channel", 11)
        return channel, None

    async def _event(self, request: web.Request) -> web.StreamResponse:
        self.arrivals.append(time.monotonic())
        if (refused := self._auth(request)) is not None:
            return refused
        channel, refused = self._channel(request)
        if refused is not None:
            return refused
        body = (await request.read()).decode("utf-8", "replace")
        fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            if fault.kind == "reset":
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError
            if fault.kind == "busy":
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
                return self._answer(503, "Server is busy", 9, headers)
            if fault.kind == "error":
                return self._answer(500, "Internal server error", 8)
            if fault.kind == "throttled":
                return web.Response(status=429, text="Too Many Requests",
                                    headers={"Retry-After": str(fault.retry_after or 1)})
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
        if not body.strip():
            return self._answer(400, "No data", 5)
        number = len(self.requests)
        events, error = self._parse(body, None if fault is None or fault.kind != "invalid_at" else fault.index)
        self.requests.append(len(events) + (error is not None))
        self.indexed.extend(Indexed(e, channel, number) for e in events)
        self.arrived.set()
        if error is not None:
            return error
        if not self.ack:
            return web.json_response(SUCCESS)
        assert channel is not None
        ack_id = self._next_ack[channel]
        self._next_ack[channel] += 1
        self._acked_at[channel, ack_id] = None if self.ack_delay is None else time.monotonic() + self.ack_delay
        return web.json_response({**SUCCESS, "ackId": ack_id})

    def _parse(self, body: str, refuse_at: int | None) -> tuple[list[dict[str, Any]], web.Response | None]:
        """The events before the first bad one, and the answer for that one (None: all good)."""
        events: list[dict[str, Any]] = []
        pos = 0
        while True:
            while pos < len(body) and body[pos] in _WS:
                pos += 1
            if pos == len(body):
                return events, None
            n = len(events)
            try:
                value, pos = _DECODER.raw_decode(body, pos)
            except json.JSONDecodeError:
                return events, self._answer(400, "Invalid data format", 6, **{"invalid-event-number": n})
            if not isinstance(value, dict) or n == refuse_at:
                return events, self._answer(400, "Invalid data format", 6, **{"invalid-event-number": n})
            if "event" not in value:
                return events, self._answer(400, "Event field is required", 12, **{"invalid-event-number": n})
            if value["event"] in ("", None, {}):
                return events, self._answer(400, "Event field cannot be blank", 13, **{"invalid-event-number": n})
            index = value.get("index")
            if index is not None and self.indexes is not None and index not in self.indexes:
                return events, self._answer(400, "Incorrect index", 7, **{"invalid-event-number": n})
            fields = value.get("fields", {})
            if not isinstance(fields, dict) or not all(
                isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
                for v in fields.values()
            ):
                return events, self._answer(400, "Error in handling indexed fields", 15,
                                            **{"invalid-event-number": n})
            events.append(value)

    async def _ack(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        if not self.ack:
            return self._answer(400, "ACK is disabled", 14)
        channel, refused = self._channel(request)
        if refused is not None:
            return refused
        assert channel is not None
        self.ack_polls += 1
        try:
            ids = (await request.json())["acks"]
        except (ValueError, KeyError, TypeError):
            return self._answer(400, "Invalid data format", 6)
        now = time.monotonic()
        out: dict[str, bool] = {}
        for ack_id in ids:
            due = self._acked_at.get((channel, ack_id))
            done = (channel, ack_id) in self._acked_at and due is not None and now >= due
            out[str(ack_id)] = done
            if done:
                del self._acked_at[channel, ack_id]
        return web.json_response({"acks": out})

    async def _health(self, request: web.Request) -> web.Response:
        if self.unhealthy:
            return self._answer(503, "HEC is unhealthy, queues are full", 18)
        return self._answer(200, "HEC is healthy", 17)
