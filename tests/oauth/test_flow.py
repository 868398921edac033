"""Connecting an integration end to end, for each provider, on SQLite and PostgreSQL: a person
opens /oauth/NAME/start, the (stand-in) provider's authorize endpoint sends them back with a code,
the callback exchanges it with the PKCE verifier and stores the tokens in the vault."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flow_support import CLIENT_SECRET, INTEGRATIONS, PUBLIC_URL, World, query
from peers.oauth import PROVIDERS, challenge_of
from sqlalchemy import select

from tidings.delivery.holds import BY_HAND, set_disabled
from tidings.oauth import connections
from tidings.store.connection_tables import oauth_states
from tidings.store.tables import audit_log, integration_state

pytestmark = pytest.mark.usefixtures("db")


async def audit(world: World, action: str) -> list[Any]:
    async with world.hub.store.read() as conn:
        return list(await conn.execute(select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.seq)))


async def everything_logged(world: World) -> str:
    """Every audit entry and connection row, as text (to look for secrets in)."""
    async with world.hub.store.read() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(select(audit_log))]
        rows += await connections.list_connections(conn)
    return json.dumps(rows, default=str)


ACCOUNTS = {"github": "octocat", "slack": "Tidings Test", "google": "grace@example.com",
            "microsoft": "grace@example.com", "atlassian": "grace@example.com"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_person_connects_each_provider(make_world: Any, provider: str, caplog: pytest.LogCaptureFixture,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    world: World = await make_world()
    name = INTEGRATIONS[provider]
    back = await world.authorize(name)
    asked = world.auth.authorizations[-1]
    assert asked["code_challenge_method"] == "S256" and asked["client_id"] == f"{provider}-client"
    assert asked["redirect_uri"] == f"{PUBLIC_URL}/oauth/{name}/callback"
    page = await world.browse(back)
    assert page.status_code == 200, page.text
    assert f"Connected {name} as {ACCOUNTS[provider]}" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"

    async with world.hub.store.read() as conn:
        row = await connections.get(conn, name)
    assert row is not None and row["health"] == "healthy" and row["provider"] == provider
    assert row["account"] == ACCOUNTS[provider]
    access = await world.vault.get(f"oauth/{name}/access")
    assert world.auth.valid(access) and access in world.auth.live(provider)
    refresh = world.auth.live(provider, "refresh")
    assert row["has_refresh"] == bool(refresh)
    assert bool(refresh) == (provider != "google" or asked.get("prompt") == "consent")
    if refresh:
        assert await world.vault.get(f"oauth/{name}/refresh") == refresh[0]
    assert world.auth.token_requests[f"{provider} authorization_code"] == 1
    if provider == "atlassian":
        site = world.auth.person.sites[0]
        assert row["extra"]["cloud_id"] == site["id"] and row["extra"]["site_url"] == site["url"]
        assert asked["audience"] == "api.atlassian.com"
    if provider == "slack":
        assert row["extra"]["team_id"] == "T0TIDINGS" and row["extra"]["bot_user_id"] == "U0TIDINGSBOT"
        assert access.startswith("xoxe.xoxb-1-") and refresh[0].startswith("xoxe-1-")
    if provider == "microsoft":
        assert "offline_access" in asked["scope"].split()
    if provider == "google":
        assert asked["access_type"] == "offline"
    connected = await audit(world, "oauth.connect")
    assert [(e.target, e.outcome) for e in connected] == [(f"integration/{name}", "ok")]

    # No secret anywhere a person or an operator can read.
    code = query(back)["code"]
    logged = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # the browser's own
    shown = page.text + await everything_logged(world) + "".join(logged) + "".join(capsys.readouterr())
    for secret in (access, *refresh, code, query(back)["state"], CLIENT_SECRET):
        assert secret not in shown


async def test_the_verifier_sent_is_the_one_the_challenge_was_made_from(make_world: Any) -> None:
    world: World = await make_world()
    back = await world.authorize("github-probe")
    challenge = world.auth.authorizations[-1]["code_challenge"]
    grant = world.auth.codes[query(back)["code"]]
    assert grant.challenge == challenge and len(challenge) == 43
    assert (await world.browse(back)).status_code == 200
    # What reached the token endpoint answered the challenge (the stand-in checked it): a wrong one is refused.
    assert challenge_of("x" * 43) != challenge


async def test_connect_api_start_refusals_and_a_second_connect(make_world: Any) -> None:
    world: World = await make_world()
    api = world.api
    r = await api.post("/api/v1/integrations/github-probe/connect")
    assert r.status_code == 200 and r.json()["url"].startswith(world.auth.url + "/github/login/oauth/authorize?")
    assert (await api.post("/api/v1/projects/default/integrations/github-probe/connect")).status_code == 200
    assert (await api.post("/api/v1/integrations/nope/connect")).status_code == 404
    assert (await api.get("/oauth/nope/start")).status_code == 404
    assert (await api.get("/oauth/github-probe/start", auth=False)).status_code == 401
    # A second connect replaces the first: new tokens, one connection row (version 2).
    first = await world.connect("github-probe")
    second = await world.connect("github-probe")
    assert first.status_code == second.status_code == 200
    async with world.hub.store.read() as conn:
        row = await connections.get(conn, "github-probe")
    assert row is not None and row["version"] == 2
    assert world.auth.valid(await world.vault.get("oauth/github-probe/access"))


async def test_an_integration_that_does_not_connect_says_why(make_world: Any, make_api: Any) -> None:
    world: World = await make_world(github={"oauth": False})
    r = await world.api.get("/oauth/github-probe/start")
    assert r.status_code == 409 and "oauth: true" in r.json()["detail"]
    r = await world.api.post("/api/v1/integrations/github-probe/connect")
    assert r.status_code == 409 and "oauth: true" in r.json()["detail"]


@pytest.mark.parametrize(("reason", "enabled"), [("oauth connection needs re-auth (refused)", True), (BY_HAND, False)])
async def test_connecting_enables_an_integration_disabled_for_its_connection(make_world: Any, reason: str,
                                                                              enabled: bool) -> None:
    world: World = await make_world()
    async with world.hub.store.write() as conn:
        await set_disabled(conn, "slack-probe", True, reason, 1.0)
    page = await world.connect("slack-probe")
    assert page.status_code == 200 and ("enabled again" in page.text) == enabled
    async with world.hub.store.read() as conn:
        state = (await conn.execute(select(integration_state).where(integration_state.c.name == "slack-probe"))).one()
    assert state.disabled is (not enabled)
    assert len(await audit(world, "integration.enable")) == int(enabled)


async def test_who_may_start_connecting(make_world: Any) -> None:
    """A signed-in owner (session cookie) starts and becomes the connection's ``connected_by``; a
    viewer is refused (403, audited); someone of another project doesn't learn the integration exists."""
    import httpx
    from people import person

    from tidings.accounts.projects import create_project, set_member
    from tidings.accounts.users import create_user
    from tidings.audit import SYSTEM

    world: World = await make_world()
    store = world.hub.store
    async with store.write() as conn:
        owner = await create_user(conn, SYSTEM, email="owner@example.com", password="correct horse battery staple")
        await set_member(conn, SYSTEM, "default", "owner@example.com", "owner")
        await create_project(conn, SYSTEM, "elsewhere")
    viewer = await person(store, "viewer@example.com", {"default": "viewer"})
    stranger = await person(store, "stranger@example.com", {"elsewhere": "owner"})
    r = await world.api.get("/oauth/google-probe/start", auth=False, headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 403 and "integration:write" in r.json()["detail"]
    assert len(await audit(world, "access.denied")) == 1
    r = await world.api.get("/oauth/google-probe/start", auth=False, headers={"Authorization": f"Bearer {stranger}"})
    assert r.status_code == 404
    r = await world.api.post("/api/v1/integrations/google-probe/connect", auth=False,
                             headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 403

    async with httpx.AsyncClient(base_url=world.api.url, timeout=15.0) as browser:
        signed = await browser.post("/auth/login", json={"email": "owner@example.com",
                                                          "password": "correct horse battery staple"})
        assert signed.status_code == 200, signed.text
        lured = await browser.get("/oauth/google-probe/start", headers={"Sec-Fetch-Site": "cross-site"})
        assert lured.status_code == 200 and 'href="/oauth/google-probe/start"' in lured.text  # a click to confirm
        assert lured.headers["x-frame-options"] == "DENY" and not world.auth.authorizations
        async with store.read() as conn:
            assert (await conn.execute(select(oauth_states))).first() is None
        start = await browser.get("/oauth/google-probe/start", headers={"Sec-Fetch-Site": "same-origin"})
        assert start.status_code == 302
    back = await world.browse(start.headers["location"])
    page = await world.browse(back.headers["location"])
    assert page.status_code == 200, page.text
    async with store.read() as conn:
        row = await connections.get(conn, "google-probe")
    assert row is not None and row["connected_by"] == owner.id
    assert [e.actor_id for e in await audit(world, "oauth.connect")] == [owner.id]


@pytest.mark.parametrize(("base_url", "chosen"), [(None, 0), ("https://second.atlassian.net/", 1)])
async def test_atlassian_with_several_sites_picks_the_integrations_one(make_world: Any, base_url: str | None,
                                                                       chosen: int) -> None:
    world: World = await make_world(atlassian={"base_url": base_url} if base_url else {})
    sites = [dict(world.auth.person.sites[0]), {"id": "b0b0b0b0-1111-2222-3333-444455556666",
                                                "url": "https://second.atlassian.net", "name": "second",
                                                "scopes": ["read:jira-work"], "avatarUrl": "https://x.example/a.png"}]
    world.auth.person.sites = sites
    assert (await world.connect("atlassian-probe")).status_code == 200
    async with world.hub.store.read() as conn:
        row = await connections.get(conn, "atlassian-probe")
    assert row is not None
    assert row["extra"]["cloud_id"] == sites[chosen]["id"] and row["extra"]["site_url"] == sites[chosen]["url"]
    assert [s["id"] for s in row["extra"]["sites"]] == [s["id"] for s in sites]
