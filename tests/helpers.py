"""Small things tests share."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

LOCAL = ["127.0.0.1/32", "::1/128"]
"""What every test allows the outbound guard to connect to: its local peers."""


def local_context(store: Any = None, threads: Any = None) -> Any:
    """An integration's context for tests that build integrations by hand: local peers allowed."""
    from tidings.integrations.base import Context
    from tidings.security.outbound import Destinations

    return Context(store=store, threads=threads, destinations=Destinations.parse(LOCAL))


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
