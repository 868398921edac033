"""The GitHub receiver (``kind: github``) through the real HTTP server: signatures over the raw
body, both content types, the handler table against every real example payload of
``@octokit/webhooks-examples`` (tests/fixtures/github/), the messages it makes, dedup of
redeliveries, limits, the repository allow-list and routing on its labels.

Tests through a hub run on SQLite and PostgreSQL, except the sweep over all the fixtures, which
runs on SQLite only to keep the file fast (the handlers don't touch the database).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from helpers import eventually
from sqlalchemy import select

from tidings.config import parse_config
from tidings.errors import ConfigError
from tidings.integrations.base import Context
from tidings.integrations.github import GitHubReceiver, Skip, event_type
from tidings.integrations.receiver import InboundRequest, Rejected
from tidings.security.vault import Vault, new_key
from tidings.store.tables import events

FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"
SECRET = "It's a Secret to Everybody"
HOOK = "/hooks/github"
REPO = "Codertocat/Hello-World"

# What the spec says each event becomes, written out here independently of the receiver's table.
MESSAGE_TYPES = {
    *(f"issues.{a}" for a in ("opened", "edited", "closed", "reopened", "labeled", "unlabeled", "assigned",
                              "unassigned", "deleted")),
    "issue_comment.created", "issue_comment.edited", "issue_comment.deleted",
    "pull_request.opened", "pull_request.closed", "pull_request.merged", "pull_request.reopened",
    "pull_request.ready_for_review", "pull_request_review.submitted",
    "push", "release.published", "workflow_run.completed",
    # security events: every action that changes an alert's state (GitHub's docs and the schemas)
    *(f"code_scanning_alert.{a}" for a in ("created", "reopened", "reopened_by_user", "fixed", "closed_by_user")),
    *(f"dependabot_alert.{a}" for a in ("created", "reopened", "auto_reopened", "reintroduced", "fixed", "dismissed",
                                        "auto_dismissed")),
    *(f"secret_scanning_alert.{a}" for a in ("created", "reopened", "publicly_leaked", "resolved", "revoked")),
    *(f"repository_vulnerability_alert.{a}" for a in ("create", "reopen", "dismiss", "resolve")),
    *(f"security_advisory.{a}" for a in ("published", "updated", "withdrawn")),
}
NOT_NEWS = {  # handled event types whose payload says "nothing happened worth a message"
    "push": "pushes that delete a ref or bring no commits",
    "push__2": "", "push__3": "", "push__4": "", "push__7": "",
    "workflow_run__completed": "conclusion null", "workflow_run__completed__2": "success",
    "workflow_run__completed__3": "success",
}
IGNORED = {
    "ping", "star", "watch", "fork", "public", "create", "delete", "gollum", "page_build", "meta", "check_run",
    "check_suite", "status", "workflow_job", "workflow_dispatch", "merge_group", "deployment", "deployment_status",
    "deployment_review", "member", "membership", "team_add", "label", "milestone", "commit_comment",
    "branch_protection_rule", "project", "project_card", "project_column", "projects_v2_item", "discussion",
    "discussion_comment", "pull_request_review_comment", "pull_request_review_thread",
    *(f"issues.{a}" for a in ("pinned", "unpinned", "locked", "unlocked", "milestoned", "demilestoned", "transferred")),
    *(f"pull_request.{a}" for a in ("assigned", "unassigned", "labeled", "unlabeled", "synchronize",
                                    "converted_to_draft", "review_requested", "review_request_removed", "locked",
                                    "unlocked")),
    "pull_request_review.dismissed", "workflow_run.requested",
    "code_scanning_alert.appeared_in_branch", "security_advisory.performed", "secret_scanning_alert_location",
    *(f"release.{a}" for a in ("created", "edited", "deleted", "prereleased", "released")),
}
# Real examples lack these outcomes; each is a real example with the fields named here changed.
DERIVED = {
    "issues__closed": ("issues__reopened", {"action", "issue.state", "issue.closed_at", "issue.state_reason"}),
    "pull_request__merged": ("pull_request__closed", {"pull_request.merged", "pull_request.merged_at",
                                                      "pull_request.merged_by"}),
    "workflow_run__completed__failure": ("workflow_run__completed__2", {"workflow_run.conclusion"}),
    "code_scanning_alert__reopened_by_user": ("code_scanning_alert__reopened", {"action"}),
    "dependabot_alert__dismissed": ("dependabot_alert__created", {
        "action", "alert.state", "alert.dismissed_at", "alert.dismissed_by", "alert.dismissed_reason",
        "alert.dismissed_comment"}),
    "dependabot_alert__auto_dismissed": ("dependabot_alert__created", {"action", "alert.state", "alert.auto_dismissed_at"}),
    "dependabot_alert__reopened": ("dependabot_alert__created", {"action"}),
    "dependabot_alert__reintroduced": ("dependabot_alert__created", {"action"}),
    "dependabot_alert__auto_reopened": ("dependabot_alert__created", {"action"}),
    "secret_scanning_alert__created": ("secret_scanning_alert__reopened", {
        "action", "alert.secret", "alert.secret_type_display_name", "alert.html_url"}),
    "secret_scanning_alert__resolved": ("secret_scanning_alert__reopened", {
        "action", "alert.resolution", "alert.resolved_by", "alert.resolved_at"}),
    "secret_scanning_alert__revoked": ("secret_scanning_alert__reopened", {"action"}),
    "secret_scanning_alert__publicly_leaked": ("secret_scanning_alert__reopened", {"action"}),
    "repository_vulnerability_alert__reopen": ("repository_vulnerability_alert__create", {"action"}),
    "repository_vulnerability_alert__resolve": ("repository_vulnerability_alert__create", {"action"}),
}
GHES_EXAMPLES = {"secret_scanning_alert__reopened"}
"""Examples from the package's ghes-35/index.json: api.github.com/index.json has no secret scanning alert."""


