"""The splunk channel of bench/throughput.py: the HEC stand-in of tests/peers/splunk_hec.py in its
own process (so its parsing does not land on the measured side), counting the distinct events it
indexed by the marker in their titles; and the baseline, bare aiohttp posting the same batches
(the same event objects, concatenated, ``batch_max_events`` a request) to it."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from _durable import Journal
from _peers import MARKER
from _sink import ServedProcess

TOKEN = "00000000-1111-2222-3333-444444444444"
BATCH = 100
CONCURRENCY = 4
"""The splunk kind's default concurrency: both sides post this many requests at once."""
INFLIGHT = 4 * CONCURRENCY * BATCH
"""The hub's dispatcher.max_inflight: room for every request to carry a full batch."""


def _serve(sock: socket.socket, counts: Any) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from peers.splunk_hec import SplunkHec

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    seen: set[bytes] = set()
    generation = [-1]

    class Counting(SplunkHec):
        def _parse(self, body: str, refuse_at: int | None) -> Any:
            events, error = super()._parse(body, refuse_at)
            if generation[0] != counts[2]:
                generation[0] = counts[2]
                seen.clear()
            self.indexed.clear()  # count, don't keep: memory stays flat over the rounds
            for e in events:
                counts[0] += 1
                found = MARKER.search(str(e["event"].get("title", "")).encode())
                if found and found.group(1) not in seen:
                    seen.add(found.group(1))
                    counts[1] += 1
            return events, error

    async def run() -> None:
        hec = Counting(tokens={TOKEN}, indexes=None)
        await hec.start(sock)
        await asyncio.Event().wait()

    asyncio.run(run())


class SplunkPeerProcess(ServedProcess):
    def __init__(self) -> None:
        ctx = self._bind()
        self.sock.listen(1024)
        self.counts = ctx.Array("q", 3, lock=False)
        self.proc = ctx.Process(target=_serve, args=(self.sock, self.counts), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.counts[0] = self.counts[1] = 0
        self.counts[2] += 1

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the splunk peer did not start")


def integration(peer: SplunkPeerProcess) -> dict[str, Any]:
    return {"kind": "splunk", "url": peer.url, "token": TOKEN, "index": "main", "batch_max_events": BATCH,
            "concurrency": CONCURRENCY}


def _event(i: int, p: dict[str, Any]) -> dict[str, Any]:
    """An event shaped like the one tidings sends (docs/splunk.md)."""
    return {
        "time": round(time.time(), 3), "source": "tidings", "sourcetype": "tidings:message", "index": "main",
        "event": {"title": p["title"], "body": p["body"], "format": "plain", "priority": p["priority"],
                  "severity": p["priority"], "labels": p["labels"], "fields": p["fields"], "links": [],
                  "thread_key": None, "dedup_key": None, "resolves": None, "project": "default",
                  "source": p["labels"]["source"], "id": f"m{i}", "delivery_id": f"d{i}"},
        "fields": {"priority": p["priority"], "severity": p["priority"], "project": "default"},
    }


async def baseline(peer: SplunkPeerProcess, payloads: list[dict[str, Any]], journal: Journal | None = None,
                   ) -> tuple[float, float]:
    """Bare aiohttp posting the events, ``BATCH`` a request, ``CONCURRENCY`` requests at once:
    events per second, and this process's CPU seconds while it posted. With a ``journal``, each
    request's events are committed to it before the request and marked sent after the answer."""
    events = [orjson.dumps(_event(i, p)) for i, p in enumerate(payloads)]
    bodies = [b"".join(events[k:k + BATCH]) for k in range(0, len(events), BATCH)]
    headers = {"Authorization": f"Splunk {TOKEN}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        it = iter(range(0, len(events), BATCH))

        async def worker() -> None:
            for k in it:
                batch = events[k:k + BATCH]
                if journal is not None:
                    await journal.keep(k, batch)
                async with session.post(peer.url + "/services/collector/event", data=bodies[k // BATCH]) as r:
                    await r.read()
                    assert r.status == 200, r.status
                if journal is not None:
                    await journal.sent(k, len(batch))

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return len(events) / (time.perf_counter() - started), time.process_time() - cpu
