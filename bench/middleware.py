"""Cost of AlertingMiddleware: a small ASGI app served by uvicorn with and without it, in one run.

    python bench/middleware.py [--requests 10000] [--concurrency 32] [--rounds 9] [--error-every 20]

Two uvicorn subprocesses with the same settings serve the same small app on 127.0.0.1: one bare,
one wrapped in ``AlertingMiddleware`` (default thresholds, an ``AlertDispatcher`` with no channel
configured, so an alert costs its accounting and nothing else). One aiohttp client with
``--concurrency`` connections drives them in interleaved rounds; every ``--error-every``-th
request goes to a path the app answers 401, so the counting path runs too (and alerts once per
cooldown). Only answers with the expected status count.

Besides requests/s it reads each server's CPU time (/proc) per request, which a busy machine
disturbs far less than wall-clock rates. ``ratio`` is the median of the per-round ratios (both
sides are measured back to back in each round, in alternating order); ``cpu_ratio`` is server
CPU per request without / with; ``added_us_per_request`` is what the middleware adds to one
request, timed in process straight through ASGI (no server, no network). The last line is one JSON object:
{"with_per_s", "without_per_s", "ratio", "cpu_ratio", ...}; the goal is ratio >= 0.95.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from _sink import cpu_seconds, free_port, wait_ok  # noqa: E402


async def overhead_us(repeats: int = 15, calls: int = 20_000) -> tuple[float, float]:
    """The app alone and wrapped, called straight through ASGI in this process (no server, no
    network): the best µs per request of each over ``repeats`` runs. What the middleware adds to
    a 200 response, free of the noise a shared machine puts in wall-clock rates."""
    from tidings.compat import AlertDispatcher, AlertingMiddleware

    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    body = {"type": "http.response.body", "body": b'{"ok": true}'}
    request = {"type": "http.request", "body": b"", "more_body": False}
    scope = {"type": "http", "path": "/", "method": "GET", "client": ("127.0.0.1", 50000), "headers": []}

    async def app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        await send(start)
        await send(body)

    async def receive() -> dict[str, object]:
        return request

    async def send(message: dict[str, object]) -> None:
        pass

    wrapped = AlertingMiddleware(app, dispatcher=AlertDispatcher(env={}))
    best = {"bare": float("inf"), "wrapped": float("inf")}
    for _ in range(repeats):
        for name, target in (("bare", app), ("wrapped", wrapped)):
            started = time.perf_counter()
            for _ in range(calls):
                await target(scope, receive, send)
            best[name] = min(best[name], (time.perf_counter() - started) / calls * 1e6)
    return best["bare"], best["wrapped"]


async def drive(base: str, n: int, concurrency: int, error_every: int) -> tuple[float, int]:
    """``n`` GETs with ``concurrency`` connections; requests/s and how many got the expected status."""
    ok = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        it = iter(range(n))

        async def client() -> None:
            nonlocal ok
            for i in it:
                private = error_every > 0 and i % error_every == 0
                async with session.get(base + ("/private" if private else "/")) as r:
                    await r.read()
                    ok += r.status == (401 if private else 200)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return n / elapsed, ok


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds; medians are reported")
    ap.add_argument("--aa", action="store_true",
                    help="A/A check: serve the bare app on both sides (the ratio shows the bench's own bias)")
    ap.add_argument("--error-every", type=int, default=20, help="every n-th request is answered 401 (0: none)")
    args = ap.parse_args()
    uvicorn = str(Path(sys.executable).parent / "uvicorn")
    ports = {"without": free_port(), "with": free_port()}
    servers = [
        subprocess.Popen([uvicorn, *(["--factory", "_bare:with_alerting"] if name == "with" and not args.aa else ["_bare:bare"]),
                          "--app-dir", str(Path(__file__).resolve().parent), "--host", "127.0.0.1",
                          "--port", str(port), "--log-level", "warning", "--no-access-log"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, port in ports.items()
    ]
    pids = {name: proc.pid for name, proc in zip(ports, servers, strict=True)}
    rates: dict[str, list[float]] = {"without": [], "with": []}
    cpu: dict[str, list[float]] = {"without": [], "with": []}  # server CPU µs per request
    ratios: list[float] = []
    try:
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for url in urls.values():
            await wait_ok(url + "/")
        for url in urls.values():  # warm up both
            await drive(url, 1_000, args.concurrency, args.error_every)
        for r in range(args.rounds):
            # This machine's speed drifts: alternate which side goes first, report medians.
            order = ["without", "with"] if r % 2 == 0 else ["with", "without"]
            for name in order:
                before = cpu_seconds(pids[name])
                rate, ok = await drive(urls[name], args.requests, args.concurrency, args.error_every)
                cpu[name].append((cpu_seconds(pids[name]) - before) / args.requests * 1e6)
                if ok != args.requests:
                    raise SystemExit(f"{name}: {ok} of {args.requests} requests got the expected status")
                rates[name].append(rate)
            ratios.append(rates["with"][-1] / rates["without"][-1])
            print(f"round {r + 1}: without {rates['without'][-1]:,.0f}/s ({cpu['without'][-1]:.0f} µs CPU/request);"
                  f" with AlertingMiddleware {rates['with'][-1]:,.0f}/s ({cpu['with'][-1]:.0f} µs);"
                  f" ratio {ratios[-1]:.3f}", file=sys.stderr)
    finally:
        for proc in servers:
            proc.send_signal(signal.SIGTERM)
        for proc in servers:
            proc.wait(30)
    without, with_ = median(rates["without"]), median(rates["with"])
    cpu_without, cpu_with = median(cpu["without"]), median(cpu["with"])
    # Each round measures both sides back to back: the median of those paired ratios is steadier
    # than a ratio of medians when the machine is shared.
    ratio = median(ratios)
    bare_us, wrapped_us = await overhead_us()
    added_us = max(0.0, wrapped_us - bare_us)
    rows = [("without (bare ASGI app)", without, cpu_without), ("with AlertingMiddleware", with_, cpu_with)]
    print(f"\n{'uvicorn, concurrency ' + str(args.concurrency):<28} {'requests/s':>12} {'server CPU µs/req':>18}")
    for label, rate, us in rows:
        print(f"{label:<28} {rate:>12,.0f} {us:>18.1f}")
    cpu_ratio = cpu_without / cpu_with if cpu_with else float("nan")
    print(f"{'ratio (with / without)':<28} {ratio:>12.3f} {cpu_ratio:>18.3f}")
    print(f"in process, without a server: {bare_us:.2f} µs per request bare, {wrapped_us:.2f} µs wrapped:"
          f" the middleware adds {added_us:.2f} µs ({added_us / cpu_without * 100 if cpu_without else 0:.1f}% of the"
          f" server's {cpu_without:.0f} µs per request)\n")
    print(json.dumps({
        "requests": args.requests,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "error_every": args.error_every,
        "with_per_s": round(with_, 1),
        "without_per_s": round(without, 1),
        "ratio": round(ratio, 3),
        "server_cpu_us_per_request_with": round(cpu_with, 1),
        "server_cpu_us_per_request_without": round(cpu_without, 1),
        "cpu_ratio": round(cpu_ratio, 3),
        "added_us_per_request": round(added_us, 2),
    }))


if __name__ == "__main__":
    asyncio.run(main())