# -- helpers -----------------------------------------------------------------------------------------
def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.json"))


def github_event(stem: str) -> str:
    """The X-GitHub-Event of a fixture: its name up to the first ``__``."""
    return stem.split("__")[0]


def load(stem: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{stem}.json").read_bytes())


def raw(stem: str) -> bytes:
    return (FIXTURES / f"{stem}.json").read_bytes()


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes | dict[str, Any], event: str, *, delivery: str | None = None, secret: str = SECRET,
           form: bool = False) -> tuple[bytes, dict[str, str]]:
    """A delivery as GitHub sends it: JSON (or the form field ``payload``) with its headers."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if form:
        data = urlencode({"payload": data.decode()}).encode()
    return data, {
        "content-type": "application/x-www-form-urlencoded" if form else "application/json",
        "user-agent": "GitHub-Hookshot/044aadd",
        "x-github-event": event,
        "x-github-delivery": delivery or str(uuid.uuid4()),
        "x-github-hook-id": "292430182",
        "x-hub-signature-256": signature(data, secret),
    }


def config(**settings: Any) -> dict[str, Any]:
    return {
        "integrations": {
            "github": {"kind": "github", "secret": SECRET, "retry": {"base": 0.05, "cap": 0.1, "max_attempts": 2},
                       **settings},
        }
    }


async def post(api: Any, body: bytes, headers: dict[str, str]) -> Any:
    return await api.post(HOOK, content=body, headers=headers, auth=False)


async def settled(api: Any, event_id: str) -> dict[str, Any]:
    """The stored event once processing is over."""
    async def done() -> bool:
        return (await api.hub.event(event_id))["status"] not in ("received", "processing")

    await eventually(done)
    return await api.hub.event(event_id)


async def deliver(api: Any, payload: bytes | dict[str, Any], event: str, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Post one signed delivery; the processed event and the message it made (or None)."""
    r = await post(api, *signed(payload, event, **kwargs))
    assert r.status_code == 200, r.text
    stored = await settled(api, r.json()["id"])
    message_id = (stored["result"] or {}).get("message")
    return stored, (await api.hub.message(message_id) if message_id else None)


