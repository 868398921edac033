"""OAuth connections end to end with the real integration kinds (issue 15): a served, dispatching hub,
a browser through the flow against the authorization server stand-in (tests/peers/oauth.py), and the
APIs' stand-ins taking only the tokens it issued: Slack (rotation, revocation, re-connect), Jira
through Atlassian 3LO, GitHub App user tokens, Google Calendar."""

from __future__ import annotations

from typing import Any

import pytest
from fake_slack import FakeSlack
from helpers import eventually
from oauth.e2e_support import OWNER, AtlassianGateway, Builder, Issued, World, sweep, titles
from peers.github_api import GitHubAPI
from peers.google_calendar import GoogleCalendarAPI
from peers.jira_api import JiraCloud

from tidings import Message

pytestmark = pytest.mark.slow


async def delivery(hub: Any, message_id: str) -> dict[str, Any]:
    return (await hub.message(message_id))["deliveries"][0]  # type: ignore[no-any-return]


async def reaches(hub: Any, message_id: str, status: str, timeout: float = 15.0) -> dict[str, Any]:
    async def there() -> bool:
        return (await delivery(hub, message_id))["status"] == status

    await eventually(there, timeout=timeout)
    return await delivery(hub, message_id)


def bearers(slack: FakeSlack) -> list[str]:
    return [c.headers.get("Authorization", "")[7:] for c in slack.calls_of("chat.postMessage")]


