"""Prometheus Alertmanager webhooks in (``kind: alertmanager``), through the real HTTP server:
notifications shaped after Alertmanager's documented webhook payload v4 (tests/fixtures/alertmanager)
become one message per alert; unauthenticated, malformed, oversized and retried requests get the
answers Alertmanager needs; a resolved alert updates its Slack message in place and replies in its
thread (against the fake Slack of tests/fake_slack.py); a storm folds into one digest.

Tests through a hub run on SQLite and PostgreSQL; the others need no database.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fake_slack import FakeSlack
from helpers import eventually
from sqlalchemy import select, update

from tidings import ConfigError, Message
from tidings.config import parse_config
from tidings.integrations.alertmanager import AlertmanagerReceiver, delivery_key, fingerprint
from tidings.integrations.base import Context
from tidings.integrations.receiver import InboundEvent, InboundRequest, Rejected
from tidings.store.tables import events

FIXTURES = Path(__file__).parent.parent / "fixtures" / "alertmanager"
BEARER = "am-bearer-" + "9c4e1b7a2f6d3e8c5a0b"
USER = "alertmanager"
PASSWORD = "pa:ss word/with=odd chars"  # a colon in the password: only the first one separates
RETRY = {"base": 0.05, "cap": 0.1, "max_attempts": 2}
AM = "https://alertmanager.acme.example"
DISK, CRASH, CPU = "3f2a1c9be0d47a18", "9b1e44c07a2d5f61", "c04d7e5a913b2f88"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_bytes())
    return data


def raw(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def config(others: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    """The receiver ``am`` (bearer), with ``settings`` over its own and ``others`` integrations beside it."""
    am = {"kind": "alertmanager", "bearer": BEARER, "max_body": "64KiB", "retry": RETRY, **settings}
    return {"integrations": {"am": am, **(others or {})}}


async def post(api: Any, body: bytes | dict[str, Any], *, hook: str = "am", auth: str | None = f"Bearer {BEARER}",
               headers: dict[str, str] | None = None) -> Any:
    """What Alertmanager's webhook notifier sends: JSON, its User-Agent, the http_config's Authorization."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"content-type": "application/json", "user-agent": "Alertmanager/0.27.0"}
    if auth is not None:
        sent["authorization"] = auth
    sent.update(headers or {})
    return await api.post(f"/hooks/{hook}", content=data, headers=sent, auth=False)


async def settled(api: Any, event_id: str, status: str = "processed") -> dict[str, Any]:
    async def done() -> bool:
        return (await api.hub.event(event_id))["status"] == status

    await eventually(done)
    event: dict[str, Any] = await api.hub.event(event_id)
    return event


