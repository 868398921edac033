"""Many workers on PostgreSQL share one queue: two real `tidings worker` processes deliver 5,000
stored messages, each exactly once, and both do part of the work."""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from helpers import start_worker, stop_all
from sink import Sink
from sqlalchemy import func, select
from standardwebhooks import Webhook

from tidings import Message
from tidings.config import load_config
from tidings.hub import Hub
from tidings.store.tables import deliveries

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

COUNT = 5_000


def write_config(path: Path, database: str, sink: Sink, secret: str) -> None:
    # The URL carries ``?options=-csearch_path%3D<schema>``: a JSON string is a valid YAML
    # double-quoted scalar, so nothing in it (?, %, =, :) is read as YAML syntax.
    path.write_text(
        f"""\
server:
  database: {json.dumps(database)}
  allow_destinations: [127.0.0.1]
dispatcher:
  poll_interval: 0.1
  batch: 250
  shutdown_timeout: 5
integrations:
  ops:
    kind: webhook
    url: {json.dumps(sink.url + "/hook")}
    secret: {json.dumps(secret)}
    headers:
      X-Worker: "${{WORKER_NAME:-writer}}"
    concurrency: 32
    breaker: {{failures: 1000}}
default:
  to: [ops]
"""
    )


async def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.1)


async def test_two_workers_deliver_every_message_exactly_once(pg_url: str, tmp_path: Path, sink: Sink) -> None:
    started = time.monotonic()
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    config = tmp_path / "tidings.yaml"
    write_config(config, pg_url, sink, secret)
    loaded = load_config(config)
    assert loaded.server.database == pg_url, "the URL survived YAML"

    writer = Hub(loaded, config_dir=tmp_path, dispatch=False)
    await writer.start()  # migrates the schema before the workers start
    workers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("a", "b"):
            workers[name] = start_worker(tmp_path, config, name)

        async def both_started() -> bool:
            for name, proc in workers.items():
                assert proc.poll() is None, (tmp_path / f"{name}.err").read_text()
            return all("started" in (tmp_path / f"{n}.err").read_text() for n in workers)

        await wait_for(both_started, 20, "both workers started")

        stored: list[str] = []
        for chunk in range(0, COUNT, 1_000):
            receipts = await writer.notify_many([Message(f"m{i}", priority="medium") for i in range(chunk, chunk + 1_000)])
            stored += [r.deliveries[0].id for r in receipts]
        assert len(set(stored)) == COUNT

        assert writer.store is not None
        store = writer.store

        async def all_delivered() -> bool:
            for name, proc in workers.items():
                assert proc.poll() is None, (tmp_path / f"{name}.err").read_text()
            async with store.read() as conn:
                done = (await conn.execute(select(func.count()).where(deliveries.c.status == "delivered"))).scalar()
            return done == COUNT

        await wait_for(all_delivered, 45, f"{COUNT} deliveries delivered")
    finally:
        codes = stop_all(workers)
        await writer.stop()

    for name, code in codes.items():
        err = (tmp_path / f"{name}.err").read_text()
        assert code == 0, f"worker {name} exited {code}:\n{err}"
        assert "Traceback" not in err

    # Give a straggler (a duplicate send) a moment to show up before counting.
    await asyncio.sleep(0.3)
    received = sink.received
    assert len(received) == COUNT, f"the sink got {len(received)} requests for {COUNT} deliveries"
    verifier = Webhook(secret)
    ids: collections.Counter[str] = collections.Counter()
    by_worker: collections.Counter[str] = collections.Counter()
    for r in received:
        headers = {k.lower(): v for k, v in r.headers.items()}
        body = verifier.verify(r.body, headers)
        assert body["id"] == headers["webhook-id"]
        ids[headers["webhook-id"]] += 1
        by_worker[headers["x-worker"]] += 1
    print(f"work split: {dict(by_worker)}")
    duplicates = [i for i, n in ids.items() if n > 1]
    assert not duplicates, f"{len(duplicates)} deliveries were sent more than once"
    assert set(ids) == set(stored)
    assert set(by_worker) == {"a", "b"}, f"both workers should have worked: {dict(by_worker)}"
    assert sum(by_worker.values()) == COUNT
    assert min(by_worker.values()) >= COUNT // 20, f"one worker did almost nothing: {dict(by_worker)}"

    check = Hub(loaded, config_dir=tmp_path, dispatch=False)
    await check.start()
    try:
        assert check.store is not None
        async with check.store.read() as conn:
            rows = (await conn.execute(select(deliveries.c.status, deliveries.c.attempts, func.count()).group_by(
                deliveries.c.status, deliveries.c.attempts))).all()
    finally:
        await check.stop()
    assert [tuple(r) for r in rows] == [("delivered", 1, COUNT)]
    assert time.monotonic() - started < 60
