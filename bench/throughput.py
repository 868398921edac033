"""Throughput of tidings end to end against the same local sink as the baselines, in one run.

    python bench/throughput.py [--messages 20000] [--concurrency 64] [--via hub|api]
                               [--channels webhook,slack,teams,email,syslog,splunk] [--bulk N]
    python bench/throughput.py --recipients [--recipient-messages 100]

Measures, against one HTTP sink process on 127.0.0.1:
  ceiling  a bare aiohttp client posting the same payloads with the same concurrency, just before
           and just after tidings' run in each round (their mean is the round's ceiling);
  apprise  Apprise's json:// notify(), called the way scripts call it;
  hub      N messages through Hub.notify (or POST /api/v1/messages with --via api) -> outbox
           (SQLite) -> webhook integration -> sink, counting only deliveries the sink received
           and the database marks delivered.
and per channel, each against a minimal local peer in its own process (bench/_peers.py), beside
a baseline sending the same kind of payload straight to that peer in the same round:
  slack    bot mode (chat.postMessage) vs bare aiohttp posts and vs slack_sdk's AsyncWebClient;
  teams    a Workflows webhook (Adaptive Card) vs bare aiohttp posts;
  email    plain SMTP to aiosmtpd, one connection per mail as tidings does, vs aiosmtplib.send;
  syslog   RFC 5424 over TLS (octet counting) to a real rsyslog (imtcp + gtls), vs a bare asyncio
           TLS writer sending the same frames over one connection to the same rsyslog (bench/_syslog.py);
  splunk   HEC batches (concatenated events, 100 a request) to the HEC stand-in of tests/peers vs
           bare aiohttp posting the same batches to it (bench/_splunk.py).
splunk and syslog are also measured against their baseline with a journal (bench/_durable.py): each
batch committed to SQLite before it is sent and marked sent after, the least a sender that must not
lose what it was handed does (``<channel>_hub_vs_durable``).
The hub gets each channel's messages from --concurrency callers of Hub.notify (with --bulk N, the
splunk and syslog ones from 4 callers of Hub.notify_many, N messages a call). The per-integration
rate limits (Slack 1/s, Teams 4/s) are raised for these runs, or they alone would set the figures.
The last line is one JSON object with the figures and their ratios.

``--recipients`` measures instead a fan-out to 50 people (preferences evaluated, each delivery
addressed: a Slack DM or an email) beside the same fan-out to 50 plain integrations, in
deliveries per second (bench/_recipients.py): ``recipients_vs_integrations``, goal >= 0.8.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from statistics import median
from typing import Any

import aiohttp
import orjson

from tidings.store.engine import Store

sys.path.insert(0, str(Path(__file__).parent))
import _recipients  # noqa: E402
import _splunk  # noqa: E402
from _durable import Journal  # noqa: E402
from _peers import SLACK_TOKEN, PeerProcess, marker  # noqa: E402
from _sink import ServedProcess, SinkProcess, free_port, pct, wait_ok, wait_ready  # noqa: E402
from _syslog import RsyslogPeer, frames, rsyslog_available, tls_writer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def payload(i: int) -> dict[str, Any]:
    return {
        "title": f"Disk almost full on web-{i % 50:02d}",
        "body": "The root volume is above 90% and rising.",
        "priority": "high",
        "fields": {"host": f"web-{i % 50:02d}", "volume": "/", "usage": "91%"},
        "labels": {"source": "bench", "service": "api"},
    }


CHANNELS = ("webhook", "slack", "teams", "email", "syslog", "splunk")
RAISED_RATE = "1000000/second"
"""The bench's rate limit for the channels that have one by default: far above what one process sends."""
RATE_LIMITED = ("slack", "teams")
"""Kinds with a default rate limit (Slack 1/s, Teams 4/s), raised for the bench."""
LOCAL = ["127.0.0.1/32", "::1/128"]  # the local peers: allowed past the outbound guard


