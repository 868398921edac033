"""A served hub with one connectable integration per provider, against tests/peers/oauth.py, and a
person's browser going through the flow (``World.connect``).

The integrations are probe kinds (``probe_github``...: a notifier whose token comes from its
connection), registered for the test only, so the flow is tested whatever the real kinds do with
their connection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from apiserver import Api
from peers.oauth import PROVIDERS, OAuthServer
from pydantic import SecretStr

from tidings.config.models import config_model
from tidings.integrations import registry
from tidings.integrations.base import Attempt, ConnectableSettings, Notifier, Outcome, RenderOptions
from tidings.message import Message
from tidings.security.vault import Vault

PUBLIC_URL = "https://tidings.example.com"
CLIENT_SECRET = "cs-shhh-0123456789abcdef"


def _probe(provider: str) -> type[Notifier]:
    kind = f"probe_{provider}"
    settings = type(f"Probe{provider.title()}Settings", (ConnectableSettings,), {
        "__module__": __name__, "oauth_provider": provider,
        "__annotations__": {"kind": Literal[kind], "token": SecretStr | None, "base_url": str | None},  # type: ignore[valid-type]
        "token": None, "base_url": None,
    })

    class Probe(Notifier):
        Settings = settings

        def render(self, message: Message, options: RenderOptions = RenderOptions()) -> dict[str, Any]:
            return message.to_dict()

        async def send(self, payload: dict[str, Any], attempt: Attempt) -> Outcome:
            if self.settings.token is None:  # type: ignore[attr-defined]
                return Outcome.permanent(f"not connected: open /oauth/{self.name}/start", disable=True)
            return Outcome.delivered()

        async def test(self) -> Outcome:
            return Outcome.delivered()

    Probe.kind = kind
    Probe.__name__ = Probe.__qualname__ = f"Probe{provider.title()}"
    return Probe


PROBES = {p: _probe(p) for p in PROVIDERS}
globals().update({cls.__name__: cls for cls in PROBES.values()})


@pytest.fixture
def probe_kinds(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The probe kinds in the registry (and the config model rebuilt with them), for this test."""
    for cls in PROBES.values():
        monkeypatch.setitem(registry.KINDS, cls.kind, f"{__name__}:{cls.__name__}")
    config_model.cache_clear()
    yield
    config_model.cache_clear()


@dataclass
class World:
    api: Api
    auth: OAuthServer
    vault: Vault

    @property
    def hub(self) -> Any:
        return self.api.hub

    async def browse(self, url: str, **headers: str) -> httpx.Response:
        """GET ``url`` as a browser would, through tidings' public URL or the authorization server."""
        if url.startswith(PUBLIC_URL):
            url = url[len(PUBLIC_URL):]
        if url.startswith("/"):
            return await self.api.client.get(url, headers=headers)
        async with httpx.AsyncClient(timeout=15.0) as client:
            return await client.get(url, headers=headers)

    async def authorize(self, name: str) -> str:
        """A person starts connecting ``name`` and clicks *Allow*: the callback URL the provider
        sends them back to (not opened yet)."""
        start = await self.browse(f"/oauth/{name}/start", Authorization=f"Bearer {self.api.token}")
        assert start.status_code == 302, start.text
        granted = await self.browse(start.headers["location"])
        assert granted.status_code == 302, granted.text
        return str(granted.headers["location"])

    async def connect(self, name: str) -> httpx.Response:
        """The whole flow; the callback's page."""
        return await self.browse(await self.authorize(name))


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def with_query(url: str, **changes: str) -> str:
    from urllib.parse import urlencode

    q = {**query(url), **changes}
    return f"{url.split('?', 1)[0]}?{urlencode({k: v for k, v in q.items() if v is not None})}"


INTEGRATIONS = {p: f"{p}-probe" for p in PROVIDERS}


@pytest.fixture
async def make_world(probe_kinds: Any, make_api: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
                     ) -> AsyncIterator[Callable[..., Any]]:
    """``await make_world(**integration_overrides)``: the authorization server with an app per
    provider, a served hub with ``<provider>-probe`` integrations (``oauth: true``), and its vault
    holding the client secrets (``${vault:oauth-apps/<provider>}``)."""
    from cryptography.fernet import Fernet

    monkeypatch.setenv("TIDINGS_SECRET_KEY", Fernet.generate_key().decode())
    auth = OAuthServer()
    await auth.start()

    async def build(**overrides: dict[str, Any]) -> World:
        integrations = {name: {"kind": f"probe_{p}", "oauth": True, **overrides.get(p, {})}
                        for p, name in INTEGRATIONS.items()}
        for p, name in INTEGRATIONS.items():
            auth.register(p, f"{p}-client", CLIENT_SECRET, f"{PUBLIC_URL}/oauth/{name}/callback")
        oauth = {p: {"client_id": f"{p}-client", "client_secret": f"${{vault:oauth-apps/{p}}}", **auth.settings(p)}
                 for p in PROVIDERS}
        api = await make_api({"integrations": integrations, "oauth": oauth,
                              "server": {"public_url": PUBLIC_URL}}, dispatch=False)
        vault = api.hub.vault
        assert vault is not None
        for p in PROVIDERS:
            await vault.set(f"oauth-apps/{p}", CLIENT_SECRET)
        return World(api, auth, vault)

    yield build
    await auth.stop()
