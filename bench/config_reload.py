"""Live configuration changes under load: throughput while a revision is applied every second,
against the same load without changes in the same run, and how long each revision takes to reach
every process.

    python bench/config_reload.py [--messages 3000] [--rounds 3] [--interval 1.0] [--load-every 4]
                                  [--workers 1] [--database auto|sqlite|postgresql://…@127.0.0.1/…]

The load is bench/throughput.py's: its messages through ``Hub.notify`` from 64 producers, to its
sink process, counting only deliveries the sink received and the database marks delivered. The
hub runs in this process (dispatching) beside ``--workers`` ``tidings worker`` processes, all on
one fresh database: a new schema of the local PostgreSQL (``auto``: when it answers), else SQLite.

Each round runs the load four times, A B B A: without changes (A), then (B) while a revision is
committed every ``--interval`` seconds, cycling through: a setting of an integration nothing
sends to, an integration added or removed (not routed), a route the load's messages don't match;
every ``--load-every``-th revision changes the load's own webhook integration instead (its
``description`` and ``timeout``), so each process rebuilds it while it sends.

Reported: ``throughput_ratio`` = median rate with changes / median rate without; ``switch_*``: per
revision, the time from its commit (``config_revisions.created_at``) until the last process
runs it (``config_processes.applied_at``, the same machine's clock). Goals: ratio ≥ 0.9, p99
≤ 2 s. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from sqlalchemy import func, select

import tidings
from tidings.store.engine import Store

sys.path.insert(0, str(Path(__file__).parent))
from _sink import SinkProcess, cpu_seconds, fresh_databases, pct, wait_ready  # noqa: E402
from throughput import LOCAL, opened, payload, produce, wait_delivered, wait_received  # noqa: E402

SRC = Path(tidings.__file__).resolve().parent.parent
"""The workers run the tidings this process imported."""
PG_DEFAULT = os.environ.get("TIDINGS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_answers(url: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=2):
            return True
    except Exception:
        return False


def first_document(url: str, concurrency: int) -> dict[str, Any]:
    """The load's integration (``sink``, the default route), two the load never uses and a route
    its messages (labels ``service: api``) don't match."""
    return {
        "integrations": {
            "sink": {"kind": "webhook", "url": url, "concurrency": concurrency, "description": "the load"},
            "spare1": {"kind": "webhook", "url": url, "description": "unused"},
            "spare2": {"kind": "webhook", "url": url, "description": "unused"},
        },
        "routes": [{"name": "other", "match": {"labels": {"service": "other"}}, "to": ["spare1"]}],
        "default": {"to": ["sink"]},
    }


def changed(doc: dict[str, Any], k: int, load_every: int, url: str) -> tuple[dict[str, Any], str]:
    """Revision ``k``'s document made from ``doc``, and what it changes."""
    new = copy.deepcopy(doc)
    integrations = new["integrations"]
    if load_every and k % load_every == load_every - 1:
        integrations["sink"]["description"] = f"the load, revision step {k}"
        integrations["sink"]["timeout"] = "10s" if integrations["sink"].get("timeout") != "10s" else "15s"
        return new, "the load's integration"
    op = k % 3
    if op == 0:
        integrations["spare1"]["description"] = f"unused, step {k}"
        integrations["spare1"]["timeout"] = "5s" if integrations["spare1"].get("timeout") != "5s" else "6s"
        return new, "an unused integration's setting"
    if op == 1:
        if "extra" in integrations:
            del integrations["extra"]
            return new, "an unused integration removed"
        integrations["extra"] = {"kind": "webhook", "url": url, "description": f"added at step {k}"}
        return new, "an unused integration added"
    route = new["routes"][0]
    route["to"] = ["spare2"] if route["to"] == ["spare1"] else ["spare1"]
    return new, "a route the load doesn't match"


def write_config(path: Path, database: str, doc: dict[str, Any], concurrency: int) -> None:
    path.write_text(json.dumps({
        "server": {"database": database, "allow_destinations": LOCAL},
        "dispatcher": {"batch": 500, "max_inflight": 4 * concurrency},  # as bench/throughput.py
        **doc,
    }))