def channel_payload(i: int) -> dict[str, Any]:
    """``payload(i)`` with a marker in the title, by which the peer counts distinct messages."""
    p = payload(i)
    return {**p, "title": f"{p['title']} {marker(i)}"}


async def wait_received(server: ServedProcess | RsyslogPeer, n: int, timeout: float = 120.0) -> None:
    """Until the sink or peer holds ``n`` distinct messages. Its count is read from memory it
    shares with this process: asking it over HTTP every few milliseconds would cost the process
    being measured (and the server) CPU of their own."""
    deadline = time.monotonic() + timeout
    while server.distinct < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"{type(server).__name__} received {server.distinct} of {n} messages")
        await asyncio.sleep(0.005)


async def wait_done(server: ServedProcess | RsyslogPeer, store: Store, n: int) -> None:
    """Until the sink or peer holds ``n`` distinct deliveries and the database marks ``n`` delivered."""
    await wait_received(server, n)
    await wait_delivered(store, n)


async def wait_delivered(store: Store, n: int) -> None:
    """Until the database marks ``n`` deliveries delivered (``store`` opened before the clock
    started, so that its setup isn't timed)."""
    from sqlalchemy import func, select

    from tidings.store.tables import deliveries

    while True:
        async with store.read() as conn:
            done = (await conn.execute(select(func.count()).where(deliveries.c.status == "delivered"))).scalar()
        if done >= n:
            return
        await asyncio.sleep(0.02)  # the count reads the whole table: not too often


@contextlib.asynccontextmanager
async def opened(db_url: str) -> AsyncIterator[Store]:
    store = Store(db_url)
    try:
        yield store
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
                "server": {"database": db, "allow_destinations": LOCAL},
                "dispatcher": {"batch": 500, "max_inflight": 4 * concurrency},
                "integrations": {"sink": {"kind": "webhook", "url": url, "concurrency": concurrency}},
                "default": {"to": ["sink"]},
            }
        )
    )
    return path


async def produce(hub: Any, messages: list[Any], concurrency: int) -> list[float]:
    """The load: ``messages`` through ``hub.notify`` from ``concurrency`` producers; each
    notify's latency (seconds). Returns once every message is stored."""
    latencies: list[float] = []
    it = iter(messages)

    async def producer() -> None:
        for m in it:
            t = time.perf_counter()
            await hub.notify(m)
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*(producer() for _ in range(concurrency)))
    return latencies


async def hub_rate(sink: SinkProcess, n: int, concurrency: int, tmp: Path) -> tuple[float, float]:
    from tidings import Hub, Message

    db = f"sqlite:///{tmp / 'hub.db'}"
    hub = Hub.from_config(_config(tmp, sink.url, concurrency, db))
    messages = [Message(**payload(i)) for i in range(n)]
    async with hub, opened(db) as store:
        started = time.perf_counter()
        latencies = await produce(hub, messages, concurrency)
        await wait_done(sink, store, n)
        elapsed = time.perf_counter() - started
    return n / elapsed, pct(latencies, 0.99)


