"""Fixtures for the compatibility facades: the fake Slack and Teams servers, a real SMTP server
with a self-signed certificate, a uvicorn server for any ASGI app, and structlog capture that
works whatever logging another test configured (cached loggers included)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import structlog
import uvicorn
from fake_smtp import Certificate, SmtpServer, make_certificate

import tidings.compat._channels
import tidings.compat.alerting
import tidings.compat.communication
import tidings.compat.middleware


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def smtp(certs: Certificate) -> Iterator[Callable[..., SmtpServer]]:
    """Start SMTP servers: ``smtp()`` STARTTLS + AUTH, ``smtp("none")`` plain without AUTH."""
    started: list[SmtpServer] = []

    def start(security: str = "starttls", auth: bool = True) -> SmtpServer:
        server = SmtpServer(certs, security, auth=auth and security != "none").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event the facades log during the test (from any thread)."""
    saved = structlog.get_config()
    structlog.configure(
        cache_logger_on_first_use=False,
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    modules = {
        tidings.compat._channels: "tidings.compat",
        tidings.compat.communication: "tidings.compat",
        tidings.compat.alerting: "tidings.compat.alerting",
        tidings.compat.middleware: "tidings.compat.middleware",
    }
    with pytest.MonkeyPatch.context() as mp:
        for module, name in modules.items():
            mp.setattr(module, "log", structlog.get_logger(name))  # a fresh, uncached logger
        try:
            with structlog.testing.capture_logs() as captured:
                yield captured
        finally:
            structlog.configure(**saved)


class _Server(uvicorn.Server):
    """Leave the test runner's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest.fixture
async def serve_asgi() -> AsyncIterator[Callable[..., Any]]:
    """``url = await serve_asgi(app)``: ``app`` under uvicorn on 127.0.0.1 in this event loop."""
    running: list[tuple[_Server, asyncio.Task[None]]] = []

    async def start(app: Any, *, lifespan: str = "auto", proxy_headers: bool = False) -> str:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False,
                                lifespan=lifespan, proxy_headers=proxy_headers, timeout_graceful_shutdown=2)
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
    for server, task in running:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
