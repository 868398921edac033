"""The connection store: one row per connected integration (``oauth_connections``: what may be
shown, and its health) and its tokens in the vault (``oauth/NAME/access``, ``oauth/NAME/refresh``).
Every write of tokens puts the secrets, the row and its audit entry in one transaction."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update

from ..audit import SYSTEM, Actor, append
from ..security.vault import Vault
from ..store.connection_tables import oauth_connections
from ..store.engine import Conn
from .names import access_secret, refresh_secret

EXPIRING_WITHIN = 7 * 86400.0
"""A connection whose refresh token (or, without one, whose access token) ends within this is
``expiring``: a person should connect it again soon."""
HEALTHY, EXPIRING, NEEDS_REAUTH, NOT_CONNECTED = "healthy", "expiring", "needs_reauth", "not_connected"
HEALTHS = (HEALTHY, EXPIRING, NEEDS_REAUTH, NOT_CONNECTED)
FAILING_AFTER = 3
"""Refreshes failed in a row (each retried) after which a connection is ``expiring``."""
SHOWN = ("integration", "project", "provider", "status", "account", "account_id", "scopes", "expires_at",
         "refresh_expires_at", "has_refresh", "extra", "connected_at", "connected_by", "refreshed_at", "failures",
         "last_error", "notified_at", "version")
"""What may be shown of a connection (never a token)."""


@dataclass
class TokenSet:
    """What a token endpoint granted (never logged, never stored outside the vault)."""

    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None
    refresh_expires_at: float | None = None
    scopes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    """The whole answer (provider facts: Slack's team, bot user...), tokens included: never stored as is."""

    def __repr__(self) -> str:  # a TokenSet in a traceback shows no token
        return f"TokenSet(expires_at={self.expires_at!r}, refresh={'yes' if self.refresh_token else 'no'}, scopes={self.scopes!r})"


def health(row: dict[str, Any] | None, now: float | None = None) -> str:
    """``not_connected`` without a row; ``needs_reauth`` when a refresh was refused, or what it
    refreshes with (the refresh token, or without one the access token) has ended; ``expiring``
    when that ends within :data:`EXPIRING_WITHIN` or refreshes keep failing (:data:`FAILING_AFTER`
    in a row, or one failed and the access token has expired); else ``healthy``."""
    if row is None:
        return NOT_CONNECTED
    if row["status"] == NEEDS_REAUTH:
        return NEEDS_REAUTH
    now = time.time() if now is None else now
    ends = row["refresh_expires_at"] if row["has_refresh"] else row["expires_at"]
    if ends is not None and ends <= now:
        return NEEDS_REAUTH
    if ends is not None and ends - now < EXPIRING_WITHIN:
        return EXPIRING
    if row["failures"] >= FAILING_AFTER or (row["failures"] and access_expired(row, now)):
        return EXPIRING
    return HEALTHY


def access_expired(row: dict[str, Any], now: float | None = None) -> bool:
    """The access token has expired (the integration's calls fail until a refresh succeeds)."""
    now = time.time() if now is None else now
    return row["expires_at"] is not None and row["expires_at"] <= now


def shown(row: Any) -> dict[str, Any]:
    out = {k: getattr(row, k) if not isinstance(row, dict) else row[k] for k in SHOWN}
    out["has_refresh"] = bool(out["has_refresh"])
    out["health"] = health(out)
    out["access_expired"] = access_expired(out)
    return out


async def get(conn: Conn, integration: str) -> dict[str, Any] | None:
    """The connection of ``integration`` as shown (with ``health``), or None."""
    row = (await conn.execute(select(oauth_connections).where(oauth_connections.c.integration == integration))).first()
    return shown(row) if row is not None else None


async def list_connections(conn: Conn, project: str | None = None) -> list[dict[str, Any]]:
    """Every connection (of ``project``), by integration name."""
    query = select(oauth_connections).order_by(oauth_connections.c.integration)
    if project is not None:
        query = query.where(oauth_connections.c.project == project)
    return [shown(r) for r in await conn.execute(query)]


async def store_tokens(
    vault: Vault, conn: Conn, *, integration: str, project: str, provider: str, tokens: TokenSet,
    account: str | None = None, account_id: str | None = None, extra: dict[str, Any] | None = None,
    actor: Actor = SYSTEM, connected: bool = True, now: float | None = None,
) -> dict[str, Any]:
    """Store ``tokens`` in the vault and the connection row, in ``conn``'s transaction (from
    :meth:`Vault.transaction`). ``connected``: a new grant (``oauth.connect``: account, extra and
    ``connected_*`` replaced, status healthy); else a refresh (``oauth.refresh``: a refresh token
    the answer lacks is kept, as providers that don't rotate answer none). Audited."""
    now = time.time() if now is None else now
    await vault.put(conn, access_secret(integration), tokens.access_token, actor=actor)
    if tokens.refresh_token:
        await vault.put(conn, refresh_secret(integration), tokens.refresh_token, actor=actor)
    old = (await conn.execute(select(oauth_connections).where(oauth_connections.c.integration == integration))).first()
    values: dict[str, Any] = {
        "expires_at": tokens.expires_at, "status": HEALTHY, "failures": 0, "last_error": None,
        "claimed_by": None, "claimed_until": None, "refreshed_at": now,
    }
    if tokens.scopes or connected:
        values["scopes"] = " ".join(tokens.scopes)
    if tokens.refresh_token or connected:
        values["has_refresh"] = 1 if tokens.refresh_token else 0
        values["refresh_expires_at"] = tokens.refresh_expires_at
    if connected:
        values.update(account=account, account_id=account_id, extra=extra or {}, connected_at=now,
                      connected_by=actor.id if actor.kind == "user" else None, notified_at=None)
    if old is None:
        values.update(integration=integration, project=project, provider=provider, version=1)
        values.setdefault("connected_at", now)
        await conn.execute(oauth_connections.insert().values(**values))
    else:
        values.update(project=project, provider=provider, version=old.version + 1)
        await conn.execute(update(oauth_connections).where(oauth_connections.c.integration == integration).values(**values))
    row = await get(conn, integration)
    assert row is not None
    await append(conn, actor, "oauth.connect" if connected else "oauth.refresh", target=f"integration/{integration}",
                 project=project, before=shown(old) if old is not None else None, after=row)
    return row


async def disconnect(vault: Vault, conn: Conn, integration: str, *, actor: Actor = SYSTEM) -> dict[str, Any] | None:
    """Forget ``integration``'s connection: its row and both tokens (audited ``oauth.disconnect``),
    in ``conn``'s transaction; the caller purges the vault after the commit. None when there was none."""
    old = await get(conn, integration)
    if old is None:
        return None
    await conn.execute(delete(oauth_connections).where(oauth_connections.c.integration == integration))
    for name in (access_secret(integration), refresh_secret(integration)):
        await vault.remove(conn, name, actor=actor)
    await append(conn, actor, "oauth.disconnect", target=f"integration/{integration}", project=old["project"], before=old)
    return old


__all__ = ["EXPIRING", "EXPIRING_WITHIN", "FAILING_AFTER", "HEALTHS", "HEALTHY", "NEEDS_REAUTH", "NOT_CONNECTED",
           "TokenSet", "access_expired", "disconnect", "get", "health",
           "list_connections", "shown", "store_tokens"]
