"""Jira Cloud webhooks in (``kind: jira``), through the real HTTP server: real-shaped payloads
(tests/fixtures/jira) become the expected messages; forged, unauthenticated, duplicate, oversized
and malformed requests get the answers Jira needs (never 409 for a duplicate: Jira retries 409).

Tests through a hub run on SQLite and PostgreSQL; the others need no database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually
from sqlalchemy import select

from tidings import ConfigError
from tidings.config import parse_config
from tidings.integrations.base import Context
from tidings.integrations.jira import DEFAULT_PRIORITY_MAP, JiraReceiver, event_type_of
from tidings.integrations.jira.adf import adf_to_text, jira_text
from tidings.store.tables import events

FIXTURES = Path(__file__).parent.parent / "fixtures" / "jira"
TOKEN = "jira-token-" + "5f1c0e9a7b3d4c2e8a6f"
SECRET = "It's a Secret to Everybody, 2024"
SITE = "https://acme-dev.atlassian.net"
SUMMARY = "Checkout returns 502 after the payment provider timeout"
OPS_142 = [{"label": "OPS-142", "url": f"{SITE}/browse/OPS-142"}]
RETRY = {"base": 0.05, "cap": 0.1, "max_attempts": 2}


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def config(**integrations: dict[str, Any]) -> dict[str, Any]:
    base = {"jira": {"kind": "jira", "token": TOKEN, "max_body": "64KiB", "retry": RETRY}}
    return {"integrations": {**base, **integrations}}


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post(
    api: Any, body: bytes, *, hook: str = "jira", token: str | None = TOKEN, identifier: str | None = "new",
    headers: dict[str, str] | None = None,
) -> Any:
    """What Jira sends: JSON with its identifier header, the token in the query when there is one."""
    sent = {"content-type": "application/json; charset=UTF-8", "user-agent": "Atlassian Webhook HTTP Client"}
    if identifier is not None:
        sent["x-atlassian-webhook-identifier"] = os.urandom(8).hex() if identifier == "new" else identifier
    sent.update(headers or {})
    params = {"token": token} if token is not None else {}
    return await api.post(f"/hooks/{hook}", content=body, params=params, headers=sent, auth=False)


async def settled(api: Any, event_id: str, status: str = "processed") -> dict[str, Any]:
    async def done() -> bool:
        return (await api.hub.event(event_id))["status"] == status

    await eventually(done)
    event: dict[str, Any] = await api.hub.event(event_id)
    return event


async def emitted(api: Any, event_id: str) -> dict[str, Any]:
    """The message an event was processed into."""
    event = await settled(api, event_id)
    message: dict[str, Any] = await api.hub.message(event["result"]["message"])
    return message


async def inbox(hub: Any) -> list[dict[str, Any]]:
    return [i["message"] for i in reversed((await hub.inbox())["items"])]


async def rejected(api: Any, name: str) -> int:
    listed = (await api.get("/api/v1/integrations")).json()
    return int(next(i for i in listed if i["name"] == name)["inbound"]["rejected"])


def receiver(**settings: Any) -> JiraReceiver:
    parsed = parse_config({"integrations": {"jira": {"kind": "jira", "token": TOKEN, **settings}}})
    return JiraReceiver("jira", parsed.integrations["jira"], Context(None, None))  # type: ignore[arg-type]


BASE_FIELDS = [["Project", "Operations (OPS)"], ["Type", "Bug"]]
EXPECTED: dict[str, dict[str, Any]] = {
    "jira_issue_created": {
        "title": f"OPS-142 created: {SUMMARY}",
        "priority": "high",
        "fields": [*BASE_FIELDS, ["Status", "To Do"], ["Priority", "High"], ["Assignee", "Unassigned"],
                   ["Reporter", "Omar Haddad"], ["By", "Omar Haddad"]],
        "labels": {"source": "jira", "event_type": "jira.issue_created", "project": "OPS", "issue": "OPS-142",
                   "issue_type": "Bug", "status": "To Do", "status_category": "new", "priority": "High",
                   "issue_event": "issue_created"},
        "links": OPS_142,
        "dedup_key": "jira:OPS-142:created",
        "resolves": False,
    },
    "jira_issue_created__adf": {
        "title": "OPS-143 created: db-03 disk almost full",
        "priority": "high",
        "body": "Disk on db-03 is 91% full. @Maya Lindqvist can you look?\n\nPlan\n\n1. Rotate the WAL archive\n"
                "2. Grow the volume to 2 TB\n\ndf -h /var/lib/postgresql\n\n"
                "Dashboard: https://grafana.acme.example/d/db\nThanks 🙏",
        "links": [{"label": "OPS-143", "url": f"{SITE}/browse/OPS-143"}],
        "thread_key": "jira:OPS-143",
        "resolves": False,
    },
    "jira_issue_updated__status": {
        "title": f"OPS-142 In Progress → Done: {SUMMARY}",
        "body": "",
        "fields": [*BASE_FIELDS, ["Status", "Done"], ["Priority", "High"], ["Assignee", "Maya Lindqvist"],
                   ["Reporter", "Omar Haddad"], ["By", "Maya Lindqvist"], ["Resolution changed", "(none) → Done"],
                   ["Status changed", "In Progress → Done"]],
        "labels": {"source": "jira", "event_type": "jira.issue_updated", "project": "OPS", "issue": "OPS-142",
                   "issue_type": "Bug", "status": "Done", "status_category": "done", "priority": "High",
                   "issue_event": "issue_generic", "changed": "resolution,status"},
        "links": OPS_142,
        "dedup_key": "jira:OPS-142:changelog:11942",
        "resolves": True,
    },
    "jira_issue_updated__assignee": {
        "title": f"OPS-142 assigned to Maya Lindqvist: {SUMMARY}",
        "resolves": False,
        "labels_include": {"changed": "assignee", "issue_event": "issue_assigned", "status": "To Do"},
        "fields_include": [["Assignee changed", "(none) → Maya Lindqvist"], ["By", "Omar Haddad"]],
    },
    "jira_issue_updated__documented_example": {
        "title": "JRA-20002 updated: I feel the need for speed",
        "priority": "low",  # the bare string "Minor"
        "fields": [["Project", "JRA"], ["Priority", "Minor"], ["By", "Bryan Rollins [Atlassian]"],
                   ["Summary changed", "What is going on here????? → A new summary."],
                   ["Issuetype changed", "Improvement → New Feature"]],
        "links": [{"label": "JRA-20002", "url": "https://jira.atlassian.com/browse/JRA-20002"}],
        "thread_key": "jira:JRA-20002",
    },
    "jira_issue_deleted": {
        "title": f"OPS-142 deleted: {SUMMARY}",
        "links": [],
        "resolves": True,
        "dedup_key": "jira:OPS-142:deleted",
        "labels_include": {"event_type": "jira.issue_deleted"},
    },
    "comment_created": {
        "title": f"Comment on OPS-142: {SUMMARY}",
        "body": "Rolled back to *v2.31.4*; the 502s stopped at 15:20. Root cause: the provider's new 10s timeout.",
        "priority": "high",
        "fields": [*BASE_FIELDS, ["Status", "In Progress"], ["Priority", "High"], ["Assignee", "Maya Lindqvist"],
                   ["Comment by", "Maya Lindqvist"]],
        "links": [*OPS_142, {"label": "Comment", "url": f"{SITE}/browse/OPS-142?focusedCommentId=10231"}],
        "labels_include": {"event_type": "jira.comment_created", "issue": "OPS-142", "status": "In Progress"},
        "dedup_key": "jira:comment:10231:created:2024-11-05T15:48:37.020+0100",
        "thread_key": "jira:OPS-142",
        "resolves": False,
    },
    "comment_created__restricted": {
        "body": "(restricted comment, visible to Administrators)",
        "labels_include": {"restricted": "true"},
    },
    "comment_updated": {
        "title": f"Comment edited on OPS-142: {SUMMARY}",
        "body": "Rolled back to v2.31.4; the 502s stopped at 15:20.\n\n- root cause: the provider's new 10s timeout\n"
                "- follow-up: OPS-144",
        "fields_include": [["Comment by", "Omar Haddad"]],
        "labels_include": {"event_type": "jira.comment_updated"},
    },
}


# -- the handler table and the fixtures ----------------------------------------------------------
def test_every_handled_event_has_a_fixture_and_every_fixture_is_handled_or_ignored_on_purpose() -> None:
    r = receiver()
    seen: dict[str, str] = {}
    for path in sorted(FIXTURES.glob("*.json")):
        sent = json.loads(path.read_bytes())["webhookEvent"]
        assert path.stem.split("__")[0] == sent.replace(":", "_"), f"{path.name} is named after its event"
        event_type = event_type_of(sent)
        seen[event_type] = r.status_for(event_type)
        assert seen[event_type] in ("received", "ignored"), path.name
    missing = set(JiraReceiver.handlers) - set(seen)
    assert not missing, f"handled events without a fixture: {missing}"
    assert {e for e, s in seen.items() if s == "ignored"} >= {"jira.worklog_created", "jira.sprint_started",
                                                              "jira.comment_deleted", "jira.version_released"}
    assert set(EXPECTED) | {"jira_issue_updated__commented"} == {
        p.stem for p in FIXTURES.glob("*.json") if r.status_for(event_type_of(json.loads(p.read_bytes())["webhookEvent"])) == "received"
    }, "every handled fixture has its expected message below"


async def test_each_fixture_becomes_the_expected_message(make_api: Any) -> None:
    api = await make_api(config())
    ids = {}
    for name in EXPECTED:
        r = await post(api, fixture(name))
        assert r.status_code == 200, (name, r.text)
        assert r.json()["status"] == "received"
        ids[name] = r.json()["id"]
    for name, want in EXPECTED.items():
        m = await emitted(api, ids[name])
        for key in ("title", "body", "priority", "fields", "labels", "links", "thread_key", "dedup_key", "resolves"):
            if key in want:
                assert m[key] == want[key], (name, key)
        for label, value in want.get("labels_include", {}).items():
            assert m["labels"].get(label) == value, (name, label)
        for f in want.get("fields_include", []):
            assert f in m["fields"], (name, f)
        assert m["labels"]["source"] == "jira" and m["thread_key"] in ("jira:OPS-142", "jira:OPS-143", "jira:JRA-20002")
        assert "card numbers" not in json.dumps(m), "a restricted comment's text is never broadcast"
    stored = await api.hub.event(ids["jira_issue_created"])
    assert stored["headers"]["user-agent"] == "Atlassian Webhook HTTP Client" and "x-atlassian-webhook-identifier" in stored["headers"]

    async def all_delivered() -> bool:
        return len(await inbox(api.hub)) == len(EXPECTED)

    await eventually(all_delivered)


async def test_a_comment_and_the_issue_update_jira_sends_with_it_make_one_notification(make_api: Any) -> None:
    api = await make_api(config())
    first = (await post(api, fixture("comment_created"))).json()["id"]
    second = (await post(api, fixture("jira_issue_updated__commented"))).json()["id"]
    a, b = await emitted(api, first), await emitted(api, second)
    assert a["dedup_key"] == b["dedup_key"] == "jira:comment:10231:created:2024-11-05T15:48:37.020+0100"
    assert a["title"] == b["title"] == f"Comment on OPS-142: {SUMMARY}"
    assert b["labels"]["event_type"] == "jira.comment_created" and b["labels"]["issue_event"] == "issue_commented"

    async def settled_both() -> bool:
        states = [d["status"] for m in (a, b) for d in (await api.hub.message(m["id"]))["deliveries"]]
        return sorted(states) == ["delivered", "suppressed"]

    await eventually(settled_both)
    assert [m["title"] for m in await inbox(api.hub)] == [f"Comment on OPS-142: {SUMMARY}"]


# -- authentication ----------------------------------------------------------------------------------
async def test_forged_signatures_and_wrong_tokens_are_401_and_counted(make_api: Any) -> None:
    api = await make_api(config(
        signed={"kind": "jira", "secret": SECRET},
        both={"kind": "jira", "secret": SECRET, "token": TOKEN},
    ), dispatch=False)
    body = fixture("jira_issue_created")
    cases: list[tuple[str, dict[str, Any]]] = [
        ("jira", {"token": None}),
        ("jira", {"token": ""}),
        ("jira", {"token": TOKEN[:-1] + "x"}),
        ("jira", {"token": TOKEN.upper()}),
        ("signed", {"token": None}),  # no X-Hub-Signature at all
        ("signed", {"token": None, "headers": {"x-hub-signature": sign(body, "another secret")}}),
        ("signed", {"token": None, "headers": {"x-hub-signature": sign(body + b" ")}}),
        ("signed", {"token": None, "headers": {"x-hub-signature": sign(body).replace("sha256=", "sha1=")}}),
        ("signed", {"token": None, "headers": {"x-hub-signature": "sha256="}}),
        ("signed", {"token": None, "headers": {"x-hub-signature": "garbage"}}),
        ("both", {"token": None, "headers": {"x-hub-signature": sign(body)}}),  # right signature, no token
        ("both", {"token": TOKEN}),  # right token, no signature
    ]
    for hook, kw in cases:
        r = await post(api, body, hook=hook, **kw)
        assert r.status_code == 401, (hook, kw, r.text)
        assert r.json()["error"] == "rejected" and r.json()["detail"]
        assert TOKEN not in r.text and SECRET not in r.text
    assert [await rejected(api, n) for n in ("jira", "signed", "both")] == [4, 6, 2]
    metrics = (await api.get("/metrics")).text
    assert 'tidings_inbound_requests_total{integration="signed",result="rejected"} 6.0' in metrics
    async with api.hub.store.read() as conn:
        assert (await conn.execute(select(events))).all() == [], "nothing refused is stored"
    ok = [
        await post(api, body, hook="jira"),
        await post(api, body, hook="signed", token=None, headers={"x-hub-signature": sign(body)}),
        await post(api, body, hook="signed", token=None, headers={"x-hub-signature": sign(body).upper().replace("SHA256", "sha256")}),
        await post(api, body, hook="both", headers={"x-hub-signature": sign(body)}),
    ]
    assert [r.status_code for r in ok] == [200, 200, 200, 200], [r.text for r in ok]


# -- duplicates, limits, malformed and unknown events ------------------------------------------------
async def test_a_retried_delivery_is_answered_200_and_processed_once(make_api: Any) -> None:
    api = await make_api(config())
    body = fixture("jira_issue_updated__status")
    first = await post(api, body, identifier="a1b2c3d4-0001")
    again = await post(api, body, identifier="a1b2c3d4-0001", headers={"x-atlassian-webhook-retry": "1"})
    assert first.status_code == again.status_code == 200, "never 409: Jira would retry it"
    assert again.json() == {"id": first.json()["id"], "status": "duplicate"}
    # Without an identifier, the same bytes are the same delivery.
    other = fixture("jira_issue_created")
    one = await post(api, other, identifier=None)
    two = await post(api, other, identifier=None)
    assert two.status_code == 200 and two.json() == {"id": one.json()["id"], "status": "duplicate"}
    await settled(api, first.json()["id"])
    await settled(api, one.json()["id"])

    async def two_delivered() -> bool:
        return len(await inbox(api.hub)) == 2

    await eventually(two_delivered)
    assert sorted(m["title"].split(":")[0] for m in await inbox(api.hub)) == ["OPS-142 In Progress → Done", "OPS-142 created"]
    page = (await api.get("/api/v1/events", params={"integration": "jira"})).json()
    assert len(page["items"]) == 2


async def test_limits_content_type_and_malformed_bodies(make_api: Any) -> None:
    api = await make_api(config(), dispatch=False)
    big = json.dumps({"webhookEvent": "jira:issue_created", "issue": {"key": "OPS-1", "fields": {"description": "x" * 70_000}}}).encode()
    r = await post(api, big)
    assert r.status_code == 413 and r.json()["error"] == "payload too large"
    r = await post(api, fixture("jira_issue_created"), headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = await post(api, b'{"webhookEvent": "jira:issue_created", ')
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"]
    for body in (b"[]", b'{"issue": {}}', b'{"webhookEvent": 7}'):
        r = await post(api, body)
        assert r.status_code == 400 and r.json()["detail"] == "not a Jira webhook: no webhookEvent", body
    r = await post(api, b"{", token=None)
    assert r.status_code == 401, "authentication comes before parsing"
    async with api.hub.store.read() as conn:
        assert (await conn.execute(select(events))).all() == []


async def test_ignored_unknown_quiet_and_broken_events(make_api: Any) -> None:
    api = await make_api(config())
    for name in ("worklog_created", "sprint_started", "comment_deleted", "jira_version_released"):
        r = await post(api, fixture(name))
        assert r.status_code == 200 and r.json()["status"] == "ignored", name
        assert (await api.hub.event(r.json()["id"]))["status"] == "ignored"
    unknown = await post(api, json.dumps({"timestamp": 1730905301870, "webhookEvent": "jira:issue_teleported"}).encode())
    assert unknown.status_code == 200 and unknown.json()["status"] == "unsupported"
    stored = await api.hub.event(unknown.json()["id"])
    assert (stored["status"], stored["event_type"]) == ("unsupported", "jira.issue_teleported")
    ranked = json.loads(fixture("jira_issue_updated__assignee"))
    ranked["changelog"]["items"] = [{"field": "Rank", "fieldtype": "custom", "fieldId": "customfield_10019", "from": "",
                                     "fromString": "", "to": "", "toString": "Ranked higher"}]
    quiet = await settled(api, (await post(api, json.dumps(ranked).encode())).json()["id"])
    assert quiet["result"] == {"skipped": "only Rank changed", "issue": "OPS-142"}
    broken = (await post(api, b'{"webhookEvent": "jira:issue_created", "timestamp": 1}')).json()["id"]
    failed = await settled(api, broken, "failed")
    assert failed["attempts"] == 1 and "no issue in the payload" in failed["last_error"], "bad content fails at once"
    assert await inbox(api.hub) == []
    listed = next(i for i in (await api.get("/api/v1/integrations")).json() if i["name"] == "jira")
    assert listed["inbound"]["ignored"] == 4 and listed["inbound"]["unsupported"] == 1


# -- settings and text, without a server ----------------------------------------------------------------
def test_settings_need_a_secret_or_a_long_token_and_cannot_be_a_target() -> None:
    with pytest.raises(ConfigError, match="set secret .* or token"):
        parse_config({"integrations": {"j": {"kind": "jira"}}})
    with pytest.raises(ConfigError, match="at least 16"):
        parse_config({"integrations": {"j": {"kind": "jira", "token": "short"}}})
    with pytest.raises(ConfigError, match="URL-safe"):
        parse_config({"integrations": {"j": {"kind": "jira", "token": "a token with spaces in it"}}})
    with pytest.raises(ConfigError, match="unknown priority|Input should be"):
        parse_config({"integrations": {"j": {"kind": "jira", "token": TOKEN, "priority_map": {"High": "urgent"}}}})
    with pytest.raises(ConfigError, match="only receives"):
        parse_config({**config(), "routes": [{"to": ["jira"]}]})
    parsed = parse_config({"integrations": {"j": {"kind": "jira", "secret": SECRET, "token": TOKEN}}})
    assert set(parsed.integrations["j"].secret_values()) == {SECRET, TOKEN}, "both are masked in logs and errors"
    assert parse_config({"integrations": {"j": {"kind": "jira", "token": "${vault:jira-token}"}}}).integrations["j"].vault_refs() == {"token": "jira-token"}


def test_priorities_map_from_jira_names_and_can_be_overridden() -> None:
    payload = json.loads(fixture("jira_issue_created"))
    from tidings.integrations.jira import _Issue

    def priority(r: JiraReceiver, name: Any) -> str:
        payload["issue"]["fields"]["priority"] = name
        return _Issue(payload, r.settings).priority.value

    default = receiver()
    assert {n: priority(default, {"name": n.title()}) for n in DEFAULT_PRIORITY_MAP} == {
        "highest": "high", "blocker": "high", "critical": "high", "high": "high", "major": "medium",
        "medium": "medium", "low": "low", "minor": "low", "lowest": "low", "trivial": "low",
    }
    assert priority(default, None) == "medium" and priority(default, {"name": "P0 (custom)"}) == "medium"
    custom = receiver(priority_map={"Highest": "critical", "P0 (custom)": "critical"}, default_priority="low")
    assert priority(custom, {"name": "highest"}) == "critical" and priority(custom, "P0 (custom)") == "critical"
    assert priority(custom, {"name": "High"}) == "high" and priority(custom, None) == "low"


def test_links_come_from_issue_self_or_base_url() -> None:
    from tidings.integrations.jira import _Issue

    payload = json.loads(fixture("comment_created"))
    assert _Issue(payload, receiver().settings).browse_url == f"{SITE}/browse/OPS-142"
    payload["issue"]["self"] = "https://jira.example.org/jira/rest/api/2/issue/10482"
    assert _Issue(payload, receiver().settings).browse_url == "https://jira.example.org/jira/browse/OPS-142", "context path kept"
    assert _Issue(payload, receiver(base_url="https://tickets.example.org/").settings).browse_url == "https://tickets.example.org/browse/OPS-142"
    payload["issue"]["self"] = "javascript:alert(1)"
    assert _Issue(payload, receiver().settings).browse_url is None


def test_event_types() -> None:
    assert event_type_of("jira:issue_updated") == "jira.issue_updated"
    assert event_type_of("comment_created") == "jira.comment_created"
    assert event_type_of("jira:version_released") == "jira.version_released"
    assert event_type_of("Weird Event!") == "jira.weird_event"
    r = receiver()
    assert [r.status_for(e) for e in ("jira.issue_created", "jira.board_configuration_changed", "jira.issue_property_set",
                                      "jira.attachment_created", "jira.issuelink_deleted", "jira.user_created",
                                      "jira.project_created", "jira.filter_updated", "jira.app_installed")] == [
        "received", "ignored", "ignored", "ignored", "ignored", "ignored", "ignored", "ignored", "unsupported"]


def test_adf_and_wiki_markup_as_plain_text() -> None:
    doc = {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "Hello "},
                                          {"type": "mention", "attrs": {"id": "1", "text": "Ana"}},
                                          {"type": "status", "attrs": {"text": "BLOCKED", "color": "red"}}]},
        {"type": "blockquote", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "quoted"}]}]},
        {"type": "bulletList", "content": [{"type": "listItem", "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "outer"}]},
            {"type": "bulletList", "content": [{"type": "listItem", "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "inner"}]}]}]}]}]},
        {"type": "taskList", "content": [{"type": "taskItem", "attrs": {"state": "DONE"}, "content": [{"type": "text", "text": "shipped"}]}]},
        {"type": "table", "content": [{"type": "tableRow", "content": [
            {"type": "tableHeader", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "host"}]}]},
            {"type": "tableCell", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "db-03"}]}]}]}]},
        {"type": "rule"},
        {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "x", "type": "file"}}]},
        {"type": "someFutureNode", "content": [{"type": "text", "text": "still read"}]},
        {"type": "paragraph", "content": [{"type": "text"}, 42, {"type": "date", "attrs": {"timestamp": "1730764800000"}}]},
    ]}
    assert adf_to_text(doc) == (
        "Hello @Ana[BLOCKED]\n\n> quoted\n\n- outer\n  - inner\n\n[x] shipped\n\nhost | db-03\n\n---\n\n"
        "[attachment]\n\nstill read\n\n1730764800000"
    )
    assert jira_text("h1. Title\n*bold* {code}x{code}") == "h1. Title\n*bold* {code}x{code}", "wiki markup is kept"
    assert jira_text(json.dumps(doc)) == adf_to_text(doc), "ADF sent as a JSON string"
    assert jira_text(None) == "" and jira_text({"type": "doc"}) == "" and jira_text("{not json") == "{not json"
    deep: dict[str, Any] = {"type": "paragraph", "content": [{"type": "text", "text": "bottom"}]}
    for _ in range(500):
        deep = {"type": "blockquote", "content": [deep]}
    assert isinstance(adf_to_text({"type": "doc", "content": [deep]}), str), "depth is bounded"