async def delivered(api: Any) -> None:
    """Until the inbox holds a message: the dispatcher writes it after the event was processed."""
    async def some() -> bool:
        return bool((await api.hub.inbox())["items"])

    await eventually(some)


def receiver(**settings: Any) -> GitHubReceiver:
    s = parse_config(config(**settings)).integrations["github"]
    return GitHubReceiver("github", s, Context(store=None, threads=None))  # type: ignore[arg-type]


def many_commits(n: int) -> dict[str, Any]:
    """The real single-commit push, with ``n`` commits."""
    push = load("push__5")
    base = push["commits"][0]
    push["commits"] = []
    for i in range(n):
        sha = hashlib.sha1(f"commit {i}".encode()).hexdigest()
        push["commits"].append({**base, "id": sha, "message": f"Change number {i}\n\nLonger text",
                                "url": f"https://github.com/{REPO}/commit/{sha}"})
    push["compare"] = f"https://github.com/{REPO}/compare/6113728f27ae...{sha[:12]}"
    push["forced"] = False
    return push


# -- the fixtures themselves ----------------------------------------------------------------------------
def test_every_handled_event_type_has_a_fixture() -> None:
    found = {event_type(github_event(stem), load(stem)) for stem in fixture_names()}
    missing = sorted(t for t in GitHubReceiver.handlers if t not in found)
    assert not missing, f"handled event types without a fixture: {missing}"
    assert set(GitHubReceiver.handlers) == MESSAGE_TYPES, "the table and the spec in this file disagree"


def test_the_fixtures_are_the_package_examples_plus_the_derived_ones() -> None:
    names = fixture_names()
    assert len(names) == 329 + len(GHES_EXAMPLES) + len(DERIVED)
    assert (FIXTURES / "LICENSE-octokit-webhooks-examples").is_file()
    assert "webhooks-examples" in (FIXTURES / "README.md").read_text()
    for stem in names:
        if stem in DERIVED:
            continue
        action = load(stem).get("action")
        parts = stem.split("__")
        # issues__opened__2: event, action, then a number for the 2nd example of the pair
        assert parts[1:2] == ([action] if action else []) or parts[1].isdigit(), stem


@pytest.mark.parametrize("derived", sorted(DERIVED))
def test_derived_fixtures_differ_from_their_real_example_only_where_documented(derived: str) -> None:
    base, changed = DERIVED[derived]

    def flat(obj: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(obj, dict):
            out: dict[str, Any] = {}
            for k, v in obj.items():
                out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) and f"{prefix}{k}" not in changed
                           else {f"{prefix}{k}": v})
            return out
        return {prefix.rstrip("."): obj}

    a, b = flat(load(base)), flat(load(derived))
    differs = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    assert differs == changed
    assert f"| `{derived}.json` | `{base}.json` |" in (FIXTURES / "README.md").read_text(), "documented in the README"


# -- every fixture through the real server ---------------------------------------------------------------
def expected_status(stem: str) -> str:
    kind = event_type(github_event(stem), load(stem))
    if kind in MESSAGE_TYPES:
        return "ignored" if stem in NOT_NEWS else "processed"
    if kind in IGNORED or kind.split(".")[0] in IGNORED:
        return "ignored"
    return "unsupported"