async def api_rate(sink: SinkProcess, n: int, concurrency: int, tmp: Path) -> tuple[float, float]:
    db = f"sqlite:///{tmp / 'api.db'}"
    config = _config(tmp, sink.url, concurrency, db)
    port = free_port()
    env = {**os.environ, "TIDINGS_CONFIG": str(config), "TIDINGS_KEY_FILE": str(tmp / "tidings.key"), "TIDINGS_PORT": str(port)}
    tidings = str(Path(sys.executable).parent / "tidings")
    token = subprocess.run([tidings, "token", "create", "--name", "bench"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen([tidings, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session, opened(db) as store:
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
            await wait_done(sink, store, n)
            elapsed = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    return n / elapsed, pct(latencies, 0.99)


# -- per channel ---------------------------------------------------------------------------------
def _channel_config(tmp: Path, kind: str, peer: Any, concurrency: int, db: str) -> Path:
    inflight = 4 * concurrency
    if kind == "splunk":  # batches: its lane holds what its requests carry (bench/_splunk.py)
        integration, inflight = _splunk.integration(peer), _splunk.INFLIGHT
    elif isinstance(peer, RsyslogPeer):  # one connection, whatever the concurrency; writes carry batches
        integration, inflight = peer.integration(), _splunk.INFLIGHT
    else:
        integration = {
            "slack": {"kind": "slack", "token": SLACK_TOKEN, "channel": "#bench", "api_url": peer.slack_api},
            "teams": {"kind": "teams", "webhook_url": peer.teams_url, "mode": "workflows"},
            "email": {"kind": "email", "host": "127.0.0.1", "port": peer.port, "security": "none",
                      "allow_insecure": True, "from_address": "tidings@bench.example", "to": ["ops@bench.example"]},
        }[kind] | {"concurrency": concurrency}
    if kind in RATE_LIMITED:  # the others have no rate limit by default: the bench adds none
        integration |= {"rate_limit": RAISED_RATE, "burst": 10_000}
    path = tmp / f"{kind}.yaml"
    path.write_text(json.dumps({
        "server": {"database": db, "allow_destinations": LOCAL},
        "dispatcher": {"batch": 500, "max_inflight": inflight},
        "integrations": {kind: integration},
        "default": {"to": [kind]},
    }))
    return path


async def hub_channel_rate(kind: str, peer: PeerProcess | RsyslogPeer, n: int, concurrency: int, tmp: Path,
                           producers: int | None = None, bulk: int = 0) -> tuple[float, float]:
    """N messages through Hub.notify from ``producers`` callers (default ``concurrency``; with
    ``bulk``, Hub.notify_many of ``bulk`` messages a call) -> outbox (SQLite) -> the channel's
    integration (``concurrency`` sends at once) -> its peer, counting only messages the peer
    received and the database marks delivered."""
    from tidings import Hub, Message

    db = f"sqlite:///{tmp / f'{kind}.db'}"
    hub = Hub.from_config(_channel_config(tmp, kind, peer, concurrency, db))
    messages = [Message(**channel_payload(i)) for i in range(n)]
    async with hub, opened(db) as store:
        it = iter([] if bulk else messages)
        chunks = iter([messages[k:k + bulk] for k in range(0, n, bulk)] if bulk else [])

        async def producer() -> None:
            for chunk in chunks:
                await hub.notify_many(chunk)
            for m in it:
                await hub.notify(m)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(producer() for _ in range(producers or concurrency)))
        await wait_done(peer, store, n)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return n / elapsed, cpu


def _slack_body(i: int) -> dict[str, Any]:
    """A Block Kit message like the ones tidings renders: header, text, fields, context."""
    p = channel_payload(i)
    return {
        "channel": "#bench",
        "text": p["title"],
        "unfurl_links": False,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": p["title"]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": p["body"]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in p["fields"].items()]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"priority {p['priority']} · source bench"}]},
        ],
    }


def _teams_body(i: int) -> dict[str, Any]:
    p = channel_payload(i)
    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "msteams": {"width": "Full"},
        "body": [
            {"type": "TextBlock", "text": p["title"], "weight": "Bolder", "size": "Medium", "wrap": True},
            {"type": "TextBlock", "text": p["body"], "wrap": True},
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in p["fields"].items()]},
        ],
    }
    return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}


async def _post_loop(url: str, bodies: list[bytes], concurrency: int, headers: dict[str, str]) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        it = iter(bodies)

        async def worker() -> None:
            for body in it:
                async with session.post(url, data=body) as r:
                    await r.read()
                    assert 200 <= r.status < 300, r.status

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(bodies) / (time.perf_counter() - started)


