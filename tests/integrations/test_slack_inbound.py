"""Slack, receiving (``POST /hooks/{name}`` on the ``kind: slack`` integration that sends),
through the real server, against the strict fake Slack (tests/fake_slack.py) for everything
tidings sends back (``chat.update``, thread answers, ``response_url``).

Request shapes are Slack's documented ones: the slash command form body, the ``block_actions``
payload (form field ``payload=``), ``url_verification`` and ``event_callback`` envelopes. Tests
through a hub run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from fake_slack import FakeSlack, blocks_of
from helpers import eventually, local_context
from sqlalchemy import select

from tidings import Message
from tidings.audit.verify import read_entries
from tidings.config import parse_config
from tidings.errors import ConfigError
from tidings.integrations.receiver import InboundRequest, Rejected
from tidings.integrations.slack import SlackNotifier, SlackSettings
from tidings.integrations.slack.inbound import parse_command
from tidings.silences import SilenceError, parse_silence
from tidings.store.tables import acks, events, silences

SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"  # the signing secret of Slack's documented example
HOOK = "/hooks/slack"
USER = {"id": "UA8RXUSPL", "username": "jtorrance", "name": "jtorrance", "team_id": "T9TK3CUKW"}


# -- helpers -----------------------------------------------------------------------------------
def settings(slack: FakeSlack, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "slack", "token": slack.token, "channel": "#alerts", "api_url": slack.api_url,
        "signing_secret": SIGNING, "rate_limit": "50/second",
        "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 5}, "breaker": {"failures": 1000}, **extra,
    }


def config(slack: FakeSlack, **extra: Any) -> dict[str, Any]:
    return {"integrations": {"slack": settings(slack, **extra)}, "default": {"to": ["slack"]}}


def sign(body: bytes, ts: int | None = None, secret: str = SIGNING) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": stamp, "x-slack-signature": f"v0={digest}",
            "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}


def form_request(fields: dict[str, str], **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    body = urlencode(fields).encode()
    return body, {"content-type": "application/x-www-form-urlencoded", **sign(body, **kwargs)}


def json_request(payload: dict[str, Any], **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"content-type": "application/json", **sign(body, **kwargs)}


def trigger() -> str:
    return f"13345224609.738474920.{uuid.uuid4().hex}"


def command(slack: FakeSlack, text: str, *, name: str = "/tidings", user: str = "U2147483697") -> dict[str, str]:
    """A slash command as Slack posts it (docs.slack.dev, "Implementing slash commands")."""
    return {
        "token": "gIkuvaNzQIHg97ATvDxqgjtO", "team_id": "T0001", "team_domain": "example",
        "enterprise_id": "E0001", "enterprise_name": "Globular Construct Inc", "channel_id": "C0ALERTS",
        "channel_name": "alerts", "user_id": user, "user_name": "Steve", "command": name, "text": text,
        "api_app_id": "A123456", "is_enterprise_install": "false",
        "response_url": slack.response_url("commands"), "trigger_id": trigger(),
    }


def event_callback(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """An Events API delivery (docs.slack.dev, "The Events API": the callback envelope)."""
    return {
        "token": "XXYYZZ", "team_id": "T0ACME", "api_app_id": "A123ABC456", "event": event,
        "type": "event_callback", "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()), "event_context": "4-eyJldCI6ImFwcF9tZW50aW9uIn0",
        "authorizations": [{"enterprise_id": None, "team_id": "T0ACME", "user_id": "U0BOT", "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
    }


def block_actions(slack: FakeSlack, channel: str, ts: str, value: str, user: dict[str, str] = USER) -> dict[str, Any]:
    """A click on the Acknowledge button (docs.slack.dev, "block_actions payload"): the button sits
    in an attachment, so the container is a ``message_attachment``."""
    message = json.loads(json.dumps(slack.messages[(channel, ts)]))
    message.pop("replies", None)
    return {
        "type": "block_actions",
        "user": user,
        "api_app_id": "AABA1ABCD",
        "token": "9s8d9as89d8as9d8as989",
        "container": {"type": "message_attachment", "message_ts": ts, "attachment_id": 1, "channel_id": channel,
                      "is_ephemeral": False, "is_app_unfurl": False},
        "trigger_id": trigger(),
        "team": {"id": "T9TK3CUKW", "domain": "example"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "alerts"},
        "message": message,
        "state": {"values": {}},
        "response_url": slack.response_url("actions"),
        "actions": [{
            "action_id": "tidings_ack", "block_id": "=qXel", "text": {"type": "plain_text", "text": "Acknowledge",
                                                                    "emoji": True},
            "value": value, "style": "primary", "type": "button", "action_ts": f"{time.time():.6f}",
        }],
    }


async def post(api: Any, body: bytes, headers: dict[str, str]) -> Any:
    return await api.post(HOOK, content=body, headers=headers, auth=False)


async def settled(api: Any, event_id: str) -> dict[str, Any]:
    async def done() -> bool:
        return (await api.hub.event(event_id))["status"] not in ("received", "processing")

    await eventually(done)
    return await api.hub.event(event_id)


async def stored_events(api: Any) -> list[Any]:
    async with api.hub.store.read() as conn:
        return list((await conn.execute(select(events))).all())


async def delivered(hub: Any, message_id: str) -> dict[str, Any]:
    async def done() -> bool:
        return all(d["status"] not in ("pending", "sending", "retrying") for d in (await hub.message(message_id))["deliveries"])

    await eventually(done)
    return await hub.message(message_id)


def buttons(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in blocks_of(payload) if b["type"] == "actions" for e in b["elements"]]


def contexts(payload: dict[str, Any]) -> str:
    return " ".join(e.get("text", "") for b in blocks_of(payload) if b["type"] == "context" for e in b["elements"])


def receiver(**extra: Any) -> SlackNotifier:
    s = parse_config({"integrations": {"slack": {"kind": "slack", "signing_secret": SIGNING, **extra}}}).integrations["slack"]
    return SlackNotifier("slack", s, local_context())


# -- signatures -----------------------------------------------------------------------------------
def test_the_signature_matches_slacks_documented_example() -> None:
    """docs.slack.dev, "Verifying requests from Slack": this secret, timestamp and body give this
    signature."""
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    good = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    r = receiver()
    headers = {"x-slack-request-timestamp": "1531420618", "x-slack-signature": good}
    r.verify(InboundRequest("slack", headers, body, received_at=1531420618 + 299))
    with pytest.raises(Rejected) as exc:  # the same request six minutes later: a replay
        r.verify(InboundRequest("slack", headers, body, received_at=1531420618 + 301))
    assert exc.value.status == 401 and "300s window" in exc.value.reason
    for bad in (good[:-1] + "0", "v1=" + good[3:], good[3:], "v0=", ""):
        with pytest.raises(Rejected) as exc:
            r.verify(InboundRequest("slack", {**headers, "x-slack-signature": bad}, body, received_at=1531420618))
        assert exc.value.status == 401 and SIGNING not in exc.value.reason


async def test_forged_stale_and_unsigned_requests_are_401_counted_and_not_stored(make_api: Any, slack: FakeSlack) -> None:
    api = await make_api(config(slack), dispatch=False)
    body, headers = form_request(command(slack, "ack 0190d7a4-0000-7000-8000-000000000001"))
    now = int(time.time())
    cases = {
        "forged signature": (body, {**headers, "x-slack-signature": "v0=" + "0" * 64}),
        "wrong secret": (body, {**headers, **sign(body, secret="another-signing-secret-0123456789")}),
        "no signature": (body, {k: v for k, v in headers.items() if k != "x-slack-signature"}),
        "no timestamp": (body, {k: v for k, v in headers.items() if k != "x-slack-request-timestamp"}),
        "stale (301 s old)": (body, {**headers, **sign(body, ts=now - 301)}),
        "from the future": (body, {**headers, **sign(body, ts=now + 400)}),
        "timestamp not a number": (body, {**headers, "x-slack-request-timestamp": "12ab"}),
        "body altered": (body.replace(b"ack", b"acK"), headers),
        "signed with another timestamp": (body, {**headers, "x-slack-request-timestamp": str(now - 1)}),
    }
    for case, (b, h) in cases.items():
        r = await post(api, b, h)
        assert r.status_code == 401, (case, r.text)
        assert r.json()["error"] == "rejected" and r.json()["detail"], case
        assert SIGNING not in r.text
    assert await stored_events(api) == []
    item = next(i for i in (await api.get("/api/v1/integrations")).json() if i["name"] == "slack")
    assert item["receives"] and item["sends"] and item["inbound"]["rejected"] == len(cases)
    ok = await post(api, body, headers)
    assert ok.status_code == 200 and ok.json()["text"].startswith("Acknowledging")


async def test_content_type_size_and_malformed_bodies(make_api: Any, slack: FakeSlack) -> None:
    api = await make_api(config(slack), dispatch=False)
    body, headers = json_request({"type": "url_verification", "challenge": "x"})
    r = await post(api, body, {**headers, "content-type": "text/plain"})
    assert r.status_code == 415 and "application/x-www-form-urlencoded" in r.json()["detail"]
    big = b"text=" + b"a" * (1024 * 1024 + 10)
    r = await post(api, big, {"content-type": "application/x-www-form-urlencoded", **sign(big)})
    assert r.status_code == 413
    for bad, ctype, says in [
        (b"{not json", "application/json", "malformed JSON"),
        (b"[1, 2]", "application/json", "JSON object"),
        (b'{"type": "event_callback", "event": {"type": "app_mention"}}', "application/json", "event_id"),
        (b"payload=%7Bnot+json", "application/x-www-form-urlencoded", "malformed JSON in payload="),
        (b"payload=%5B%5D", "application/x-www-form-urlencoded", "not a JSON object"),
        (b"no-equals-sign", "application/x-www-form-urlencoded", "malformed form"),
        (b"text=hello&user_id=U1", "application/x-www-form-urlencoded", "command="),
        (b"payload=" + json.dumps({"type": "block_actions", "actions": []}).encode(), "application/x-www-form-urlencoded",
         "without actions"),
    ]:
        r = await post(api, bad, {"content-type": ctype, **sign(bad)})
        assert r.status_code == 400, (bad, r.text)
        assert says in r.json()["detail"], (bad, r.json())
    assert await stored_events(api) == []


# -- Events API ---------------------------------------------------------------------------------------
async def test_the_url_verification_challenge_is_answered_and_not_stored(make_api: Any, slack: FakeSlack) -> None:
    api = await make_api(config(slack), dispatch=False)
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    r = await post(api, *json_request({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge,
                                       "type": "url_verification"}))
    assert r.status_code == 200 and r.json() == {"challenge": challenge}
    assert await stored_events(api) == []


async def test_a_mention_is_a_command_answered_in_its_thread_and_retries_are_processed_once(
    make_api: Any, slack: FakeSlack
) -> None:
    api = await make_api(config(slack))
    ts = "1515449522.000016"
    slack.messages[("C0ALERTS", ts)] = {"type": "message", "user": "U123ABC456", "ts": ts, "text": "hi"}
    event = {"type": "app_mention", "user": "U123ABC456", "text": "<@U0BOT> status", "ts": ts,
             "channel": "C0ALERTS", "event_ts": ts}
    payload = event_callback(event, "Ev0PV52K21")
    first = await post(api, *json_request(payload))
    assert first.status_code == 200 and first.json()["status"] == "received"
    # Slack retries (it did not see the answer in time): same event_id, a new timestamp and signature.
    body, headers = json_request(payload)
    retry = await post(api, body, {**headers, "x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"})
    assert retry.status_code == 200 and retry.json() == {"id": first.json()["id"], "status": "duplicate"}
    stored = await settled(api, first.json()["id"])
    assert stored["status"] == "processed" and stored["event_type"] == "event.app_mention"
    assert stored["delivery_key"] == "event:Ev0PV52K21" and stored["result"]["answered"] is True
    assert "x-slack-signature" not in stored["headers"] and stored["headers"]["x-slack-request-timestamp"]
    (answer,) = await slack.wait_for("chat.postMessage", 1)
    reply = answer.json()
    assert reply["channel"] == "C0ALERTS" and reply["thread_ts"] == ts
    assert "*tidings status*" in reply["text"] and "`slack` (slack)" in reply["text"]
    await asyncio.sleep(0.3)
    assert len(slack.calls_of("chat.postMessage")) == 1, "the retry was not processed again"


async def test_other_events_are_recorded_ignored_or_unsupported(make_api: Any, slack: FakeSlack) -> None:
    api = await make_api(config(slack), dispatch=False)
    message = {"type": "message", "channel": "C0ALERTS", "user": "U1", "text": "hello", "ts": "1.1", "event_ts": "1.1",
               "channel_type": "channel"}
    reaction = {"type": "reaction_added", "user": "U1", "reaction": "thumbsup",
                "item": {"type": "message", "channel": "C0ALERTS", "ts": "1.1"}, "event_ts": "1.2"}
    r1 = await post(api, *json_request(event_callback(message)))
    r2 = await post(api, *json_request(event_callback(reaction)))
    r3 = await post(api, *json_request({"token": "x", "type": "app_rate_limited", "team_id": "T0ACME",
                                        "minute_rate_limited": 1518467820, "api_app_id": "A1"}))
    view = {"type": "view_submission", "user": USER, "trigger_id": trigger(), "view": {"id": "V1"}}
    r4 = await post(api, *form_request({"payload": json.dumps(view)}))
    assert [r.status_code for r in (r1, r2, r3, r4)] == [200] * 4
    assert r1.json()["status"] == "ignored" and r2.json()["status"] == "unsupported"
    assert r3.json()["status"] == "ignored"
    assert r4.text == "", "interactivity is answered with an empty 200"
    kinds = {r.event_type: r.status for r in await stored_events(api)}
    assert kinds == {"event.message": "ignored", "event.reaction_added": "unsupported", "app_rate_limited": "ignored",
                     "view_submission": "unsupported"}


# -- slash commands ----------------------------------------------------------------------------------
async def test_help_status_and_unknown_commands_are_answered_at_once(make_api: Any, slack: FakeSlack) -> None:
    api = await make_api(config(slack), dispatch=False)

    async def ask(text: str, **kwargs: Any) -> dict[str, Any]:
        started = time.monotonic()
        r = await post(api, *form_request(command(slack, text, **kwargs)))
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        assert time.monotonic() - started < 2.5, "well inside Slack's 3 s"
        return dict(r.json())

    for text in ("help", "", "  HELP  "):
        answer = await ask(text)
        assert answer["response_type"] == "ephemeral"
        assert "`/tidings ack &lt;message-id&gt;`" in answer["text"] and "Unknown" not in answer["text"]
    unknown = await ask("frobnicate now")
    assert unknown["text"].startswith("Unknown command `frobnicate`.") and "/tidings silence" in unknown["text"]
    evil = await ask("<!channel> & co")
    assert "<!channel>" not in evil["text"] and "&lt;!channel&gt;" in evil["text"]
    status = await ask("status")
    assert status["response_type"] == "ephemeral" and status["text"].startswith("*tidings status*")
    assert "`slack` (slack): ok" in status["text"] and "0 active silences" in status["text"]
    other = await ask("status", name="/other")
    assert "This URL answers /tidings, not /other" in other["text"]
    bad = await ask("silence alertname=DiskFull forever")
    assert "duration" in bad["text"] and "Usage:" in bad["text"]
    bad = await ask("ack")
    assert "ack takes one message id" in bad["text"]
    bad = await ask('silence alertname="Disk 2h')
    assert "can't read the command" in bad["text"]
    assert await stored_events(api) == [], "answers that change nothing are not stored"


async def test_a_custom_command_name(make_api: Any, slack: FakeSlack) -> None:
    api = await make_api(config(slack, slash_command="alerts"), dispatch=False)
    r = await post(api, *form_request(command(slack, "help", name="/alerts")))
    assert "`/alerts status`" in r.json()["text"]


async def test_silence_then_notify_then_unsilence(make_api: Any, slack: FakeSlack) -> None:
    api = await make_api(config(slack))
    hub = api.hub
    fields = command(slack, "silence alertname=DiskFull,instance=web-01 2h disk swap")
    body, headers = form_request(fields)
    r = await post(api, body, headers)
    assert r.status_code == 200
    assert r.json() == {"response_type": "ephemeral", "text": "Silencing `alertname=DiskFull,instance=web-01` for 2h…"}
    again = await post(api, body, headers)  # the same request replayed within the window
    assert again.status_code == 200 and again.json() == r.json()
    (row,) = await stored_events(api)
    stored = await settled(api, row.id)
    assert stored["status"] == "processed" and stored["event_type"] == "command.silence"
    await slack.wait_for("response_url", 1)
    (response,) = slack.responses
    assert response["response_type"] == "ephemeral" and response["path"] == fields["response_url"].split(str(slack.port))[1]
    assert response["text"].startswith("🔕 Silenced `alertname=DiskFull,instance=web-01` for 2h")
    async with hub.store.read() as conn:
        (silence,) = (await conn.execute(select(silences))).all()
    assert silence.matchers == {"alertname": "DiskFull", "instance": "web-01"}
    assert silence.created_by == "U2147483697 (Steve)" and silence.reason == "disk swap"
    assert 7190 < silence.until - time.time() <= 7200
    assert silence.id in response["text"]

    labels = {"alertname": "DiskFull", "instance": "web-01", "severity": "critical"}
    hushed = await hub.notify(Message("Disk full", "on web-01", priority="critical", labels=labels))
    other = await hub.notify(Message("Disk full", "on web-02", priority="critical", labels={**labels, "instance": "web-02"}))
    half = await hub.notify(Message("Disk full", priority="critical", labels={"alertname": "DiskFull"}))
    assert [d.status for d in hushed.deliveries] == ["suppressed"]
    assert (await delivered(hub, other.id))["deliveries"][0]["status"] == "delivered"
    assert (await delivered(hub, half.id))["deliveries"][0]["status"] == "delivered", "all matchers must match"
    assert len(slack.posts()) == 2

    listing = await post(api, *form_request(command(slack, "silences")))
    assert silence.id in listing.json()["text"] and "alertname=DiskFull,instance=web-01" in listing.json()["text"]
    status = await post(api, *form_request(command(slack, "status")))
    assert "1 active silence" in status.json()["text"]

    r = await post(api, *form_request(command(slack, f"unsilence {silence.id}")))
    assert r.json()["text"] == f"Ending silence `{silence.id}`…"
    await slack.wait_for("response_url", 2)
    assert slack.responses[1]["text"].startswith("🔔 Ended silence `alertname=DiskFull,instance=web-01`")
    loud = await hub.notify(Message("Disk full", "on web-01", priority="critical", labels=labels))
    assert (await delivered(hub, loud.id))["deliveries"][0]["status"] == "delivered"
    r = await post(api, *form_request(command(slack, "unsilence nosuchsilence")))
    await slack.wait_for("response_url", 3)
    assert slack.responses[2]["text"] == "No active silence `nosuchsilence`."
    assert (await post(api, *form_request(command(slack, "silence list")))).json()["text"] == "No active silences."
    audited = [(e["action"], e["target"], e["actor_name"], e["auth_method"]) for e in await read_entries(hub.store)
               if e["action"].startswith("silence.")]
    assert audited == [("silence.create", f"silence/{silence.id}", "U2147483697 (Steve)", "slack"),
                       ("silence.end", f"silence/{silence.id}", "U2147483697 (Steve)", "slack")]


async def test_a_silence_made_elsewhere_applies_after_the_refresh(make_hub: Any) -> None:
    """Another process made the silence: this hub's cache picks it up on its next reload."""
    data = {"integrations": {"box": {"kind": "inbox"}}, "default": {"to": ["box"]}}
    writer = await make_hub(data, dispatch=False)
    reader = await make_hub(data, dispatch=False)
    await reader.silences.stop()
    await writer.silence({"source": "github"}, 60, by="test")
    assert reader.silences.match({"source": "github"}) is None, "not yet: the cache has no query per message"
    reader.silences.refresh = 0.05
    reader.silences.start()

    async def seen() -> bool:
        return reader.silences.match({"source": "github"}) is not None

    await eventually(seen, timeout=5)
    receipt = await reader.notify(Message("Push", labels={"source": "github"}))
    assert [d.status for d in receipt.deliveries] == ["suppressed"]