async def test_every_fixture_is_answered_200_and_ends_as_the_table_says(make_api: Any) -> None:
    api = await make_api(config(max_body="25MB"))
    stems = fixture_names()
    deliveries = {stem: str(uuid.uuid4()) for stem in stems}
    gate = asyncio.Semaphore(16)  # fewer at once than the client's pool: none waits past its pool timeout

    async def send(stem: str) -> Any:
        async with gate:
            return await post(api, *signed(raw(stem), github_event(stem), delivery=deliveries[stem]))

    answers = await asyncio.gather(*(send(s) for s in stems))
    for stem, r in zip(stems, answers, strict=True):
        assert r.status_code == 200, (stem, r.text)
        if stem.startswith("ping"):
            assert r.json()["zen"] == load(stem)["zen"]
        else:  # decided on arrival from the event type; handled events are processed later
            arrival = "received" if expected_status(stem) == "processed" or stem in NOT_NEWS else expected_status(stem)
            assert r.json()["status"] == arrival, stem

    async def all_done() -> bool:
        async with api.hub.store.read() as conn:
            busy = (await conn.execute(select(events.c.id).where(events.c.status.in_(["received", "processing"])))).all()
        return not busy

    await eventually(all_done, timeout=30)
    async with api.hub.store.read() as conn:
        by_delivery = {r.delivery_key: r for r in (await conn.execute(select(events))).all()}
    rows = {stem: by_delivery[deliveries[stem]] for stem in stems}
    statuses = {stem: rows[stem].status for stem in stems}
    wrong = {s: (st, expected_status(s), rows[s].last_error) for s, st in statuses.items() if st != expected_status(s)}
    assert not wrong, wrong
    counts = {st: list(statuses.values()).count(st) for st in set(statuses.values())}
    assert counts == {"processed": 79, "ignored": 209, "unsupported": 57}, counts
    for stem in stems:
        row = rows[stem]
        assert row.event_type == event_type(github_event(stem), load(stem))
        if row.status == "processed":
            message = await api.hub.message(row.result["message"])
            labels = message["labels"]
            assert labels["source"] == "github" and labels["event_type"] == row.event_type, stem
            assert labels["event"] == github_event(stem), stem
            # an advisory in GitHub's database belongs to no repository, and may have no sender
            for label, key in (("repository", "repository"), ("sender", "sender")):
                assert labels.get(label) or "security_advisory" in load(stem) and key not in load(stem), (stem, label)
            assert message["format"] == "markdown" and message["title"] and message["links"], stem
        elif row.status == "ignored" and stem in NOT_NEWS:
            assert row.result["reason"], stem
    async def inbox_filled() -> bool:  # threaded messages go through the dispatcher's claim
        return len((await api.hub.inbox(limit=100))["items"]) >= 79

    await eventually(inbox_filled, timeout=30)
    items = (await api.hub.inbox(limit=100))["items"]
    assert len(items) == 79, "every message reached the inbox, once"


# -- messages -------------------------------------------------------------------------------------------
async def test_issue_pr_comment_release_messages(make_api: Any) -> None:
    api = await make_api(config())

    stored, m = await deliver(api, raw("issues__opened"), "issues")
    assert stored["status"] == "processed" and stored["event_type"] == "issues.opened"
    assert m is not None
    assert m["title"] == f"Issue #1 opened in {REPO}: Spelling error in the README file"
    assert m["labels"] == {"source": "github", "event_type": "issues.opened", "event": "issues", "action": "opened",
                           "repository": REPO, "sender": "Codertocat", "labels": "bug"}
    assert m["body"] == "It looks like you accidently spelled 'commit' with two 't's."
    assert m["links"] == [{"label": "Issue #1", "url": f"https://github.com/{REPO}/issues/1"}]
    assert ["Author", "Codertocat"] in m["fields"] and ["Labels", "bug"] in m["fields"]
    assert m["thread_key"] == f"github:{REPO}#1" and not m["resolves"]
    assert m["priority"] == "low" and m["format"] == "markdown"

    _, closed = await deliver(api, raw("issues__closed"), "issues")
    assert closed is not None and closed["title"].startswith("Issue #1 closed in ")
    assert closed["thread_key"] == f"github:{REPO}#1" and closed["resolves"], "closing resolves the issue's thread"

    stored, merged = await deliver(api, raw("pull_request__merged"), "pull_request")
    assert stored["event_type"] == "pull_request.merged" and merged is not None
    assert merged["title"] == f"PR #2 merged in {REPO}: Update the README with new information."
    assert merged["labels"]["event_type"] == "pull_request.merged" and merged["labels"]["action"] == "closed"
    assert merged["labels"]["branch"] == "master" and merged["labels"]["head_branch"] == "changes"
    assert ["Merged by", "Codertocat"] in merged["fields"] and ["Branch", "changes → master"] in merged["fields"]
    assert merged["body"] == "Merged `changes` into `master`."
    assert merged["links"] == [{"label": "PR #2", "url": f"https://github.com/{REPO}/pull/2"}]
    assert merged["thread_key"] == f"github:{REPO}#2" and merged["resolves"]

    stored, unmerged = await deliver(api, raw("pull_request__closed"), "pull_request")
    assert stored["event_type"] == "pull_request.closed" and unmerged is not None
    assert unmerged["title"] == f"PR #2 closed in {REPO}: Update the README with new information."
    assert unmerged["body"] == "Closed without merging." and unmerged["resolves"]
    assert "Merged by" not in dict(unmerged["fields"])

    _, comment = await deliver(api, raw("issue_comment__created"), "issue_comment")
    assert comment is not None
    assert comment["title"] == f"Codertocat commented on issue #1 in {REPO}: Spelling error in the README file"
    assert comment["body"] == load("issue_comment__created")["comment"]["body"]
    assert comment["thread_key"] == f"github:{REPO}#1", "comments thread with their issue"
    assert comment["links"][0] == {"label": "Comment", "url": load("issue_comment__created")["comment"]["html_url"]}
    assert comment["labels"]["subject"] == "issue" and comment["priority"] == "info"

    _, release = await deliver(api, raw("release__published"), "release")
    assert release is not None
    assert release["title"] == f"Release 0.0.1 published in {REPO}"
    assert release["labels"]["tag"] == "0.0.1" and release["labels"]["prerelease"] == "false"
    assert release["links"] == [{"label": "Release", "url": f"https://github.com/{REPO}/releases/tag/0.0.1"}]


