"""The GitHub tracker (``kind: github`` with ``sync:``) against the GitHub API stand-in
(tests/peers/github_api.py): pagination, ``since``, pull requests, conditional requests, the
create whose answer is lost, every field both ways, GitHub App tokens, each error from each
status, rate limits, the outbound guard, and the stand-in's webhooks through tidings' receiver."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from helpers import eventually
from peer import free_port
from peers.github_api import GitHubAPI, new_app_key

from tidings.config import parse_config
from tidings.errors import ConfigError
from tidings.integrations.base import Context
from tidings.integrations.github import GitHubReceiver
from tidings.integrations.github.tracker import REFRESH_MARGIN, split_marker
from tidings.sync.model import (
    AuthFailed,
    CallStats,
    NotFound,
    RateLimited,
    Rejected,
    Unavailable,
    current_stats,
)

REPO = "octo/repo"
TOKEN = "ghp_test"
SECRET = "webhook secret"


@pytest.fixture
async def gh() -> AsyncIterator[GitHubAPI]:
    api = GitHubAPI(tokens={TOKEN})
    api.repo(REPO)
    await api.start()
    yield api
    await api.stop()


@pytest.fixture(scope="module")
def keys() -> list[tuple[bytes, bytes]]:
    """Two app keys (RSA key generation takes a while: once per module)."""
    return [new_app_key(), new_app_key()]


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., GitHubReceiver]]:
    built: list[GitHubReceiver] = []

    def build(gh: GitHubAPI, *, allow: bool = True, sync: dict[str, Any] | None = None, **settings: Any) -> GitHubReceiver:
        data = {"kind": "github", "api_url": gh.url, "sync": {"repository": REPO, **(sync or {})}, "timeout": 2,
                **({"allow_destinations": ["127.0.0.1"]} if allow else {}), **settings}
        if "app_id" not in settings:
            data.setdefault("token", TOKEN)
        s = parse_config({"integrations": {"gh": data}}).integrations["gh"]
        tracker = GitHubReceiver("gh", s, Context(store=None, threads=None))  # type: ignore[arg-type]
        built.append(tracker)
        return tracker

    yield build
    for t in built:
        await t.close()


async def sweep(t: GitHubReceiver, since: float | None = None, etag: str | None = None) -> list[Any]:
    return [page async for page in t.changes(since, etag)]


# -- reading ---------------------------------------------------------------------------------------------
async def test_a_sweep_pages_through_link_headers_oldest_first_without_pull_requests(gh: GitHubAPI, make: Any) -> None:
    gh.seed(REPO, 230, start=1_700_000_000)
    gh.open_pull(REPO, "A pull request")
    gh.open_issue(REPO, "Newest")
    pages = await sweep(make(gh))
    assert [len(p.items) for p in pages] == [100, 100, 31]
    items = [i for p in pages for i in p.items]
    assert [i.id for i in items] == [str(n) for n in range(1, 231)] + ["232"]
    assert [i.updated_at for i in items] == sorted(i.updated_at for i in items)
    assert gh.calls["GET issues"] == 3 and all(p.etag and p.etag.startswith('W/"') for p in pages)
    first = gh.requests[0][1]
    assert "state=all" in first and "sort=updated" in first and "direction=asc" in first and "per_page=100" in first
    assert items[0].key == f"{REPO}#1" and items[0].url == f"https://github.com/{REPO}/issues/1"


async def test_since_is_inclusive_to_the_second(gh: GitHubAPI, make: Any) -> None:
    gh.seed(REPO, 10, start=1_700_000_000)
    pages = await sweep(make(gh), since=1_700_000_004.9)
    assert [i.id for p in pages for i in p.items] == ["5", "6", "7", "8", "9", "10"]
    assert "since=2023-11-14T22:13:24Z" in gh.requests[-1][1]


async def test_an_unchanged_sweep_is_one_conditional_request_answered_304(gh: GitHubAPI, make: Any) -> None:
    gh.seed(REPO, 150, start=1_700_000_000)
    t = make(gh)
    etag = (await sweep(t, since=1_700_000_000))[0].etag
    stats = CallStats()
    token = current_stats.set(stats)
    try:
        pages = await sweep(t, since=1_700_000_000, etag=etag)
    finally:
        current_stats.reset(token)
    assert len(pages) == 1 and pages[0].not_modified and pages[0].items == [] and pages[0].etag == etag
    assert (stats.api_calls, stats.not_modified) == (1, 1) and gh.not_modified == 1
    assert gh.requests[-1][2]["If-None-Match"] == etag
    gh.edit(REPO, 3, title="Changed")
    pages = await sweep(t, since=1_700_000_000, etag=etag)
    assert not pages[0].not_modified and pages[-1].items[-1].fields["title"] == "Changed"


async def test_fetch_with_the_items_etag_is_none_when_unchanged(gh: GitHubAPI, make: Any) -> None:
    gh.open_issue(REPO, "One", body="Text")
    t = make(gh)
    item = await t.fetch("1")
    assert item is not None and item.etag and item.fields["description"] == "Text"
    assert await t.fetch("1", item.etag) is None and gh.not_modified == 1
    gh.edit(REPO, 1, body="New text")
    again = await t.fetch("1", item.etag)
    assert again is not None and again.fields["description"] == "New text"


async def test_how_issues_read_in_task_space(gh: GitHubAPI, make: Any) -> None:
    t = make(gh, sync={"assignees": {"ann@example.com": "ann-gh"}, "in_progress_label": "doing"})
    gh.open_issue(REPO, "  Spaces  ", body="Line  \r\nTwo\n\n<!-- tidings:link=abc-123 -->\n",
                  labels=["bug", "priority:high", "Doing"], assignees=["Ann-GH", "bob"])
    gh.open_issue(REPO, "Plain", assignees=["bob"])
    gh.open_issue(REPO, "Dropped")
    gh.edit(REPO, 3, state="closed", state_reason="not_planned")
    one, two, three = [await t.fetch(str(n)) for n in (1, 2, 3)]
    assert one.fields == {"title": "Spaces", "description": "Line\nTwo", "status": "in_progress", "priority": "high",
                          "assignee": "ann@example.com", "labels": ["bug"]}
    assert one.marker == "abc-123" and one.status_name == "doing" and "due" not in one.fields
    assert (two.fields["status"], two.fields["priority"], two.fields["assignee"], two.marker) == \
        ("todo", "medium", "github:bob", None)
    assert (three.fields["status"], three.status_name) == ("done", "not planned")


def test_the_marker_is_only_taken_from_the_end() -> None:
    assert split_marker("a\n\n<!-- tidings:link=x1 -->") == ("a", "x1")
    assert split_marker("<!-- tidings:link=x1 --> quoted") == ("<!-- tidings:link=x1 --> quoted", None)
    assert split_marker("a <!-- tidings:link=bad id -->") == ("a <!-- tidings:link=bad id -->", None)


# -- writing ----------------------------------------------------------------------------------------------
async def test_create_carries_the_marker_and_a_lost_answer_is_found_not_made_twice(gh: GitHubAPI, make: Any) -> None:
    t = make(gh)
    since = time.time()
    gh.drop_next("POST")
    fields = {"title": "From tidings", "description": "Do it", "status": "in_progress", "priority": "critical",
              "assignee": "github:octocat", "labels": ["ops"], "due": "2030-01-01"}
    with pytest.raises(Unavailable):
        await t.create(fields, "link-1")
    assert len(gh.repos[REPO].issues) == 1  # made, though the answer was lost
    found = await t.find_created("link-1", since)
    assert found is not None and found.marker == "link-1" and found.id == "1"
    assert found.fields == {"title": "From tidings", "description": "Do it", "status": "in_progress",
                            "priority": "critical", "assignee": "github:octocat", "labels": ["ops"]}
    assert gh.issue(REPO, 1).body == "Do it\n\n<!-- tidings:link=link-1 -->"
    assert await t.find_created("link-2", since) is None
    done = await t.create({**fields, "status": "done", "title": "Closed at once"}, "link-3")
    assert done.fields["status"] == "done" and gh.issue(REPO, 2).state_reason == "completed"
    assert gh.calls["POST issues"] == 2 and gh.calls["PATCH issue"] == 1


async def test_update_writes_each_field_as_github_has_it(gh: GitHubAPI, make: Any) -> None:
    t = make(gh, sync={"assignees": {"ann@example.com": "ann-gh"}})
    await t.create({"title": "T", "description": "D", "status": "todo", "priority": "high", "labels": ["a"]}, "L1")

    async def change(**changes: Any) -> Any:
        current = await t.fetch("1")
        await t.update("1", changes, current)
        return gh.issue(REPO, 1)

    assert (await change(title="New title")).title == "New title"
    assert (await change(description="New body")).body == "New body\n\n<!-- tidings:link=L1 -->"
    issue = await change(status="in_progress")
    assert issue.state == "open" and sorted(issue.labels) == ["a", "in progress", "priority:high"]
    issue = await change(status="done")
    assert (issue.state, issue.state_reason) == ("closed", "completed") and "in progress" not in issue.labels
    issue = await change(status="todo")
    assert (issue.state, issue.state_reason) == ("open", "reopened")
    assert sorted((await change(priority="low")).labels) == ["a", "priority:low"]
    assert sorted((await change(labels=["b", "priority:critical"])).labels) == ["b", "priority:low"]
    assert (await change(assignee="ann@example.com")).assignees == ["ann-gh"]
    assert (await change(assignee="github:zed")).assignees == ["zed"]
    assert (await change(assignee=None)).assignees == []
    with pytest.raises(Rejected, match="no GitHub login"):
        await change(assignee="carl@example.com")
    requests = gh.calls["PATCH issue"]
    await t.update("1", {"due": "2030-01-01"}, await t.fetch("1"))
    assert gh.calls["PATCH issue"] == requests  # due is not synced: nothing to send
    item = await t.fetch("1")
    assert item.fields == {"title": "New title", "description": "New body", "status": "todo", "priority": "low",
                           "assignee": None, "labels": ["b"]}


async def test_the_default_priority_label_is_kept_or_left_off_as_it_was(gh: GitHubAPI, make: Any) -> None:
    t = make(gh)
    gh.open_issue(REPO, "Bare", labels=["x"])
    gh.open_issue(REPO, "Explicit", labels=["x", "priority:medium"])
    for n in (1, 2):
        await t.update(str(n), {"labels": ["y"]}, await t.fetch(str(n)))
    assert gh.issue(REPO, 1).labels == ["y"] and gh.issue(REPO, 2).labels == ["y", "priority:medium"]


async def test_webhooks_from_our_writes_and_a_persons_edits(gh: GitHubAPI, make: Any, sink: Any) -> None:
    """The stand-in posts GitHub's ``issues`` webhooks for every change, in GitHub's order."""
    gh.hooks(sink.url, SECRET)
    t = make(gh)
    await t.create({"title": "T", "labels": ["bug"], "assignee": "github:ann"}, "L")
    gh.edit(REPO, 1, state="closed", labels=[], by="ann")
    gh.delete(REPO, 1)
    await gh.delivered()
    assert [p["action"] for _, p, _ in gh.webhooks] == ["opened", "labeled", "assigned", "closed", "unlabeled",
                                                          "deleted"]
    assert [p["sender"]["login"] for _, p, _ in gh.webhooks][:4] == ["tidings-bot", "tidings-bot", "tidings-bot", "ann"]
    with pytest.raises(NotFound, match="410"):
        await t.fetch("1")


# -- GitHub App ------------------------------------------------------------------------------------------
async def test_an_app_mints_an_installation_token_and_replaces_it_before_its_hour_ends(
        gh: GitHubAPI, make: Any, keys: Any) -> None:
    private, public = keys[0]
    gh.add_app(1234, public, installation_id=99)
    gh.open_issue(REPO, "One")
    t = make(gh, app_id=1234, installation_id=99, private_key=private.decode())
    await t.fetch("1")
    await t.fetch("1")
    assert gh.calls["POST access_tokens"] == 1
    minted = gh.requests[0]
    assert minted[1] == "/app/installations/99/access_tokens"
    claims = json.loads(base64.urlsafe_b64decode(minted[2]["Authorization"].split(".")[1] + "=="))
    assert claims["iss"] == "1234" and claims["exp"] - time.time() <= 600 and claims["iat"] <= time.time()
    assert gh.requests[1][2]["Authorization"].startswith("Bearer ghs_")
    gh.token_lifetime = REFRESH_MARGIN - 10  # a token already inside the margin is replaced at once
    t._app.forget()
    await t.fetch("1")
    await t.fetch("1")
    assert gh.calls["POST access_tokens"] == 3


async def test_an_app_jwt_signed_with_another_key_or_for_another_installation_is_refused(
        gh: GitHubAPI, make: Any, keys: Any) -> None:
    _, public = keys[0]
    other, _ = keys[1]
    gh.add_app(1234, public, installation_id=99)
    gh.open_issue(REPO, "One")
    with pytest.raises(AuthFailed, match="JSON web token could not be decoded"):
        await make(gh, app_id=1234, installation_id=99, private_key=other.decode()).fetch("1")
    with pytest.raises(AuthFailed, match="no such installation"):
        await make(gh, app_id=1234, installation_id=100, private_key=keys[0][0].decode()).fetch("1")
    with pytest.raises(AuthFailed, match="JSON web token could not be decoded"):
        await make(gh, app_id=4321, installation_id=99, private_key=keys[0][0].decode()).fetch("1")
    with pytest.raises(AuthFailed, match="not a PEM"):
        await make(gh, app_id=1234, installation_id=99, private_key="not a key").fetch("1")
    assert gh.calls["GET issue"] == 0


async def test_the_stand_in_refuses_a_jwt_that_lives_too_long(gh: GitHubAPI, make: Any, keys: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import tidings.integrations.github.tracker as tracker_module

    private, public = keys[0]
    gh.add_app(7, public, installation_id=8)
    monkeypatch.setattr(tracker_module, "JWT_LIFETIME", 1200)
    with pytest.raises(AuthFailed, match="too far in the future"):
        await make(gh, app_id=7, installation_id=8, private_key=private.decode()).fetch("1")


# -- errors ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "error"), [(500, Unavailable), (502, Unavailable), (503, Unavailable),
                                               (404, NotFound), (410, NotFound), (422, Rejected), (400, Rejected)])
async def test_each_status_is_its_error(gh: GitHubAPI, make: Any, status: int, error: type[Exception]) -> None:
    gh.open_issue(REPO, "One")
    gh.fail(status)
    with pytest.raises(error):
        await make(gh).fetch("1")


async def test_errors_from_the_real_behaviour(gh: GitHubAPI, make: Any) -> None:
    gh.open_issue(REPO, "One")
    gh.delete(REPO, 1)
    t = make(gh)
    with pytest.raises(NotFound, match="410 This issue was deleted"):
        await t.fetch("1")
    with pytest.raises(NotFound, match="404 Not Found"):
        await t.fetch("77")
    with pytest.raises(NotFound):
        await t.fetch("../../user")
    with pytest.raises(Rejected, match=r"Validation Failed \(body is too long"):
        await t.create({"title": "Huge", "description": "x" * 70_000}, "L")
    with pytest.raises(Rejected, match="needs a title"):
        await t.create({"title": " "}, "L")
    gh.repos[REPO].assignable = {"ann"}
    with pytest.raises(Rejected, match="assignees invalid"):
        await t.create({"title": "T", "assignee": "github:mallory"}, "L")
    with pytest.raises(AuthFailed, match=r"\(401\): Bad credentials"):
        await make(gh, token="ghp_wrong").fetch("1")
    gh.fail(403, body={"message": "Resource not accessible by personal access token"})
    with pytest.raises(AuthFailed, match="Resource not accessible"):
        await t.fetch("2")
    gh.open_pull(REPO, "PR")
    with pytest.raises(NotFound, match="pull request"):
        await t.fetch("2")


async def test_a_peer_that_is_down_or_too_slow_is_unavailable(gh: GitHubAPI, make: Any) -> None:
    gh.open_issue(REPO, "One")
    gh.stall(5)
    stats = CallStats()
    token = current_stats.set(stats)
    try:
        with pytest.raises(Unavailable, match="did not answer"):
            await make(gh, timeout=0.3).fetch("1")
        down = GitHubAPI()
        down.port = free_port()
        with pytest.raises(Unavailable, match="did not answer"):
            await make(down).fetch("1")
    finally:
        current_stats.reset(token)
    assert stats.api_calls == 2


async def test_rate_limits_say_how_long_to_wait(gh: GitHubAPI, make: Any) -> None:
    gh.open_issue(REPO, "One")
    t = make(gh)
    item = await t.fetch("1")
    gh.exhaust(reset_in=120)
    with pytest.raises(RateLimited, match="rate limit is spent") as exc:
        await t.fetch("1")
    assert 110 <= exc.value.wait <= 121
    gh.exhausted_until = 0
    gh.secondary_limit(status=403, retry_after=30)
    with pytest.raises(RateLimited, match="secondary") as exc:
        await t.fetch("1")
    assert exc.value.wait == 30
    gh.secondary_limit(status=429)
    gh.secondary_limit(status=403)
    waits = []
    for _ in range(2):
        with pytest.raises(RateLimited) as exc:
            await t.fetch("1")
        waits.append(exc.value.wait)
    assert waits == [60, 120]  # at least a minute, doubling while it lasts
    assert await t.fetch("1", item.etag) is None  # an answer ends the streak
    gh.secondary_limit(status=429)
    with pytest.raises(RateLimited) as exc:
        await t.fetch("1")
    assert exc.value.wait == 60


async def test_every_answer_carries_the_rate_limit_headers(gh: GitHubAPI, make: Any) -> None:
    import aiohttp

    gh.open_issue(REPO, "One")
    async with aiohttp.ClientSession() as client:
        for auth in (f"token {TOKEN}", "Bearer nope"):
            async with client.get(f"{gh.url}/repos/{REPO}/issues/1", headers={"Authorization": auth}) as r:
                assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-used", "x-ratelimit-reset",
                        "x-ratelimit-resource"} <= {k.lower() for k in r.headers}
                if r.status == 401:
                    assert (await r.json())["message"] == "Bad credentials"
                else:
                    assert r.headers["ETag"].startswith('W/"')
                    async with client.get(f"{gh.url}/repos/{REPO}/issues/1",
                                          headers={"Authorization": auth, "If-None-Match": r.headers["ETag"]}) as again:
                        assert again.status == 304


async def test_the_outbound_guard_refuses_github_on_a_private_address_not_allowed(gh: GitHubAPI, make: Any) -> None:
    gh.open_issue(REPO, "One")
    with pytest.raises(Unavailable, match="allow_destinations"):
        await make(gh, allow=False).fetch("1")
    assert gh.requests == []


async def test_a_next_link_to_another_host_is_not_followed(gh: GitHubAPI, make: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The token goes along with the next page: only to the API's own host."""
    import tidings.integrations.github.tracker as tracker_module

    monkeypatch.setattr(tracker_module, "PER_PAGE", 1)
    gh.seed(REPO, 3)
    t = make(gh, api_url=gh.url.replace("127.0.0.1", "localhost"), allow_destinations=["127.0.0.1", "localhost"])
    with pytest.raises(Unavailable, match="another host"):
        await sweep(t)


