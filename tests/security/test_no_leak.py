"""Secrets never leak, as a property: for every secret form tidings sends or compares (the value,
``Basic`` base64 of ``user:password``, percent-encoded, after ``Bearer``, ``?token=``, Slack
tokens, ``whsec_`` keys and their decoded bytes), no 8-character piece of it appears in any API
answer, CLI output, log line or database row, whatever a peer echoes back and wherever the
300-character cut of an error falls: across send errors, test answers and inbound rejections."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leakcheck import AM_USER, SECRETS, SENDERS, EchoPeer, Secrets, b64, capture_logs, config, dump_database, leaks

import tidings
from tidings import Hub
from tidings.config import parse_config
from tidings.security.tokens import create_token
from tidings.server import create_app

STATUSES = st.sampled_from([400, 401, 403, 404, 410, 429, 500, 503])
PADS = st.integers(0, 300)  # where the echoed path and headers fall relative to the 300-character cut


async def leak_run(db_url: str, s: Secrets, status: int, pad: int, tmp: Path) -> tuple[list[str], list[str]]:
    """Sends that fail, tests, rejected inbound requests, then every answer, row and log line."""
    peer = EchoPeer(status, pad)
    await peer.start()
    logged = io.StringIO()
    texts: list[str] = []
    try:
        with capture_logs(logged):
            data = {**config(s, peer.port), "server": {"database": db_url}, "dispatcher": {"poll_interval": 0.2}}
            hub = Hub(parse_config(data), config_dir=tmp)
            await hub.start()
            try:
                texts += await _exercise(hub, s)
                texts += await dump_database(hub.store)
            finally:
                await hub.stop(timeout=2)
    finally:
        await peer.stop()
    texts.append(logged.getvalue())
    assert '"event"' in texts[-1], "the log capture works"
    return texts, peer.query_forms()


async def _exercise(hub: Hub, s: Secrets) -> list[str]:
    token = await create_token(hub.store, "leak")
    transport = httpx.ASGITransport(app=create_app(hub))
    texts = []
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                 headers={"Authorization": f"Bearer {token}"}) as api:
        # Send errors: the peer echoes each request in a 4xx/5xx body.
        sent = await api.post("/api/v1/messages", json={"title": "leak check"})
        assert sent.status_code == 202, sent.text
        mid = sent.json()["id"]
        texts.append(json.dumps(await hub.wait(mid)))
        # Test answers.
        for name in SENDERS:
            answer = await api.post(f"/api/v1/integrations/{name}/test")
            assert answer.status_code == 200 and answer.json()["ok"] is False, answer.text
            texts.append(answer.text)
        # Inbound rejections carrying the secrets in the body, headers and URL.
        body = json.dumps({"type": "x", "echo": [s.receiving, s.password, s.query, s.bearer, s.slack, s.am_password,
                                                 b64(f"{AM_USER}:{s.am_password}")]})
        signature = "v1," + base64.b64encode(os.urandom(32)).decode()
        wrong = {"webhook-id": "msg_leak", "webhook-timestamp": str(int(time.time())), "webhook-signature": signature, "X-Echo": s.receiving}
        for path, headers in (
            (f"/hooks/recv?token={quote(s.query, safe='')}", wrong),
            ("/hooks/am", {"Authorization": "Basic " + b64(f"{AM_USER}:not-the-password"), "X-Echo": s.am_password}),
            ("/hooks/am", {"Authorization": f"Bearer {s.am_password}"}),
        ):
            refused = await api.post(path, content=body, headers={"Content-Type": "application/json", **headers})
            assert refused.status_code == 401, refused.text
            texts.append(refused.text)
        for path in ("/api/v1/deliveries", "/api/v1/integrations", f"/api/v1/messages/{mid}", "/api/v1/events"):
            answer = await api.get(path)
            assert answer.status_code == 200, answer.text
            texts.append(answer.text)
    return texts


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(s=SECRETS, status=STATUSES, pad=PADS)
def test_no_form_of_a_secret_leaks(s: Secrets, status: int, pad: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("leak")
    texts, seen = asyncio.run(leak_run(f"sqlite:///{tmp / 'tidings.db'}", s, status, pad, tmp))
    assert not leaks(texts, s.forms(seen))


TRICKY = Secrets(
    password="p@ss:w/rd?#%20&plus+more-k7q2xw9d",
    query="tok en/+=&?%41-m3v8zr5n2c",
    bearer="b3arer-(x)*!$'~;,=\"\\\\-h8d1q0w5e7",
    slack="xoxb-1234567890-abcdefghijklmnop",
    signing="whsec_" + base64.b64encode(b"signing key bytes, 24 by").decode(),
    receiving="whsec_" + base64.b64encode(b"receive key bytes, 24 by").decode(),
    am_password="am-pass:word/with%stuff-9xk2",
)


@pytest.mark.parametrize("pad", [0, 270, 285])
async def test_no_form_leaks_on_either_database(db_url: str, tmp_path: Path, pad: int) -> None:
    texts, seen = await leak_run(db_url, TRICKY, 401, pad, tmp_path)
    assert seen and leaks(["x"], TRICKY.forms(seen)) == [], "the scan itself finds nothing in unrelated text"
    assert leaks([f"... {TRICKY.password} ..."], TRICKY.forms()), "the scan finds a leak"
    assert not leaks(texts, TRICKY.forms(seen))


async def test_the_cli_test_command_masks_the_peer_answer(tmp_path: Path) -> None:
    """``tidings integrations test`` (a real subprocess, text and --json), its output and its logs."""
    peer = EchoPeer(401, 280)
    await peer.start()
    try:
        data = {**config(TRICKY, peer.port), "server": {"database": f"sqlite:///{tmp_path / 'tidings.db'}"}}
        path = tmp_path / "tidings.yaml"
        path.write_text(yaml.safe_dump(data))
        env = {**os.environ, "TIDINGS_LOG_LEVEL": "DEBUG", "TIDINGS_LOG_FORMAT": "json",
               "PYTHONPATH": os.pathsep.join([str(Path(tidings.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
        outputs = []
        for name, extra in (("basic", []), ("basic", ["--json"]), ("bearer", []), ("chat", ["--json"])):
            proc = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "tidings"), "integrations", "test", name, "-c", str(path), *extra,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 1, (out, err)  # the peer refused: a failed test
            assert "401" in out.decode(), out
            outputs += [out.decode(), err.decode()]
        assert len(peer.seen) == 4, "every test reached the peer"
        assert not leaks(outputs, TRICKY.forms(peer.query_forms()))
    finally:
        await peer.stop()