async def test_push_lists_ten_commits_then_counts_the_rest(make_api: Any) -> None:
    api = await make_api(config())
    push = many_commits(13)
    _, m = await deliver(api, push, "push")
    assert m is not None
    assert m["title"] == f"Codertocat pushed 13 commits to master in {REPO}"
    lines = m["body"].splitlines()
    assert len(lines) == 11
    first = push["commits"][0]
    assert lines[0] == f"- [`{first['id'][:7]}`]({first['url']}) Change number 0 — Codertocat"
    assert lines[9].startswith(f"- [`{push['commits'][9]['id'][:7]}`]")
    assert lines[10] == f"- …and [3 more commits]({push['compare']})"
    assert m["labels"]["branch"] == "master" and m["labels"]["ref"] == "refs/heads/master"
    assert m["labels"]["forced"] == "false" and "action" not in m["labels"]
    assert ["Commits", "13"] in m["fields"] and m["links"] == [{"label": "Changes", "url": push["compare"]}]
    assert m["thread_key"] is None and m["priority"] == "info"

    stored, none = await deliver(api, raw("push__2"), "push")
    assert none is None and stored["status"] == "ignored" and stored["result"]["reason"] == "tag simple-tag deleted"


async def test_a_failed_workflow_run_is_high_and_a_successful_one_is_not_news(make_api: Any) -> None:
    api = await make_api(config())
    stored, m = await deliver(api, raw("workflow_run__completed__failure"), "workflow_run")
    assert stored["status"] == "processed" and m is not None
    assert m["title"] == "Workflow test failed on master in octo-org/octo-repo"
    assert m["priority"] == "high"
    assert m["labels"]["workflow"] == "test" and m["labels"]["conclusion"] == "failure"
    assert m["labels"]["branch"] == "master" and m["labels"]["event_type"] == "workflow_run.completed"
    assert m["links"] == [{"label": "Workflow run", "url": "https://github.com/octo-org/octo-repo/actions/runs/289782451"}]
    assert "[#163](https://github.com/octo-org/octo-repo/actions/runs/289782451) failed on `3484a3f`" in m["body"]
    assert m["thread_key"] == "github:octo-org/octo-repo:run:289782451", "re-runs of a run share a thread"

    stored, none = await deliver(api, raw("workflow_run__completed__2"), "workflow_run")
    assert none is None
    assert stored["status"] == "ignored" and stored["result"] == {"status": "ignored", "reason": "conclusion success: not news"}
    await delivered(api)  # the failed run's message
    assert len((await api.hub.inbox())["items"]) == 1


