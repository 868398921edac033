"""A real uvicorn server on 127.0.0.1 around a hub, and an httpx client that talks to it
(fixtures ``serve_asgi``, ``serve`` and ``make_api``, imported by conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from tidings import Hub
from tidings.security.tokens import create_token
from tidings.server import create_app


class _Server(uvicorn.Server):
    """Leave the test runner's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Api:
    """A running server: its hub, base URL, a valid token and a client (no auth by default)."""

    hub: Hub
    url: str
    token: str
    client: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def request(self, method: str, path: str, *, auth: bool = True, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        merged = {**(self.auth if auth else {}), **(headers or {})}
        return await self.client.request(method, path, headers=merged, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)


@pytest.fixture
async def serve_asgi() -> AsyncIterator[Callable[..., Any]]:
    """``url = await serve_asgi(app, **uvicorn_config)``: ``app`` under uvicorn on 127.0.0.1 in this
    event loop, stopped at the end of the test."""
    running: list[tuple[_Server, asyncio.Task[None]]] = []

    async def start(app: Any, **options: Any) -> str:
        # Port 0: the system picks a free port. (A socket bound here and handed to uvicorn
        # would lack TCP_NODELAY and add a 40 ms delayed-ACK stall to every request.)
        # proxy_headers off: the app sees the real peer (tests of X-Forwarded-For handling need it).
        options = {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 2,
                   "proxy_headers": False, **options}
        config = uvicorn.Config(app, host="127.0.0.1", port=0, **options)
        server = _Server(config)
        task = asyncio.create_task(server.serve())
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        assert server.started, "uvicorn did not start"
        running.append((server, task))
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server, task in reversed(running):
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def serve(serve_asgi: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    """``await serve(hub)`` starts ``create_app(hub)`` under uvicorn on a free port."""
    clients: list[httpx.AsyncClient] = []

    async def start(hub: Hub, *, token: bool = True) -> Api:
        url = await serve_asgi(create_app(hub), lifespan="on")
        client = httpx.AsyncClient(base_url=url, timeout=15.0)
        clients.append(client)
        value = await create_token(hub.store, "test") if token else ""
        return Api(hub, url, value, client)

    yield start
    for client in clients:
        await client.aclose()


@pytest.fixture
async def make_api(make_hub: Callable[..., Any], serve: Callable[..., Any]) -> Callable[..., Any]:
    """``await make_api(config, **hub_kwargs)``: a hub on the test's database, served."""

    async def start(data: dict[str, Any] | None = None, **kwargs: Any) -> Api:
        hub = await make_hub(data, **kwargs)
        return await serve(hub)

    return start