# -- acknowledging ----------------------------------------------------------------------------------
async def test_the_acknowledge_button_end_to_end(make_api: Any, slack: FakeSlack) -> None:
    api = await make_api(config(slack))
    hub = api.hub
    receipt = await hub.notify(Message("Disk full", "on web-01", priority="critical", thread_key="disk:web-01",
                                       labels={"alertname": "DiskFull"}))
    sent = await delivered(hub, receipt.id)
    channel, ts = sent["deliveries"][0]["remote_id"].split(":")
    original = slack.messages[(channel, ts)]
    assert [b["value"] for b in buttons(original) if b["action_id"] == "tidings_ack"] == [receipt.id]

    payload = block_actions(slack, channel, ts, receipt.id)
    r = await post(api, *form_request({"payload": json.dumps(payload)}))
    assert r.status_code == 200 and r.text == ""
    (row,) = await stored_events(api)
    stored = await settled(api, row.id)
    assert stored["status"] == "processed" and stored["event_type"] == "block_actions.tidings_ack"
    assert stored["result"]["outcome"] == "acknowledged" and stored["result"]["updated"] == [f"{channel}:{ts}"]
    async with hub.store.read() as conn:
        (ack,) = (await conn.execute(select(acks))).all()
    assert (ack.message_id, ack.by, ack.via, ack.integration) == (receipt.id, "UA8RXUSPL (jtorrance)", "slack", "slack")
    assert ack.thread_key == "disk:web-01" and abs(ack.at - time.time()) < 30

    (update,) = slack.calls_of("chat.update")
    body = update.json()
    assert (body["channel"], body["ts"]) == (channel, ts)
    assert not [b for b in buttons(body) if b.get("action_id") == "tidings_ack"], "nothing left to acknowledge"
    assert "✔️ Acknowledged by <@UA8RXUSPL>" in contexts(body)
    assert body["text"].startswith("🔴 Disk full") and body["attachments"][0]["color"] == original["attachments"][0]["color"]
    assert slack.messages[(channel, ts)]["attachments"] == body["attachments"], "Slack shows the update"

    shown = (await api.get(f"/api/v1/messages/{receipt.id}")).json()
    assert [(a["by"], a["via"], a["integration"]) for a in shown["acks"]] == [("UA8RXUSPL (jtorrance)", "slack", "slack")]

    # Another click (another person, a stale client): nothing more is recorded; the first ack holds.
    someone = {"id": "U0OTHER01", "username": "wendy", "name": "wendy", "team_id": "T9TK3CUKW"}
    r = await post(api, *form_request({"payload": json.dumps(block_actions(slack, channel, ts, receipt.id, someone))}))
    assert r.status_code == 200
    second = next(e for e in await stored_events(api) if e.id != row.id)
    assert (await settled(api, second.id))["result"]["outcome"] == "already_acknowledged"
    async with hub.store.read() as conn:
        assert len((await conn.execute(select(acks))).all()) == 1
    assert "<@UA8RXUSPL>" in contexts(slack.calls_of("chat.update")[-1].json())
    # Audited once, as the Slack user who clicked, in the ack's transaction.
    (audited,) = [e for e in await read_entries(hub.store) if e["action"] == "ack"]
    assert (audited["actor"], audited["actor_id"], audited["actor_name"], audited["auth_method"]) == (
        "user", "slack:UA8RXUSPL", "UA8RXUSPL (jtorrance)", "slack")
    assert audited["target"] == f"message/{receipt.id}" and audited["request_id"] == row.id

    # Resolving the thread later keeps who acknowledged it.
    resolved = await hub.notify(Message("Disk has space", priority="info", thread_key="disk:web-01", resolves=True))
    await delivered(hub, resolved.id)
    final = slack.calls_of("chat.update")[-1].json()
    assert final["attachments"][0]["blocks"][0]["text"]["text"].startswith("✅ Resolved: Disk full")
    assert "Acknowledged by <@UA8RXUSPL>" in contexts(final) and "Resolved" in contexts(final)