@contextlib.contextmanager
def workers(n: int, config: Path, tmp: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(TIDINGS_KEY_FILE=str(tmp / "tidings.key"), TIDINGS_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]))
    tidings = str(Path(sys.executable).parent / "tidings")
    procs = [subprocess.Popen([tidings, "worker", "--config", str(config)], env=env, cwd=tmp, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=open(tmp / f"worker{i}.err", "wb"))  # noqa: SIM115
             for i in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for i, p in enumerate(procs):
            try:
                code = p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                code = p.wait(5)
            if code != 0:
                print(f"worker {i} exited {code}:\n{(tmp / f'worker{i}.err').read_text()[-3000:]}", file=sys.stderr)


class Revisions:
    """Commits the revisions (from its own store, as an API server would) and measures how long
    each takes to reach every process."""

    def __init__(self, store: Store, hub: Any, doc: dict[str, Any], url: str, load_every: int, processes: int) -> None:
        self.store = store
        self.hub = hub
        self.doc = doc
        self.url = url
        self.load_every = load_every
        self.processes = processes
        self.k = 0
        self.switch_s: list[float] = []
        self.what: list[str] = []
        self._observers: set[asyncio.Task[None]] = set()
        self.current = hub.revision

    async def commit(self) -> None:
        from tidings.config import revisions
        from tidings.config.document import to_config

        doc, what = changed(self.doc, self.k, self.load_every, self.url)
        async with self.store.write() as conn:
            revision, made = await revisions.commit(conn, doc, source="api", comment=f"bench step {self.k}",
                                                    validate=lambda d: to_config(d, self.hub.file_config))
        assert made
        self.doc, self.current = doc, revision.number
        self.k += 1
        self.what.append(what)
        task = asyncio.create_task(self._observe(revision.number, revision.created_at))
        self._observers.add(task)
        task.add_done_callback(self._observers.discard)

    async def _observe(self, number: int, created_at: float, timeout: float = 30.0) -> None:
        """Until every process runs ``number`` (or a later revision): the latest ``applied_at``
        among them, from the commit. A process that skipped ``number`` counts from when it ran
        the later one (an upper bound)."""
        from tidings.store.tables import config_processes

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with self.store.read() as conn:
                rows = (await conn.execute(select(config_processes.c.revision, config_processes.c.applied_at))).all()
            if len(rows) >= self.processes and all(r.revision >= number for r in rows):
                self.switch_s.append(max(r.applied_at for r in rows) - created_at)
                return
            await asyncio.sleep(0.05)
        self.switch_s.append(float("inf"))

    async def every(self, interval: float) -> None:
        next_at = time.monotonic() + interval / 2
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            await self.commit()

    async def settled(self) -> None:
        """Until the revisions committed so far reached every process."""
        if self._observers:
            await asyncio.gather(*list(self._observers))


async def registered(store: Store, n: int, timeout: float = 30.0) -> None:
    """Until ``n`` processes run the current revision (``config_processes``)."""
    from tidings.config import revisions
    from tidings.store.tables import config_processes

    deadline = time.monotonic() + timeout
    while True:
        async with store.read() as conn:
            current = await revisions.current_number(conn)
            rows = (await conn.execute(select(config_processes.c.revision))).all()
        if len(rows) >= n and all(r.revision == current for r in rows):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(rows)} of {n} processes registered in config_processes within {timeout}s: {rows}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def database(choice: str, tmp: Path) -> AsyncIterator[tuple[str, str]]:
    url: str | None
    if choice == "auto":
        url = PG_DEFAULT if pg_answers(PG_DEFAULT) else None
    elif choice == "sqlite":
        url = None
    else:
        url = choice
    async with fresh_databases(url, tmp, ["reload"]) as (db,):
        yield db, "postgresql" if url else "sqlite"


@dataclass
class Run:
    kind: str
    rate: float
    cpu_us: float
    """CPU of this process (the hub, the producers) and the workers per message, in µs."""


