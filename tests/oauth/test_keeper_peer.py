"""The keeper against tests/peers/oauth.py, the local authorization server that answers like each
provider: a connection made through the real authorization-code flow (PKCE) is refreshed before
expiry with the rotated refresh token stored; a refused refresh (each provider's own error) needs
re-auth; 429/500/timeouts are retried later; and two processes hammering refreshes of one rotating
connection never both refresh it (the server counts refreshes of one grant under way at once)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from oauth.keeper_support import DemoSettings, connect, demo_kind
from peers.oauth import OAuthServer
from sqlalchemy import select, update

from tidings import Hub
from tidings.oauth import connections, flow, keeper, tokens
from tidings.oauth.connections import TokenSet
from tidings.oauth.names import access_secret, refresh_secret
from tidings.security.vault import new_key, write_key_file
from tidings.store.connection_tables import oauth_connections, oauth_states
from tidings.store.tables import integration_state

ROTATING = ("github", "slack", "microsoft", "atlassian")
PUBLIC = "https://tidings.example.com"


@pytest.fixture
async def auth() -> AsyncIterator[OAuthServer]:
    server = OAuthServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(params=[*ROTATING, "google"])
def provider(request: pytest.FixtureRequest) -> Iterator[str]:
    with demo_kind():
        DemoSettings.oauth_provider = request.param
        try:
            yield request.param
        finally:
            DemoSettings.oauth_provider = "slack"


def _config(auth: OAuthServer, provider: str, tmp_path: Path) -> dict[str, Any]:
    if not (tmp_path / "tidings.key").exists():
        write_key_file(tmp_path / "tidings.key", [new_key()])
    auth.register(provider, "cid", "c-secret", f"{PUBLIC}/oauth/chat/callback")
    return {
        "oauth": {provider: {"client_id": "cid", "client_secret": "c-secret", **auth.settings(provider)}},
        "server": {"public_url": PUBLIC},
        "integrations": {"chat": {"kind": "oauthdemo", "oauth": True}, "ops": {"kind": "inbox"}},
        "default": {"to": ["ops"]},
    }


async def _connected(hub: Hub, auth: OAuthServer, left: float = 120) -> TokenSet:
    """Connect ``chat`` through the real flow (authorize with PKCE, exchange the code), stored as if
    the token, an hour long, had ``left`` seconds left (inside the refresh margin)."""
    url = await flow.start(hub.require_store(), hub.vault, hub.config, "chat")  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as session:
        async with session.get(url, allow_redirects=False) as resp:
            assert resp.status in (302, 303), await resp.text()
            back = parse_qs(urlsplit(resp.headers["Location"]).query)
        async with hub.require_store().read() as conn:
            sealed = (await conn.execute(select(oauth_states.c.verifier).where(
                oauth_states.c.state_hash == flow.state_hash(back["state"][0])))).scalar_one()
        _, client, prov = flow.connectable(hub.config, "chat")
        grant = await tokens.exchange(session, prov, client.client_id, "c-secret", code=back["code"][0],
                                      verifier=hub.vault.unseal(sealed), redirect_uri=flow.redirect_uri(hub.config, "chat"))  # type: ignore[union-attr]
    assert grant.refresh_token and grant.expires_at
    grant.expires_at = time.time() + left
    await connect(hub, "chat", grant, now=time.time() + left - 3600)
    return grant


@pytest.fixture
async def hub(make_hub: Callable[..., Any], auth: OAuthServer, provider: str, tmp_path: Path) -> Hub:
    return await make_hub(_config(auth, provider, tmp_path), dispatch=False, migrate=False)  # type: ignore[no-any-return]


async def _row(hub: Hub) -> dict[str, Any]:
    async with hub.require_store().read() as conn:
        row = await connections.get(conn, "chat")
    assert row is not None
    return row


async def test_refresh_before_expiry_stores_the_rotated_token(hub: Hub, auth: OAuthServer, provider: str) -> None:
    grant = await _connected(hub, auth)
    assert await keeper.Keeper(hub).tick() > 0
    assert auth.token_requests[f"{provider} refresh_token"] == 1
    access = await hub.vault.get(access_secret("chat"))  # type: ignore[union-attr]
    refresh = await hub.vault.get(refresh_secret("chat"))  # type: ignore[union-attr]
    assert access != grant.access_token and auth.valid(access)
    assert auth.valid(refresh)
    if provider in ROTATING:
        assert refresh != grant.refresh_token and not auth.valid(grant.refresh_token or "")
    else:  # Google answers no refresh token: the one we have is kept
        assert refresh == grant.refresh_token
    row = await _row(hub)
    assert row["health"] == "healthy" and row["expires_at"] > time.time() + 1000
    # Refresh again by hand: the rotated token works.
    assert (await keeper.refresh_now(hub, "chat"))["health"] == "healthy"
    assert auth.token_requests[f"{provider} refresh_token"] == 2 and auth.concurrent_refreshes == 0


async def test_a_refused_refresh_needs_reauth(hub: Hub, auth: OAuthServer, provider: str) -> None:
    grant = await _connected(hub, auth)
    auth.tokens[grant.refresh_token or ""].revoked = True  # revoked at the provider
    assert await keeper.refresh_one(hub, "chat", "w1") == "refused"
    row = await _row(hub)
    assert row["health"] == "needs_reauth" and "refused the grant" in row["last_error"]
    async with hub.require_store().read() as conn:
        state = (await conn.execute(select(integration_state).where(integration_state.c.name == "chat"))).one()
    assert state.disabled and state.reason.startswith(keeper.REAUTH)
    assert await keeper.Keeper(hub).tick() > 0
    assert auth.token_requests[f"{provider} refresh_token"] == 1  # never retried


@pytest.mark.parametrize("fault", [(429, 7.0, 0.0), (500, None, 0.0), (502, None, 2.0)], ids=["429", "500", "timeout"])
async def test_failures_for_now_are_retried_later(hub: Hub, auth: OAuthServer, provider: str,
                                                  fault: tuple[int, float | None, float],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keeper, "REQUEST_TIMEOUT", 0.5)
    await _connected(hub, auth)
    status, retry_after, delay = fault
    auth.fail("token", status, retry_after=retry_after, delay=delay)
    began = time.time()
    assert await keeper.refresh_one(hub, "chat", "w1") == "failed"
    row = await _row(hub)
    assert row["failures"] == 1 and row["status"] == "healthy" and row["last_error"]
    async with hub.require_store().read() as conn:
        claim = (await conn.execute(select(oauth_connections.c.claimed_by, oauth_connections.c.claimed_until))).one()
    assert claim.claimed_by == keeper.BACKOFF and claim.claimed_until >= began + max(retry_after or 0, keeper.RETRY_FIRST)
    # When the backoff has passed, the keeper tries again and succeeds with the same refresh token.
    async with hub.require_store().write() as conn:
        await conn.execute(update(oauth_connections).values(claimed_until=time.time() - 1))
    await keeper.Keeper(hub).tick()
    assert (await _row(hub))["failures"] == 0 and auth.concurrent_refreshes == 0


async def test_two_hubs_racing_never_lose_a_rotating_connection(make_hub: Callable[..., Any], auth: OAuthServer,
                                                                provider: str, tmp_path: Path) -> None:
    config = _config(auth, provider, tmp_path)
    one = await make_hub(config, dispatch=False, migrate=False)
    two = await make_hub(config, dispatch=False, migrate=False)
    await _connected(one, auth)
    auth.stall("token", 0.2, times=100)
    for _ in range(3):
        results = await asyncio.gather(keeper.refresh_one(one, "chat", "one"), keeper.refresh_one(two, "chat", "two"),
                                       keeper.Keeper(one).tick(), keeper.Keeper(two).tick())
        assert results[:2].count("refreshed") <= 1
        async with one.require_store().write() as conn:  # due again
            await conn.execute(update(oauth_connections).values(expires_at=time.time() + 60,
                                                                refreshed_at=time.time() - 3540))
    assert auth.token_requests[f"{provider} refresh_token"] == 3
    assert auth.concurrent_refreshes == 0 and auth.max_concurrent_refreshes == 1
    assert (await _row(two))["health"] == "healthy"
    assert auth.valid(await two.vault.get(refresh_secret("chat")))  # type: ignore[union-attr]


HAMMER = """
import asyncio, json, sys
from oauth.keeper_support import DemoSettings, demo_kind
from tidings import Hub
from tidings.config import parse_config
from tidings.oauth import keeper