async def test_ack_by_slash_command_answers_through_response_url(make_api: Any, slack: FakeSlack) -> None:
    api = await make_api(config(slack))
    hub = api.hub
    receipt = await hub.notify(Message("API down", "5xx everywhere", priority="high"))
    sent = await delivered(hub, receipt.id)
    channel, ts = sent["deliveries"][0]["remote_id"].split(":")

    fields = command(slack, f"ack {receipt.id}")
    r = await post(api, *form_request(fields))
    assert r.json() == {"response_type": "ephemeral", "text": f"Acknowledging `{receipt.id}`…"}
    await slack.wait_for("response_url", 1)
    assert slack.responses[0]["text"] == f"✔️ Acknowledged `{receipt.id}`."
    async with hub.store.read() as conn:
        (ack,) = (await conn.execute(select(acks))).all()
    assert (ack.message_id, ack.by, ack.via) == (receipt.id, "U2147483697 (Steve)", "slack")
    (update,) = await slack.wait_for("chat.update", 1)
    body = update.json()
    assert (body["channel"], body["ts"]) == (channel, ts)
    assert not [b for b in buttons(body) if b.get("action_id") == "tidings_ack"]
    assert "Acknowledged by <@U2147483697>" in contexts(body)

    await post(api, *form_request(command(slack, f"ack {receipt.id}", user="U0SECOND1")))
    await slack.wait_for("response_url", 2)
    assert slack.responses[1]["text"] == f"`{receipt.id}` was already acknowledged by <@U2147483697>."
    missing = str(uuid.uuid4())
    await post(api, *form_request(command(slack, f"ack {missing}")))
    await slack.wait_for("response_url", 3)
    assert slack.responses[2]["text"] == f"No message `{missing}`."


