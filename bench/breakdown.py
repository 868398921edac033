"""Where a message's CPU goes: tidings' webhook path taken apart, each part beside the bare client.

    python bench/breakdown.py [--messages 20000] [--rounds 3]

Per message, CPU time of this process (both its threads), medians of interleaved rounds:
  ceiling   bare aiohttp posting prebuilt bodies to the sink (what throughput.py calls the ceiling);
  send      tidings' webhook integration alone: prebuilt payloads, WebhookIntegration.send;
  pipeline  Hub.notify -> outbox -> dispatcher -> a notifier that answers at once (no HTTP);
  full      Hub.notify -> ... -> webhook -> sink, as throughput.py measures it.
``full`` minus ``send + pipeline`` is what the parts cost only together (working set, caches).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any, Literal

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _sink import SinkProcess, wait_ready  # noqa: E402
from throughput import LOCAL, _config, opened, payload, sink_reset, wait_delivered, wait_done  # noqa: E402

from tidings.integrations import registry  # noqa: E402
from tidings.integrations.base import NO_OPTIONS, Attempt, IntegrationSettings, Notifier, Outcome  # noqa: E402

registry.KINDS["noop"] = "breakdown:NoopNotifier"  # before any configuration is read


class NoopSettings(IntegrationSettings):
    kind: Literal["noop"]


class NoopNotifier(Notifier):
    """Answers at once, after one turn of the loop (as a send would give the loop back)."""

    kind = "noop"
    Settings = NoopSettings
    concurrency = 64

    def render(self, message: Any, options: Any = NO_OPTIONS) -> Any:
        return message.to_dict()

    async def send(self, payload: Any, attempt: Attempt) -> Outcome:
        await asyncio.sleep(0)
        return Outcome.delivered("noop")


async def _timed(run: Any, n: int) -> float:
    started = time.process_time()
    await run()
    return (time.process_time() - started) / n * 1e6


async def ceiling(url: str, n: int, c: int) -> float:
    bodies = [orjson.dumps({"id": str(uuid.uuid4()), "type": "message", "data": payload(i)}) for i in range(n)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:
        it = iter(bodies)

        async def worker() -> None:
            for body in it:
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                    await r.read()

        return await _timed(lambda: asyncio.gather(*(worker() for _ in range(c))), n)


async def send(url: str, n: int, c: int) -> float:
    from tidings import Message
    from tidings.config import parse_config
    from tidings.ids import new_id
    from tidings.integrations.base import Context
    from tidings.integrations.webhook import WebhookIntegration
    from tidings.security.outbound import Destinations

    settings = parse_config({"integrations": {"sink": {"kind": "webhook", "url": url, "concurrency": c}}}).integrations["sink"]
    context = Context(store=None, threads=None, destinations=Destinations.parse(LOCAL))  # type: ignore[arg-type]
    hook = WebhookIntegration("sink", settings, context)
    items = []
    for i in range(n):
        m = Message(**payload(i))
        items.append((hook.render(m), Attempt(new_id(), new_id(), 1, time.time(), m)))
    it = iter(items)

    async def worker() -> None:
        for p, a in it:
            await hook.send(p, a)

    try:
        return await _timed(lambda: asyncio.gather(*(worker() for _ in range(c))), n)
    finally:
        await hook.close()


async def hub(sink: SinkProcess, n: int, c: int, tmp: Path, noop: bool) -> float:
    from tidings import Hub, Message

    db = f"sqlite:///{tmp / 'hub.db'}"
    config = _config(tmp, sink.url, c, db)
    if noop:
        data = json.loads(config.read_text())
        data["integrations"] = {"sink": {"kind": "noop", "concurrency": c}}
        config.write_text(json.dumps(data))
    messages = [Message(**payload(i)) for i in range(n)]
    await sink_reset(sink.url)
    async with Hub.from_config(config) as h, opened(db) as store:
        it = iter(messages)

        async def producer() -> None:
            for m in it:
                await h.notify(m)

        async def run() -> None:
            await asyncio.gather(*(producer() for _ in range(c)))
            await (wait_delivered(store, n) if noop else wait_done(sink, store, n))

        return await _timed(run, n)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from tidings.logs import configure

    configure(level="WARNING")
    n, c = args.messages, args.concurrency
    parts: dict[str, list[float]] = {"ceiling": [], "send": [], "pipeline": [], "full": []}
    with SinkProcess() as sink, tempfile.TemporaryDirectory() as tmp:
        await wait_ready(sink.url)
        await ceiling(sink.url, min(n, 2_000), c)
        for r in range(args.rounds):
            round_dir = Path(tmp) / f"round{r}"
            round_dir.mkdir()
            (round_dir / "noop").mkdir()
            parts["ceiling"].append(await ceiling(sink.url, n, c))
            parts["send"].append(await send(sink.url, n, c))
            parts["pipeline"].append(await hub(sink, n, c, round_dir / "noop", noop=True))
            parts["full"].append(await hub(sink, n, c, round_dir, noop=False))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} µs" for k, v in parts.items()), file=sys.stderr)
    m = {k: median(v) for k, v in parts.items()}
    together = m["full"] - m["send"] - m["pipeline"]
    print(f"per message: ceiling {m['ceiling']:.1f} µs; tidings {m['full']:.1f} µs = send {m['send']:.1f}"
          f" + pipeline {m['pipeline']:.1f} + together {together:.1f}", file=sys.stderr)
    print(json.dumps({"messages": n, **{f"{k}_cpu_us": round(v, 1) for k, v in m.items()},
                      "together_cpu_us": round(together, 1), "ceiling_vs_full": round(m["ceiling"] / m["full"], 3)}))


if __name__ == "__main__":
    asyncio.run(main())
