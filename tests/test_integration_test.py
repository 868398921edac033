"""Testing an integration (``POST /api/v1/integrations/{name}/test``, ``tidings integrations
test``) reports what the peer answered and changes nothing: an answer that would disable the
integration on a real send says so, and the integration stays enabled. The test message carries
the real time."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import yaml
from cli_support import tidings_async
from fake_slack import FakeSlack, Scripted
from peer import Peer
from sink import Reply

from tidings import Message

TOKEN_REVOKED = Scripted(error="token_revoked")


def hook(peer: Peer) -> dict[str, Any]:
    return {"kind": "webhook", "url": peer.url + "/hook", "retry": {"max_attempts": 1}, "allow_destinations": ["127.0.0.1"]}


def bot(slack: FakeSlack) -> dict[str, Any]:
    return {"kind": "slack", "token": slack.token, "channel": "#alerts", "api_url": slack.api_url}


async def health(api: Any) -> dict[str, str]:
    return {i["name"]: i["health"] for i in (await api.get("/api/v1/integrations")).json()}


async def test_a_gone_answer_to_a_test_disables_nothing(make_api: Any, peer: Peer) -> None:
    api = await make_api({"integrations": {"ops": hook(peer)}, "default": {"to": ["ops"]}})
    peer.script(Reply(410, body="this hook was deleted"))
    before = time.time()
    result = (await api.post("/api/v1/integrations/ops/test")).json()
    assert result["ok"] is False and result["status"] == "permanent"
    assert result["error"].startswith("HTTP 410: this hook was deleted"), result
    assert "integration disabled" not in result["error"], "a test changes nothing"
    assert "a send would disable the integration" in result["error"]
    assert (await health(api))["ops"] != "disabled"
    # The test message carried the time it was sent, not the epoch.
    stamp = dt.datetime.fromisoformat(peer.received[0].json()["timestamp"]).timestamp()
    assert before - 1 <= stamp <= time.time() + 1, peer.received[0].json()["timestamp"]
    # Still enabled: the next message goes out.
    mid = (await api.post("/api/v1/messages", json={"title": "after the test"})).json()["id"]
    assert (await api.hub.wait(mid))["deliveries"][0]["status"] == "delivered"
    # A real send answered 410 does disable it, and says so.
    peer.script(Reply(410, body="deleted now"))
    mid = (await api.post("/api/v1/messages", json={"title": "gone"})).json()["id"]
    d = (await api.hub.wait(mid))["deliveries"][0]
    assert d["status"] == "dead" and d["last_error"].endswith("; integration disabled"), d


async def test_a_revoked_token_in_a_test_disables_nothing(make_hub: Any, slack: FakeSlack) -> None:
    hub = await make_hub({"integrations": {"chat": bot(slack)}, "default": {"to": ["chat"]}})
    slack.script("auth.test", TOKEN_REVOKED)
    outcome = await hub.test("chat")
    assert not outcome.ok and not outcome.disable
    assert outcome.error is not None and outcome.error.startswith("token_revoked")
    assert "integration disabled" not in outcome.error and "would disable" in outcome.error
    assert {i["name"]: i["health"] for i in await hub.integrations()}["chat"] != "disabled"
    receipt = await hub.notify(Message("still enabled"))
    assert (await hub.wait(receipt.id))["deliveries"][0]["status"] == "delivered"


async def test_the_cli_test_of_a_gone_hook_leaves_it_enabled(tmp_path: Path, peer: Peer) -> None:
    """The same through ``tidings integrations test``, then ``tidings integrations``."""
    peer.script(Reply(410, body="gone"))
    path = tmp_path / "tidings.yaml"
    path.write_text(yaml.safe_dump({"server": {"database": f"sqlite:///{tmp_path / 'tidings.db'}"},
                                    "integrations": {"ops": hook(peer)}}))

    async def run(*args: str) -> tuple[int, str, str]:
        ran = await tidings_async(tmp_path, *args, "-c", str(path), "--json")
        return ran.code, ran.out, ran.err

    code, out, err = await run("integrations", "test", "ops")
    assert code == 1 and "HTTP 410" in out and "would disable" in out, (out, err)
    code, out, err = await run("integrations")
    assert code == 0, (out, err)
    listed = {i["name"]: i for i in json.loads(out)}
    assert listed["ops"]["health"] != "disabled", listed["ops"]