async def test_a_response_url_outage_retries_and_the_work_is_done_once(make_api: Any, slack: FakeSlack) -> None:
    from fake_slack import Scripted

    api = await make_api(config(slack))
    slack.script("response_url", Scripted(status=503))
    r = await post(api, *form_request(command(slack, "silence github 30m")))
    assert r.status_code == 200
    (row,) = await stored_events(api)
    stored = await settled(api, row.id)
    assert stored["status"] == "processed" and stored["attempts"] == 2
    assert len(slack.responses) == 1
    assert len(await api.hub.active_silences()) == 1, "the second attempt made no second silence"
    assert api.hub.silences.match({"source": "github"}) is not None


async def test_response_urls_elsewhere_are_not_posted_to() -> None:
    r = receiver(token="xoxb-1-a", channel="#a")
    assert r._allowed_response_url("https://hooks.slack.com/commands/T1/2/abc")
    assert r._allowed_response_url("https://hooks.slack-gov.com/actions/T1/2/abc")
    for url in ("http://hooks.slack.com/commands/x", "https://evil.example.com/hooks.slack.com",
                "https://hooks.slack.com.evil.example/x", "https://127.0.0.1/commands", "file:///etc/passwd"):
        assert not r._allowed_response_url(url), url


# -- parsing and settings ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "matchers", "seconds", "reason"),
    [
        ("alertname=DiskFull,instance=web-01 2h", {"alertname": "DiskFull", "instance": "web-01"}, 7200, None),
        ("alertname=DiskFull instance=web-01 30m planned work", {"alertname": "DiskFull", "instance": "web-01"}, 1800,
         "planned work"),
        ("github 1d", {"source": "github"}, 86400, None),
        ('alertname="Disk full" 1h30m', {"alertname": "Disk full"}, 5400, None),
        ("alertname=“Disk full” 90s", {"alertname": "Disk full"}, 90, None),
        ("service=api, 5m", {"service": "api"}, 300, None),
    ],
)
def test_silence_grammar(text: str, matchers: dict[str, str], seconds: float, reason: str | None) -> None:
    name, words = parse_command("silence " + text)
    assert name == "silence"
    assert parse_silence(words) == (matchers, seconds, reason)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2h", "say what to silence"),
        ("alertname=DiskFull", "duration"),
        ("alertname=DiskFull 2", "duration"),
        ("alertname=DiskFull 31d", "at most 30d"),
        ("alertname=DiskFull 0m", "longer than 0s"),
        ("alertname= 2h", "give the value"),
        ("bad name=x 2h", "label=value"),
        ("one two 2h", "label=value"),
        ("=x 2h", "not a label name"),
    ],
)
def test_bad_silences_say_why(text: str, says: str) -> None:
    with pytest.raises(SilenceError) as exc:
        parse_silence(parse_command("silence " + text)[1])
    assert says in str(exc.value)