async def slack_baseline(peer: PeerProcess, n: int, concurrency: int) -> float:
    """Bare aiohttp posting chat.postMessage bodies, bearer token, same concurrency."""
    bodies = [orjson.dumps(_slack_body(i)) for i in range(n)]
    headers = {"Authorization": f"Bearer {SLACK_TOKEN}", "Content-Type": "application/json; charset=utf-8"}
    rate = await _post_loop(peer.slack_api + "/chat.postMessage", bodies, concurrency, headers)
    await wait_received(peer, n)
    return rate


async def slack_sdk_rate(peer: PeerProcess, n: int, concurrency: int) -> float:
    """slack_sdk's AsyncWebClient.chat_postMessage, the way an application calls it."""
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=SLACK_TOKEN, base_url=peer.slack_api + "/")
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            body = _slack_body(i)
            r = await client.chat_postMessage(channel=body["channel"], text=body["text"], blocks=body["blocks"])
            assert r["ok"]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = n / (time.perf_counter() - started)
    await wait_received(peer, n)
    return rate


async def teams_baseline(peer: PeerProcess, n: int, concurrency: int) -> float:
    """Bare aiohttp posting Adaptive Card messages, same concurrency."""
    bodies = [orjson.dumps(_teams_body(i)) for i in range(n)]
    rate = await _post_loop(peer.teams_url, bodies, concurrency, {"Content-Type": "application/json"})
    await wait_received(peer, n)
    return rate


async def email_baseline(peer: PeerProcess, n: int, concurrency: int) -> float:
    """aiosmtplib.send of a multipart/alternative mail, one connection per mail (as tidings
    sends), same concurrency."""
    from email.message import EmailMessage

    import aiosmtplib

    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            p = channel_payload(i)
            msg = EmailMessage()
            msg["From"] = "tidings@bench.example"
            msg["To"] = "ops@bench.example"
            msg["Subject"] = p["title"]
            msg["Message-ID"] = f"<{uuid.uuid4()}@bench.example>"
            msg.set_content(p["body"])
            msg.add_alternative(f"<p>{p['body']}</p>", subtype="html")
            await aiosmtplib.send(msg, hostname="127.0.0.1", port=peer.port, start_tls=False, use_tls=False)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = n / (time.perf_counter() - started)
    await wait_received(peer, n)
    return rate


async def syslog_baseline(peer: RsyslogPeer, n: int, concurrency: int, journal: Journal | None = None,
                          ) -> tuple[float, float]:
    """A bare asyncio TLS writer: the frames tidings would send, one connection, to the same
    rsyslog (frames per second, CPU seconds of this process while it sent); with a ``journal``,
    each chunk committed before it is written and marked sent after (bench/_durable.py)."""
    from tidings import Message

    return await tls_writer(peer, frames(peer, [Message(**channel_payload(i)) for i in range(n)]), wait_received,
                            journal)


async def splunk_baseline(peer: Any, n: int, concurrency: int, journal: Journal | None = None) -> tuple[float, float]:
    """Bare aiohttp posting the same HEC batches to the same stand-in (bench/_splunk.py): events
    per second, CPU seconds of this process while it posted; with a ``journal``, each batch
    committed before it is posted and marked sent after (bench/_durable.py)."""
    rate, cpu = await _splunk.baseline(peer, [channel_payload(i) for i in range(n)], journal)
    await wait_received(peer, n)
    return rate, cpu


DURABLE = ("splunk", "syslog")
"""Channels measured also against their baseline with a journal (bench/_durable.py): what a sender that
keeps what it sends costs at the least, beside the bare one that keeps nothing."""
BASELINES = {"slack": slack_baseline, "teams": teams_baseline, "email": email_baseline, "syslog": syslog_baseline,
             "splunk": splunk_baseline}


