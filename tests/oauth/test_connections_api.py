"""The connections API (``server/connections_api.py``): each connection-capable integration of a
project with its health (not connected ones too), refresh now, disconnect; who may do what; another
project's integration not found; never a token in any answer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from oauth.keeper_support import TokenEndpoint, connect, demo_config
from people import person
from sqlalchemy import select

from tidings.integrations.base import OutcomeStatus
from tidings.oauth.connections import TokenSet
from tidings.oauth.names import access_secret, refresh_secret
from tidings.security.vault import new_key, write_key_file
from tidings.store.tables import audit_log, secrets

A = "/api/v1/projects/alpha/connections"


pytestmark = pytest.mark.usefixtures("demo")


@pytest.fixture
async def api(make_api: Any, endpoint: TokenEndpoint, tmp_path: Path) -> Any:
    write_key_file(tmp_path / "tidings.key", [new_key()])
    config = demo_config(endpoint, "chat", "chat2", project="alpha")
    config["integrations"]["beta-chat"] = {"kind": "oauthdemo", "oauth": True, "project": "beta"}
    config["integrations"]["plain"] = {"kind": "oauthdemo", "project": "alpha", "token": "pasted-token"}
    config["routes"] = [{"project": "alpha", "to": ["chat"]}, {"project": "beta", "to": ["beta-chat"]}]
    config["default"] = {"to": ["inbox"]}
    api = await make_api(config, dispatch=False, migrate=False)
    store = api.hub.store
    api.tokens = {
        "viewer": await person(store, "v@example.com", {"alpha": "viewer"}),
        "member": await person(store, "m@example.com", {"alpha": "member"}),
        "owner": await person(store, "o@example.com", {"alpha": "owner"}),
        "beta owner": await person(store, "b@example.com", {"beta": "owner"}),
    }
    api.grants = {"chat": endpoint.grant(), "beta-chat": endpoint.grant()}
    await connect(api.hub, "chat", api.grants["chat"], account="T1 acme")
    await connect(api.hub, "beta-chat", api.grants["beta-chat"])
    return api


def who(api: Any, caller: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {api.tokens[caller]}"}, "auth": False}


def _no_tokens(api: Any, endpoint: TokenEndpoint, text: str) -> None:
    for grant in api.grants.values():
        assert grant.access_token not in text and grant.refresh_token not in text
    for token in [*endpoint.issued, *endpoint.valid, "pasted-token"]:
        assert token not in text


async def test_a_viewer_lists_the_projects_connections(api: Any, endpoint: TokenEndpoint) -> None:
    r = await api.get(A, **who(api, "viewer"))
    assert r.status_code == 200, r.text
    items = {c["integration"]: c for c in r.json()}
    assert set(items) == {"chat", "chat2"}  # not `plain` (a pasted token), not beta's
    chat, chat2 = items["chat"], items["chat2"]
    assert chat["health"] == "healthy" and chat["provider"] == "slack" and chat["account"] == "T1 acme"
    assert chat["scopes"] == ["chat:write"] and chat["has_refresh"] and chat["expires_at"] > time.time()
    assert chat["start_url"] == "https://tidings.example.com/oauth/chat/start" and chat["configured"]
    assert chat2["health"] == "not_connected" and chat2["account"] is None and chat2["scopes"] == []
    assert chat2["start_url"].endswith("/oauth/chat2/start")
    _no_tokens(api, endpoint, r.text)
    r = await api.get(f"{A}/chat", **who(api, "viewer"))
    assert r.status_code == 200 and r.json()["integration"] == "chat"
    _no_tokens(api, endpoint, r.text)
    for path in (f"{A}/beta-chat", f"{A}/plain", f"{A}/nope"):
        r = await api.get(path, **who(api, "viewer"))
        assert r.status_code == 404, (path, r.text)
    assert (await api.get("/api/v1/projects/beta/connections", **who(api, "viewer"))).status_code == 403
    r = await api.get("/api/v1/projects/beta/connections", **who(api, "beta owner"))
    assert [c["integration"] for c in r.json()] == ["beta-chat"]
    # The integrations list shows each one's connection health too.
    r = await api.get("/api/v1/projects/alpha/integrations", **who(api, "viewer"))
    health = {i["name"]: i.get("connection") for i in r.json()}
    assert health == {"chat": "healthy", "chat2": "not_connected", "plain": None}
    _no_tokens(api, endpoint, r.text)


async def test_health_shows_what_a_person_must_do(api: Any, endpoint: TokenEndpoint) -> None:
    soon = endpoint.grant()
    soon.refresh_expires_at = time.time() + 3 * 86400  # GitHub's refresh tokens end (6 months)
    await connect(api.hub, "chat2", soon)
    r = await api.get(f"{A}/chat2", **who(api, "viewer"))
    assert r.json()["health"] == "expiring"
    await connect(api.hub, "chat2", TokenSet(access_token="gone", expires_at=time.time() - 5))  # no refresh, ended
    body = (await api.get(f"{A}/chat2", **who(api, "viewer"))).json()
    assert body["health"] == "needs_reauth" and body["access_expired"] and not body["has_refresh"]


async def test_an_owner_refreshes_now(api: Any, endpoint: TokenEndpoint) -> None:
    for caller in ("viewer", "member"):
        r = await api.post(f"{A}/chat/refresh", **who(api, caller))
        assert r.status_code == 403, r.text
    assert endpoint.refreshes == 0
    r = await api.post(f"{A}/chat/refresh", **who(api, "owner"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "refreshed" and body["health"] == "healthy" and body["refreshed_at"] > 0
    _no_tokens(api, endpoint, r.text)
    assert (await api.post(f"{A}/chat2/refresh", **who(api, "owner"))).status_code == 404  # not connected
    assert (await api.post(f"{A}/beta-chat/refresh", **who(api, "owner"))).status_code == 404
    # The endpoint refuses: needs re-auth; a second refresh is refused (409), never sent.
    endpoint.valid.clear()
    r = await api.post(f"{A}/chat/refresh", **who(api, "owner"))
    assert r.status_code == 200 and r.json()["outcome"] == "refused" and r.json()["health"] == "needs_reauth"
    r = await api.post(f"{A}/chat/refresh", **who(api, "owner"))
    assert r.status_code == 409 and "needs re-auth" in r.json()["detail"]
    assert endpoint.refreshes == 2
    # A failure for now answers how it went.
    await connect(api.hub, "chat", endpoint.grant())
    endpoint.script.append((503, {}, {}))
    r = await api.post(f"{A}/chat/refresh", **who(api, "owner"))
    assert r.status_code == 200 and r.json()["outcome"] == "failed" and "HTTP 503" in r.json()["last_error"]


async def test_an_owner_disconnects(api: Any, endpoint: TokenEndpoint) -> None:
    assert (await api.request("DELETE", f"{A}/chat", **who(api, "member"))).status_code == 403
    r = await api.request("DELETE", f"{A}/chat", **who(api, "owner"))
    assert r.status_code == 200, r.text
    assert r.json() == {"integration": "chat", "disconnected": True}
    async with api.hub.store.read() as conn:
        names = {s.name for s in await conn.execute(select(secrets.c.name))}
        actions = [e.action for e in await conn.execute(select(audit_log.c.action).where(
            audit_log.c.target.in_(["integration/chat", f"secret/{access_secret('chat')}"])))]
    assert access_secret("chat") not in names and refresh_secret("chat") not in names
    assert "oauth.disconnect" in actions and "secret.delete" in actions
    assert (await api.get(f"{A}/chat", **who(api, "viewer"))).json()["health"] == "not_connected"
    assert (await api.request("DELETE", f"{A}/chat", **who(api, "owner"))).status_code == 404
    assert (await api.request("DELETE", f"{A}/beta-chat", **who(api, "owner"))).status_code == 404
    # The running integration lost its token: its next send is held as not connected.
    chat = api.hub._integrations["chat"]
    assert chat.settings.token is None
    outcome = await chat.send({}, None)
    assert outcome.status is OutcomeStatus.PERMANENT and outcome.disable and "not connected" in outcome.error


async def test_bad_names_and_no_credentials(api: Any) -> None:
    assert (await api.get(A, auth=False)).status_code == 401
    for bad, status in (("UPPER", 422), ("a%00b", 400), ("x" * 101, 422)):
        r = await api.get(f"{A}/{bad}", **who(api, "viewer"))
        assert r.status_code == status, (bad, r.text)
        assert r.json()["error"]
    r = await api.get(f"{A}?health=bad", **who(api, "viewer"))
    assert r.status_code == 422