# -- signatures -----------------------------------------------------------------------------------------
def test_the_signature_matches_githubs_documented_example() -> None:
    """docs.github.com, "Validating webhook deliveries": this secret and body give this signature."""
    r = receiver()
    good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    r.verify(InboundRequest("github", {"x-hub-signature-256": good}, b"Hello, World!"))
    r.verify(InboundRequest("github", {"x-hub-signature-256": good.upper().replace("SHA256=", "sha256=")}, b"Hello, World!"))
    for bad in (good[:-1] + "f", "sha1=" + good[7:], good[7:], "sha256=", ""):
        with pytest.raises(Rejected) as exc:
            r.verify(InboundRequest("github", {"x-hub-signature-256": bad}, b"Hello, World!"))
        assert exc.value.status == 401 and SECRET not in exc.value.reason


async def test_forged_unsigned_and_altered_deliveries_are_401_and_counted(make_api: Any) -> None:
    api = await make_api(config(), dispatch=False)
    body, headers = signed(raw("issues__opened"), "issues")
    cases = {
        "forged signature": (body, {**headers, "x-hub-signature-256": "sha256=" + "0" * 64}),
        "missing header": (body, {k: v for k, v in headers.items() if k != "x-hub-signature-256"}),
        "only the legacy sha1 header": (body, {**{k: v for k, v in headers.items() if k != "x-hub-signature-256"},
                                               "x-hub-signature": "sha1=" + hmac.new(SECRET.encode(), body, "sha1").hexdigest()}),
        "wrong secret": signed(raw("issues__opened"), "issues", secret="not the secret"),
        "body altered by one byte": (body.replace(b'"opened"', b'"openeD"'), headers),
        "one byte appended": (body + b" ", headers),
        "not hex": (body, {**headers, "x-hub-signature-256": "sha256=" + "zz" * 32}),
    }
    for case, (b, h) in cases.items():
        r = await post(api, b, h)
        assert r.status_code == 401, (case, r.text)
        assert r.json()["error"] == "rejected" and r.json()["detail"], case
        assert SECRET not in r.text
    async with api.hub.store.read() as conn:
        assert (await conn.execute(select(events))).all() == [], "nothing is stored"
    github = next(i for i in (await api.get("/api/v1/integrations", headers=api.auth)).json() if i["name"] == "github")
    assert github["kind"] == "github" and github["receives"] and not github["sends"]
    assert github["inbound"]["rejected"] == len(cases)
    ok = await post(api, body, headers)
    assert ok.status_code == 200 and ok.json()["status"] == "received", "the untouched delivery is accepted"


async def test_a_form_encoded_delivery_is_verified_over_the_form_body(make_api: Any) -> None:
    api = await make_api(config())
    stored, m = await deliver(api, raw("pull_request__merged"), "pull_request", form=True)
    assert stored["status"] == "processed" and stored["event_type"] == "pull_request.merged"
    assert m is not None and m["title"] == f"PR #2 merged in {REPO}: Update the README with new information."
    body, headers = signed(raw("issues__opened"), "issues", form=True)
    tampered = body.replace(b"payload=", b"payload=%20")
    assert (await post(api, tampered, headers)).status_code == 401
    no_field = urlencode({"data": "{}"}).encode()
    r = await post(api, no_field, {**headers, "x-hub-signature-256": signature(no_field)})
    assert r.status_code == 400 and "payload" in r.json()["detail"]