def test_settings() -> None:
    def parse(**data: Any) -> SlackSettings:
        s = parse_config({"integrations": {"chat": {"kind": "slack", **data}}}).integrations["chat"]
        assert isinstance(s, SlackSettings)
        return s

    only = parse(signing_secret=SIGNING)
    assert SlackNotifier.can_receive(only) and not SlackNotifier.can_send(only) and only.slash_command == "/tidings"
    both = parse(token="xoxb-1-a", channel="#a", signing_secret=SIGNING, slash_command="Alerts")
    assert SlackNotifier.can_receive(both) and SlackNotifier.can_send(both) and both.slash_command == "/alerts"
    assert not SlackNotifier.can_receive(parse(token="xoxb-1-a", channel="#a"))
    assert parse(signing_secret="${vault:SLACK_SIGNING}").vault_refs() == {"signing_secret": "SLACK_SIGNING"}
    assert SIGNING in only.secret_values() and SIGNING not in repr(only)
    for data, says in [
        ({"signing_secret": "short"}, "Signing Secret"),
        ({"signing_secret": SIGNING, "slash_command": "/two words"}, "slash command"),
        ({}, "exactly one of token"),
    ]:
        with pytest.raises(ConfigError) as info:
            parse(**data)
        assert any(says in p for p in info.value.problems), info.value.problems
        assert not any("short" in p and "Signing" not in p for p in info.value.problems)