# -- settings ----------------------------------------------------------------------------------------------
def test_sync_settings_are_checked() -> None:
    def problems(**settings: Any) -> list[str]:
        with pytest.raises(ConfigError) as exc:
            parse_config({"integrations": {"gh": {"kind": "github", **settings}}})
        return exc.value.problems

    sync = {"repository": REPO}
    assert problems() == ["integrations.gh.secret: Field required"]
    assert "sync needs credentials" in problems(sync=sync)[0]
    assert "not both" in problems(sync=sync, token="t", app_id=1, installation_id=2, private_key="k")[0]
    assert "is not owner/name" in problems(sync={"repository": "octo"}, token="t")[0]
    assert "share a label" in problems(sync={**sync, "priority_labels": {"high": "P1", "low": "p1"}}, token="t")[0]
    assert "differ from the priority labels" in problems(
        sync={**sync, "in_progress_label": "priority:high"}, token="t")[0]
    assert "secret: required unless sync" in problems(secret=None)[0]
    s = parse_config({"integrations": {"gh": {"kind": "github", "sync": sync, "token": "t"}}}).integrations["gh"]
    assert s.secret is None and not GitHubReceiver.can_receive(s) and GitHubReceiver.can_sync(s)
    assert s.sync.priority_labels["critical"] == "priority:critical" and s.api_url == "https://api.github.com"
    assert "t" in s.secret_values()
    hook = parse_config({"integrations": {"gh": {"kind": "github", "secret": "s"}}}).integrations["gh"]
    assert GitHubReceiver.can_receive(hook) and not GitHubReceiver.can_sync(hook)


