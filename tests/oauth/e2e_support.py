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

import httpx
import pytest
import yaml
from apiserver import Api
from cli_support import Ran, tidings_async
from connection_support import with_key
from peers.oauth import OAuthServer
from sqlalchemy import select

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


@pytest.fixture
async def make_e2e(make_api: Callable[..., Any], db_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await make_e2e(integrations, providers, **config)``: the stand-in with an app per provider,
    a served dispatching hub (a vault, the project owner ``grace@example.com``), a browser."""
    auth = OAuthServer()
    await auth.start()
    browsers: list[httpx.AsyncClient] = []
    with_key(tmp_path)

    async def build(integrations: dict[str, Any], providers: tuple[str, ...], **more: Any) -> World:
        for name, spec in integrations.items():
            if spec.get("oauth"):
                for p in providers:
                    auth.register(p, f"{p}-client", SECRET, f"{PUBLIC_URL}/oauth/{name}/callback")
        oauth = {p: {"client_id": f"{p}-client", "client_secret": f"${{vault:oauth-apps/{p}}}", **auth.settings(p)}
                 for p in providers}
        data = {"integrations": integrations, "oauth": oauth, "dispatcher": {"poll_interval": 0.05},
                "server": {"public_url": PUBLIC_URL}, **more}
        api = await make_api(data)
        vault = api.hub.vault
        assert vault is not None
        for p in providers:
            await vault.set(f"oauth-apps/{p}", SECRET)
        async with api.hub.require_store().write() as conn:
            user = await create_user(conn, SYSTEM, email=OWNER, name="Grace")
            await set_member(conn, SYSTEM, "default", user.id, "owner")
        browser = httpx.AsyncClient(transport=_PublicUrl(api.url), timeout=15.0)
        browsers.append(browser)
        written = {**data, "server": {**data["server"], "database": db_url, "allow_destinations": ["127.0.0.1"]}}
        (tmp_path / "tidings.yaml").write_text(yaml.safe_dump(written))
        return World(api, auth, browser, tmp_path, data)

    yield build
    for b in browsers:
        await b.aclose()
    await auth.stop()
