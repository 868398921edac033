"""A fast local HTTP sink for benchmarks, run in its own process: answers 200 to every POST and
counts what arrived (total and distinct delivery ids). Also the small helpers every benchmark
uses (free ports, quantiles, waiting for a server, empty databases)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web


def _serve(sock: socket.socket, counts: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    seen: set[str] = set()

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        counts[0] += 1
        ident = request.headers.get("Idempotency-Key") or request.headers.get("webhook-id")
        if ident and ident not in seen:
            seen.add(ident)
            counts[1] += 1
        return web.Response(status=200)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"total": counts[0], "distinct": counts[1]})

    async def reset(_: web.Request) -> web.Response:
        counts[0] = counts[1] = 0
        seen.clear()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", handle)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    web.run_app(app, sock=sock, access_log=None, print=None, handle_signals=True)


class ServedProcess:
    """A server in a forked process on a socket bound here, with counters it shares:
    ``counts[0]`` requests received, ``counts[1]`` distinct ones."""

    sock: socket.socket
    proc: Any
    counts: Any

    def _bind(self) -> mp.context.ForkContext:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        return mp.get_context("fork")

    def __enter__(self) -> Self:
        self.proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.join(5)
        self.sock.close()

    @property
    def total(self) -> int:
        return int(self.counts[0])

    @property
    def distinct(self) -> int:
        return int(self.counts[1])


class SinkProcess(ServedProcess):
    def __init__(self) -> None:
        ctx = self._bind()
        self.sock.listen(1024)
        self.counts = ctx.Array("q", 2, lock=False)
        self.proc = ctx.Process(target=_serve, args=(self.sock, self.counts), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def reset(self) -> None:
        self.counts[0] = self.counts[1] = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used, in seconds: /proc/<pid>/schedstat (nanoseconds, summed over its
    threads), else user + system time from /proc/<pid>/stat (clock ticks); 0 without /proc."""
    try:
        return sum(int(Path(t, "schedstat").read_text().split()[0]) for t in Path(f"/proc/{pid}/task").iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (seconds), in milliseconds."""
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000 if values else 0.0


async def wait_ok(url: str, session: aiohttp.ClientSession | None = None, tries: int = 200) -> None:
    """Until ``url`` answers 200 (a server that is starting refuses connections meanwhile)."""
    async with contextlib.AsyncExitStack() as stack:
        s = session or await stack.enter_async_context(aiohttp.ClientSession())
        for _ in range(tries):
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200")


async def wait_ready(url: str) -> None:
    """Until the sink whose hook URL is ``url`` answers."""
    await wait_ok(url.rsplit("/", 1)[0] + "/stats")


LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@contextlib.asynccontextmanager
async def fresh_databases(database: str | None, tmp: Path, names: list[str]) -> AsyncIterator[list[str]]:
    """One empty database per name: SQLite files in ``tmp`` (``database`` None), or fresh schemas
    on ``database`` (a PostgreSQL on this machine), dropped afterwards."""
    if database is None:
        yield [f"sqlite:///{tmp / f'{name}.db'}" for name in names]
        return
    parts = urlsplit(database)
    if not parts.scheme.startswith("postgresql"):
        raise SystemExit("--database takes a PostgreSQL URL (SQLite is the default)")
    if parts.hostname not in LOCAL_HOSTS:
        raise SystemExit("benchmarks talk only to this machine: give a PostgreSQL on 127.0.0.1")
    import psycopg

    plain = parts._replace(scheme="postgresql").geturl()
    driver = parts._replace(scheme="postgresql+psycopg").geturl()
    schemas = ["bench_" + uuid.uuid4().hex[:12] for _ in names]
    with psycopg.connect(plain, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if parts.query else "?"
        yield [f"{driver}{sep}options=-csearch_path%3D{schema}" for schema in schemas]
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
