"""A :class:`~sink.Sink` with what failure-handling tests need on top:

- ``arrivals``: ``time.monotonic()`` when each request arrived (rate limits, Retry-After);
- ``active`` / ``max_active``: requests being answered right now, and the most at once;
- a chosen port (``Peer(port)``), so a test can bring a peer up where nothing was listening;
- replies built when the request arrives: ``peer.script(lambda: Reply(...))``;
- a handler whose client went away is cancelled, so a ``Reply(delay=30)`` never holds up the end
  of a test.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

from aiohttp import web
from sink import Received, Reply, Sink


def free_port() -> int:
    """A local port nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Peer(Sink):
    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.bind_port = port
        self.arrivals: list[float] = []
        self.active = 0
        self.max_active = 0

    def script(self, *replies: Reply | int | Callable[[], Reply]) -> None:  # type: ignore[override]
        for r in replies:
            self._script.append(Reply(r) if isinstance(r, int) else r)  # type: ignore[arg-type]

    async def start(self) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.bind_port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.arrivals.append(time.monotonic())
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            body = await request.read()
            reply = self._script.popleft() if self._script else self.default
            if callable(reply):
                reply = reply()
            self.received.append(Received(request.method, request.path_qs, dict(request.headers), body))
            self.arrived.set()
            if reply.action == "reset":
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError
            if reply.delay:
                await asyncio.sleep(reply.delay)
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        finally:
            self.active -= 1
