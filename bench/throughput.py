"""Throughput of tidings end to end against the same local sink as the baselines, in one run.

    python bench/throughput.py [--messages 20000] [--concurrency 64] [--via hub|api]

Measures, against one HTTP sink process on 127.0.0.1:
  ceiling  a bare aiohttp client posting the same payloads with the same concurrency;
  apprise  Apprise's json:// notify(), called the way scripts call it;
  hub      N messages through Hub.notify (or POST /api/v1/messages with --via api) -> outbox
           (SQLite) -> webhook integration -> sink, counting only deliveries the sink received
           and the database marks delivered.
The last line is one JSON object with the figures and their ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _sink import SinkProcess, wait_ok, wait_ready  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def payload(i: int) -> dict[str, Any]:
    return {
        "title": f"Disk almost full on web-{i % 50:02d}",
        "body": "The root volume is above 90% and rising.",
        "priority": "high",
        "fields": {"host": f"web-{i % 50:02d}", "volume": "/", "usage": "91%"},
        "labels": {"source": "bench", "service": "api"},
    }


async def sink_stats(url: str) -> dict[str, int]:
    base = url.rsplit("/", 1)[0]
    async with aiohttp.ClientSession() as s, s.get(base + "/stats") as r:
        return await r.json()  # type: ignore[no-any-return]


async def wait_done(url: str, db_url: str, n: int) -> None:
    """Until the sink holds ``n`` distinct deliveries and the database marks ``n`` delivered."""
    from sqlalchemy import func, select

    from tidings.store.engine import Store
    from tidings.store.tables import deliveries

    base = url.rsplit("/", 1)[0]
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(base + "/stats") as r:
                if (await r.json())["distinct"] >= n:
                    break
            await asyncio.sleep(0.02)
    store = Store(db_url)
    try:
        while True:
            async with store.read() as conn:
                done = (await conn.execute(select(func.count()).where(deliveries.c.status == "delivered"))).scalar()
            if done >= n:
                return
            await asyncio.sleep(0.02)
    finally:
        await store.close()


async def sink_reset(url: str) -> None:
    base = url.rsplit("/", 1)[0]
    async with aiohttp.ClientSession() as s, s.post(base + "/reset") as r:
        await r.read()


async def ceiling(url: str, n: int, concurrency: int) -> float:
    """Bare aiohttp: the same JSON bodies, the same concurrency, nothing else."""
    bodies = [orjson.dumps({"id": str(uuid.uuid4()), "type": "message", "data": payload(i)}) for i in range(n)]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        it = iter(range(n))

        async def worker() -> None:
            for i in it:
                async with session.post(url, data=bodies[i], headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    assert r.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


def apprise_rate(url: str, n: int) -> float:
    import apprise

    apobj = apprise.Apprise()
    apobj.add(url.replace("http://", "json://"))
    started = time.perf_counter()
    for i in range(n):
        p = payload(i)
        assert apobj.notify(body=p["body"], title=p["title"])
    return n / (time.perf_counter() - started)


def _config(tmp: Path, url: str, concurrency: int, db: str) -> Path:
    path = tmp / "tidings.yaml"
    path.write_text(
        json.dumps(
            {
                "server": {"database": db},
                "dispatcher": {"batch": 500, "max_inflight": 4 * concurrency},
                "integrations": {"sink": {"kind": "webhook", "url": url, "concurrency": concurrency}},
                "default": {"to": ["sink"]},
            }
        )
    )
    return path


async def hub_rate(url: str, n: int, concurrency: int, tmp: Path) -> tuple[float, float]:
    from tidings import Hub, Message

    db = f"sqlite:///{tmp / 'hub.db'}"
    hub = Hub.from_config(_config(tmp, url, concurrency, db))
    messages = [Message(**payload(i)) for i in range(n)]
    latencies: list[float] = []
    async with hub:
        it = iter(messages)

        async def producer() -> None:
            for m in it:
                t = time.perf_counter()
                await hub.notify(m)
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(concurrency)))
        await wait_done(url, db, n)
        elapsed = time.perf_counter() - started
    return n / elapsed, _p99(latencies)


async def api_rate(url: str, n: int, concurrency: int, tmp: Path) -> tuple[float, float]:
    db = f"sqlite:///{tmp / 'api.db'}"
    config = _config(tmp, url, concurrency, db)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TIDINGS_CONFIG": str(config), "TIDINGS_KEY_FILE": str(tmp / "tidings.key"), "TIDINGS_PORT": str(port)}
    tidings = str(Path(sys.executable).parent / "tidings")
    token = subprocess.run([tidings, "token", "create", "--name", "bench"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen([tidings, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            await wait_ok(base + "/readyz", session)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            bodies = [orjson.dumps(payload(i)) for i in range(n)]
            it = iter(range(n))

            async def producer() -> None:
                for i in it:
                    t = time.perf_counter()
                    async with session.post(base + "/api/v1/messages", data=bodies[i], headers=headers) as r:
                        await r.read()
                        assert r.status == 202, r.status
                    latencies.append(time.perf_counter() - t)

            started = time.perf_counter()
            await asyncio.gather(*(producer() for _ in range(concurrency)))
            await wait_done(url, db, n)
            elapsed = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    return n / elapsed, _p99(latencies)


def _p99(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))] * 1000 if values else 0.0


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--apprise-messages", type=int, default=1_000, help="Apprise is slow; a smaller sample suffices")
    ap.add_argument("--via", choices=("hub", "api"), default="hub")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    args = ap.parse_args()
    os.environ.setdefault("TIDINGS_LOG_LEVEL", "WARNING")
    from tidings.logs import configure

    configure(level="WARNING")
    n, c = args.messages, args.concurrency
    runner = hub_rate if args.via == "hub" else api_rate
    ceilings: list[float] = []
    apprises: list[float] = []
    hubs: list[float] = []
    p99s: list[float] = []
    with SinkProcess() as sink, tempfile.TemporaryDirectory() as tmpdir:
        await wait_ready(sink.url)
        await ceiling(sink.url, min(n, 2_000), c)  # warm up both sides
        # This machine's speed drifts; interleaving the measurements and taking medians keeps a
        # drift from landing on one side of the ratio only.
        for r in range(args.rounds):
            await sink_reset(sink.url)
            ceilings.append(await ceiling(sink.url, n, c))
            await sink_reset(sink.url)
            apprises.append(await asyncio.to_thread(apprise_rate, sink.url, args.apprise_messages))
            await sink_reset(sink.url)
            round_dir = Path(tmpdir) / f"round{r}"
            round_dir.mkdir()
            hub_per_s, p99 = await runner(sink.url, n, c, round_dir)
            hubs.append(hub_per_s)
            p99s.append(p99)
            print(
                f"round {r + 1}: ceiling (bare aiohttp, concurrency {c}) {ceilings[-1]:,.0f}/s;"
                f" apprise json:// {apprises[-1]:,.0f}/s; tidings via {args.via} {hub_per_s:,.0f}/s"
                f" (enqueue p99 {p99:.1f} ms)",
                file=sys.stderr,
            )
    ceiling_per_s, apprise_per_s, hub_per_s = median(ceilings), median(apprises), median(hubs)
    result = {
        "messages": n,
        "via": args.via,
        "rounds": args.rounds,
        "hub_per_s": round(hub_per_s, 1),
        "ceiling_per_s": round(ceiling_per_s, 1),
        "apprise_per_s": round(apprise_per_s, 1),
        "hub_vs_ceiling": round(hub_per_s / ceiling_per_s, 3),
        "hub_vs_apprise": round(hub_per_s / apprise_per_s, 2),
        "enqueue_p99_ms": round(median(p99s), 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