# -- the stand-in's webhooks through tidings' receiver ---------------------------------------------------------------
class Hints:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def hint(self, integration: str, remote_id: str) -> None:
        self.seen.append((integration, remote_id))


async def test_the_stand_ins_webhooks_verify_through_the_receiver_and_hint_the_sync(gh: GitHubAPI, make_api: Any) -> None:
    api = await make_api({"integrations": {"github": {
        "kind": "github", "secret": SECRET, "token": TOKEN, "api_url": gh.url, "allow_destinations": ["127.0.0.1"],
        "sync": {"repository": REPO}}}})
    hints = Hints()
    api.hub.sync.hint = hints.hint  # type: ignore[method-assign]  # the service's hints, caught
    gh.hooks(f"{api.url}/hooks/github", SECRET)
    gh.open_issue(REPO, "Opened on GitHub", labels=["bug"], assignees=["ann"])
    gh.edit(REPO, 1, title="Renamed", state="closed")
    gh.repo("octo/other")
    gh.open_issue("octo/other", "Elsewhere")
    await gh.delivered()
    assert [s for _, _, s in gh.webhooks] == [200] * 6

    async def processed() -> bool:
        listed = (await api.get("/api/v1/events?integration=github")).json()["items"]
        return len(listed) == 6 and all(e["status"] == "processed" for e in listed)

    await eventually(processed)
    listed = (await api.get("/api/v1/events?integration=github")).json()["items"]
    assert sorted(e["event_type"] for e in listed) == sorted(
        ["issues.opened", "issues.labeled", "issues.assigned", "issues.edited", "issues.closed", "issues.opened"])
    assert hints.seen == [("github", "1")] * 5
    gh.hooks(f"{api.url}/hooks/github", "another secret")
    assert await gh.post_webhook("issues", gh.webhooks[0][1]) == 401
