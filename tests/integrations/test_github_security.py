"""GitHub's security events (code scanning, Dependabot, secret scanning, vulnerability alerts,
advisories) as alerts: priority from severity, identifiers as fields, a link to the alert, one
thread per alert that fixing/dismissing resolves and reopening fires again, and a secret scanning
alert's secret never copied anywhere. Driven by the real example payloads (tests/fixtures/github/).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import eventually

from tidings.config import parse_config
from tidings.integrations.base import Context
from tidings.integrations.github import GitHubReceiver, event_type
from tidings.integrations.github.common import Event
from tidings.message import Message

FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"
SECRET = "It's a Secret to Everybody"
LEAKED = "aio_RealLookingSecretValue0123456789"  # alert.secret in secret_scanning_alert__created.json
SEMVER = "github:wolfy1339/pika-pack:dependabot:20"
HELLO = "Codertocat/Hello-World"


def load(stem: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{stem}.json").read_bytes())


def handle(stem: str, payload: dict[str, Any] | None = None) -> Message:
    """The message the receiver makes of a fixture (or of ``payload`` sent as that fixture's event)."""
    name = stem.split("__")[0]
    payload = load(stem) if payload is None else payload
    kind = event_type(name, payload)
    handler = GitHubReceiver.handlers[kind]
    ev = Event(kind, name, kind.partition(".")[2], payload, payload.get("repository", {}).get("full_name", ""),
               payload.get("sender", {}).get("login", ""))
    result: Message = getattr(GitHubReceiver, handler)(ev)
    return result


# stem -> (priority, resolves, thread_key, title start, fields that must be there)
CASES: dict[str, tuple[str, bool, str | None, str, dict[str, str]]] = {
    "dependabot_alert__created": ("medium", False, SEMVER, "Dependabot alert #20 opened in wolfy1339/pika-pack: semver", {
        "Package": "semver", "Ecosystem": "npm", "Manifest": "package-lock.json", "Vulnerable versions": "< 7.5.2",
        "Patched version": "7.5.2", "CVE": "CVE-2022-25883", "GHSA": "GHSA-c2qf-rxjj-qqgw",
        "CVSS": "5.3 (CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L)", "Severity": "medium"}),
    "dependabot_alert__dismissed": ("medium", True, SEMVER, "Dependabot alert #20 dismissed in", {
        "Reason": "tolerable risk", "Dismissed by": "github"}),
    "dependabot_alert__auto_dismissed": ("medium", True, SEMVER, "Dependabot alert #20 dismissed automatically", {}),
    "dependabot_alert__reopened": ("medium", False, SEMVER, "Dependabot alert #20 reopened in", {}),
    "dependabot_alert__auto_reopened": ("medium", False, SEMVER, "Dependabot alert #20 reopened automatically", {}),
    "dependabot_alert__reintroduced": ("medium", False, SEMVER, "Dependabot alert #20 reintroduced in", {}),
    "dependabot_alert__fixed": ("medium", True, "github:octocat/hello-world:dependabot:1",
                                "Dependabot alert #1 fixed in octocat/hello-world: Insertion of Sensitive", {
                                    "Package": "ansible", "Ecosystem": "pip", "Manifest": "path/to/requirements.txt"}),
    "code_scanning_alert__created": ("high", False, f"github:{HELLO}:code-scanning:10",
                                     f"Code scanning alert #10 opened in {HELLO}: Query built from user-controlled", {
                                         "Rule": "java/sql-injection", "Tool": "CodeQL", "Severity": "error",
                                         "Location": "src/main/java/com/github/demo/service/BookService.java:84",
                                         "Ref": "code-feature"}),
    "code_scanning_alert__fixed": ("high", True, f"github:{HELLO}:code-scanning:10", "Code scanning alert #10 fixed", {}),
    "code_scanning_alert__closed_by_user": ("high", True, f"github:{HELLO}:code-scanning:10",
                                            "Code scanning alert #10 dismissed", {"Reason": "false positive"}),
    "code_scanning_alert__reopened": ("low", False, f"github:{HELLO}:code-scanning:10", "Code scanning alert #10 reopened", {
        "Severity": "note", "Rule": "Style/FrozenStringLiteralComment", "Tool": "Rubocop"}),
    "code_scanning_alert__reopened_by_user": ("low", False, f"github:{HELLO}:code-scanning:10",
                                              "Code scanning alert #10 reopened", {}),
    "secret_scanning_alert__created": ("high", False, f"github:{HELLO}:secret-scanning:191",
                                       f"Secret scanning alert #191 opened in {HELLO}: Adafruit IO Key", {
                                           "Secret type": "Adafruit IO Key"}),
    "secret_scanning_alert__reopened": ("high", False, f"github:{HELLO}:secret-scanning:191",
                                        "Secret scanning alert #191 reopened", {"Secret type": "adafruit_io_key"}),
    "secret_scanning_alert__publicly_leaked": ("high", False, f"github:{HELLO}:secret-scanning:191",
                                               "Secret scanning alert #191 leaked publicly", {"Publicly leaked": "yes"}),
    "secret_scanning_alert__resolved": ("high", True, f"github:{HELLO}:secret-scanning:191",
                                        "Secret scanning alert #191 resolved", {"Resolution": "revoked",
                                                                                "Resolved by": "Codertocat"}),
    "secret_scanning_alert__revoked": ("high", True, f"github:{HELLO}:secret-scanning:191",
                                       "Secret scanning alert #191 revoked", {}),
    "repository_vulnerability_alert__create": ("medium", False, f"github:{HELLO}:vulnerability:91095730",
                                               f"Vulnerability alert #91095730 opened in {HELLO}: rack >= 2.0.4, < 2.0.6", {
                                                   "Package": "rack", "Patched version": "2.0.6", "CVE": "CVE-2018-16470",
                                                   "GHSA": "GHSA-hg78-4f6x-99wq", "Severity": "moderate"}),
    "repository_vulnerability_alert__dismiss": ("medium", True, f"github:{HELLO}:vulnerability:2",
                                                "Vulnerability alert #2 dismissed", {
                                                    "Dismissed by": "octocat", "Reason": "No bandwidth to fix this"}),
    "repository_vulnerability_alert__reopen": ("medium", False, f"github:{HELLO}:vulnerability:91095730",
                                               "Vulnerability alert #91095730 reopened", {}),
    "repository_vulnerability_alert__resolve": ("medium", True, f"github:{HELLO}:vulnerability:91095730",
                                                "Vulnerability alert #91095730 resolved", {}),
    "security_advisory__published": ("medium", False, "github:advisory:GHSA-rf4j-j272-fj86",
                                     "Security advisory GHSA-rf4j-j272-fj86 published: Moderate severity", {
                                         "Package": "django", "Ecosystem": "pip", "CVE": "CVE-2018-6188",
                                         "Vulnerable versions": ">= 2.0.0, < 2.0.2; >= 1.11.8, < 1.11.10",
                                         "Patched version": "2.0.2, 1.11.10"}),
    "security_advisory__updated": ("medium", False, "github:advisory:GHSA-6fmm-47qc-p4m4",
                                   "Security advisory GHSA-6fmm-47qc-p4m4 updated", {"CVSS": "7.9"}),
    "security_advisory__withdrawn": ("critical", True, "github:advisory:GHSA-8v27-2fg9-7h62",
                                     "Security advisory GHSA-8v27-2fg9-7h62 withdrawn", {"Severity": "critical"}),
}


@pytest.mark.parametrize("stem", sorted(CASES))
def test_each_security_event_is_an_alert_in_its_thread(stem: str) -> None:
    priority, resolves, thread, title, fields = CASES[stem]
    m = handle(stem)
    assert m.priority.value == priority and m.resolves is resolves and m.thread_key == thread, stem
    assert m.title.startswith(title), m.title
    assert fields.items() <= dict(m.fields).items(), dict(m.fields)
    assert m.links and m.links[0].url.startswith("https://"), "a link to the alert or the advisory"
    assert m.labels["event"] == stem.split("__")[0]


def test_alert_links_point_at_the_alert() -> None:
    assert handle("dependabot_alert__created").links[0].url == "https://github.com/wolfy1339/pika-pack/security/dependabot/20"
    assert [(lk.label, lk.url) for lk in handle("dependabot_alert__created").links][1] == (
        "Advisory", "https://github.com/advisories/GHSA-c2qf-rxjj-qqgw")
    # the GHES example has no html_url: the alert's page on the repository
    assert handle("secret_scanning_alert__reopened").links[0].url == f"https://github.com/{HELLO}/security/secret-scanning/191"
    assert handle("security_advisory__published").links[0].url == "https://github.com/advisories/GHSA-rf4j-j272-fj86"


@pytest.mark.parametrize(
    ("severity", "priority"),
    [("critical", "critical"), ("high", "high"), ("medium", "medium"), ("moderate", "medium"), ("low", "low"),
     ("HIGH", "high"), ("", "medium"), ("bogus", "medium")],
)
def test_dependabot_priority_follows_severity(severity: str, priority: str) -> None:
    payload = load("dependabot_alert__created")
    payload["alert"]["security_vulnerability"]["severity"] = severity
    payload["alert"]["security_advisory"]["severity"] = severity
    m = handle("dependabot_alert__created", payload)
    assert m.priority.value == priority
    assert m.labels.get("severity", "") == severity


@pytest.mark.parametrize(
    ("security_level", "rule_severity", "priority"),
    [("critical", "error", "critical"), ("high", "warning", "high"), ("medium", "error", "medium"),
     ("low", "error", "low"), (None, "error", "high"), (None, "warning", "medium"), (None, "note", "low"),
     (None, "none", "info"), (None, None, "medium")],
)
def test_code_scanning_priority_prefers_the_security_severity(security_level: str | None, rule_severity: str | None,
                                                              priority: str) -> None:
    payload = load("code_scanning_alert__created")
    payload["alert"]["rule"]["security_severity_level"] = security_level
    payload["alert"]["rule"]["severity"] = rule_severity
    assert handle("code_scanning_alert__created", payload).priority.value == priority


def test_an_alert_keeps_one_thread_from_opened_to_fixed_to_reopened() -> None:
    stems = ["dependabot_alert__created", "dependabot_alert__fixed", "dependabot_alert__reopened"]
    payloads = [load(s) for s in stems]
    payloads[1]["alert"] = copy.deepcopy(payloads[0]["alert"]) | {"state": "fixed", "fixed_at": "2023-06-25T00:00:00Z"}
    payloads[1]["repository"] = payloads[0]["repository"]
    messages = [handle(s, p) for s, p in zip(stems, payloads, strict=True)]
    assert {m.thread_key for m in messages} == {SEMVER}
    assert [m.resolves for m in messages] == [False, True, False], "fixed resolves; reopened fires again"
    assert len({m.priority for m in messages}) == 1, "the resolve routes where the alert went"


def _secret_forms(secret: str) -> list[str]:
    return [secret[i : i + 8] for i in range(len(secret) - 7)]


@pytest.mark.parametrize("action", ["created", "reopened", "publicly_leaked", "resolved", "revoked"])
def test_the_leaked_secret_is_never_copied(action: str) -> None:
    payload = load("secret_scanning_alert__created") | {"action": action}
    payload["alert"]["resolution_comment"] = "rotated"
    m = handle("secret_scanning_alert__created", payload)
    text = orjson.dumps({"title": m.title, "body": m.body, "fields": [list(f) for f in m.fields], "labels": m.labels,
                         "links": [(lk.label, lk.url) for lk in m.links], "thread": m.thread_key}).decode()
    assert not [piece for piece in _secret_forms(LEAKED) if piece in text], text


async def test_security_events_through_the_server(make_api: Any) -> None:
    """Recorded ``unsupported`` before: now processed into messages, the secret nowhere in them."""
    api = await make_api({"integrations": {"github": {"kind": "github", "secret": SECRET}}})
    ids = []
    for stem in ("dependabot_alert__created", "dependabot_alert__dismissed", "secret_scanning_alert__created"):
        body = (FIXTURES / f"{stem}.json").read_bytes()
        headers = {"content-type": "application/json", "x-github-event": stem.split("__")[0],
                   "x-github-delivery": str(uuid.uuid4()),
                   "x-hub-signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}
        r = await api.post("/hooks/github", content=body, headers=headers, auth=False)
        assert r.status_code == 200 and r.json()["status"] == "received", r.text
        ids.append(r.json()["id"])

    async def done() -> bool:
        return [(await api.hub.event(i))["status"] for i in ids] == ["processed"] * len(ids)

    await eventually(done)
    messages = [await api.hub.message((await api.hub.event(i))["result"]["message"]) for i in ids]
    assert [m["thread_key"] for m in messages[:2]] == [SEMVER, SEMVER]
    assert [m["resolves"] for m in messages[:2]] == [False, True]
    assert messages[2]["priority"] == "high" and LEAKED[:8] not in orjson.dumps(messages[2]).decode()
    answer = await api.get(f"/api/v1/messages/{messages[2]['id']}")
    assert answer.status_code == 200 and LEAKED[:8] not in answer.text


def test_unhandled_security_actions_are_ignored_not_unsupported() -> None:
    s = parse_config({"integrations": {"github": {"kind": "github", "secret": SECRET}}}).integrations["github"]
    r = GitHubReceiver("github", s, Context(store=None, threads=None))  # type: ignore[arg-type]
    for kind in ("code_scanning_alert.appeared_in_branch", "dependabot_alert.assignees_changed",
                 "secret_scanning_alert.validated", "secret_scanning_alert_location.created", "security_advisory.performed"):
        assert r.status_for(kind) == "ignored", kind
    assert r.status_for("dependabot_alert.created") == "received"
