"""Minimal local peers for the per-channel benchmarks, each in its own process on 127.0.0.1 so that
their work does not land on the measured side: a Slack Web API (``chat.postMessage``), a Teams
Workflows webhook and an SMTP server (aiosmtpd). Each counts what arrived: every request, and
the distinct messages by the marker ``benchref<n>x`` the benchmark puts in each title.

They answer the way the platforms do on success (Slack ``{"ok": true, "channel", "ts"}``, Teams
202 with ``x-ms-workflow-run-id``, SMTP 250) and check only what a sender must get right to be
counted (Slack: the bearer token and a JSON body; Teams: an Adaptive Card message; SMTP: a
message with a marker). The strict fakes in ``tests/`` validate every Block Kit rule and card
schema: that costs more per request than the senders being measured.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from typing import Any

from _sink import ServedProcess

SLACK_TOKEN = "xoxb-bench-0000-benchtokenvalue"
MARKER = re.compile(rb"benchref(\d+)x")


def marker(i: int) -> str:
    return f"benchref{i}x"


def _uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


class _Counter:
    """Shared counters: [total, distinct, generation]. The parent resets by bumping the
    generation; the peer then forgets the markers it saw."""

    def __init__(self, counts: Any) -> None:
        self.counts = counts
        self.generation = -1
        self.seen: set[bytes] = set()

    def count(self, data: bytes) -> None:
        if self.generation != self.counts[2]:
            self.generation = self.counts[2]
            self.seen.clear()
        self.counts[0] += 1
        found = MARKER.search(data)
        if found and found.group(1) not in self.seen:
            self.seen.add(found.group(1))
            self.counts[1] += 1


def _serve_http(kind: str, sock: socket.socket, counts: Any) -> None:
    import orjson
    from aiohttp import web

    _uvloop()
    counter = _Counter(counts)
    ts = [time.time()]

    async def slack(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Authorization") != f"Bearer {SLACK_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return web.json_response({"ok": False, "error": "invalid_json"})
        counter.count(body)
        ts[0] += 0.000001
        return web.json_response({"ok": True, "channel": "C0BENCH", "ts": f"{ts[0]:.6f}",
                                  "message": {"type": "message", "text": data.get("text", "")[:50]}})

    async def teams(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            data = orjson.loads(body)
            card = data["attachments"][0]["content"]
            assert data["type"] == "message" and card["type"] == "AdaptiveCard"
        except Exception:
            return web.json_response({"error": {"code": "InvalidRequestContent"}}, status=400)
        counter.count(body)
        return web.Response(status=202, headers={"x-ms-workflow-run-id": uuid.uuid4().hex[:20]})

    app = web.Application()
    if kind == "slack":
        app.router.add_post("/api/chat.postMessage", slack)
    else:
        app.router.add_post("/workflows/{wf}/triggers/manual/paths/invoke", teams)
    web.run_app(app, sock=sock, access_log=None, print=None, handle_signals=True)


def _serve_smtp(port: int, counts: Any) -> None:
    import asyncio

    from aiosmtpd.controller import Controller

    counter = _Counter(counts)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            counter.count(envelope.original_content or envelope.content or b"")
            return "250 2.0.0 OK queued"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


class PeerProcess(ServedProcess):
    """``kind``: slack, teams or smtp."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        ctx = self._bind()
        self.counts = ctx.Array("q", 3, lock=False)
        if kind == "smtp":
            self.sock.close()  # aiosmtpd binds the port itself
            self.proc = ctx.Process(target=_serve_smtp, args=(self.port, self.counts), daemon=True)
        else:
            self.sock.listen(1024)
            self.proc = ctx.Process(target=_serve_http, args=(kind, self.sock, self.counts), daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def slack_api(self) -> str:
        return f"{self.base}/api"

    @property
    def teams_url(self) -> str:
        return f"{self.base}/workflows/0123456789abcdef/triggers/manual/paths/invoke?api-version=1&sig=benchsig"

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
        raise RuntimeError(f"the {self.kind} peer did not start")
