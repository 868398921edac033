"""A peer that fails partly must not stall everything: tidings against a faulty local peer, beside
the same load against the same peer healthy, in one run; then an outage and the peer's return.

    python bench/faulty.py [--messages 2000] [--concurrency 64] [--fault-rate 0.3]
                           [--latency 0.1] [--outage 60] [--outage-messages 500]

One peer process on 127.0.0.1 answers each request by its mode: healthy (200), faulty (a share
of the requests, at random and in equal parts: 500, 503, 429 with Retry-After: 1, a hang past
the integration's 1 s timeout, a connection reset; 200 otherwise) or down (every connection
reset). Answers (not hangs or resets) take --latency seconds, 100 ms by default: a SaaS API across
the internet typically takes 100 ms or more to answer. A webhook
integration sends to it at concurrency N, retrying from 0.5 s, with the breaker's default policy.

  healthy_s         N messages through Hub.notify until the peer had seen every one (healthy)
  first_attempts_s  the same while it is faulty: until every message had its first attempt
  slowdown          first_attempts_s / healthy_s
  floor_s, vs_floor the least time any sender at concurrency N can take while a fifth of the faults
                    hang for the 1 s timeout (each holds one of the N slots): healthy_s + hangs x 1 s / N,
                    and first_attempts_s / floor_s: how much tidings adds to what the faults cost
                    by themselves
  *_instant_peer    the same three against a peer that answers at once (--latency 0). Then healthy_s
                    is the hub's own CPU (2,000 messages in ~0.5 s on 2 cores) while the hangs alone
                    cost 120 x 1 s / 64 = 1.9 s whatever sends them: that slowdown is 4-5 on an idle
                    machine and says nothing about stalling; vs_floor does.
  delivered, dead   every delivery of the runs (and the outage's) once every one is settled
  resume_after_outage_s  the peer goes down for --outage seconds while --outage-messages are
                    queued; how long after its return the first of them arrives

The last line is one JSON object with the figures. Goal: every message delivered, none dead,
slowdown <= 3, resume_after_outage_s <= 5.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _sink import ServedProcess, wait_ready  # noqa: E402

HEALTHY, FAULTY, DOWN = 0, 1, 2
TIMEOUT = 1.0
FAULTS = ("500", "503", "429", "hang", "reset")
"""Drawn in equal parts for a faulty answer."""
HANG = 3 * TIMEOUT
# Shared counters: requests, distinct ids seen, distinct ids answered 200, mode, fault share
# (per mille), generation (bumped to forget the ids seen).
TOTAL, SEEN, OK, MODE, PER_MILLE, GENERATION, LATENCY_MS = range(7)


def _serve(sock: socket.socket, counts: Any) -> None:
    import random

    from aiohttp import web

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    state = {"generation": -1, "seen": set(), "ok": set()}
    faults = FAULTS

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        if state["generation"] != counts[GENERATION]:
            state.update(generation=counts[GENERATION], seen=set(), ok=set())
        counts[TOTAL] += 1
        ident = request.headers.get("Idempotency-Key", "")
        if ident not in state["seen"]:
            state["seen"].add(ident)
            counts[SEEN] += 1
        mode = counts[MODE]
        fault = None
        if mode == DOWN:
            fault = "reset"
        elif mode == FAULTY and random.random() < counts[PER_MILLE] / 1000:
            fault = random.choice(faults)
        if fault == "reset":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        if fault == "hang":
            await asyncio.sleep(HANG)
            return web.Response(status=200)  # the client gave up long ago
        if counts[LATENCY_MS]:
            await asyncio.sleep(counts[LATENCY_MS] / 1000)
        if fault is not None:
            headers = {"Retry-After": "1"} if fault == "429" else {}
            return web.Response(status=int(fault), headers=headers)
        if ident not in state["ok"]:
            state["ok"].add(ident)
            counts[OK] += 1
        return web.Response(status=200)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"total": counts[TOTAL]})

    app = web.Application()
    app.router.add_post("/hook", handle)
    app.router.add_get("/stats", stats)
    web.run_app(app, sock=sock, access_log=None, print=None, handle_signals=True, handler_cancellation=True)


class FaultyPeer(ServedProcess):
    def __init__(self, fault_rate: float, latency: float = 0.0) -> None:
        ctx = self._bind()
        self.sock.listen(1024)
        self.counts = ctx.Array("q", 7, lock=False)
        self.counts[PER_MILLE] = round(fault_rate * 1000)
        self.counts[LATENCY_MS] = round(latency * 1000)
        self.proc = ctx.Process(target=_serve, args=(self.sock, self.counts), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def set(self, mode: int) -> None:
        self.counts[MODE] = mode

    def reset(self) -> None:
        self.counts[TOTAL] = self.counts[SEEN] = self.counts[OK] = 0
        self.counts[GENERATION] += 1

    @property
    def latency(self) -> float:
        return self.counts[LATENCY_MS] / 1000

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.counts[LATENCY_MS] = round(seconds * 1000)

    @property
    def fault_rate(self) -> float:
        return self.counts[PER_MILLE] / 1000

    @property
    def seen(self) -> int:
        return int(self.counts[SEEN])

    @property
    def ok(self) -> int:
        return int(self.counts[OK])


def config(tmp: Path, name: str, url: str, concurrency: int) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(json.dumps({
        "server": {"database": f"sqlite:///{tmp / f'{name}.db'}", "allow_destinations": ["127.0.0.1"]},
        "dispatcher": {"batch": 500, "max_inflight": 4 * concurrency},
        "integrations": {"peer": {
            "kind": "webhook", "url": url, "concurrency": concurrency, "timeout": f"{TIMEOUT}s",
            "retry": {"base": 0.5, "cap": 5, "max_attempts": 50},
        }},
        "default": {"to": ["peer"]},
    }))
    return path


def payload(i: int) -> dict[str, Any]:
    return {"title": f"Disk almost full on web-{i % 50:02d}", "body": "The root volume is above 90%.",
            "priority": "high", "labels": {"source": "bench"}}


async def until(check: Any, timeout: float, what: str, interval: float = 0.005) -> float:
    """Wait until ``check()``; the time it became true (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise SystemExit(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(interval)
    return time.perf_counter()


async def send(hub: Any, first: int, n: int, concurrency: int) -> None:
    from tidings import Message

    it = iter(range(first, first + n))

    async def producer() -> None:
        for i in it:
            await hub.notify(Message(**payload(i)))

    await asyncio.gather(*(producer() for _ in range(concurrency)))


async def run(hub: Any, peer: FaultyPeer, n: int, concurrency: int) -> float:
    """Seconds from the first notify until the peer had seen all ``n`` messages."""
    peer.reset()
    started = time.perf_counter()
    await send(hub, 0, n, concurrency)
    return await until(lambda: peer.seen >= n, 300, "first attempts") - started


async def settled(hub: Any, n: int, timeout: float) -> dict[str, int]:
    """Wait until ``n`` deliveries are delivered or dead; the count of each status."""
    from sqlalchemy import func, select

    from tidings.store.tables import deliveries

    deadline = time.monotonic() + timeout
    while True:
        async with hub.store.read() as conn:
            rows = await conn.execute(select(deliveries.c.status, func.count()).group_by(deliveries.c.status))
            counts = {status: int(c) for status, c in rows}
        if counts.get("delivered", 0) + counts.get("dead", 0) >= n or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.2)


async def compare(peer: FaultyPeer, tmp: Path, n: int, c: int, tag: str) -> tuple[float, float, dict[str, int]]:
    """The healthy run and the faulty one (a hub each): their times, and the faulty run's
    deliveries once every one is settled."""
    from tidings import Hub

    peer.set(HEALTHY)
    async with Hub.from_config(config(tmp, f"healthy-{tag}", peer.url, c)) as hub:
        healthy_s = await run(hub, peer, n, c)
    print(f"peer answering in {tag}, healthy: {n} messages had their first attempt in {healthy_s:.2f} s",
          file=sys.stderr)
    peer.set(FAULTY)
    async with Hub.from_config(config(tmp, f"faulty-{tag}", peer.url, c)) as hub:
        first_s = await run(hub, peer, n, c)
        print(f"peer answering in {tag}, faulty ({peer.fault_rate:.0%} of requests fail): first attempts in"
              f" {first_s:.2f} s ({first_s / healthy_s:.2f}x)", file=sys.stderr)
        counts = await settled(hub, n, 300)
    print(f"peer answering in {tag}, faulty: settled {counts}", file=sys.stderr)
    return healthy_s, first_s, counts


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--fault-rate", type=float, default=0.3)
    ap.add_argument("--outage", type=float, default=60.0, help="seconds the peer is down")
    ap.add_argument("--outage-messages", type=int, default=500)
    ap.add_argument("--latency", type=float, default=0.1,
                    help="seconds the peer takes to answer (not a hang or reset); the runs are repeated at 0")
    args = ap.parse_args()
    from tidings import Hub
    from tidings.logs import configure

    configure(level="WARNING")  # the breaker's transitions show on stderr
    n, c = args.messages, args.concurrency
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        peer = stack.enter_context(FaultyPeer(args.fault_rate, args.latency))
        await wait_ready(peer.url)

        figures = {}
        for latency in dict.fromkeys((args.latency, 0.0)):  # once when --latency 0
            peer.latency = latency
            figures[latency] = await compare(peer, tmp, n, c, f"{latency * 1000:g}ms")
        peer.latency = args.latency
        async with Hub.from_config(config(tmp, "outage", peer.url, c)) as hub:
            peer.set(DOWN)
            down_at = time.perf_counter()
            ok_before = peer.ok
            await send(hub, n, args.outage_messages, c)
            await asyncio.sleep(max(0.0, down_at + args.outage - time.perf_counter()))
            peer.set(HEALTHY)
            back_at = time.perf_counter()
            resumed = await until(lambda: peer.ok > ok_before, 300, "resume after the outage")
            resume_s = resumed - back_at
            counts = await settled(hub, args.outage_messages, 300)
            drained_s = time.perf_counter() - back_at
            print(f"outage of {args.outage:g} s with {args.outage_messages} queued: the first arrived"
                  f" {resume_s:.2f} s after the peer's return, all settled after {drained_s:.1f} s", file=sys.stderr)
    healthy_s, first_s, _ = figures[args.latency]
    instant_healthy_s, instant_first_s, _ = figures[0.0]
    hangs_s = n * args.fault_rate / len(FAULTS) * TIMEOUT / c

    def total(status: str) -> int:
        return sum(x.get(status, 0) for x in [*(counted for _, _, counted in figures.values()), counts])

    print(json.dumps({
        "messages": len(figures) * n + args.outage_messages,
        "delivered": total("delivered"),
        "dead": total("dead"),
        "latency_s": args.latency,
        "healthy_s": round(healthy_s, 3),
        "first_attempts_s": round(first_s, 3),
        "slowdown": round(first_s / healthy_s, 3),
        "floor_s": round(healthy_s + hangs_s, 3),
        "vs_floor": round(first_s / (healthy_s + hangs_s), 3),
        "healthy_s_instant_peer": round(instant_healthy_s, 3),
        "first_attempts_s_instant_peer": round(instant_first_s, 3),
        "slowdown_instant_peer": round(instant_first_s / instant_healthy_s, 3),
        "vs_floor_instant_peer": round(instant_first_s / (instant_healthy_s + hangs_s), 3),
        "resume_after_outage_s": round(resume_s, 3),
        "backlog_settled_s": round(drained_s, 2),
        "cpus": mp.cpu_count(),
    }))


if __name__ == "__main__":
    asyncio.run(main())
