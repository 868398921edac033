"""What tidings logs, and where: structured lines on stderr (nothing on stdout when used as a
library) for retries, dead deliveries, integrations disabled by their peer and rejected webhooks
(with the sender's address, never the secret), a flood of rejections held to one line a minute;
``tidings serve --access-log`` prints one line per request."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import eventually
from peer import free_port
from sink import Reply

from tidings.logs import Throttle

RECEIVE_SECRET = "whsec_bG9ncy10ZXN0LXNlY3JldC1ieXRlcy0zMi4uLi4uLi4="

LIBRARY = """
import asyncio, sys
from tidings import Hub, Message
from tidings.config import parse_config
from tidings.integrations.receiver import InboundRequest

async def main(peer, gone, db, secret):
    config = parse_config({
        "server": {"database": db, "allow_destinations": ["127.0.0.1"]},
        "integrations": {
            "flaky": {"kind": "webhook", "url": peer, "retry": {"base": 0.05, "cap": 0.05, "max_attempts": 2}},
            "gone": {"kind": "webhook", "url": gone},
            "partner": {"kind": "webhook", "receive_secret": secret,
                        "receive": {"mapping": {"title": "{{ payload.title }}"}}},
        },
        "routes": [{"to": ["flaky", "gone"]}],
    })
    async with Hub(config) as hub:
        receipt = await hub.notify(Message("disk full", "on web-01"))
        for _ in range(50):
            await hub.receive("partner", InboundRequest("partner", {"content-type": "application/json",
                              "webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
                              b"{}", client="203.0.113.9"))
        for _ in range(200):
            states = [d["status"] for d in (await hub.message(receipt.id))["deliveries"]]
            if all(s == "dead" for s in states):
                break
            await asyncio.sleep(0.05)
        print("states", states)

asyncio.run(main(*sys.argv[1:]))
"""


def lines(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines (stderr is not a terminal, so the format is JSON)."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


async def test_used_as_a_library_it_logs_to_stderr_what_went_wrong(tmp_path: Path, peer: Any, sink: Any) -> None:
    peer.script(Reply(500, body="overloaded"), Reply(500, body="overloaded"))
    sink.script(Reply(410, body="this hook was deleted"))
    env = {**os.environ, "TIDINGS_LOG_FORMAT": "json"}
    env.pop("TIDINGS_LOG_LEVEL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LIBRARY, peer.url, sink.url, f"sqlite:///{tmp_path / 't.db'}", RECEIVE_SECRET, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    stdout, stderr = out.decode(), err.decode()
    assert proc.returncode == 0, stderr
    assert stdout.strip() == "states ['dead', 'dead']", stdout
    assert "{" not in stdout, "no log line on stdout: it belongs to the application"
    events = lines(stderr)
    by_event: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_event.setdefault(e["event"], []).append(e)
    [retry] = by_event["delivery.retry"]
    assert retry["integration"] == "flaky" and retry["attempt"] == 1 and "500" in retry["error"]
    assert retry["level"] == "info"
    dead = {e["integration"]: e for e in by_event["delivery.dead"]}
    assert set(dead) == {"flaky", "gone"} and dead["flaky"]["level"] == "warning"
    assert "gave up after 2 attempts" in dead["flaky"]["error"]
    [disabled] = by_event["integration.disabled"]
    assert disabled["integration"] == "gone" and "410" in disabled["reason"]
    [rejected] = by_event["inbound.rejected"]  # 50 rejections, one line: the rest is held back
    assert rejected["integration"] == "partner" and rejected["client"] == "203.0.113.9"
    assert rejected["status"] == 401 and rejected["reason"]
    assert RECEIVE_SECRET[6:20] not in stderr


def test_the_throttle_lets_one_line_a_minute_through_and_counts_the_rest() -> None:
    now = [0.0]
    emitted: list[tuple[str, dict[str, Any]]] = []
    throttle = Throttle(60.0, clock=lambda: now[0])

    def emit(event: str, **fields: Any) -> None:
        emitted.append((event, fields))

    assert throttle(emit, ("a", 401), "inbound.rejected", n=1)
    for i in range(99):
        now[0] += 0.5
        assert not throttle(emit, ("a", 401), "inbound.rejected", n=i + 2)
    assert throttle(emit, ("b", 401), "inbound.rejected", n=0), "another key has its own budget"
    now[0] = 61.0
    assert throttle(emit, ("a", 401), "inbound.rejected", n=101)
    assert emitted == [("inbound.rejected", {"n": 1}), ("inbound.rejected", {"n": 0}),
                       ("inbound.rejected", {"n": 101, "suppressed": 99})]


async def test_serve_access_log_prints_a_line_per_request(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "tidings.yaml"
    config.write_text(textwrap.dedent(f"""
        server: {{database: "sqlite:///{tmp_path / 't.db'}", host: 127.0.0.1, port: {port}}}
        integrations: {{out: {{kind: webhook, url: "http://127.0.0.1:9/x"}}}}
    """))
    tidings = Path(sys.executable).parent / "tidings"
    env = {**os.environ, "TIDINGS_LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(
        str(tidings), "serve", "-c", str(config), "--access-log", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            async def up() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, timeout=30)
            r = await client.get("/api/v1/integrations?token=not-logged")
            assert r.status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    requests = [e for e in lines(err.decode()) if e["event"] == "http.request"]
    assert {"method": "GET", "path": "/healthz", "status": 200} in [
        {k: e[k] for k in ("method", "path", "status")} for e in requests]
    [denied] = [e for e in requests if e["path"] == "/api/v1/integrations"]
    assert denied["status"] == 401 and denied["client"] == "127.0.0.1" and denied["ms"] >= 0
    assert "not-logged" not in err.decode()
    assert b"http.request" not in out


def test_logging_follows_stderr_when_it_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Configured while one stderr was in place, logging writes to the stderr of the moment: the
    first one closed (a finished test's capture, a redirect undone) breaks nothing."""
    import io

    import structlog

    from tidings.logs import configure

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure(json=True, cache=False)
    try:
        first.close()
        second = io.StringIO()
        monkeypatch.setattr(sys, "stderr", second)
        structlog.get_logger("t").warning("still.logging", n=1)
        assert '"event": "still.logging"' in second.getvalue()
    finally:
        structlog.reset_defaults()
