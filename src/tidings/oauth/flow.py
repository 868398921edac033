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
import dataclasses
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import structlog
from sqlalchemy import delete, select, update

from ..audit import SYSTEM, Actor, append
from ..integrations.base import VAULT_REF, ConnectableSettings
from ..security.outbound import Destinations, guarded_session
from ..security.redact import register
from ..security.vault import VaultError
from ..store.connection_tables import oauth_states
from ..store.tables import integration_state
from . import accounts, connections, tokens
from .errors import CallbackRefused, GrantRefused, NotConnectable, OAuthError, TokenEndpointFailed
from .providers import Provider, provider

if TYPE_CHECKING:
    from ..config import Config
    from ..hub import Hub
    from ..security.vault import Vault
    from ..store.engine import Store
    from .settings import OAuthClient

log = structlog.get_logger("tidings.oauth")

STATE_TTL = 600.0
"""Seconds a started flow waits for its callback."""
STATES_KEPT = 86400.0
"""Seconds an expired or used state is kept after it expires (a late callback is told "used" or
"expired", not "unknown"); each :func:`start` deletes older ones."""


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
        await conn.execute(delete(oauth_states).where(oauth_states.c.expires_at < now - STATES_KEPT))
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


EXCHANGE_TIMEOUT = 15.0
"""Seconds the callback waits for the token endpoint and the account lookup (the integration's
``timeout`` when it sets one)."""
_WORD = re.compile(r"^[a-z_]{1,64}$")


async def client_secret(vault: Vault, client: OAuthClient) -> str:
    """The app's client secret: ``${vault:NAME}`` read from the vault (:class:`OAuthError` when it
    can't be), else the value as written."""
    value = client.client_secret.get_secret_value()
    if (m := VAULT_REF.match(value)) is None:
        return value
    try:
        return await vault.get(m.group(1))
    except VaultError as exc:
        raise OAuthError(f"the client secret: {exc}") from None


@dataclasses.dataclass
class Connected:
    """What a callback that succeeded stored."""

    integration: str
    provider: str
    account: str | None
    connection: dict[str, Any]
    enabled: bool
    """The integration was disabled (not by hand) and is enabled again, its held deliveries resumed."""


async def _take_state(store: Store, state: str, now: float) -> Any:
    """The ``oauth_states`` row of ``state``, marked used by this call, or :class:`CallbackRefused`:
    one conditional UPDATE, so a replay, or a second callback at the same time, finds it used."""
    digest = state_hash(state)
    async with store.write() as conn:
        taken = await conn.execute(
            update(oauth_states)
            .where(oauth_states.c.state_hash == digest, oauth_states.c.used_at.is_(None), oauth_states.c.expires_at > now)
            .values(used_at=now))
        row = (await conn.execute(select(oauth_states).where(oauth_states.c.state_hash == digest))).first()
    if taken.rowcount == 1 and row is not None:
        return row
    if row is None:
        raise CallbackRefused("state_unknown", "this link is not one tidings made (or it was cleaned up): start again")
    if row.used_at is not None:
        raise CallbackRefused("state_used", "this link was used already: start again to connect")
    raise CallbackRefused("state_expired", "this link expired (a connection must be finished within ten minutes):"
                                           " start again")


async def refuse(store: Store, integration: str, exc: CallbackRefused, *, actor: Actor = SYSTEM,
                 project: str | None = None) -> None:
    """Audit a refused callback (``oauth.callback_refused`` with its reason word; never the code or
    the state) in its own transaction."""
    async with store.write() as conn:
        await append(conn, actor, "oauth.callback_refused", target=f"integration/{integration[:100]}", project=project,
                     after={"reason": exc.reason}, outcome="denied")
    log.info("oauth.callback_refused", integration=integration[:100], reason=exc.reason)