async def load(hub: Any, store: Store, sink: SinkProcess, procs: list[subprocess.Popen[bytes]], first: int, n: int,
               concurrency: int) -> tuple[float, float]:
    """bench/throughput.py's load: ``n`` messages through ``hub.notify`` until the sink holds them
    all and the database marks them delivered; (messages/s, CPU µs per message)."""
    from tidings import Message

    for p in procs:
        if p.poll() is not None:
            raise SystemExit(f"a worker exited {p.returncode}")
    sink.reset()
    messages = [Message(**payload(first + i)) for i in range(n)]
    pids = [os.getpid(), *(p.pid for p in procs)]
    cpu = sum(cpu_seconds(pid) for pid in pids)
    started = time.perf_counter()
    await produce(hub, messages, concurrency)
    await wait_received(sink, n)
    await wait_delivered(store, first + n)
    elapsed = time.perf_counter() - started
    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu
    if sink.total != sink.distinct:
        raise SystemExit(f"{sink.total - sink.distinct} deliveries arrived twice")
    return n / elapsed, cpu / n * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=3_000, help="per run of the load")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of A B B A; the median of their ratios is reported")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between revisions")
    ap.add_argument("--load-every", type=int, default=4,
                    help="every Nth revision changes the load's own integration (0: never)")
    ap.add_argument("--workers", type=int, default=1, help="`tidings worker` processes beside this one's hub")
    ap.add_argument("--database", default="auto", help="auto (PostgreSQL when it answers), sqlite, or a PostgreSQL URL")
    args = ap.parse_args()
    if args.rounds < 1 or args.messages < 1 or args.interval <= 0 or args.load_every < 0 or args.workers < 0:
        ap.error("--rounds, --messages and --interval must be positive; --load-every and --workers at least 0")
    os.environ.setdefault("TIDINGS_LOG_LEVEL", "WARNING")
    from tidings import Hub
    from tidings.logs import configure
    from tidings.store.tables import deliveries

    configure(level="WARNING")
    n, c = args.messages, args.concurrency
    runs: list[list[Run]] = []
    with tempfile.TemporaryDirectory() as tmpdir, SinkProcess() as sink:
        tmp = Path(tmpdir)
        await wait_ready(sink.url)
        async with database(args.database, tmp) as (db, dialect):
            config = tmp / "tidings.yaml"
            write_config(config, db, first_document(sink.url, c), c)
            hub = Hub.from_config(config)
            async with hub, opened(db) as store:  # the hub migrates and imports the file first
                with workers(args.workers, config, tmp) as procs:
                    await registered(store, 1 + len(procs))
                    changes = Revisions(store, hub, first_document(sink.url, c), sink.url, args.load_every,
                                        1 + len(procs))
                    await load(hub, store, sink, procs, 0, min(n, 2_000), c)  # warm up: connections, caches
                    sent = min(n, 2_000)
                    for r in range(args.rounds):
                        runs.append([])
                        for kind in ("baseline", "reload", "reload", "baseline"):
                            changer = asyncio.create_task(changes.every(args.interval)) if kind == "reload" else None
                            before = len(changes.switch_s)
                            rate, cpu_us = await load(hub, store, sink, procs, sent, n, c)
                            sent += n
                            if changer is not None:
                                changer.cancel()
                                with contextlib.suppress(asyncio.CancelledError):
                                    await changer
                            await changes.settled()
                            runs[-1].append(Run(kind, rate, cpu_us))
                            made = changes.switch_s[before:]
                            print(f"round {r + 1} {kind:<8} {rate:8,.0f}/s {cpu_us:6.0f} µs CPU/message"
                                  + (f"  {len(made)} revisions, slowest switch {max(made, default=0):.3f}s"
                                     if kind == "reload" else ""), file=sys.stderr)
                    async with store.read() as conn:
                        statuses = dict((await conn.execute(select(deliveries.c.status, func.count())
                                                            .group_by(deliveries.c.status))).all())
                    if statuses != {"delivered": sent}:
                        raise SystemExit(f"deliveries by status: {statuses} (expected {sent} delivered)")

    def side(round_: list[Run], kind: str, attr: str) -> float:
        return sum(getattr(x, attr) for x in round_ if x.kind == kind) / 2

    ratios = [side(x, "reload", "rate") / side(x, "baseline", "rate") for x in runs]
    cpu_ratios = [side(x, "baseline", "cpu_us") / side(x, "reload", "cpu_us") for x in runs]
    baseline = median(x.rate for round_ in runs for x in round_ if x.kind == "baseline")
    reload = median(x.rate for round_ in runs for x in round_ if x.kind == "reload")
    ratio, cpu_ratio = median(ratios), median(cpu_ratios)
    switch = changes.switch_s
    p50, p99 = pct(switch, 0.5) / 1000, pct(switch, 0.99) / 1000
    load_changes = sum(1 for w in changes.what if w == "the load's integration")
    print(f"\n{dialect}, this process's hub + {args.workers} `tidings worker`, concurrency {c}, {n:,} messages per run,"
          f" {args.rounds} rounds (A B B A)", file=sys.stderr)
    print(f"without changes (baseline, same run) {baseline:8,.0f} messages/s", file=sys.stderr)
    print(f"a revision every {args.interval:g}s          {reload:8,.0f} messages/s   ratio {ratio:.3f} (goal ≥ 0.9);"
          f" CPU per message ratio {cpu_ratio:.3f}", file=sys.stderr)
    print(f"{len(switch)} revisions ({load_changes} rebuilt the load's integration): commit → every process"
          f" p50 {p50:.3f}s, p99 {p99:.3f}s, max {max(switch):.3f}s (goal p99 ≤ 2 s)", file=sys.stderr)
    print(json.dumps({
        "throughput_ratio": round(ratio, 3),
        "switch_p99_s": round(p99, 3),
        "switch_max_s": round(max(switch), 3),
        "revisions": len(switch),
        "messages": sent,
        "baseline_msgs_per_s": round(baseline, 1),
        "reload_msgs_per_s": round(reload, 1),
        "database": dialect,
        "switch_p50_s": round(p50, 3),
        "processes": 1 + args.workers,
        "load_integration_rebuilds": load_changes,
        "ratio_by_round": [round(x, 3) for x in ratios],
        "cpu_ratio": round(cpu_ratio, 3),
        "cpu_ratio_by_round": [round(x, 3) for x in cpu_ratios],
    }))


if __name__ == "__main__":
    asyncio.run(main())