async def test_a_redelivery_is_answered_200_and_processed_once(make_api: Any) -> None:
    api = await make_api(config())
    delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    first = await post(api, *signed(raw("issues__opened"), "issues", delivery=delivery))
    again = await post(api, *signed(raw("issues__opened"), "issues", delivery=delivery))
    assert first.status_code == again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "status": "duplicate"}
    stored = await settled(api, first.json()["id"])
    assert stored["status"] == "processed" and stored["delivery_key"] == delivery
    assert stored["headers"]["x-github-event"] == "issues" and "x-hub-signature-256" not in stored["headers"]
    await delivered(api)
    await asyncio.sleep(0.3)  # time for a second message to arrive, if the redelivery made one
    assert len((await api.hub.inbox())["items"]) == 1
    # Replaying the event by hand doesn't send it twice either.
    assert (await api.post(f"/api/v1/events/{stored['id']}/replay", headers=api.auth)).status_code == 200
    assert (await settled(api, stored["id"]))["result"] == stored["result"]
    assert len((await api.hub.inbox())["items"]) == 1


async def test_limits_content_type_and_malformed_deliveries(make_api: Any) -> None:
    api = await make_api(config(max_body="64KiB"), dispatch=False)
    big = load("issues__opened")
    big["issue"]["body"] = "x" * 70_000
    r = await post(api, *signed(big, "issues"))
    assert r.status_code == 413 and r.json()["error"] == "payload too large"
    body, headers = signed(raw("issues__opened"), "issues")
    r = await post(api, body, {**headers, "content-type": "text/plain"})
    assert r.status_code == 415 and "application/x-www-form-urlencoded" in r.json()["detail"]
    r = await post(api, *signed(b'{"action": "opened", ', "issues"))
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"]
    r = await post(api, *signed(b"[1, 2]", "issues"))
    assert r.status_code == 400 and "JSON object" in r.json()["detail"]
    r = await post(api, body, {k: v for k, v in headers.items() if k != "x-github-event"})
    assert r.status_code == 400 and "X-GitHub-Event" in r.json()["detail"]
    async with api.hub.store.read() as conn:
        assert (await conn.execute(select(events))).all() == [], "nothing is stored"


async def test_ping_is_answered_with_the_zen_and_recorded_as_ignored(make_api: Any) -> None:
    api = await make_api(config())
    r = await post(api, *signed(raw("ping"), "ping"))
    assert r.status_code == 200
    assert r.json() == {"ok": True, "zen": load("ping")["zen"], "hook_id": load("ping")["hook_id"]}
    history = (await api.get("/api/v1/events", params={"integration": "github"}, headers=api.auth)).json()
    (ping,) = history["items"]
    assert ping["event_type"] == "ping" and ping["status"] == "ignored"


# -- settings and routing ---------------------------------------------------------------------------------
async def test_repositories_outside_the_allow_list_are_answered_200_and_recorded_ignored(make_api: Any) -> None:
    api = await make_api(config(repositories=["octo-org/*", "codertocat/other"]))
    stored, m = await deliver(api, raw("issues__opened"), "issues")
    assert m is None and stored["status"] == "ignored"
    assert stored["result"]["reason"] == f"repository {REPO} is not in repositories"
    stored, m = await deliver(api, raw("workflow_run__completed__failure"), "workflow_run")
    assert stored["status"] == "processed" and m is not None, "owner/* lets the organization's repositories through"
    assert receiver(repositories=["CODERTOCAT/hello-world"]).allows(REPO), "GitHub names are case-insensitive"
    assert not receiver(repositories=["codertocat/hello"]).allows(REPO)


async def test_a_route_on_pull_request_merged_sends_it_to_the_inbox_and_the_rest_elsewhere(make_api: Any) -> None:
    data = config()
    data["integrations"]["elsewhere"] = {"kind": "inbox"}
    data["routes"] = [{"name": "merged-prs", "match": {"labels": {"event_type": "pull_request.merged"}}, "to": ["inbox"]}]
    data["default"] = {"to": ["elsewhere"]}
    api = await make_api(data)
    for stem, event in (("pull_request__merged", "pull_request"), ("pull_request__closed", "pull_request"),
                        ("issues__opened", "issues")):
        stored, _ = await deliver(api, raw(stem), event)
        assert stored["status"] == "processed"

    async def arrived() -> bool:
        return len((await api.hub.inbox(limit=10))["items"]) == 3

    await eventually(arrived)
    inbox = [i["message"]["title"] for i in (await api.hub.inbox(integration="inbox"))["items"]]
    elsewhere = sorted(i["message"]["title"] for i in (await api.hub.inbox(integration="elsewhere"))["items"])
    assert inbox == [f"PR #2 merged in {REPO}: Update the README with new information."]
    assert elsewhere == [f"Issue #1 opened in {REPO}: Spelling error in the README file",
                         f"PR #2 closed in {REPO}: Update the README with new information."]


