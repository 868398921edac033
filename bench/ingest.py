"""Inbound throughput: signed GitHub deliveries at a running `tidings serve`, against a bare ASGI
app served the same way, in one run.

    python bench/ingest.py [--requests 5000] [--concurrency 32] [--rounds 3] [--no-process] [--profile out.txt]

Both servers are uvicorn subprocesses with the same settings. The bare app reads the body and
answers 200 (the ceiling of the server stack); tidings verifies the signature over the raw
body, stores the event (group commit on SQLite, FULL sync) and answers, while its event processor
turns the stored events into messages in the background. Only requests that tidings answered 200
and that its database holds count. The last line is one JSON object:
{"ingest_per_s", "bare_asgi_per_s", "ratio", "p99_ms"} (plus p50_ms, bare_p99_ms, processing).
--no-process serves with --no-dispatch (ingest alone); --profile runs tidings under py-spy.
Errors tidings logged are printed after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from _sink import free_port, pct, wait_ok  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FIXTURE = ROOT / "tests" / "fixtures" / "github" / "issues__opened.json"
SECRET = "bench-github-secret"

def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else [pid]


def payload() -> bytes:
    if FIXTURE.exists():
        return FIXTURE.read_bytes()
    return json.dumps({"action": "opened", "issue": {"number": 1, "title": "bench"}, "repository": {"full_name": "o/r"}}).encode()


async def drive(url: str, body: bytes, n: int, concurrency: int, github: bool) -> tuple[float, list[float], int]:
    """POST ``n`` deliveries with ``concurrency`` senders; requests/s, latencies, 200s."""
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    latencies: list[float] = []
    ok = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        it = iter(range(n))

        async def sender() -> None:
            nonlocal ok
            for _ in it:
                headers = {"Content-Type": "application/json"}
                if github:
                    headers |= {
                        "X-GitHub-Event": "issues",
                        "X-GitHub-Delivery": str(uuid.uuid4()),
                        "X-Hub-Signature-256": signature,
                        "User-Agent": "GitHub-Hookshot/bench",
                    }
                t = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    ok += r.status == 200
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return n / elapsed, latencies, ok


def p99(values: list[float]) -> float:
    return pct(values, 0.99)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=5_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-process", action="store_true",
                    help="serve with --no-dispatch: events are stored but not processed (ingest alone, for diagnosis)")
    ap.add_argument("--profile", metavar="SVG", help="run tidings under py-spy record; a flame graph (.svg) or collapsed stacks (other names)")
    args = ap.parse_args()
    body = payload()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        config = tmpdir / "tidings.yaml"
        db = tmpdir / "tidings.db"
        config.write_text(
            json.dumps(
                {
                    "server": {"database": f"sqlite:///{db}"},
                    "integrations": {"gh": {"kind": "github", "secret": SECRET}},
                }
            )
        )
        tidings_port, bare_port = free_port(), free_port()
        env = {**os.environ, "TIDINGS_CONFIG": str(config), "TIDINGS_KEY_FILE": str(tmpdir / "key"),
               "TIDINGS_PORT": str(tidings_port), "TIDINGS_LOG_LEVEL": "WARNING"}
        server_log = (tmpdir / "tidings.log").open("w")
        tidings_cmd = [str(bin_dir / "tidings"), "serve", *(["--no-dispatch"] if args.no_process else [])]
        if args.profile:
            tidings_cmd = [str(bin_dir / "py-spy"), "record", "--rate", "200", "--subprocesses",
                           "--format", "flamegraph" if args.profile.endswith(".svg") else "raw",
                           "-o", str(Path(args.profile).resolve()), "--", *tidings_cmd]
        servers = [
            subprocess.Popen(tidings_cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=server_log),
            subprocess.Popen([str(bin_dir / "uvicorn"), "_bare:bare", "--app-dir", str(BENCH), "--port", str(bare_port), "--log-level",
                              "warning", "--no-access-log"], cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        ]
        try:
            await wait_ok(f"http://127.0.0.1:{tidings_port}/readyz")
            await wait_ok(f"http://127.0.0.1:{bare_port}/")
            hook = f"http://127.0.0.1:{tidings_port}/hooks/gh"
            bare = f"http://127.0.0.1:{bare_port}/"
            await drive(bare, body, 500, args.concurrency, github=False)  # warm up
            await drive(hook, body, 500, args.concurrency, github=True)
            ingests, bares, p99s, bare_p99s, p50s = [], [], [], [], []
            total_ok = 500
            for r in range(args.rounds):
                bare_rate, bare_latencies, _ = await drive(bare, body, args.requests, args.concurrency, github=False)
                rate, latencies, ok = await drive(hook, body, args.requests, args.concurrency, github=True)
                if ok != args.requests:
                    raise SystemExit(f"tidings answered 200 to {ok} of {args.requests} deliveries")
                total_ok += ok
                bares.append(bare_rate)
                ingests.append(rate)
                p99s.append(p99(latencies))
                p50s.append(pct(latencies, 0.5))
                bare_p99s.append(p99(bare_latencies))
                print(f"round {r + 1}: bare ASGI {bare_rate:,.0f}/s (p99 {bare_p99s[-1]:.1f} ms);"
                      f" tidings ingest {rate:,.0f}/s (p50 {p50s[-1]:.1f} ms, p90 {pct(latencies, 0.9):.1f} ms,"
                      f" p99 {p99s[-1]:.1f} ms, max {pct(latencies, 1.0):.1f} ms)", file=sys.stderr)
        finally:
            for proc in servers:
                # py-spy writes its profile once the process it runs has exited: stop that one.
                for pid in _children(proc.pid) if args.profile and proc is servers[0] else [proc.pid]:
                    os.kill(pid, signal.SIGTERM)
            for proc in servers:
                proc.wait(60)
        server_log.close()
        log_text = (tmpdir / "tidings.log").read_text(errors="replace")
        lines = log_text.splitlines()
        errors = [i for i, line in enumerate(lines) if '"level": "error"' in line or line.startswith("Traceback")]
        if errors:
            first = "\n".join(lines[max(0, errors[0] - 1):errors[0] + 30])
            print(f"tidings logged {len(errors)} errors; the first:\n{first}", file=sys.stderr)
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM events WHERE integration = 'gh'").fetchone()[0]
        if stored != total_ok:
            raise SystemExit(f"the database holds {stored} events for {total_ok} deliveries answered 200")
    ingest, bare_rate = median(ingests), median(bares)
    print(json.dumps({
        "requests": args.requests,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "ingest_per_s": round(ingest, 1),
        "bare_asgi_per_s": round(bare_rate, 1),
        "ratio": round(ingest / bare_rate, 3),
        "p99_ms": round(median(p99s), 2),
        "p50_ms": round(median(p50s), 2),
        "bare_p99_ms": round(median(bare_p99s), 2),
        "processing": not args.no_process,
    }))


if __name__ == "__main__":
    asyncio.run(main())
