"""What the keeper, connection and CLI tests share: a connectable integration kind (``oauthdemo``:
an inbox whose token comes from a connection, standing in for slack/github/jira until they connect),
a minimal rotating token endpoint, and helpers to store a connection directly."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import pytest
from aiohttp import web
from pydantic import SecretStr

from tidings.config import models
from tidings.integrations import registry
from tidings.integrations.base import ConnectableSettings, Outcome
from tidings.integrations.inbox import InboxNotifier
from tidings.oauth import connections
from tidings.oauth.connections import TokenSet

KIND = "oauthdemo"


class DemoSettings(ConnectableSettings):
    kind: Literal["oauthdemo"]
    token: SecretStr | None = None
    oauth_provider: ClassVar[str] = "slack"


class DemoNotifier(InboxNotifier):
    """The inbox, sending only with a token (the connection's access token, through the vault watch)."""

    kind = KIND
    Settings = DemoSettings  # type: ignore[assignment]
    sent_with: ClassVar[list[str]] = []

    async def send(self, payload: Any, attempt: Any) -> Outcome:
        token = self.settings.token  # type: ignore[attr-defined]
        if token is None:
            return Outcome.permanent(f"not connected: open /oauth/{self.name}/start or run `tidings connect "
                                     f"{self.name}`", disable=True)
        DemoNotifier.sent_with.append(token.get_secret_value())
        return await super().send(payload, attempt)


@contextmanager
def demo_kind() -> Iterator[None]:
    """Register ``oauthdemo`` for the test (the config model and the class caches rebuilt)."""
    registry.KINDS[KIND] = f"{__name__}:DemoNotifier"
    registry.integration_class.cache_clear()
    models.config_model.cache_clear()
    try:
        yield
    finally:
        registry.KINDS.pop(KIND, None)
        registry.integration_class.cache_clear()
        models.config_model.cache_clear()


class TokenEndpoint:
    """A rotating token endpoint (as Slack, GitHub, Microsoft and Atlassian rotate): each refresh
    answers a new access and refresh token and the refresh token used stops working; a reused one
    answers ``invalid_grant``. Counts refreshes under way at once (``max_active``); ``delay`` keeps
    each in flight; ``script`` answers the next requests otherwise (status, body, headers)."""

    def __init__(self, lifetime: int = 3600, client_secret: str = "demo-secret") -> None:
        self.lifetime = lifetime
        self.client_secret = client_secret
        self.valid: set[str] = set()
        self.used: set[str] = set()
        self.refreshes = 0
        self.reused = 0
        self.active = 0
        self.max_active = 0
        self.delay = 0.0
        self.script: list[tuple[int, dict[str, Any], dict[str, str]] | str] = []
        self.issued: list[str] = []
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def grant(self) -> TokenSet:
        """A fresh grant, as if a person had just connected."""
        refresh = "r-" + secrets.token_urlsafe(16)
        self.valid.add(refresh)
        return TokenSet(access_token="a-" + secrets.token_urlsafe(16), refresh_token=refresh,
                        expires_at=time.time() + self.lifetime, scopes=["chat:write"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.arrived.set()
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.script:
                step = self.script.pop(0)
                if step == "hang":
                    await asyncio.sleep(3600)
                assert not isinstance(step, str)
                status, body, headers = step
                return web.json_response(body, status=status, headers=headers)
            if form.get("client_secret") != self.client_secret:
                return web.json_response({"ok": False, "error": "invalid_client"}, status=401)
            token = str(form.get("refresh_token", ""))
            self.refreshes += 1
            if token not in self.valid:
                self.reused += token in self.used
                return web.json_response({"ok": False, "error": "invalid_refresh_token"})
            self.valid.discard(token)
            self.used.add(token)
            refresh = "r-" + secrets.token_urlsafe(16)
            access = "a-" + secrets.token_urlsafe(16)
            self.valid.add(refresh)
            self.issued.append(access)
            return web.json_response({"ok": True, "access_token": access, "refresh_token": refresh,
                                      "expires_in": self.lifetime, "scope": "chat:write"})
        finally:
            self.active -= 1


def demo_config(endpoint: TokenEndpoint, *names: str, project: str = "default", **extra: Any) -> dict[str, Any]:
    """A configuration with ``names`` as connectable integrations (``oauth: true``) and the slack
    app registration pointing at ``endpoint``."""
    return {
        "oauth": {"slack": {"client_id": "demo-client", "client_secret": endpoint.client_secret,
                            "token_url": endpoint.url, "authorize_url": f"http://127.0.0.1:{endpoint.port}/authorize"}},
        "server": {"public_url": "https://tidings.example.com"},
        "integrations": {n: {"kind": KIND, "oauth": True, "project": project, **extra} for n in names},
        "default": {"to": list(names)},
    }


async def connect(hub: Any, name: str, tokens: TokenSet, *, now: float | None = None,
                  account: str = "T1 acme") -> dict[str, Any]:
    """Store a connection as the callback would."""
    settings = hub.config.integrations[name]
    async with hub.vault.transaction() as conn:
        return await connections.store_tokens(hub.vault, conn, integration=name, project=settings.project,
                                              provider="slack", tokens=tokens, account=account, now=now)


@pytest.fixture
def demo() -> Iterator[None]:
    """The ``oauthdemo`` kind registered for the test (use: ``pytestmark = pytest.mark.usefixtures("demo")``)."""
    with demo_kind():
        yield


@pytest.fixture
async def endpoint() -> AsyncIterator[TokenEndpoint]:
    """A running :class:`TokenEndpoint`."""
    e = TokenEndpoint()
    await e.start()
    yield e
    await e.stop()