async def test_the_secret_can_come_from_the_vault(make_api: Any, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key()
    monkeypatch.setenv("TIDINGS_SECRET_KEY", key)
    await Vault(store, [key]).set("GITHUB_HOOK", "from the vault")
    api = await make_api(config(secret="${vault:GITHUB_HOOK}"), dispatch=False)
    assert (await post(api, *signed(raw("issues__opened"), "issues", secret="from the vault"))).status_code == 200
    assert (await post(api, *signed(raw("issues__opened"), "issues"))).status_code == 401


def test_settings_are_checked() -> None:
    def problems(**settings: Any) -> list[str]:
        with pytest.raises(ConfigError) as exc:
            parse_config({"integrations": {"gh": {"kind": "github", **settings}}})
        return exc.value.problems

    assert problems() == ["integrations.gh.secret: Field required"]
    assert problems(secret=" ")[0].startswith("integrations.gh.secret: must not be empty")
    assert problems(secret="s", repositories=[])[0].startswith("integrations.gh.repositories: an empty list")
    assert "'octocat' is not owner/name" in problems(secret="s", repositories=["octocat"])[0]
    assert problems(secret="s", colour="red") == ["integrations.gh.colour: Extra inputs are not permitted"]
    with pytest.raises(ConfigError, match="only receives"):
        parse_config({**config(), "routes": [{"to": ["github"]}]})
    s = parse_config(config(max_body="25MB", repositories=["octo-org/*"])).integrations["github"]
    assert s.max_body == 25_000_000 and SECRET not in repr(s)


# -- leniency -------------------------------------------------------------------------------------------
def _mangled(payload: Any) -> Any:
    """Every value replaced by something of the wrong type, keeping the shape's keys."""
    if isinstance(payload, dict):
        return {k: ("opened" if k == "action" else _mangled(v)) for k, v in payload.items()}
    if isinstance(payload, list):
        return "not a list"
    if isinstance(payload, str):
        return 12
    return {"unexpected": True}


@pytest.mark.parametrize("kind", sorted(GitHubReceiver.handlers))
async def test_handlers_never_crash_on_missing_or_odd_fields(kind: str) -> None:
    """A handler error would fail the event: a payload without the fields, or with values of
    the wrong type, still gives a message (or a reason it isn't news)."""
    r = receiver()
    name, _, action = kind.partition(".")
    stem = next(s for s in fixture_names() if event_type(github_event(s), load(s)) == kind)
    real = load(stem)
    for payload in ({}, {"action": action} if action else {}, _mangled(real), {**copy.deepcopy(real), "repository": None,
                                                                                  "sender": "x"}):
        if name == "pull_request" and action == "merged" and isinstance(payload, dict):
            payload = {**payload, "action": "closed"}
        event = _stored(kind, payload)
        outcome = await _handle(r, event)
        assert isinstance(outcome, (Skip, dict)), (kind, payload)


def _stored(kind: str, payload: Any) -> Any:
    from tidings.integrations.receiver import InboundEvent

    body = json.dumps(payload).encode()
    return InboundEvent(os.urandom(4).hex(), "github", "github", kind, "d", 0.0, {"content-type": "application/json"},
                        body, 0)


async def _handle(r: GitHubReceiver, event: Any) -> Any:
    """process() up to the message, without a hub: the emitted message is returned instead."""
    async def capture(hub: Any, ev: Any, message: Any, index: int = 0, to: Any = None) -> str:
        captured.append(message)
        return "m"

    captured: list[Any] = []
    r.emit = capture  # type: ignore[method-assign]
    result = await r.process(event, None)  # type: ignore[arg-type]
    assert result.get("status") == "ignored" or captured, result
    return result
