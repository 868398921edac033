"""Slack's Acknowledge button stops an escalation: the click is verified, stored, processed, and
the acknowledgement it records stops the waiting steps in the same transaction."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from fake_slack import FakeSlack
from helpers import eventually

from tidings import Message, Priority
from tidings.delivery.escalation import Escalator

SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
USER = {"id": "UA8RXUSPL", "username": "jtorrance", "name": "jtorrance", "team_id": "T9TK3CUKW"}


def click(slack: FakeSlack, channel: str, ts: str, value: str) -> tuple[bytes, dict[str, str]]:
    """A signed ``block_actions`` click of the Acknowledge button, as Slack posts it."""
    payload = {
        "type": "block_actions", "user": USER, "api_app_id": "AABA1ABCD", "token": "9s8d9as89d8as9d8as989",
        "container": {"type": "message_attachment", "message_ts": ts, "attachment_id": 1, "channel_id": channel,
                      "is_ephemeral": False},
        "trigger_id": f"13345224609.738474920.{uuid.uuid4().hex}", "team": {"id": "T9TK3CUKW", "domain": "example"},
        "channel": {"id": channel, "name": "alerts"}, "message": slack.messages[(channel, ts)], "state": {"values": {}},
        "response_url": slack.response_url("actions"),
        "actions": [{"action_id": "tidings_ack", "block_id": "=qXel", "value": value, "type": "button",
                     "text": {"type": "plain_text", "text": "Acknowledge"}, "action_ts": f"{time.time():.6f}"}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(SIGNING.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return body, {"content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": stamp,
                  "x-slack-signature": f"v0={digest}"}


async def test_the_slack_button_stops_the_escalation(make_api: Any, slack: FakeSlack) -> None:
    config = {
        "integrations": {
            "slack": {"kind": "slack", "token": slack.token, "channel": "#alerts", "api_url": slack.api_url,
                      "signing_secret": SIGNING, "rate_limit": "50/second"},
            "pager": {"kind": "inbox"},
        },
        "default": {"to": ["slack"], "escalation": {"steps": [{"after": "5m", "to": ["pager"]}]}},
    }
    api = await make_api(config)
    hub = api.hub
    receipt = await hub.notify(Message("Disk full", priority=Priority.CRITICAL))
    t0 = (await hub.message(receipt.id))["created_at"]

    async def sent() -> bool:
        return (await hub.message(receipt.id))["deliveries"][0]["status"] == "delivered"

    await eventually(sent)
    channel, ts = (await hub.message(receipt.id))["deliveries"][0]["remote_id"].split(":")
    body, headers = click(slack, channel, ts, receipt.id)
    r = await api.post("/hooks/slack", content=body, headers=headers, auth=False)
    assert r.status_code == 200

    async def stopped() -> bool:
        return (await hub.message(receipt.id))["escalation"]["status"] == "stopped"

    await eventually(stopped)
    message = await hub.message(receipt.id)
    assert message["escalation"]["reason"].startswith("acknowledged by UA8RXUSPL (jtorrance) via slack at ")
    assert await Escalator(hub, "w").run_once(now=t0 + 300) == 0
    assert [d["integration"] for d in (await hub.message(receipt.id))["deliveries"]] == ["slack"]