async def finish(hub: Hub, integration: str, params: Mapping[str, str], *, actor: Actor = SYSTEM,
                 now: float | None = None) -> Connected:
    """The callback of a flow :func:`start` began: take ``params['state']`` once, exchange
    ``params['code']`` with the sealed verifier, learn who connected and store the tokens, the
    connection row and their audit entries in one vault transaction; enable the integration when it
    was disabled other than by hand. :class:`CallbackRefused` (audited, nothing stored) otherwise."""
    store, vault = hub.require_store(), hub.vault
    now = time.time() if now is None else now
    project: str | None = None
    try:
        state, code = params.get("state") or "", params.get("code") or ""
        register([v for v in (state, code) if v])
        if not state:
            raise CallbackRefused("state_missing", "the provider sent no state back: start again")
        row = await _take_state(store, state, now)
        project = row.project
        if row.created_by:
            actor = dataclasses.replace(actor, kind="user", id=row.created_by)
        if row.integration != integration:
            raise CallbackRefused("wrong_integration", "this link was made to connect another integration")
        if params.get("error"):
            word = params["error"] if _WORD.match(params["error"]) else "error"
            detail = "you declined" if word == "access_denied" else f"the provider answered {word}"
            raise CallbackRefused("provider_error", f"{detail}: nothing was connected")
        if not code:
            raise CallbackRefused("code_missing", "the provider sent no code back: start again")
        if vault is None:
            raise CallbackRefused("no_vault", "the vault is not set up (tidings vault init): tokens can't be kept")
        try:
            settings, client, prov = connectable(hub.config, integration)
        except NotConnectable as exc:
            raise CallbackRefused("not_connectable", str(exc)) from None
        try:
            verifier = vault.unseal(row.verifier)
        except VaultError:
            raise CallbackRefused("verifier_unreadable", "the flow's key can't be read (the vault keys changed):"
                                                         " start again") from None
        return await _connect(hub, settings, client, prov, row, code, verifier, actor, now)
    except CallbackRefused as exc:
        await refuse(store, integration, exc, actor=actor, project=project)
        raise


async def _connect(hub: Hub, settings: ConnectableSettings, client: OAuthClient, prov: Provider, row: Any, code: str,
                   verifier: str, actor: Actor, now: float) -> Connected:
    from ..delivery.holds import BY_HAND
    from ..delivery.queries import set_enabled

    vault = hub.vault
    assert vault is not None
    name = row.integration
    destinations = Destinations.parse(hub.config.server.allow_destinations).merged(settings.allow_destinations)
    try:
        secret = await client_secret(vault, client)
    except OAuthError as exc:
        raise CallbackRefused("client_secret_missing", f"{exc}; check oauth.{prov.name}.client_secret") from None
    async with guarded_session(destinations, concurrency=2, timeout=settings.timeout or EXCHANGE_TIMEOUT) as session:
        try:
            granted = await tokens.exchange(session, prov, client.client_id, secret,
                                            code=code, verifier=verifier, redirect_uri=row.redirect_uri, now=now)
        except GrantRefused as exc:
            raise CallbackRefused("exchange_refused", f"the provider refused the code: {exc}; start again") from None
        except TokenEndpointFailed as exc:
            raise CallbackRefused("token_endpoint_failed", f"{exc}; start again in a moment") from None
        except OAuthError as exc:
            raise CallbackRefused("exchange_failed", f"{exc}; check the oauth.{prov.name} registration") from None
        try:
            who = await accounts.who(session, prov, granted, base_url=_str(getattr(settings, "base_url", None)))
        except OAuthError as exc:
            raise CallbackRefused("account_lookup_failed", str(exc)) from None
    async with vault.transaction() as conn:
        was = (await conn.execute(select(integration_state.c.disabled, integration_state.c.reason)
                                  .where(integration_state.c.name == name))).first()
        connection = await connections.store_tokens(
            vault, conn, integration=name, project=row.project, provider=prov.name, tokens=granted,
            account=who.account, account_id=who.account_id, extra=who.extra, actor=actor, now=now)
        enable = bool(was and was.disabled and was.reason not in (None, BY_HAND))
        if enable:
            await set_enabled(conn, name, True, actor=actor, project=row.project, now=now)
    if connection["version"] > 1:
        await vault.purge()  # the tokens of the connection before: unreadable from the database's files
    if hub.vault_watch is not None:  # the new token in the running integration before its held sends resume
        try:
            await hub.vault_watch.check()
        except Exception as exc:  # its next check (within a second) applies it
            log.warning("oauth.token_not_applied_yet", integration=name, error=f"{type(exc).__name__}")
    if enable and hub.dispatcher is not None:
        hub.dispatcher.set_enabled(name, True)
    if hub.keeper is not None:  # its refresh is planned from this token's expiry, not at the next poll
        hub.keeper.wake()
    if hub.watch is not None:
        hub.watch.connection(row.project, name, False)
    log.info("oauth.connected", integration=name, provider=prov.name, account=who.account)
    return Connected(name, prov.name, who.account, connection, enable)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