def _channels(value: str) -> list[str]:
    chosen = [c.strip() for c in value.split(",") if c.strip()]
    unknown = sorted(set(chosen) - set(CHANNELS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(CHANNELS)}")
    return chosen


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20_000, help="webhook channel")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--apprise-messages", type=int, default=1_000, help="Apprise is slow; a smaller sample suffices")
    ap.add_argument("--via", choices=("hub", "api"), default="hub")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    ap.add_argument("--channels", type=_channels, default=[c for c in CHANNELS if c != "syslog" or rsyslog_available()],
                    help=f"comma-separated, among {','.join(CHANNELS)} (default: all; syslog when rsyslogd is installed)")
    ap.add_argument("--channel-messages", type=int, default=3_000, help="per round, for slack and teams")
    ap.add_argument("--email-messages", type=int, default=1_000, help="per round (a connection per mail is slow)")
    ap.add_argument("--email-concurrency", type=int, default=16, help="SMTP connections at once, both sides")
    ap.add_argument("--recipients", action="store_true",
                    help="only the fan-out to 50 recipients vs 50 integrations (bench/_recipients.py)")
    ap.add_argument("--recipient-messages", type=int, default=100, help="per round, each to 50 deliveries")
    ap.add_argument("--bulk", type=int, default=0, metavar="N",
                    help="splunk and syslog: hand the hub N messages a call (Hub.notify_many) from 4 callers,"
                         " instead of one a call (Hub.notify) from --concurrency callers")
    args = ap.parse_args()
    os.environ.setdefault("TIDINGS_LOG_LEVEL", "WARNING")
    from tidings.logs import configure

    configure(level="WARNING")
    if args.recipients:
        return await recipients_main(args)
    n, c = args.messages, args.concurrency
    runner = hub_rate if args.via == "hub" else api_rate
    ceilings: list[float] = []
    apprises: list[float] = []
    hubs: list[float] = []
    p99s: list[float] = []
    others = [ch for ch in args.channels if ch != "webhook"]
    figures: dict[str, dict[str, list[float]]] = {
        ch: {"hub": [], "baseline": [], "sdk": [], "hub_cpu": [], "baseline_cpu": [], "durable": []} for ch in others}
    if others:
        print(f"channels {', '.join(others)}: rate limits of {', '.join(RATE_LIMITED)} raised to {RAISED_RATE}"
              " (burst 10000) for the bench; Slack allows about 1 message/s per channel and Teams 4/s", file=sys.stderr)
    with contextlib.ExitStack() as stack:
        tmpdir = stack.enter_context(tempfile.TemporaryDirectory())
        sink = stack.enter_context(SinkProcess()) if "webhook" in args.channels else None
        def _peer(ch: str) -> Any:
            if ch == "syslog":
                return RsyslogPeer()
            if ch == "splunk":
                return _splunk.SplunkPeerProcess()
            return PeerProcess("smtp" if ch == "email" else ch)

        peers = {ch: stack.enter_context(_peer(ch)) for ch in others}
        if sink is not None:
            await wait_ready(sink.url)
            await ceiling(sink.url, min(n, 2_000), c)  # warm up both sides
        for ch, peer in peers.items():
            peer.wait_ready()
            warm = min(200, args.email_messages if ch == "email" else args.channel_messages)
            await BASELINES[ch](peer, warm, args.email_concurrency if ch == "email" else c)
            peer.reset()
        # This machine's speed drifts; interleaving the measurements and taking medians keeps a
        # drift from landing on one side of the ratio only.
        for r in range(args.rounds):
            round_dir = Path(tmpdir) / f"round{r}"
            round_dir.mkdir()
            if sink is not None:
                await sink_reset(sink.url)
                before = await ceiling(sink.url, n, c)
                await sink_reset(sink.url)
                apprises.append(await asyncio.to_thread(apprise_rate, sink.url, args.apprise_messages))
                await sink_reset(sink.url)
                hub_per_s, p99 = await runner(sink, n, c, round_dir)
                await sink_reset(sink.url)
                after = await ceiling(sink.url, n, c)
                # The round's ceiling brackets tidings' run, measured just before and just after
                # it: a drift of the machine's speed within the round lands on both sides.
                ceilings.append((before + after) / 2)
                hubs.append(hub_per_s)
                p99s.append(p99)
                print(
                    f"round {r + 1}: ceiling (bare aiohttp, concurrency {c}) {ceilings[-1]:,.0f}/s"
                    f" ({before:,.0f} before, {after:,.0f} after); apprise json:// {apprises[-1]:,.0f}/s;"
                    f" tidings via {args.via} {hub_per_s:,.0f}/s (enqueue p99 {p99:.1f} ms);"
                    f" ratio {hub_per_s / ceilings[-1]:.3f}",
                    file=sys.stderr,
                )
            for ch, peer in peers.items():
                m, cc = (args.email_messages, args.email_concurrency) if ch == "email" else (args.channel_messages, c)
                cc = _splunk.CONCURRENCY if ch == "splunk" else cc
                f = figures[ch]
                peer.reset()
                got = await BASELINES[ch](peer, m, cc)
                rate, cpu = got if isinstance(got, tuple) else (got, None)
                f["baseline"].append(rate)
                line = f"round {r + 1}: {ch}: baseline {rate:,.0f}/s"
                if cpu is not None:
                    f["baseline_cpu"].append(cpu / m * 1e6)
                    line += f" ({f['baseline_cpu'][-1]:.0f} µs CPU a message)"
                if ch == "slack":
                    peer.reset()
                    f["sdk"].append(await slack_sdk_rate(peer, m, cc))
                    line += f"; slack_sdk {f['sdk'][-1]:,.0f}/s"
                if ch in DURABLE:
                    peer.reset()
                    journal = Journal(round_dir / f"{ch}-journal.db")
                    try:
                        f["durable"].append((await BASELINES[ch](peer, m, cc, journal))[0])
                    finally:
                        journal.close()
                    line += f"; durable baseline {f['durable'][-1]:,.0f}/s"
                peer.reset()
                # Splunk's requests go 4 at once on both sides; the messages still come to the hub
                # from as many callers as for the other channels (4 callers would be 4 per commit).
                bulk = args.bulk if ch in ("splunk", "syslog") else 0
                callers = 4 if bulk else max(cc, c) if ch == "splunk" else cc
                rate, cpu = await hub_channel_rate(ch, peer, m, cc, round_dir, producers=callers, bulk=bulk)
                f["hub"].append(rate)
                f["hub_cpu"].append(cpu / m * 1e6)
                how = {"splunk": f"{cc} requests at once, {_splunk.BATCH} events each",
                       "syslog": "one TLS connection"}.get(ch, f"concurrency {cc}")
                how += f"; notify_many of {bulk} from {callers} callers" if bulk else ""
                print(f"{line}; tidings {rate:,.0f}/s ({f['hub_cpu'][-1]:.0f} µs CPU a message; {how})", file=sys.stderr)
    result: dict[str, Any] = {
        "messages": n,
        "via": args.via,
        "rounds": args.rounds,
        "hub_per_s": None,
        "ceiling_per_s": None,
        "apprise_per_s": None,
        "hub_vs_ceiling": None,
        "hub_vs_ceiling_by_round": None,
        "hub_vs_apprise": None,
        "enqueue_p99_ms": None,
    }
    if sink is not None:
        ceiling_per_s, apprise_per_s, hub_per_s = median(ceilings), median(apprises), median(hubs)
        result |= {
            "hub_per_s": round(hub_per_s, 1),
            "ceiling_per_s": round(ceiling_per_s, 1),
            "apprise_per_s": round(apprise_per_s, 1),
            "hub_vs_ceiling": round(hub_per_s / ceiling_per_s, 3),
            "hub_vs_ceiling_by_round": [round(h / c_, 3) for h, c_ in zip(hubs, ceilings, strict=True)],
            "hub_vs_apprise": round(hub_per_s / apprise_per_s, 2),
            "enqueue_p99_ms": round(median(p99s), 2),
        }
    if others:
        result["rate_limits"] = RAISED_RATE
        result["bulk"] = args.bulk
    baseline_names = {"slack": "aiohttp", "teams": "aiohttp", "email": "aiosmtplib", "syslog": "tls", "splunk": "aiohttp"}
    for ch, f in figures.items():
        hub_ch, base_ch = median(f["hub"]), median(f["baseline"])
        result |= {
            f"{ch}_messages": args.email_messages if ch == "email" else args.channel_messages,
            f"{ch}_hub_per_s": round(hub_ch, 1),
            f"{ch}_{baseline_names[ch]}_per_s": round(base_ch, 1),
            f"{ch}_hub_vs_{baseline_names[ch]}": round(hub_ch / base_ch, 3),
        }
        if f["baseline_cpu"]:  # steadier than the rates on a busy machine: CPU of this process per message
            base_us, hub_us = median(f["baseline_cpu"]), median(f["hub_cpu"])
            result |= {f"{ch}_hub_cpu_us": round(hub_us, 1), f"{ch}_{baseline_names[ch]}_cpu_us": round(base_us, 1),
                       f"{ch}_cpu_ratio": round(base_us / hub_us, 3)}
        if f["durable"]:
            durable = median(f["durable"])
            result |= {f"{ch}_durable_per_s": round(durable, 1), f"{ch}_hub_vs_durable": round(hub_ch / durable, 3)}
        if f["sdk"]:
            sdk = median(f["sdk"])
            result |= {f"{ch}_slack_sdk_per_s": round(sdk, 1), f"{ch}_hub_vs_slack_sdk": round(hub_ch / sdk, 3)}
    print(json.dumps(result))