async def deliver(api: Any, body: bytes | dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Post one notification; the processed event and the messages it made, in order."""
    r = await post(api, body, **kwargs)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "received", r.text
    stored = await settled(api, r.json()["id"])
    return stored, [await api.hub.message(m) for m in stored["result"]["messages"]]


async def inbox_titles(hub: Any) -> list[str]:
    return [i["message"]["title"] for i in reversed((await hub.inbox(limit=500))["items"])]


async def rejected(api: Any, name: str) -> int:
    listed = (await api.get("/api/v1/integrations")).json()
    return int(next(i for i in listed if i["name"] == name)["inbound"]["rejected"])


def receiver(**settings: Any) -> AlertmanagerReceiver:
    parsed = parse_config({"integrations": {"am": {"kind": "alertmanager", "bearer": BEARER, **settings}}})
    return AlertmanagerReceiver("am", parsed.integrations["am"], Context(None, None))  # type: ignore[arg-type]


def message_of(alert: dict[str, Any], payload: dict[str, Any] | None = None, **settings: Any) -> Message:
    m, _ = receiver(**settings).alert_message(payload or load("firing"), alert)
    return m


def silence_filter(url: str) -> str:
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "alertmanager.acme.example", "/")
    route, _, query = parts.fragment.partition("?")
    assert route == "/silences/new"
    (value,) = parse_qs(query)["filter"]
    return value


# -- the fixtures ------------------------------------------------------------------------------------
def test_the_fixtures_are_webhook_payloads_version_4() -> None:
    documented = ["version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
                  "commonAnnotations", "externalURL", "alerts"]
    alert_keys = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    statuses = {}
    for name in ("firing", "resolved", "mixed"):
        payload = load(name)
        assert sorted(payload) == sorted(documented), name
        assert payload["version"] == "4" and payload["receiver"] == "tidings"
        assert [set(a) for a in payload["alerts"]] == [alert_keys] * 3, name
        assert [a["fingerprint"] for a in payload["alerts"]] == [DISK, CRASH, CPU]
        for a in payload["alerts"]:
            assert (a["endsAt"] == "0001-01-01T00:00:00Z") == (a["status"] == "firing"), (name, a["fingerprint"])
        statuses[name] = (payload["status"], [a["status"] for a in payload["alerts"]])
        assert b"\\u0026" in raw(name), "serialized like Go's encoding/json"
    assert statuses == {
        "firing": ("firing", ["firing"] * 3),
        "resolved": ("resolved", ["resolved"] * 3),
        "mixed": ("firing", ["firing", "resolved", "firing"]),
    }
    assert AlertmanagerReceiver.handlers.keys() == {"alert.firing", "alert.resolved"}


# -- messages ----------------------------------------------------------------------------------------
async def test_each_firing_alert_becomes_one_message(make_api: Any) -> None:
    api = await make_api(config())
    stored, (disk, crash, cpu) = await deliver(api, raw("firing"))
    assert stored["event_type"] == "alert.firing" and stored["kind"] == "alertmanager"
    assert stored["headers"] == {"user-agent": "Alertmanager/0.27.0"}, "never the Authorization header"
    assert stored["delivery_key"] == delivery_key(load("firing")) and stored["delivery_key"].startswith("am:")
    assert len(stored["result"]["messages"]) == 3 and "truncated_alerts" not in stored["result"]

    assert disk["title"] == "Filesystem has less than 5% space left."
    assert disk["body"] == ("Filesystem on /dev/nvme1n1, mounted on /var/lib/postgresql, at db-03:9100 has only "
                            "4.12% available space left.")
    assert disk["priority"] == "critical" and crash["priority"] == "high" and cpu["priority"] == "info"
    assert disk["fields"] == [
        ["alertname", "NodeFilesystemAlmostOutOfSpace"], ["cluster", "prod-eu-1"], ["device", "/dev/nvme1n1"],
        ["fstype", "ext4"], ["instance", "db-03:9100"], ["job", "node-exporter"],
        ["mountpoint", "/var/lib/postgresql"], ["prometheus", "monitoring/k8s"], ["severity", "critical"],
        ["team", "platform"], ["Started", "2024-11-05 13:58:26 UTC"],
    ]
    assert disk["labels"] == {
        "source": "alertmanager", "event_type": "alert.firing", "alertname": "NodeFilesystemAlmostOutOfSpace",
        "severity": "critical", "cluster": "prod-eu-1", "device": "/dev/nvme1n1", "fstype": "ext4",
        "instance": "db-03:9100", "job": "node-exporter", "mountpoint": "/var/lib/postgresql",
        "prometheus": "monitoring/k8s", "team": "platform",
    }
    source, runbook, silence = disk["links"]
    assert source["label"] == "Source" and source["url"] == load("firing")["alerts"][0]["generatorURL"]
    assert "\\u0026" not in source["url"] and source["url"].endswith("%29&g0.tab=1")
    assert runbook == {"label": "Runbook",
                       "url": "https://runbooks.prometheus-operator.dev/runbooks/node/nodefilesystemalmostoutofspace"}
    assert silence["label"] == "Silence"
    assert silence_filter(silence["url"]) == (
        '{alertname="NodeFilesystemAlmostOutOfSpace",cluster="prod-eu-1",device="/dev/nvme1n1",fstype="ext4",'
        'instance="db-03:9100",job="node-exporter",mountpoint="/var/lib/postgresql",prometheus="monitoring/k8s",'
        'severity="critical",team="platform"}'
    )
    assert disk["thread_key"] == f"alertmanager:{DISK}" and crash["thread_key"] == f"alertmanager:{CRASH}"
    assert disk["dedup_key"] == f"alertmanager:{DISK}:firing:2024-11-05T13:58:26.739Z"
    assert not disk["resolves"] and disk["format"] == "plain"
    assert crash["title"] == "Pod is crash looping." and crash["body"].endswith('(reason: "CrashLoopBackOff").')
    assert crash["labels"]["namespace"] == "checkout" and crash["labels"]["uid"].startswith("6c1f1f7e")
    assert cpu["title"] == "Processes experience elevated CPU throttling."
    assert ["Started", "2024-11-05 14:05:41 UTC"] in cpu["fields"]

    async def delivered() -> bool:
        return len(await inbox_titles(api.hub)) == 3

    await eventually(delivered)


async def test_resolved_alerts_resolve_their_threads(make_api: Any) -> None:
    api = await make_api(config())
    stored, (disk, crash, cpu) = await deliver(api, raw("resolved"))
    assert stored["event_type"] == "alert.resolved"
    assert disk["title"] == "[RESOLVED] Filesystem has less than 5% space left."
    assert disk["resolves"] and crash["resolves"] and cpu["resolves"]
    assert disk["priority"] == "critical", "the severity label still decides, so routes on priority see it resolve"
    assert disk["labels"]["event_type"] == "alert.resolved"
    assert disk["fields"][-2:] == [["Started", "2024-11-05 13:58:26 UTC"], ["Ended", "2024-11-05 14:41:26 UTC"]]
    assert [link["label"] for link in disk["links"]] == ["Source", "Runbook"], "nothing left to silence"
    assert disk["thread_key"] == f"alertmanager:{DISK}", "the same thread as the firing alert"
    assert disk["dedup_key"] == f"alertmanager:{DISK}:resolved:2024-11-05T13:58:26.739Z"


def test_title_body_and_fields_fall_back_and_stay_valid() -> None:
    base = load("firing")["alerts"][0]
    no_summary = copy.deepcopy(base)
    del no_summary["annotations"]["summary"]
    assert message_of(no_summary).title == "NodeFilesystemAlmostOutOfSpace"
    blank = copy.deepcopy(base)
    blank["annotations"]["summary"] = "   "
    assert message_of(blank).title == "NodeFilesystemAlmostOutOfSpace", "a blank summary is no title"
    resolved_blank = {**blank, "status": "resolved"}
    assert message_of(resolved_blank).title == "[RESOLVED] NodeFilesystemAlmostOutOfSpace"
    message = {"labels": {"alertname": "Legacy"}, "annotations": {"message": "old-style mixin text"}}
    assert message_of(message).body == "old-style mixin text", "kube-prometheus' older 'message' annotation"
    bare = message_of({})
    assert bare.title == "alert" and bare.body == "" and bare.fields == () and bare.links == ()
    assert bare.priority == "medium" and bare.labels == {"source": "alertmanager", "event_type": "alert.firing"}
    assert bare.thread_key is not None and bare.thread_key.startswith("alertmanager:l"), "a fingerprint from labels"
    extra = copy.deepcopy(base)
    extra["annotations"]["dashboard"] = "https://grafana.acme.example/d/node"
    assert ["dashboard", "https://grafana.acme.example/d/node"] in [list(f) for f in message_of(extra).fields]
    assert "summary" not in message_of(extra).field_map() and "runbook_url" not in message_of(extra).field_map()


def test_priorities_follow_the_severity_label_and_the_settings() -> None:
    def priority(severity: str | None, **settings: Any) -> str:
        labels = {"alertname": "A"} if severity is None else {"alertname": "A", "severity": severity}
        return message_of({"labels": labels}, **settings).priority.value

    defaults = {s: priority(s) for s in ("critical", "error", "warning", "info", "none", "high", "medium", "low",
                                         "page", "", None)}
    assert defaults == {"critical": "critical", "error": "high", "warning": "high", "info": "info", "none": "info",
                        "high": "high", "medium": "medium", "low": "low", "page": "medium", "": "medium",
                        None: "medium"}
    assert priority(" Critical ") == "critical" and priority("WARNING") == "high", "case and spaces don't matter"
    custom = {"severity_map": {"Page": "critical", "warning": "low"}, "default_priority": "low"}
    assert priority("page", **custom) == "critical" and priority("PAGE", **custom) == "critical"
    assert priority("warning", **custom) == "low", "the map wins over the defaults"
    assert priority("critical", **custom) == "critical" and priority(None, **custom) == "low"
    assert priority("unknown", **custom) == "low"
    level = message_of({"labels": {"alertname": "A", "level": "critical", "severity": "info"}},
                       severity_label="level")
    assert level.priority.value == "critical"


def test_odd_labels_stay_visible_and_never_break_the_message() -> None:
    alert = copy.deepcopy(load("firing")["alerts"][1])
    alert["labels"].update({
        "source": "kube-state-metrics",  # one of tidings' own labels
        "app.kubernetes.io/name": "checkout",  # not a valid label name here
        "long": "x" * 600,
        "count": 3,
        "flag": True,
        "nested": {"a": 1},
    })
    r = receiver()
    m, report = r.alert_message(load("firing"), alert)
    assert m.labels["source"] == "alertmanager" and m.labels["event_type"] == "alert.firing"
    assert "app.kubernetes.io/name" not in m.labels and m.labels["long"] == "x" * 499 + "…"
    assert m.labels["count"] == "3" and m.labels["flag"] == "true" and "nested" not in m.labels
    fields = m.field_map()
    assert fields["source"] == "kube-state-metrics" and fields["app.kubernetes.io/name"] == "checkout"
    assert report == {"dropped": ["app.kubernetes.io/name", "source"], "clipped": ["long"]}
    many = {"alertname": "Wide", **{f"l{i:02d}": str(i) for i in range(60)}}
    wide, report = r.alert_message(load("firing"), {"labels": many})
    assert len(wide.labels) == 50 and len(report["dropped"]) == 60 - 47 and len(wide.fields) == 50
    for url in ("javascript:alert(1)", "http://[::1", "https://exa mple.org", "ftp://x.example/a", "x" * 3000):
        odd = {"labels": {"alertname": "A"}, "generatorURL": url, "annotations": {"runbook_url": url}}
        assert message_of(odd, {**load("firing"), "externalURL": url}).links == (), url
    bad_types = {"labels": ["not", "a", "map"], "annotations": "text", "status": 7, "startsAt": None,
                 "fingerprint": ""}
    assert message_of(bad_types).title == "alert"
    long_title = message_of({"labels": {"alertname": "A"}, "annotations": {"summary": "s" * 900}}).title
    assert len(long_title) == 500 and long_title.endswith("…")


async def test_truncated_alerts_are_counted_in_one_more_message(make_api: Any) -> None:
    api = await make_api(config())
    payload = load("firing")
    payload["alerts"] = payload["alerts"][1:]  # the critical one is among those not shown
    payload["truncatedAlerts"] = 1234
    stored, (crash, cpu, more) = await deliver(api, payload)
    assert stored["result"]["truncated_alerts"] == 1234
    assert more["title"] == "1,234 more alerts not shown (cluster=prod-eu-1)"
    assert "max_alerts" in more["body"]
    assert more["priority"] == "high", "as urgent as the most urgent alert shown"
    assert more["labels"] == {"source": "alertmanager", "event_type": "alert.truncated", "cluster": "prod-eu-1"}
    assert more["links"] == [{"label": "Alertmanager", "url": AM}]
    assert crash["title"] == "Pod is crash looping." and cpu["priority"] == "info"
    payload = load("firing")
    payload["truncatedAlerts"] = 1
    _, made = await deliver(api, payload)
    assert made[-1]["title"] == "1 more alert not shown (cluster=prod-eu-1)"
    for quiet in (0, None, "12", True, -3):
        payload = load("firing")
        payload["truncatedAlerts"] = quiet
        payload["groupKey"] += f":{quiet!r}"  # another notification
        stored, made = await deliver(api, payload)
        assert len(made) == 3 and "truncated_alerts" not in stored["result"], quiet


# -- authentication -------------------------------------------------------------------------------------
async def test_bearer_and_basic_authentication_are_accepted(make_api: Any) -> None:
    api = await make_api(config({
        "basic": {"kind": "alertmanager", "username": USER, "password": PASSWORD},
        "both": {"kind": "alertmanager", "bearer": BEARER, "username": USER, "password": PASSWORD},
    }), dispatch=False)
    body = raw("firing")
    ok = [
        await post(api, body),
        await post(api, body, auth=f"bearer  {BEARER}"),  # the scheme is case-insensitive
        await post(api, body, hook="basic", auth=basic(USER, PASSWORD)),
        await post(api, body, hook="both", auth=basic(USER, PASSWORD)),
        await post(api, body, hook="both", auth=f"Bearer {BEARER}"),
    ]
    assert [r.status_code for r in ok] == [200] * 5, [r.text for r in ok]
    assert [r.json()["status"] for r in ok] == ["received", "duplicate", "received", "received", "duplicate"]


async def test_missing_wrong_and_malformed_credentials_are_401_and_counted(make_api: Any) -> None:
    api = await make_api(config({"basic": {"kind": "alertmanager", "username": USER, "password": PASSWORD}}),
                         dispatch=False)
    body = raw("firing")
    cases: list[tuple[str, str | None, str]] = [
        ("am", None, "missing Authorization"),
        ("am", "", "missing Authorization"),
        ("am", "Bearer", "wrong bearer token"),
        ("am", f"Bearer {BEARER[:-1]}x", "wrong bearer token"),
        ("am", f"Bearer {BEARER.upper()}", "wrong bearer token"),
        ("am", f"Bearer {BEARER}extra", "wrong bearer token"),
        ("am", BEARER, "expected Authorization: Bearer"),
        ("am", f"Token {BEARER}", "expected Authorization: Bearer"),
        ("am", basic(USER, PASSWORD), "expected Authorization: Bearer"),
        ("basic", f"Bearer {BEARER}", "expected Authorization: Basic"),
        ("basic", basic(USER, "wrong"), "wrong username or password"),
        ("basic", basic("someone", PASSWORD), "wrong username or password"),
        ("basic", basic(USER, PASSWORD.split(":")[0]), "wrong username or password"),
        ("basic", "Basic " + base64.b64encode(USER.encode()).decode(), "wrong username or password"),
        ("basic", "Basic !!!not-base64!!!", "malformed Basic credentials"),
        ("basic", "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "malformed Basic credentials"),
        ("basic", "Basic", "wrong username or password"),
    ]
    for hook, auth, reason in cases:
        r = await post(api, body, hook=hook, auth=auth)
        assert r.status_code == 401, (hook, auth, r.text)
        assert r.json()["error"] == "rejected" and reason in r.json()["detail"], (hook, auth, r.text)
        assert BEARER not in r.text and PASSWORD not in r.text
    assert [await rejected(api, n) for n in ("am", "basic")] == [9, 8]
    metrics = (await api.get("/metrics")).text
    assert 'tidings_inbound_requests_total{integration="am",result="rejected"} 9.0' in metrics
    assert 'tidings_inbound_requests_total{integration="basic",result="rejected"} 8.0' in metrics
    async with api.hub.store.read() as conn:
        assert (await conn.execute(select(events))).all() == [], "nothing refused is stored"
    r = await post(api, b"{not json", auth=None)
    assert r.status_code == 401, "authentication comes before parsing"


# -- malformed, oversized, wrong versions --------------------------------------------------------------
async def test_versions_limits_content_type_and_malformed_bodies(make_api: Any) -> None:
    api = await make_api(config(), dispatch=False)
    v3 = load("firing")
    v3["version"] = "3"
    r = await post(api, v3)
    assert r.status_code == 400 and r.json()["error"] == "malformed"
    assert "version '3'" in r.json()["detail"] and 'version "4"' in r.json()["detail"]
    for version in (4, None, "4.0", ""):
        payload = {**load("firing"), "version": version}
        r = await post(api, payload)
        assert r.status_code == 400 and "version" in r.json()["detail"], version
    unversioned = {k: v for k, v in load("firing").items() if k != "version"}
    assert (await post(api, unversioned)).status_code == 400
    r = await post(api, raw("firing")[:-20])
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"]
    r = await post(api, b"")
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"], "no input is a 400, never a 500"
    r = await post(api, b"", headers={"content-length": "0"})
    assert r.status_code == 400
    r = await post(api, b"\xff\xfe" + raw("firing"))
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"], "not UTF-8"
    for body, detail in ((b"[]", "expected a JSON object"), (b'"4"', "expected a JSON object"),
                         (b"null", "expected a JSON object"),
                         (json.dumps({**load("firing"), "alerts": None}).encode(), "alerts must be a list"),
                         (json.dumps({**load("firing"), "alerts": {"a": 1}}).encode(), "alerts must be a list"),
                         (json.dumps({**load("firing"), "status": "pending"}).encode(), "status must be"),
                         (json.dumps({k: v for k, v in load("firing").items() if k != "status"}).encode(),
                          "status must be")):
        r = await post(api, body)
        assert r.status_code == 400 and detail in r.json()["detail"], (body[:40], r.text)
    r = await post(api, raw("firing"), headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"]
    r = await post(api, raw("firing"), headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    big = load("firing")
    big["alerts"][0]["annotations"]["description"] = "x" * 70_000
    r = await post(api, big)
    assert r.status_code == 413 and r.json()["error"] == "payload too large"
    metrics = (await api.get("/metrics")).text
    assert 'tidings_inbound_requests_total{integration="am",result="too_large"} 1.0' in metrics
    assert 'tidings_inbound_requests_total{integration="am",result="unsupported_media_type"} 2.0' in metrics
    assert 'tidings_inbound_requests_total{integration="am",result="malformed"} 17.0' in metrics
    async with api.hub.store.read() as conn:
        assert (await conn.execute(select(events))).all() == [], "nothing refused is stored"
    assert (await post(api, raw("firing"))).status_code == 200


# -- duplicates and redeliveries ------------------------------------------------------------------------
async def test_a_retried_notification_is_processed_once_and_a_changed_group_is_new(make_api: Any) -> None:
    api = await make_api(config())
    first = await post(api, raw("firing"))
    again = await post(api, raw("firing"))
    assert first.status_code == again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "status": "duplicate"}
    reordered = load("firing")
    reordered["alerts"].reverse()
    r = await post(api, json.dumps(reordered, indent=1).encode())
    assert r.json() == {"id": first.json()["id"], "status": "duplicate"}, "the same group, whatever the bytes"
    await settled(api, first.json()["id"])

    async def count(n: int) -> None:
        async def arrived() -> bool:
            return len(await inbox_titles(api.hub)) == n

        await eventually(arrived)

    await count(3)
    # One alert of the group resolved: a new notification, and only the change is news.
    stored, made = await deliver(api, raw("mixed"))
    assert stored["id"] != first.json()["id"] and len(made) == 3
    assert [m["resolves"] for m in made] == [False, True, False]

    async def decided() -> bool:
        states = [(await api.hub.message(m["id"]))["deliveries"][0]["status"] for m in made]
        return states == ["suppressed", "delivered", "suppressed"]

    await eventually(decided)
    await count(4)
    assert (await inbox_titles(api.hub))[-1] == "[RESOLVED] Pod is crash looping."
    # Then the whole group resolved: the two others are news, the one already resolved is not.
    _, made = await deliver(api, raw("resolved"))
    await count(6)
    assert sorted((await inbox_titles(api.hub))[4:]) == [
        "[RESOLVED] Filesystem has less than 5% space left.", "[RESOLVED] Processes experience elevated CPU throttling."]
    # The same alert firing again later (a new start) is news again.
    refired = load("firing")
    refired["alerts"][0]["startsAt"] = "2024-11-05T16:00:26.739Z"
    _, made = await deliver(api, refired)
    assert made[0]["dedup_key"] == f"alertmanager:{DISK}:firing:2024-11-05T16:00:26.739Z"
    await count(7)
    page = (await api.get("/api/v1/events", params={"integration": "am"})).json()
    assert len(page["items"]) == 4 and {e["status"] for e in page["items"]} == {"processed"}


async def test_a_redelivery_of_a_failed_notification_is_processed_again(make_api: Any) -> None:
    api = await make_api(config())
    r = api.hub.receivers["am"]
    real = type(r).process
    calls = 0

    async def flaky(self: Any, event: Any, hub: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionError("database briefly away")
        return await real(self, event, hub)

    r.process = flaky.__get__(r)
    first = (await post(api, raw("firing"))).json()
    failed = await settled(api, first["id"], "failed")
    assert failed["attempts"] == 2 and "ConnectionError: database briefly away" in failed["last_error"]
    assert await inbox_titles(api.hub) == []
    again = await post(api, raw("firing"))  # Alertmanager's next attempt
    assert again.status_code == 200 and again.json() == {"id": first["id"], "status": "received"}
    done = await settled(api, first["id"])
    assert len(done["result"]["messages"]) == 3 and calls == 3

    async def three() -> bool:
        return len(await inbox_titles(api.hub)) == 3

    await eventually(three)
    # Replaying it by hand processes it again without sending anything twice.
    assert (await api.post(f"/api/v1/events/{first['id']}/replay")).status_code == 200
    assert (await settled(api, first["id"]))["result"] == done["result"]
    assert len(await inbox_titles(api.hub)) == 3
    duplicate = await post(api, raw("firing"))
    assert duplicate.json() == {"id": first["id"], "status": "duplicate"}, "processed: a duplicate again"


async def test_an_unchanged_notification_after_repeat_after_is_a_reminder(make_api: Any) -> None:
    """Alertmanager repeats an unchanged group every repeat_interval with the same bytes: past
    ``repeat_after`` that is news (a reminder), sooner it is a retry."""
    api = await make_api({**config(), "default": {"to": ["inbox"], "cooldown": "1s"}})
    first, made = await deliver(api, raw("firing"))
    assert (await post(api, raw("firing"))).json() == {"id": first["id"], "status": "duplicate"}
    async with api.hub.store.write() as conn:  # the first one came in 16 minutes ago
        await conn.execute(update(events).where(events.c.id == first["id"]).values(received_at=first["received_at"] - 960))
    await asyncio.sleep(1.1)  # past the route's cooldown, as four hours later would be
    reminder, again = await deliver(api, raw("firing"))
    assert reminder["id"] != first["id"] and reminder["delivery_key"] == first["delivery_key"]
    assert [m["thread_key"] for m in again] == [m["thread_key"] for m in made], "it replies in the alerts' threads"

    async def six() -> bool:
        return len(await inbox_titles(api.hub)) == 6

    await eventually(six)
    old = await api.hub.event(first["id"])
    assert old["status"] == "processed" and old["delivery_key"] == f"{first['delivery_key']}@{first['id']}"
    # Alertmanager retrying the reminder is a duplicate of the reminder.
    assert (await post(api, raw("firing"))).json() == {"id": reminder["id"], "status": "duplicate"}
    assert receiver().repeat_after == 900 and receiver(repeat_after="2h").repeat_after == 7200


def test_delivery_keys_and_fingerprints() -> None:
    firing, mixed, resolved = load("firing"), load("mixed"), load("resolved")
    keys = {delivery_key(firing), delivery_key(mixed), delivery_key(resolved)}
    assert len(keys) == 3
    shuffled = copy.deepcopy(firing)
    shuffled["alerts"] = [shuffled["alerts"][2], shuffled["alerts"][0], shuffled["alerts"][1]]
    shuffled["commonAnnotations"] = {"changed": "only outside the group's alerts"}
    assert delivery_key(shuffled) == delivery_key(firing)
    other_group = {**firing, "groupKey": '{}/{team="platform"}:{cluster="prod-us-1"}'}
    assert delivery_key(other_group) != delivery_key(firing)
    one_less = {**firing, "alerts": firing["alerts"][:2]}
    assert delivery_key(one_less) != delivery_key(firing)
    assert fingerprint({"fingerprint": " abc "}) == "abc"
    derived = fingerprint({"labels": {"b": "2", "a": "1"}})
    assert derived == fingerprint({"labels": {"a": "1", "b": "2"}}) and derived.startswith("l") and len(derived) == 16
    assert fingerprint({"labels": {"a": "2"}}) != derived


# -- end to end: Slack threads, storms -----------------------------------------------------------------
async def test_a_resolved_alert_updates_its_slack_message_and_replies_in_its_thread(make_api: Any,
                                                                                    slack: FakeSlack) -> None:
    data = config()
    data["integrations"]["chat"] = {
        "kind": "slack", "token": slack.token, "channel": "#alerts", "api_url": slack.api_url,
        "rate_limit": "50/second", "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 20},
    }
    data["routes"] = [{"name": "critical-alerts", "match": {"source": "alertmanager", "priority": "critical"},
                       "to": ["chat"], "mention": "here"}]
    api = await make_api(data)
    _, (disk, crash, cpu) = await deliver(api, raw("firing"))
    assert [d["integration"] for d in disk["deliveries"]] == ["chat"]
    assert [d["integration"] for d in crash["deliveries"]] == ["inbox"], "not critical: the default route"
    (call,) = await slack.wait_for("chat.postMessage", 1)
    post_body = call.json()
    assert post_body["channel"] == "#alerts" and "thread_ts" not in post_body
    assert post_body["text"].startswith("<!here> ") and "Filesystem has less than 5% space left." in post_body["text"]
    delivered = await api.hub.wait(disk["id"])
    channel, ts = delivered["deliveries"][0]["remote_id"].split(":")
    assert channel == "C0ALERTS" and (channel, ts) in slack.messages

    _, (disk_resolved, *_) = await deliver(api, raw("resolved"))
    assert disk_resolved["resolves"] and [d["integration"] for d in disk_resolved["deliveries"]] == ["chat"]
    (update,) = await slack.wait_for("chat.update", 1)
    posts = await slack.wait_for("chat.postMessage", 2)
    body = update.json()
    assert (body["channel"], body["ts"]) == (channel, ts), "the original message, updated in place"
    assert body["text"] == "✅ Resolved: Filesystem has less than 5% space left."
    original = slack.messages[(channel, ts)]
    assert "edited" in original and original["attachments"] == body["attachments"]
    reply = posts[1].json()
    assert (reply["channel"], reply["thread_ts"]) == (channel, ts), "the resolution replies in the alert's thread"
    assert "[RESOLVED] Filesystem has less than 5% space left." in reply["text"]
    assert "<!here>" not in reply["text"], "a resolution pages nobody"
    assert len(original["replies"]) == 1
    done = await api.hub.wait(disk_resolved["id"])
    assert done["deliveries"][0]["status"] == "delivered"
    thread = await api.hub.notifiers["chat"].context.threads.get("chat", f"alertmanager:{DISK}")
    assert thread is not None and thread.resolved_at is not None and thread.message_id == disk["id"]
    assert len(slack.calls_of("chat.postMessage")) == 2 and len(slack.calls_of("chat.update")) == 1


async def test_a_storm_of_200_alerts_reaches_the_channel_as_one_digest(make_api: Any) -> None:
    data = config(max_body="5MiB")
    data["routes"] = [{"name": "alerts", "match": {"source": "alertmanager"}, "to": ["inbox"],
                       "group_by": ["alertname", "namespace"], "group_wait": 0.3, "group_interval": 5,
                       "repeat_interval": 3600}]
    api = await make_api(data)
    storm = load("firing")
    template = storm["alerts"][1]
    storm["alerts"] = []
    for i in range(200):
        alert = copy.deepcopy(template)
        alert["labels"]["pod"] = f"checkout-7d9f8b6c5-{i:05d}"
        alert["fingerprint"] = f"{i:016x}"
        storm["alerts"].append(alert)
    storm["truncatedAlerts"] = 0
    stored, made = await deliver(api, storm)
    assert len(made) == 200 and len({m["thread_key"] for m in made}) == 200
    assert {d["status"] for m in made for d in m["deliveries"]} == {"grouped"}

    async def one_digest() -> bool:
        return len(await inbox_titles(api.hub)) == 1

    await eventually(one_digest)
    (digest,) = [i["message"] for i in (await api.hub.inbox())["items"]]
    assert digest["title"] == "200 messages: 200 × Pod is crash looping."
    fields = dict(digest["fields"])
    assert fields["Group"] == "alertname=KubePodCrashLooping, namespace=checkout" and fields["New"] == "200"
    assert digest["priority"] == "high"
    again = await post(api, storm)
    assert again.json() == {"id": stored["id"], "status": "duplicate"}, "Alertmanager's retry adds nothing"


# -- settings ------------------------------------------------------------------------------------------------
def test_settings_need_credentials_and_cannot_be_a_target() -> None:
    def problems(**settings: Any) -> str:
        with pytest.raises(ConfigError) as exc:
            parse_config({"integrations": {"am": {"kind": "alertmanager", **settings}}})
        return "\n".join(exc.value.problems)

    assert "set bearer" in problems() and "unauthenticated ones are refused" in problems()
    assert "both username and password" in problems(username=USER)
    assert "both username and password" in problems(password=PASSWORD)
    assert "must not be empty" in problems(bearer="")
    assert "must not be empty" in problems(username=USER, password="")
    assert "without ':'" in problems(username="a:b", password=PASSWORD)
    assert "severity_map" in problems(bearer=BEARER, severity_map={"page": "urgent"})
    assert "default_priority" in problems(bearer=BEARER, default_priority="urgent")
    assert "Extra inputs" in problems(bearer=BEARER, secret="x")
    with pytest.raises(ConfigError, match="only receives"):
        parse_config({**config(), "routes": [{"to": ["am"]}]})
    s = parse_config({"integrations": {"am": {"kind": "alertmanager", "bearer": BEARER, "username": USER,
                                              "password": PASSWORD}}}).integrations["am"]
    assert set(s.secret_values()) >= {BEARER, PASSWORD}, "both are masked in logs and errors"
    assert BEARER not in repr(s) and PASSWORD not in repr(s)


def test_verify_in_isolation() -> None:
    r = receiver(username=USER, password=PASSWORD)

    def check(auth: str | None) -> None:
        headers = {} if auth is None else {"authorization": auth}
        r.verify(InboundRequest("am", headers, b"{}"))

    check(f"Bearer {BEARER}")
    check(basic(USER, PASSWORD))
    check("BASIC " + basic(USER, PASSWORD).split()[1])
    for bad in (None, "Bearer x", basic(USER, PASSWORD + "x"), "Digest abc", "Basic ==="):
        with pytest.raises(Rejected) as exc:
            check(bad)
        assert exc.value.status == 401 and BEARER not in exc.value.reason and PASSWORD not in exc.value.reason


@pytest.mark.parametrize("name", ["firing", "resolved", "mixed"])
async def test_handlers_never_crash_on_odd_alerts(name: str) -> None:
    """A handler error fails the event: odd alerts in a valid envelope still become messages."""
    payload = load(name)
    payload["alerts"] += [{}, "not an alert", None, {"labels": None, "annotations": None, "status": "odd"},
                          {"labels": {"": "empty name", "alertname": ""}, "annotations": {"": "x", "summary": ""}},
                          {"labels": {"alertname": "Nul\x00"}, "annotations": {"summary": "\x00"}}]
    captured: list[Message] = []

    async def capture(hub: Any, event: Any, message: Message, index: int = 0, to: Any = None) -> str:
        captured.append(message)
        return f"m{index}"

    r = receiver()
    r.emit = capture  # type: ignore[method-assign]
    event = InboundEvent("e1", "am", "alertmanager", f"alert.{payload['status']}", "k", 0.0, {},
                         json.dumps(payload).encode(), 0)
    result = await r.process(event, None)  # type: ignore[arg-type]
    assert len(result["messages"]) == len(captured) == 3 + 4
    assert all(m.labels["source"] == "alertmanager" for m in captured)