async def test_slack_connect_rotate_revoke_and_reconnect(make_e2e: Any, slack: FakeSlack,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    w: World = await make_e2e({
        "chat": {"kind": "slack", "oauth": True, "channel": "#alerts", "api_url": slack.api_url,
                 "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 100}},
        "ops": {"kind": "inbox"},
    }, ("slack",), routes=[{"match": {"labels": {"event_type": "oauth.needs_reauth"}, "source": "tidings"},
                            "to": ["ops"]}], default={"to": ["chat"]})
    slack.token = "never-this-one"
    slack.accept = Issued(w.auth, "slack")
    w.auth.access_ttl["slack"] = 4.0
    early = await w.hub.notify(Message("before connecting"))
    held = await reaches(w.hub, early.id, "held")
    assert "not connected" in held["last_error"]

    page = await w.connect("chat")
    assert page.status_code == 200 and "Connected chat as Tidings Test" in page.text, page.text
    await reaches(w.hub, early.id, "delivered")
    [first] = w.auth.live("slack")
    assert bearers(slack) == [first], "delivered with the token the authorization server issued"

    # rotation: the keeper refreshes before the 4 s token expires; the next message goes with the new one
    await eventually(lambda: _true(w.auth.token_requests["slack refresh_token"] >= 1), timeout=15)
    await eventually(lambda: _true(first not in w.auth.live("slack")), timeout=15)
    after = await w.hub.notify(Message("after the refresh"))
    await reaches(w.hub, after.id, "delivered")
    assert bearers(slack)[-1] in w.auth.tokens and bearers(slack)[-1] != first
    listed = (await w.cli("connections", "--json")).ok().json
    [row] = [c for c in listed if c["integration"] == "chat"]
    assert row["health"] == "healthy" and row["account"] == "Tidings Test", row

    # the refresh token is revoked: the next refresh is refused → needs re-auth, held, the owners told once
    for t in w.auth.tokens.values():
        if t.provider == "slack" and t.kind == "refresh":
            w.auth._revoke(t)
    refused_before = w.auth.token_requests["slack refresh_token"]
    await eventually(lambda: _true(w.auth.token_requests["slack refresh_token"] > refused_before), timeout=15)

    async def needs_reauth() -> bool:
        return (await w.connection("chat"))["health"] == "needs_reauth"

    await eventually(needs_reauth, timeout=15)
    w.auth.advance(3600)  # the last access token expires too: Slack refuses it
    late = await w.hub.notify(Message("while it needs re-auth"))
    await eventually(lambda: _held_or_pending(w.hub, late.id), timeout=15)
    [notice] = await _until_notices(w, 1)
    assert f"{'https://tidings.example.com'}/oauth/chat/start" in notice and OWNER in notice
    assert len(await w.notices()) == 1

    w.auth.advance(-3600)
    page = await w.connect("chat", start="https://tidings.example.com/oauth/chat/start")
    assert page.status_code == 200 and "enabled again" in page.text, page.text
    await reaches(w.hub, late.id, "delivered")
    assert bearers(slack)[-1] in w.auth.live("slack")
    assert (await w.connection("chat"))["health"] == "healthy"
    assert len(await w.notices()) == 1, "told once"
    no_token_in(capfd.readouterr(), w)


SYNCED = {"timeout": 5, "allow_destinations": ["127.0.0.1"]}


async def test_jira_through_atlassian_3lo(make_e2e: Builder) -> None:
    site = JiraCloud()
    await site.start()
    gateway = AtlassianGateway(make_e2e.auth, site.url)
    await gateway.start()
    try:
        site.add_project("OPS", "Operations")
        site.seed("OPS", 2)
        site.accept = Issued(make_e2e.auth, "atlassian")
        make_e2e.auth.person.sites.insert(0, {"id": "another-cloud", "url": "https://other.atlassian.net",
                                              "name": "other", "scopes": ["read:jira-work"]})
        make_e2e.auth.person.sites[1].update(id=site.cloud_id, url="https://acme.atlassian.net", name="acme")
        make_e2e.auth.access_ttl["atlassian"] = 4.0
        w = await make_e2e({"jira": {"kind": "jira", "oauth": True, "base_url": "https://acme.atlassian.net", **SYNCED,
                                     "sync": {"project": "OPS", "interval": 3600}}}, ("atlassian",),
                           apis={"atlassian": gateway.url})
        page = await w.connect("jira")
        assert page.status_code == 200 and "Connected jira as grace@example.com" in page.text, page.text
        extra = (await w.connection("jira"))["extra"]
        assert (extra["cloud_id"], extra["site_url"]) == (site.cloud_id, "https://acme.atlassian.net"), extra
        assert len(extra["sites"]) == 2
        run = await sweep(w, "jira")
        assert run["status"] == "ok", run
        assert {"Seeded issue 1", "Seeded issue 2"} <= await titles(w)
        assert site.gateway_auth and all(a[7:] in make_e2e.auth.tokens for a in site.gateway_auth)
        await _next_refresh(w, "atlassian")
        seen = len(site.gateway_auth)
        assert (await sweep(w, "jira"))["status"] == "ok"
        assert {a[7:] for a in site.gateway_auth[seen:]} <= set(w.auth.live("atlassian")), "the new token"
    finally:
        await gateway.stop()
        await site.stop()


async def _next_refresh(w: World, provider: str) -> None:
    """Until the keeper has refreshed once more and the running integration holds the new token."""
    before = w.auth.token_requests[f"{provider} refresh_token"]
    old = set(w.auth.live(provider))
    await eventually(lambda: _true(w.auth.token_requests[f"{provider} refresh_token"] > before), timeout=15)
    new = [v for v, t in w.auth.tokens.items() if t.provider == provider and t.kind == "access"][-1]
    assert new not in old

    async def held() -> bool:
        return any(v is not None and v.get_secret_value() == new for v in
                   vars(w.hub._integrations[next(iter(w.data["integrations"]))].settings).values()
                   if hasattr(v, "get_secret_value"))

    await eventually(held, timeout=10)


async def test_github_app_user_token_sync_and_rotation(make_e2e: Builder) -> None:
    gh = GitHubAPI()
    gh.tokens = Issued(make_e2e.auth, "github")  # type: ignore[assignment]
    gh.repo("octo/repo")
    gh.open_issue("octo/repo", "Seen through the app's user token")
    await gh.start()
    try:
        make_e2e.auth.access_ttl["github"] = 4.0
        w = await make_e2e({"github": {"kind": "github", "oauth": True, "api_url": gh.url, **SYNCED,
                                       "sync": {"repository": "octo/repo", "interval": 3600}}}, ("github",))
        page = await w.connect("github")
        assert page.status_code == 200 and "Connected github as octocat" in page.text, page.text
        run = await sweep(w, "github")
        assert run["status"] == "ok", run
        assert "Seen through the app's user token" in await titles(w)
        first = {r[2].get("Authorization") for r in gh.requests}
        await _next_refresh(w, "github")
        assert w.auth.revoked["github refresh"] >= 1, "rotated"
        gh.open_issue("octo/repo", "After the refresh")
        seen = len(gh.requests)
        assert (await sweep(w, "github"))["status"] == "ok"
        assert "After the refresh" in await titles(w)
        used = {r[2].get("Authorization", "").split(" ", 1)[1] for r in gh.requests[seen:]}
        assert used <= set(w.auth.live("github")) and not used & {a.split(" ", 1)[1] for a in first if a}
    finally:
        await gh.stop()


async def test_google_calendar_event_with_the_connections_token(make_e2e: Builder) -> None:
    gcal = GoogleCalendarAPI()
    gcal.tokens = Issued(make_e2e.auth, "google")  # type: ignore[assignment]
    await gcal.start()
    try:
        w = await make_e2e({"cal": {"kind": "google_calendar", "oauth": True, "api_url": gcal.url, "timeout": 5,
                                    "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 100}}}, ("google",),
                           routes=[{"name": "tasks-to-calendar", "match": {"source": "tasks"}, "to": ["cal"]}])
        page = await w.connect("cal")
        assert page.status_code == 200 and "Connected cal as grace@example.com" in page.text, page.text
        r = await w.api.post("/api/v1/tasks", json={"title": "Rotate the keys", "due": "2030-12-10"})
        assert r.status_code == 201, r.text
        await eventually(lambda: _true(bool(gcal.live())), timeout=15)
        [event] = gcal.live().values()
        assert event["summary"].endswith("Rotate the keys") and event["start"] == {"date": "2030-12-10"}, event
    finally:
        await gcal.stop()


async def test_two_workers_refresh_one_at_a_time(make_e2e: Builder, make_hub: Any, slack: FakeSlack) -> None:
    make_e2e.auth.access_ttl["slack"] = 2.0
    make_e2e.auth.stall("token", 0.3, times=1000)  # each refresh in flight a while: two at once would meet
    w = await make_e2e({"chat": {"kind": "slack", "oauth": True, "channel": "#alerts", "api_url": slack.api_url,
                                 "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 100}}}, ("slack",),
                       default={"to": ["chat"]})
    if w.hub.store.is_sqlite:
        pytest.skip("several workers share PostgreSQL")
    other = await make_hub(w.data)  # a second dispatching worker on the same database, its own keeper
    assert other.keeper is not None and other.keeper.owner != w.hub.keeper.owner
    slack.token, slack.accept = "never-this-one", Issued(w.auth, "slack")
    early = await w.hub.notify(Message("held until connected"))
    await reaches(w.hub, early.id, "held")
    await w.connect("chat")
    await reaches(w.hub, early.id, "delivered")  # by either worker, with the connection's token
    other.keeper.wake()
    await eventually(lambda: _true(w.auth.token_requests["slack refresh_token"] >= 8), timeout=60)
    row = await w.connection("chat")
    assert row["health"] == "healthy" and not row["last_error"], row
    assert w.auth.max_concurrent_refreshes == 1 and w.auth.concurrent_refreshes == 0
    # every refresh that reached the server was answered with new tokens: none refused
    answered = w.auth.issued["slack refresh"] - 1  # the connect's was the first
    assert w.auth.token_requests["slack refresh_token"] - answered <= w.auth.active_refreshes
    assert len(w.auth.live("slack", "refresh")) == 1


def no_token_in(captured: Any, w: World) -> None:
    """No token the authorization server issued (nor a long piece of one) in the process's output."""
    text = captured.out + captured.err
    assert not [t for t in w.auth.tokens if t[-16:] in text or t[:24] in text]


async def _true(value: bool) -> bool:
    return value


async def _held_or_pending(hub: Any, message_id: str) -> bool:
    return (await delivery(hub, message_id))["status"] in ("held", "pending")


async def _until_notices(w: World, n: int) -> list[str]:
    async def enough() -> bool:
        return len(await w.notices()) >= n

    await eventually(enough, timeout=15)
    return await w.notices()
