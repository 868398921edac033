"""A NUL character anywhere in a signed inbound request, or in a message sent through the API, is
answered 2xx (or a clean 4xx where the input is invalid), never 500, on SQLite and PostgreSQL
(whose text columns can't hold U+0000). The raw body is stored byte for byte as received, and
processing the stored event ends in a final state."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from fake_slack import FakeSlack
from helpers import eventually
from sink import Reply
from sqlalchemy import select
from standardwebhooks import Webhook

from tidings import Message
from tidings.store.tables import events

NUL = "\x00"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"nul-test-secret-bytes-32........").decode()
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
HUB_SECRET = "It's a Secret to Everybody"
BEARER = "am-bearer-" + "9c4e1b7a2f6d3e8c5a0b"


def config(slack: FakeSlack) -> dict[str, Any]:
    retry = {"base": 0.05, "cap": 0.1, "max_attempts": 2}
    return {
        "integrations": {
            "partner": {"kind": "webhook", "receive_secret": WEBHOOK_SECRET, "retry": retry,
                        "receive": {"mapping": {"title": "{{ payload.data.title }}", "body": "{{ payload.data.detail }}"}}},
            "slack": {"kind": "slack", "token": slack.token, "channel": "#alerts", "api_url": slack.api_url,
                      "signing_secret": SLACK_SECRET, "retry": retry},
            "github": {"kind": "github", "secret": HUB_SECRET, "retry": retry},
            "jira": {"kind": "jira", "secret": HUB_SECRET, "retry": retry},
            "am": {"kind": "alertmanager", "bearer": BEARER, "retry": retry},
            "out": {"kind": "webhook", "url": "http://127.0.0.1:9/never"},
        },
        "default": {"to": ["out"]},
    }


def standard(payload: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    """(HTTP header values can't carry NUL: h11 refuses them on both ends, so only bodies do.)"""
    body = json.dumps(payload).encode()
    msg_id = "msg_" + os.urandom(6).hex()
    when = dt.datetime.now(dt.UTC)
    return "partner", body, {"content-type": "application/json", "webhook-id": msg_id,
                             "webhook-timestamp": str(int(when.timestamp())),
                             "webhook-signature": Webhook(WEBHOOK_SECRET).sign(msg_id, when, body.decode())}


def slack_signed(body: bytes, content_type: str) -> tuple[str, bytes, dict[str, str]]:
    stamp = str(int(time.time()))
    digest = hmac.new(SLACK_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return "slack", body, {"content-type": content_type, "x-slack-request-timestamp": stamp,
                           "x-slack-signature": f"v0={digest}"}


def slack_event(event_id: str, event_type: str) -> tuple[str, bytes, dict[str, str]]:
    payload = {"type": "event_callback", "event_id": event_id, "team_id": "T0ACME",
               "event": {"type": event_type, "user": "U1", "text": f"hi{NUL}", "channel": "C1", "ts": "1.2"}}
    return slack_signed(json.dumps(payload).encode(), "application/json")


def slack_interaction(payload: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    return slack_signed(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")


def slack_command(slack: FakeSlack, text: str, trigger: str, user: str = "U2147483697") -> tuple[str, bytes, dict[str, str]]:
    fields = {"command": "/tidings", "text": text, "user_id": user, "user_name": f"Ste{NUL}ve", "team_id": "T0001",
              "channel_id": "C0ALERTS", "response_url": slack.response_url("commands"), "trigger_id": trigger}
    return slack_signed(urlencode(fields).encode(), "application/x-www-form-urlencoded")


def hub_signed(name: str, body: bytes, headers: dict[str, str]) -> tuple[str, bytes, dict[str, str]]:
    signature = "sha256=" + hmac.new(HUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return name, body, {"content-type": "application/json", **headers,
                        "x-hub-signature-256" if name == "github" else "x-hub-signature": signature}


def github(event: str, delivery: str, payload: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    return hub_signed("github", json.dumps(payload).encode(), {"x-github-event": event, "x-github-delivery": delivery})


def jira(payload: dict[str, Any], identifier: str = "jira-1") -> tuple[str, bytes, dict[str, str]]:
    return hub_signed("jira", json.dumps(payload).encode(), {"x-atlassian-webhook-identifier": identifier})


def alertmanager(payload: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    return "am", json.dumps(payload).encode(), {"content-type": "application/json", "authorization": f"Bearer {BEARER}"}


ISSUE = {"action": "opened", "issue": {"number": 1, "title": f"bad{NUL}title", "body": f"x{NUL}y",
                                             "html_url": "https://github.com/o/r/issues/1", "user": {"login": f"a{NUL}b"}},
         "repository": {"full_name": f"o/r{NUL}"}, "sender": {"login": f"me{NUL}"}}
ALERT = {"version": "4", "status": "firing", "receiver": f"tid{NUL}ings", "groupKey": f"{{}}:{{alertname=\"A{NUL}\"}}",
         "groupLabels": {"alertname": f"A{NUL}"}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
         "truncatedAlerts": 0,
         "alerts": [{"status": "firing", "labels": {"alertname": f"Disk{NUL}Full", "severity": f"crit{NUL}"},
                     "annotations": {"summary": f"s{NUL}"}, "startsAt": "2024-01-01T00:00:00Z",
                     "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": f"f{NUL}1"}]}
JIRA = {"timestamp": 1, "webhookEvent": f"jira:issue_{NUL}created", "issue_event_type_name": f"issue_{NUL}",
        "issue": {"id": "1", "key": f"OPS-{NUL}1", "self": "https://x.atlassian.net/rest/api/2/issue/1",
                  "fields": {"summary": f"sum{NUL}", "priority": {"name": f"High{NUL}"}, "description": f"d{NUL}"}},
        "user": {"displayName": f"Jo{NUL}"}}


def cases(slack: FakeSlack) -> dict[str, tuple[str, bytes, dict[str, str]]]:
    action = {"action_id": f"act{NUL}", "value": f"v{NUL}", "type": "button"}
    return {
        "standard type": standard({"type": f"order{NUL}.failed", "data": {"title": f"T{NUL}", "detail": f"d{NUL}"}}),
        "slack event_id": slack_event(f"Ev{NUL}1", "app_mention"),
        "slack event.type": slack_event("Ev2", f"app{NUL}mention"),
        "slack interaction type": slack_interaction({"type": f"view{NUL}submission", "trigger_id": "t1",
                                                     "user": {"id": "U1"}}),
        "slack trigger_id": slack_interaction({"type": "block_actions", "trigger_id": f"t{NUL}2", "user": {"id": "U1"},
                                               "actions": [action]}),
        "slack ack": slack_interaction({"type": "block_actions", "trigger_id": "t3", "user": {"id": f"U{NUL}1"},
                                        "actions": [{**action, "action_id": "tidings_ack", "value": f"id{NUL}"}]}),
        "slack command trigger_id": slack_command(slack, "silence alertname=Disk 1h", f"c{NUL}1"),
        "slack command text": slack_command(slack, f"silence alertname=Di{NUL}sk 1h because{NUL}", "c2",
                                            user=f"U{NUL}9"),
        "slack command ack": slack_command(slack, f"ack {uuid.uuid4()}", "c3", user=f"U{NUL}9"),
        "github action": github("issues", str(uuid.uuid4()), {**ISSUE, "action": f"opened{NUL}"}),
        "github issue": github("issues", str(uuid.uuid4()), ISSUE),
        "jira": jira(JIRA),
        "alertmanager": alertmanager(ALERT),
    }


async def test_nul_in_signed_requests_is_never_a_500(make_api: Any, slack: FakeSlack) -> None:
    api = await make_api(config(slack))
    bodies: dict[str, bytes] = {}
    for name, (hook, body, headers) in cases(slack).items():
        r = await api.post(f"/hooks/{hook}", content=body, headers=headers, auth=False)
        assert r.status_code < 500, (name, r.status_code, r.text)
        assert 200 <= r.status_code < 300 or r.json()["error"] in ("malformed", "rejected"), (name, r.text)
        bodies[name] = body
    async with api.hub.store.read() as conn:
        kept = {bytes(body) for body in (await conn.execute(select(events.c.body))).scalars()}
    must_keep = {"standard type", "slack event_id", "slack event.type", "slack interaction type", "slack trigger_id",
                 "slack ack", "slack command trigger_id", "github issue", "github action", "jira", "alertmanager"}
    for name in must_keep:
        assert bodies[name] in kept, f"{name}: the raw body is stored byte for byte"

    async def settled() -> bool:
        async with api.hub.store.read() as conn:
            states = (await conn.execute(select(events.c.status))).scalars().all()
        return all(s not in ("received", "processing") for s in states)

    await eventually(settled, timeout=30)
    listed = await api.get("/api/v1/events")
    assert listed.status_code == 200, listed.text


@pytest.mark.parametrize("where", ["title", "body", "label", "thread_key", "field"])
async def test_a_message_with_nul_through_the_api_is_a_clean_4xx(make_api: Any, slack: FakeSlack, where: str) -> None:
    api = await make_api(config(slack))
    message: dict[str, Any] = {"title": "ok", "body": "ok"}
    if where in ("title", "body", "thread_key"):
        message[where] = f"x{NUL}y"
    elif where == "label":
        message["labels"] = {"service": f"a{NUL}"}
    else:
        message["fields"] = {f"F{NUL}": "v"}
    r = await api.post("/api/v1/messages", json=message)
    assert r.status_code == 422, r.text
    assert "NUL" in str(r.json()["detail"])


async def test_a_peer_answering_with_nul_is_recorded(make_hub: Any, peer: Any) -> None:
    """A peer's error text (a 500 body here) becomes the delivery's last error: NUL and all."""
    peer.script(Reply(500, body=b"broken\x00answer"), Reply(400, body=b"still\x00bad"))
    hub = await make_hub({"integrations": {"hook": {"kind": "webhook", "url": peer.url,
                                                    "retry": {"base": 0.05, "cap": 0.1, "max_attempts": 3}}},
                          "default": {"to": ["hook"]}})
    receipt = await hub.notify(Message("peer trouble", "body"))

    async def dead() -> bool:
        return (await hub.message(receipt.id))["deliveries"][0]["status"] == "dead"

    await eventually(dead)
    [delivery] = (await hub.message(receipt.id))["deliveries"]
    assert "still\ufffdbad" in delivery["last_error"]
