"""Small things tests share."""

from __future__ import annotations

import asyncio
import functools
import io
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

LOCAL = ["127.0.0.1/32", "::1/128"]
"""What every test allows the outbound guard to connect to: its local peers."""


def local_context(store: Any = None, threads: Any = None) -> Any:
    """An integration's context for tests that build integrations by hand: local peers allowed."""
    from tidings.integrations.base import Context
    from tidings.security.outbound import Destinations

    return Context(store=store, threads=threads, destinations=Destinations.parse(LOCAL))


def json_logs(monkeypatch: Any, *loggers: tuple[Any, str]) -> Iterator[io.StringIO]:
    """tidings' own logging setup (JSON, every known secret masked) writing to a buffer, for a
    fixture to ``yield from``. The dispatcher, the hub and each ``(module, logger name)`` of
    ``loggers`` get fresh loggers: one cached by an earlier configure() would still write to the old
    stream."""
    import structlog

    import tidings.delivery.dispatcher
    import tidings.delivery.sending
    import tidings.hub
    import tidings.logs

    buf = io.StringIO()
    saved = structlog.get_config()
    monkeypatch.setattr(sys, "stderr", buf)
    tidings.logs.configure(level="DEBUG", json=True, file=buf)
    structlog.configure(cache_logger_on_first_use=False)
    for module, name in ((tidings.delivery.dispatcher, "tidings.dispatcher"), (tidings.delivery.sending, "tidings.dispatcher"),
                         (tidings.hub, "tidings.hub"), *loggers):
        monkeypatch.setattr(module, "log", structlog.get_logger(name))
    try:
        yield buf
    finally:
        structlog.configure(**saved)


PG_URL = os.environ.get("TIDINGS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=2):
            return True
    except Exception:
        return False


REDIS_URL = os.environ.get("TIDINGS_TEST_REDIS", "redis://127.0.0.1:6379/0")


@functools.cache
def redis_available() -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def services_required() -> bool:
    return os.environ.get("TIDINGS_REQUIRE_SERVICES") == "1"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Wait until ``check()`` is true; fail with a clear message after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def stop_all(procs: dict[str, Any], timeout: float = 15) -> dict[str, int | None]:
    """SIGTERM every process still running, then each one's exit code (None: it had to be killed)."""
    import signal
    import subprocess

    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes: dict[str, int | None] = {}
    for name, proc in procs.items():
        try:
            codes[name] = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            codes[name] = None
    return codes


def start_worker(cwd: Any, config: Any, name: str) -> Any:
    """``tidings worker --config CONFIG`` as its own process in ``cwd`` (the key file there, none of
    this process's TIDINGS_* variables), output in ``cwd/NAME.out|.err``; stop it with :func:`stop_all`."""
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    if env.get("PYTHONPATH"):  # `PYTHONPATH=src pytest`: the worker runs the same code
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    env.update(WORKER_NAME=name, TIDINGS_KEY_FILE=str(Path(cwd) / "tidings.key"), TIDINGS_LOG_LEVEL="INFO",
               PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("tidings")), "worker", "--config", str(config)], cwd=cwd, env=env,
        stdin=subprocess.DEVNULL,
        stdout=open(Path(cwd) / f"{name}.out", "wb"),  # noqa: SIM115 - closed with the process
        stderr=open(Path(cwd) / f"{name}.err", "wb"),  # noqa: SIM115
    )


async def first_deliveries(hub: Any, ids: list[str]) -> list[dict[str, Any]]:
    """The first delivery of each message in ``ids``, as ``hub.message`` shows it."""
    return [(await hub.message(i))["deliveries"][0] for i in ids]


async def all_status(hub: Any, ids: list[str], status: str = "delivered", timeout: float = 15.0) -> list[dict[str, Any]]:
    """Wait until the first delivery of every message in ``ids`` is ``status``; those deliveries."""

    async def check() -> bool:  # one query a look: a read per message took the loop from the hub's own work
        from sqlalchemy import select

        from tidings.store.tables import deliveries

        async with hub.store.read() as conn:
            rows = (await conn.execute(select(deliveries.c.message_id, deliveries.c.status)
                                       .where(deliveries.c.message_id.in_(ids)).order_by(deliveries.c.id))).all()
        first: dict[str, str] = {}
        for message_id, found in rows:
            first.setdefault(message_id, found)
        return len(first) == len(set(ids)) and all(found == status for found in first.values())

    await eventually(check, timeout=timeout)
    return await first_deliveries(hub, ids)


async def queued(make_hub: Any, config: dict[str, Any], messages: list[Any]) -> list[str]:
    """Store ``messages`` with a hub that doesn't send, so the next hub claims them together."""
    writer = await make_hub(config, dispatch=False)
    ids = [(await writer.notify(m)).id for m in messages]
    await writer.stop()
    return ids


def routes_of(app: Any) -> Iterator[tuple[str, str, Any]]:
    """(method, path template, route) of every route the app serves, in the OpenAPI document or not
    (routers included lazily too, on FastAPI versions that do that)."""
    import fastapi.routing

    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in walk(app.routes) if walk is not None else app.routes:
        path = getattr(route, "path_format", None) or route.path
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method != "HEAD":
                yield method, path, route


def raise_once(monkeypatch: Any, notifier: Any) -> None:
    """Make ``notifier.send`` raise on its first call (a bug in an integration), then send as before."""
    real = notifier.send
    calls = 0

    async def flaky(payload: Any, attempt: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug in an integration")
        return await real(payload, attempt)

    monkeypatch.setattr(notifier, "send", flaky)
