"""What the Google Calendar and Microsoft Graph stand-ins share: an aiohttp server on 127.0.0.1 with
bearer tokens, a count of calls per route, and the faults tests inject:

    api.fail(500)                          # the next answer (``times`` of them), whatever the request
    api.fail(429, retry_after=1)           # with Retry-After
    api.drop_next("POST")                  # do the work, then close the connection unanswered
    api.stall_next(5)                      # answer the next request only after 5 s (a timeout)
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass
class Fault:
    status: int
    retry_after: float | None = None
    reason: str | None = None


class StandIn:
    def __init__(self, tokens: set[str] | None = None) -> None:
        self.tokens = set(tokens or {"calendar-token"})
        self.calls: Counter[str] = Counter()
        self._faults: deque[Fault] = deque()
        self._drops: Counter[str] = Counter()
        self._stalls: deque[float] = deque()
        self._runner: web.AppRunner | None = None
        self._etags = itertools.count(1)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- faults ---------------------------------------------------------------------------------
    def fail(self, status: int, times: int = 1, *, retry_after: float | None = None, reason: str | None = None) -> None:
        self._faults.extend(Fault(status, retry_after, reason) for _ in range(times))

    def drop_next(self, method: str, times: int = 1) -> None:
        self._drops[method.upper()] += times

    def stall_next(self, seconds: float, times: int = 1) -> None:
        self._stalls.extend(seconds for _ in range(times))

    def writes(self) -> int:
        return sum(n for route, n in self.calls.items() if route.split(" ")[0] in ("POST", "PUT", "PATCH", "DELETE"))

    def next_etag(self) -> str:
        return str(next(self._etags))

    # -- what each provider answers -----------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def error(self, status: int, message: str, reason: str | None = None,
              headers: dict[str, str] | None = None) -> web.Response:
        raise NotImplementedError

    # -- server ---------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        resource = request.match_info.route.resource
        self.calls[f"{request.method} {resource.canonical if resource else request.path}"] += 1
        if self._stalls:
            await asyncio.sleep(self._stalls.popleft())
        if self._faults:
            fault = self._faults.popleft()
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            return self.error(fault.status, f"injected {fault.status}", fault.reason, headers)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return self.error(401, "Request had invalid authentication credentials.", "authError")
        response: web.StreamResponse = await handler(request)
        if self._drops[request.method] > 0:
            self._drops[request.method] -= 1
            assert request.transport is not None
            request.transport.abort()  # the work is done; its answer is lost
            raise asyncio.CancelledError
        return response
