"""The authorization-code flow with PKCE (S256) and ``state``.

:func:`start` makes the URL a person opens (from the UI, the API, or ``tidings connect`` on a
headless server): a fresh ``state`` (stored hashed, single use, ten minutes) and a PKCE verifier
(stored sealed with the vault keys), in the database so that any worker can take the callback.
The callback (``GET /oauth/NAME/callback``, :func:`finish`) takes the state back once, exchanges
the code with the verifier, learns who connected, and stores the tokens (``connections.py``).

Authlib's Starlette client keeps the state and verifier in the browser's session: a flow started by
``tidings connect`` has no browser session, so the state lives in ``oauth_states`` instead.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from ..integrations.base import ConnectableSettings
from ..store.connection_tables import oauth_states
from .errors import NotConnectable
from .providers import Provider, provider

if TYPE_CHECKING:
    from ..config import Config
    from ..security.vault import Vault
    from ..store.engine import Store
    from .settings import OAuthClient

STATE_TTL = 600.0
"""Seconds a started flow waits for its callback."""


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def code_challenge(verifier: str) -> str:
    """RFC 7636 S256: base64url(SHA-256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def redirect_uri(config: Config, integration: str) -> str:
    """Where the provider sends the person back: register this URL with the provider's app."""
    return f"{config.server.base_url}/oauth/{integration}/callback"


def connectable(config: Config, integration: str) -> tuple[ConnectableSettings, OAuthClient, Provider]:
    """``integration``'s settings, its provider's app registration and the provider, or
    :class:`NotConnectable` saying what is missing."""
    settings = config.integrations.get(integration)
    if settings is None:
        raise NotConnectable(f"no integration named {integration!r}")
    if not isinstance(settings, ConnectableSettings) or not settings.oauth_provider:
        raise NotConnectable(f"integration {integration!r} ({settings.kind}) does not connect through OAuth")
    if not settings.oauth:
        raise NotConnectable(f"integration {integration!r} takes a pasted token: set `oauth: true` on it to connect it")
    client = config.oauth.get(settings.oauth_provider)  # type: ignore[call-overload]
    if client is None:
        raise NotConnectable(
            f"no app registration for {settings.oauth_provider}: add oauth.{settings.oauth_provider}.client_id and"
            " client_secret to the configuration (see docs/oauth.md)")
    return settings, client, provider(settings.oauth_provider, client)


async def start(store: Store, vault: Vault, config: Config, integration: str, *, user_id: str | None = None,
                now: float | None = None) -> str:
    """The authorization URL to open to connect ``integration`` (a new single-use state)."""
    settings, client, prov = connectable(config, integration)
    now = time.time() if now is None else now
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9-_]: RFC 7636 allows 43-128
    redirect = redirect_uri(config, integration)
    async with store.write() as conn:
        await conn.execute(oauth_states.insert().values(
            state_hash=state_hash(state), integration=integration, project=settings.project, provider=prov.name,
            verifier=vault.seal(verifier), redirect_uri=redirect, created_by=user_id, created_at=now,
            expires_at=now + STATE_TTL))
    params = {
        "response_type": "code", "client_id": client.client_id, "redirect_uri": redirect,
        prov.scope_param: prov.scope_separator.join(prov.scopes), "state": state,
        "code_challenge": code_challenge(verifier), "code_challenge_method": "S256", **prov.authorize_params,
    }
    return f"{prov.authorize_url}?{urlencode(params)}"