async def test_slack_commands_act_in_the_integrations_project(make_api: Any, slack: FakeSlack) -> None:
    data = {"integrations": {"slack": settings(slack, project="ops")}, "routes": [{"project": "ops", "to": ["slack"]}]}
    api = await make_api(data)
    hub = api.hub
    theirs, _ = await hub.silence({"service": "web"}, 3600, by="test")  # default's
    message = await hub.notify(Message("Deploy"))  # default's
    await post(api, *form_request(command(slack, "silence service=db 2h")))
    await slack.wait_for("response_url", 1)
    async with hub.store.read() as conn:
        made = (await conn.execute(select(silences).where(silences.c.id != theirs.id))).one()
    assert made.project == "ops"
    for text, answer in ((f"unsilence {theirs.id}", f"No active silence `{theirs.id}`."),
                         (f"ack {message.id}", f"No message `{message.id}`.")):
        await post(api, *form_request(command(slack, text)))
        await slack.wait_for("response_url", len(slack.responses) + 1)
        assert slack.responses[-1]["text"] == answer
    listing = (await post(api, *form_request(command(slack, "silences")))).json()["text"]
    assert made.id in listing and theirs.id not in listing
    assert [s.id for s in await hub.active_silences(project="default")] == [theirs.id], "default's silence stays"
    async with hub.store.read() as conn:
        assert (await conn.execute(select(acks))).all() == []
    hushed = await hub.notify(Message("Disk", labels={"service": "db"}), project="ops")
    loud = await hub.notify(Message("Disk", labels={"service": "db"}))
    assert [d.status for d in hushed.deliveries] == ["suppressed"] and loud.deliveries[0].status != "suppressed"
