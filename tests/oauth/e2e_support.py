"""End to end with the real integration kinds: a served, dispatching hub whose ``oauth:`` section
points at the authorization server stand-in (tests/peers/oauth.py), a browser that follows the flow's
redirects across both servers (cookies kept), and the stand-ins of the APIs taking the tokens the
authorization server issued (``Issued``).

``w = await make_e2e(integrations, providers=("slack",))``; ``await w.connect("chat")`` → the
callback's page; ``await w.cli("connections", "--json")`` → the CLI on the same database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import yaml
from aiohttp import web
from apiserver import Api
from cli_support import Ran, tidings_async
from connection_support import with_key
from peers.oauth import OAuthServer
from sqlalchemy import select
from sync.service_fakes import until

from tidings.accounts.projects import set_member
from tidings.accounts.users import create_user
from tidings.audit import SYSTEM
from tidings.oauth import connections
from tidings.store.tables import messages

PUBLIC_URL = "https://tidings.example.com"
SECRET = "cs-e2e-0123456789abcdef"
OWNER = "grace@example.com"


class Issued:
    """``token in Issued(auth, provider)``: the authorization server issued it and it still works
    (what a provider's API checks; for the stand-ins that keep a set of tokens)."""

    def __init__(self, auth: OAuthServer, provider: str) -> None:
        self.auth, self.provider = auth, provider

    def __contains__(self, token: object) -> bool:
        t = self.auth.tokens.get(str(token))
        return t is not None and t.provider == self.provider and t.kind == "access" and self.auth.valid(str(token))

    def __call__(self, token: str) -> bool:
        return token in self


class _PublicUrl(httpx.AsyncBaseTransport):
    """Sends what a browser addresses to ``PUBLIC_URL`` to the served hub (a reverse proxy)."""

    def __init__(self, target: str) -> None:
        self.target = httpx.URL(target)
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(PUBLIC_URL):
            url = request.url.copy_with(scheme=self.target.scheme, host=self.target.host, port=self.target.port)
            request = httpx.Request(request.method, url, headers=request.headers, stream=request.stream,
                                    extensions=request.extensions)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class World:
    api: Api
    auth: OAuthServer
    browser: httpx.AsyncClient
    dir: Path
    data: dict[str, Any]

    @property
    def hub(self) -> Any:
        return self.api.hub

    async def connect(self, name: str, start: str | None = None) -> httpx.Response:
        """A person (the API token's owner) opens the start link, clicks *Allow* at the provider and
        comes back: the callback's page."""
        url = start or f"{PUBLIC_URL}/oauth/{name}/start"
        page = await self.browser.get(url, headers=self.api.auth, follow_redirects=True)
        assert [r.status_code for r in page.history] == [302, 302], page.history
        assert str(page.url).startswith(f"{PUBLIC_URL}/oauth/{name}/callback?"), page.url
        return page

    async def connection(self, name: str) -> dict[str, Any]:
        async with self.hub.require_store().read() as conn:
            row = await connections.get(conn, name)
        assert row is not None, f"no connection {name}"
        return row

    async def cli(self, *args: str) -> Ran:
        return await tidings_async(self.dir, "-c", str(self.dir / "tidings.yaml"), *args)

    async def notices(self) -> list[str]:
        """The ``oauth.needs_reauth`` messages stored (what the owners were told)."""
        async with self.hub.require_store().read() as conn:
            rows = list(await conn.execute(select(messages)))
        return [str(tuple(r)) for r in rows if "oauth.needs_reauth" in str(tuple(r))]


class Builder:
    """``await make_e2e(integrations, providers, apis={provider: api_url}, **config)``: a served
    dispatching hub (a vault, the project owner ``grace@example.com``) whose ``oauth:`` apps are
    registered at ``make_e2e.auth``, and a browser."""

    def __init__(self, auth: OAuthServer, make_api: Callable[..., Any], db_url: str, path: Path) -> None:
        self.auth, self.make_api, self.db_url, self.path = auth, make_api, db_url, path
        self.browsers: list[httpx.AsyncClient] = []

    async def __call__(self, integrations: dict[str, Any], providers: tuple[str, ...], *,
                       apis: dict[str, str] | None = None, **more: Any) -> World:
        auth = self.auth
        for name, spec in integrations.items():
            if spec.get("oauth"):
                for p in providers:
                    auth.register(p, f"{p}-client", SECRET, f"{PUBLIC_URL}/oauth/{name}/callback")
        oauth = {p: {"client_id": f"{p}-client", "client_secret": f"${{vault:oauth-apps/{p}}}", **auth.settings(p),
                     **({"api_url": apis[p]} if apis and p in apis else {})} for p in providers}
        data = {"integrations": integrations, "oauth": oauth, "dispatcher": {"poll_interval": 0.05},
                "server": {"public_url": PUBLIC_URL}, **more}
        api = await self.make_api(data)
        vault = api.hub.vault
        assert vault is not None
        for p in providers:
            await vault.set(f"oauth-apps/{p}", SECRET)
        async with api.hub.require_store().write() as conn:
            user = await create_user(conn, SYSTEM, email=OWNER, name="Grace")
            await set_member(conn, SYSTEM, "default", user.id, "owner")
        browser = httpx.AsyncClient(transport=_PublicUrl(api.url), timeout=15.0)
        self.browsers.append(browser)
        server = {**data["server"], "database": self.db_url, "allow_destinations": ["127.0.0.1"]}
        (self.path / "tidings.yaml").write_text(yaml.safe_dump({**data, "server": server}))
        return World(api, auth, browser, self.path, data)


@pytest.fixture
async def make_e2e(make_api: Callable[..., Any], db_url: str, tmp_path: Path) -> AsyncIterator[Builder]:
    auth = OAuthServer()
    await auth.start()
    with_key(tmp_path)
    builder = Builder(auth, make_api, db_url, tmp_path)
    yield builder
    for b in builder.browsers:
        await b.aclose()
    await auth.stop()


async def sweep(w: World, integration: str) -> dict[str, Any]:
    """A manual sync run through the API, waited for; the run."""
    r = await w.api.post("/api/v1/sync", json={"integration": integration})
    assert r.status_code == 202, r.text
    [run_id] = r.json()["runs"]

    async def ended() -> dict[str, Any] | None:
        run = (await w.api.get(f"/api/v1/sync/runs/{run_id}")).json()
        return run if run["ended_at"] is not None else None

    return await until(ended, timeout=30, what=f"run {run_id} of {integration}")  # type: ignore[no-any-return]


async def titles(w: World) -> set[str]:
    r = await w.api.get("/api/v1/tasks", params={"limit": 200})
    assert r.status_code == 200, r.text
    return {t["title"] for t in r.json()["items"]}


class AtlassianGateway:
    """``api.atlassian.com`` on 127.0.0.1: ``/ex/jira/...`` to the Jira site's stand-in, the rest
    (``/oauth/token/accessible-resources``, ``/me``) to the authorization server's ``/atlassian``."""

    def __init__(self, auth: OAuthServer, jira_url: str) -> None:
        self.auth, self.jira_url = auth, jira_url
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        base = self.jira_url if request.path.startswith("/ex/jira/") else f"{self.auth.url}/atlassian"
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept", "content-type")}
        async with aiohttp.ClientSession() as session, session.request(
                request.method, f"{base}{request.path_qs}", headers=headers, data=await request.read()) as resp:
            return web.Response(status=resp.status, body=await resp.read(),
                                content_type=resp.content_type, headers={
                                    k: v for k, v in resp.headers.items() if k.lower() in ("retry-after",)})