async def main(config, rounds, owner):
    hub = Hub(parse_config(config), config_dir=__import__("pathlib").Path(sys.argv[2]), dispatch=False, migrate=False)
    await hub.start()
    done = []
    try:
        for _ in range(rounds):
            done.append(await keeper.refresh_one(hub, "chat", owner, force=True))
    finally:
        await hub.stop()
    print(json.dumps(done))

with demo_kind():
    config = json.loads(sys.argv[1])
    DemoSettings.oauth_provider = sys.argv[3]
    asyncio.run(main(config, int(sys.argv[4]), sys.argv[5]))
"""


@pytest.mark.parametrize("provider", ["atlassian"], indirect=True)
async def test_two_processes_hammering_refreshes_never_overlap(hub: Hub, auth: OAuthServer, provider: str,
                                                               tmp_path: Path, make_config: Callable[..., Any]) -> None:
    await _connected(hub, auth)
    auth.stall("token", 0.05, times=1000)
    config = _config(auth, provider, tmp_path)
    config["server"]["database"] = hub.config.server.database
    config["server"]["allow_destinations"] = ["127.0.0.1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path("src").resolve()), str(Path("tests").resolve())])}
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", HAMMER, json.dumps(config), str(tmp_path), provider, "5", f"proc{i}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env) for i in range(2)]
    talks = [asyncio.ensure_future(p.communicate()) for p in procs]
    here = []
    while not all(t.done() for t in talks) or len(here) < 4:  # this process refreshes while they do
        here.append(await keeper.refresh_one(hub, "chat", "here", force=True))
    outs = [await t for t in talks]
    for (_, err), p in zip(outs, procs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
    done = here + [x for out, _ in outs for x in json.loads(out.decode().strip().splitlines()[-1])]
    assert set(done) <= {"refreshed", "busy"} and done.count("refreshed") >= 3
    assert auth.token_requests[f"{provider} refresh_token"] == done.count("refreshed")
    assert auth.concurrent_refreshes == 0 and auth.max_concurrent_refreshes == 1
    row = await _row(hub)
    assert row["health"] == "healthy" and row["failures"] == 0
    assert auth.valid(await hub.vault.get(refresh_secret("chat")))  # type: ignore[union-attr]
