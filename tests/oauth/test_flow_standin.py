"""The authorization server stand-in (tests/peers/oauth.py) holds to the rules the flow and the
refresher are tested against: a stand-in that let a bad request through would prove nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import aiohttp
import pytest
from flow_support import query
from peers.oauth import PROVIDERS, OAuthServer, challenge_of

from tidings.oauth import tokens
from tidings.oauth.errors import GrantRefused, OAuthError
from tidings.oauth.providers import provider
from tidings.oauth.settings import OAuthClient

CB = "http://127.0.0.1:9/oauth/x/callback"
VERIFIER = "v" * 64


@pytest.fixture
async def auth() -> AsyncIterator[OAuthServer]:
    server = OAuthServer()
    await server.start()
    for p in PROVIDERS:
        server.register(p, "cid", "secret", CB)
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def prov(auth: OAuthServer, name: str):  # type: ignore[no-untyped-def]
    return provider(name, OAuthClient(client_id="cid", client_secret="secret", **auth.settings(name)))  # type: ignore[arg-type]


async def authorize(http: aiohttp.ClientSession, auth: OAuthServer, name: str, **changes: str | None) -> aiohttp.ClientResponse:
    p = prov(auth, name)
    params = {"response_type": "code", "client_id": "cid", "redirect_uri": CB, "state": "s1",
              p.scope_param: p.scope_separator.join(p.scopes), "code_challenge": challenge_of(VERIFIER),
              "code_challenge_method": "S256", **p.authorize_params, **changes}
    url = f"{p.authorize_url}?{urlencode({k: v for k, v in params.items() if v is not None})}"
    async with http.get(url, allow_redirects=False) as resp:
        await resp.read()
        return resp


async def code_for(http: aiohttp.ClientSession, auth: OAuthServer, name: str) -> str:
    resp = await authorize(http, auth, name)
    assert resp.status == 302
    return query(resp.headers["Location"])["code"]


@pytest.mark.parametrize("changes", [{"code_challenge_method": "plain"}, {"code_challenge": None},
                                     {"code_challenge_method": None}, {"response_type": "token"}])
async def test_authorize_insists_on_pkce_s256_and_a_code(auth: OAuthServer, http: aiohttp.ClientSession,
                                                         changes: dict[str, str | None]) -> None:
    resp = await authorize(http, auth, "github", **changes)
    assert resp.status == 302 and "error" in query(resp.headers["Location"]) and "code" not in query(resp.headers["Location"])


@pytest.mark.parametrize(("name", "changes"), [("github", {"redirect_uri": CB + "/other"}), ("slack", {"client_id": "x"}),
                                               ("google", {"state": None}), ("atlassian", {"audience": None})])
async def test_authorize_never_redirects_an_unregistered_request(auth: OAuthServer, http: aiohttp.ClientSession,
                                                                 name: str, changes: dict[str, str | None]) -> None:
    assert (await authorize(http, auth, name, **changes)).status == 400


@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_wrong_verifier_secret_or_redirect_is_refused(auth: OAuthServer, http: aiohttp.ClientSession,
                                                              name: str) -> None:
    p = prov(auth, name)
    with pytest.raises(GrantRefused):
        await tokens.exchange(http, p, "cid", "secret", code=await code_for(http, auth, name), verifier="w" * 64,
                              redirect_uri=CB)
    with pytest.raises(OAuthError):
        await tokens.exchange(http, p, "cid", "wrong", code=await code_for(http, auth, name), verifier=VERIFIER,
                              redirect_uri=CB)
    with pytest.raises(OAuthError):
        await tokens.exchange(http, p, "cid", "secret", code=await code_for(http, auth, name), verifier=VERIFIER,
                              redirect_uri=CB + "/x")
    assert auth.issued[f"{name} access"] == 0


@pytest.mark.parametrize("name", PROVIDERS)
async def test_refresh_tokens_rotate_where_the_provider_rotates(auth: OAuthServer, http: aiohttp.ClientSession,
                                                                name: str) -> None:
    p = prov(auth, name)
    first = await tokens.exchange(http, p, "cid", "secret", code=await code_for(http, auth, name), verifier=VERIFIER,
                                  redirect_uri=CB)
    assert first.refresh_token
    second = await tokens.refresh(http, p, "cid", "secret", first.refresh_token)
    assert auth.valid(second.access_token)
    if name == "google":
        assert second.refresh_token is None
        assert (await tokens.refresh(http, p, "cid", "secret", first.refresh_token)).access_token
    else:
        assert second.refresh_token and second.refresh_token != first.refresh_token
        with pytest.raises(GrantRefused):
            await tokens.refresh(http, p, "cid", "secret", first.refresh_token)
    assert auth.token_requests[f"{name} refresh_token"] >= 2


async def test_two_refreshes_at_once_one_loses_and_both_are_counted(auth: OAuthServer, http: aiohttp.ClientSession) -> None:
    p = prov(auth, "atlassian")
    first = await tokens.exchange(http, p, "cid", "secret", code=await code_for(http, auth, "atlassian"),
                                  verifier=VERIFIER, redirect_uri=CB)
    assert first.refresh_token
    auth.stall("token", 0.2, times=2)
    results = await asyncio.gather(*(tokens.refresh(http, p, "cid", "secret", first.refresh_token) for _ in range(2)),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["GrantRefused", "TokenSet"]
    assert auth.concurrent_refreshes == 1 and auth.max_concurrent_refreshes == 2


@pytest.mark.parametrize(("name", "path"), [("github", "/user"), ("google", "/oauth2/v3/userinfo"), ("microsoft", "/me"),
                                            ("atlassian", "/oauth/token/accessible-resources")])
async def test_account_endpoints_refuse_an_expired_token(auth: OAuthServer, http: aiohttp.ClientSession, name: str,
                                                         path: str) -> None:
    p = prov(auth, name)
    granted = await tokens.exchange(http, p, "cid", "secret", code=await code_for(http, auth, name), verifier=VERIFIER,
                                    redirect_uri=CB)
    headers = {"Authorization": f"Bearer {granted.access_token}"}
    async with http.get(p.api_url + path, headers=headers) as resp:
        assert resp.status == 200
    auth.advance(auth.access_ttl[name] + 1)
    async with http.get(p.api_url + path, headers=headers) as resp:
        assert resp.status == 401