async def recipients_main(args: argparse.Namespace) -> None:
    """Fan-out to 50 recipients vs to 50 integrations, interleaved rounds, medians."""
    n, c, email_c = args.recipient_messages, args.concurrency, args.email_concurrency
    messages = [channel_payload(i) for i in range(n)]
    figures: dict[str, list[float]] = {"recipients": [], "integrations": []}
    with contextlib.ExitStack() as stack:
        tmpdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        slack, smtp = stack.enter_context(PeerProcess("slack")), stack.enter_context(PeerProcess("smtp"))
        slack.wait_ready()
        smtp.wait_ready()
        warm = tmpdir / "warm"
        warm.mkdir()
        for side in figures:  # warm up both sides (imports, first connections)
            (warm / side).mkdir()
            await _recipients.rate(side, slack, smtp, messages[:10], c, email_c, warm / side)
        for r in range(args.rounds):
            for side in (("recipients", "integrations") if r % 2 == 0 else ("integrations", "recipients")):
                round_dir = tmpdir / f"round{r}-{side}"
                round_dir.mkdir()
                figures[side].append(await _recipients.rate(side, slack, smtp, messages, c, email_c, round_dir))
            print(f"round {r + 1}: {n} messages x {_recipients.FANOUT}: to recipients {figures['recipients'][-1]:,.0f}"
                  f" deliveries/s; to integrations {figures['integrations'][-1]:,.0f}/s;"
                  f" ratio {figures['recipients'][-1] / figures['integrations'][-1]:.3f}", file=sys.stderr)
    people, plain = median(figures["recipients"]), median(figures["integrations"])
    print(f"fan-out to {_recipients.FANOUT} recipients: {people:,.0f} deliveries/s; to {_recipients.FANOUT}"
          f" integrations: {plain:,.0f} deliveries/s; ratio {people / plain:.3f} (goal >= 0.8)")
    print(json.dumps({
        "recipient_messages": n, "fanout": _recipients.FANOUT, "rounds": args.rounds, "concurrency": c,
        "recipients_per_s": round(people, 1), "integrations_per_s": round(plain, 1),
        "recipients_vs_integrations": round(people / plain, 3),
        "recipients_vs_integrations_by_round": [round(a / b, 3) for a, b in
                                                zip(figures["recipients"], figures["integrations"], strict=True)],
    }))


if __name__ == "__main__":
    asyncio.run(main())
