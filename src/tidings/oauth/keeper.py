"""Keeping connections alive: refresh each access token before it expires, one refresh at a time
per connection across every worker and process.

A refresh of connection ``NAME`` (:func:`refresh_one`):

1. **claim** the row with a conditional UPDATE (``claimed_by``/``claimed_until``, a lease longer
   than the token request may take); a row claimed by another worker is left alone;
2. **re-read** the row and the refresh token from the vault: another worker may have refreshed it
   meanwhile (the row is no longer due): then hand the claim back and do nothing;
3. call the token endpoint (``tokens.refresh``) over a guarded session;
4. write the new tokens (``connections.store_tokens``) in one vault transaction that first checks,
   with a conditional UPDATE that locks the row, that the claim is still ours.

Rotating providers (GitHub, Slack, Microsoft, Atlassian) invalidate the old refresh token on each
refresh: two refreshes at once would lose the connection, which the claim prevents.

A refused refresh (:class:`GrantRefused`) marks the connection ``needs_reauth``, disables its
integration (its deliveries are held) and tells the project's owners once per incident; nothing
retries it. A failure for now (:class:`TokenEndpointFailed`: timeout, 5xx, 429) counts in
``failures`` and is tried again after a backoff (``Retry-After`` respected): the row is then
claimed by :data:`BACKOFF` until the retry time, so no worker tries earlier.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import or_, select, update

from ..audit import SYSTEM, Actor, append
from ..background import Background, wait_at_most
from ..errors import NotFound, TidingsError
from ..security.outbound import Destinations, guarded_session
from ..security.redact import clip, redact
from ..store.connection_tables import oauth_connections
from . import connections, flow, tokens
from .errors import GrantRefused, TokenEndpointFailed
from .names import refresh_secret

if TYPE_CHECKING:
    from ..hub import Hub
    from ..store.engine import Conn

log = structlog.get_logger("tidings.oauth")
MARGIN = 300.0
"""Refresh at least this long before the access token expires..."""
MARGIN_SHARE = 0.1
"""... or this share of its lifetime, whichever is longer (but at most half its lifetime)."""
REQUEST_TIMEOUT = 30.0
"""Seconds a token request may take."""
LEASE = REQUEST_TIMEOUT * 3
"""How long a claim holds: longer than a token request, so a claim never lapses under a refresh."""
BACKOFF = "backoff"
"""``claimed_by`` of a connection waiting to retry after a failed refresh (until ``claimed_until``)."""
RETRY_FIRST, RETRY_MAX = 30.0, 1800.0
"""Backoff after a failed refresh: doubling from the first to the longest."""
POLL = 60.0
"""The keeper looks again at least this often (new connections, changed rows)."""
REAUTH = "oauth connection needs re-auth"
"""How the reason of an integration disabled for a refused refresh starts."""


class RefreshRefused(TidingsError):
    """A refresh asked for now that can't be done: not connected, nothing to refresh with, needs a
    person to connect again, or another worker is refreshing it now."""


def due_at(row: Any) -> float | None:
    """When connection ``row`` should be refreshed (None: never: no refresh token, no expiry, or
    it needs re-auth)."""
    if row.status == connections.NEEDS_REAUTH or not row.has_refresh or row.expires_at is None:
        return None
    since = row.refreshed_at or row.connected_at
    lifetime = max(0.0, row.expires_at - since) if since is not None else 0.0
    # Never more than half the lifetime before: a token shorter than the margin is not refreshed in a loop.
    return float(row.expires_at - min(max(MARGIN, MARGIN_SHARE * lifetime), lifetime / 2))


def backoff(failures: int, retry_after: float | None = None) -> float:
    """Seconds to wait after ``failures`` failed refreshes in a row (at least ``retry_after``)."""
    delay = min(RETRY_MAX, RETRY_FIRST * 2 ** max(0, failures - 1))
    return max(delay, retry_after or 0.0)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}:oauth"


async def _claim(conn: Conn, integration: str, owner: str, now: float, *, force: bool) -> bool:
    """Take ``integration``'s row for ``owner`` unless another worker holds it (``force``: a
    backoff wait does not stop it)."""
    free = or_(oauth_connections.c.claimed_until.is_(None), oauth_connections.c.claimed_until < now)
    if force:
        free = or_(free, oauth_connections.c.claimed_by == BACKOFF)
    result = await conn.execute(update(oauth_connections).where(
        oauth_connections.c.integration == integration, oauth_connections.c.status != connections.NEEDS_REAUTH,
        free).values(claimed_by=owner, claimed_until=now + LEASE))
    return bool(result.rowcount == 1)


async def _still_ours(conn: Conn, integration: str, owner: str, now: float) -> bool:
    """The claim is still ``owner``'s (nobody took it since, even after it lapsed); the UPDATE
    locks the row until the transaction ends."""
    result = await conn.execute(update(oauth_connections).where(
        oauth_connections.c.integration == integration, oauth_connections.c.claimed_by == owner,
    ).values(claimed_until=now + LEASE))
    return bool(result.rowcount == 1)


async def _release(conn: Conn, integration: str, owner: str, **values: Any) -> bool:
    result = await conn.execute(update(oauth_connections).where(
        oauth_connections.c.integration == integration, oauth_connections.c.claimed_by == owner,
    ).values(claimed_by=None, claimed_until=None, **values))
    return bool(result.rowcount == 1)


def _reason(error: str) -> str:
    return clip(f"{REAUTH} ({error}): connect it again", 500)


async def refresh_one(hub: Hub, integration: str, owner: str, *, force: bool = False,
                      now: float | None = None) -> str:
    """Refresh ``integration``'s connection if it is due (``force``: whether or not) and nobody
    else is; what happened: ``refreshed``, ``not_due``, ``busy``, ``refused`` (needs re-auth now),
    ``failed`` (tried again later)."""
    store = hub.require_store()
    vault = hub.vault
    assert vault is not None
    now = time.time() if now is None else now
    async with store.write() as conn:
        if not await _claim(conn, integration, owner, now, force=force):
            return "busy"
    try:
        async with store.read() as conn:  # re-read: another worker may have refreshed it meanwhile
            row = (await conn.execute(select(oauth_connections).where(
                oauth_connections.c.integration == integration))).first()
        due = due_at(row) if row is not None else None
        if row is None or not row.has_refresh or (not force and (due is None or due > time.time())):
            async with store.write() as conn:
                await _release(conn, integration, owner)
            return "not_due"
        refresh_token = await vault.get(refresh_secret(integration))
        settings, client, prov = flow.connectable(hub.config, integration)
        secret = await flow.client_secret(vault, client)
        destinations = Destinations.parse(hub.config.server.allow_destinations).merged(settings.allow_destinations)
        async with guarded_session(destinations, concurrency=1, timeout=REQUEST_TIMEOUT) as session:
            granted = await tokens.refresh(session, prov, client.client_id, secret, refresh_token)
    except GrantRefused as exc:
        await _refused(hub, integration, owner, str(exc))
        return "refused"
    except Exception as exc:  # TokenEndpointFailed, a misconfiguration (OAuthError), the vault, anything else
        await _failed(hub, integration, owner, exc)
        return "failed"
    except BaseException:
        async with store.write() as conn:  # cancelled (the hub stops): the next worker may go on
            await _release(conn, integration, owner)
        raise
    async with vault.transaction() as conn:
        if not await _still_ours(conn, integration, owner, time.time()):
            # Never expected (the lease outlasts the request): the new tokens are lost with it.
            log.error("oauth.claim_lost", integration=integration)
            return "busy"
        await connections.store_tokens(vault, conn, integration=integration, project=row.project,
                                       provider=row.provider, tokens=granted, connected=False)
    log.info("oauth.refreshed", integration=integration, provider=row.provider, expires_at=granted.expires_at,
             rotated=bool(granted.refresh_token))
    if hub.watch is not None:
        hub.watch.connection(row.project, integration, False)
    _purge_later(hub)
    return "refreshed"


async def _failed(hub: Hub, integration: str, owner: str, exc: BaseException) -> None:
    error = clip(redact(f"{type(exc).__name__}: {exc}"), 500)
    retry_after = exc.retry_after if isinstance(exc, TokenEndpointFailed) else None
    now = time.time()
    async with hub.require_store().write() as conn:
        row = (await conn.execute(select(oauth_connections.c.failures).where(
            oauth_connections.c.integration == integration))).first()
        failures = (row.failures if row is not None else 0) + 1
        await conn.execute(update(oauth_connections).where(
            oauth_connections.c.integration == integration, oauth_connections.c.claimed_by == owner,
        ).values(failures=failures, last_error=error, claimed_by=BACKOFF,
                 claimed_until=now + backoff(failures, retry_after)))
    log.warning("oauth.refresh_failed", integration=integration, failures=failures, error=error)


async def _refused(hub: Hub, integration: str, owner: str, error: str) -> None:
    """Needs re-auth: the row, the integration disabled and its deliveries held, audited, in one
    transaction; the owners told once per incident (``notified_at``), after the commit."""
    from ..delivery import holds
    from ..delivery.holds import set_disabled

    error = clip(redact(error), 500)
    reason = _reason(error)
    now = time.time()
    async with hub.require_store().write() as conn:
        old = await connections.get(conn, integration)
        if old is None or not await _release(conn, integration, owner, status=connections.NEEDS_REAUTH,
                                             last_error=error, failures=old["failures"] + 1):
            return
        await set_disabled(conn, integration, True, reason, now)
        await holds.hold(conn, [integration], holds.disabled_reason(reason), now)
        tell = (await conn.execute(update(oauth_connections).where(
            oauth_connections.c.integration == integration, oauth_connections.c.notified_at.is_(None),
        ).values(notified_at=now))).rowcount == 1
        after = await connections.get(conn, integration)
        await append(conn, SYSTEM, "oauth.needs_reauth", target=f"integration/{integration}", project=old["project"],
                     before=old, after=after)
    log.warning("oauth.needs_reauth", integration=integration, error=error)
    if hub.dispatcher is not None:
        hub.dispatcher.set_enabled(integration, False)
    if hub.watch is not None:
        hub.watch.connection(old["project"], integration, True, reason)
        tell = tell and not hub.watch.alerting(old["project"])  # alerts_to hears it from the watch instead
    if tell:
        await _tell_owners(hub, integration, old["project"], old["provider"], error)


async def _tell_owners(hub: Hub, integration: str, project: str, provider: str, error: str) -> None:
    """A message routed in the project (``source: tidings``, ``event_type: oauth.needs_reauth``)
    with the re-connect link, naming the owners."""
    from ..accounts.projects import list_members
    from ..message import Link, Message, Priority

    link = f"{hub.config.server.base_url}/oauth/{integration}/start"
    try:
        async with hub.require_store().read() as conn:
            owners = [m["email"] for m in await list_members(conn, project) if m["role"] == "owner"]
        await hub.notify(Message(
            title=f"{integration} needs to be connected again",
            body=f"{provider} refused to refresh the connection of {integration} (project {project}): {error}\n"
                 f"Its deliveries are held until someone connects it again: open {link} "
                 f"or run `tidings connect {integration}`.",
            priority=Priority.HIGH,
            labels={"source": "tidings", "event_type": "oauth.needs_reauth", "integration": integration,
                    "owners": clip(", ".join(owners), 500) or "none"},
            fields={"owners": clip(", ".join(owners), 1000) or "none", "connect": link},
            links=(Link("Connect again", link),),
            thread_key=f"oauth-reauth:{integration}",
        ), project=project)
    except Exception as exc:  # the row says needs_reauth: the API and CLI show it anyway
        log.error("oauth.notice_failed", integration=integration, error=clip(f"{type(exc).__name__}: {exc}", 300))


_purging: dict[int, asyncio.Task[None]] = {}


def _purge_later(hub: Hub) -> None:
    """Purge the vault (the old tokens' ciphertexts) in the background, one purge at a time per
    hub: a refresh never waits for it."""
    key = id(hub)
    running = _purging.get(key)
    if running is not None and not running.done():
        return
    vault = hub.vault
    assert vault is not None

    async def _purge() -> None:
        await vault.purge()

    task = asyncio.get_running_loop().create_task(_purge(), name="tidings-oauth-purge")
    _purging[key] = task
    task.add_done_callback(lambda t: _purging.pop(key, None) if _purging.get(key) is t else None)


async def purged(hub: Hub) -> None:
    """Until the purge :func:`refresh_one` started for ``hub`` (if any) has ended."""
    task = _purging.get(id(hub))
    if task is not None:
        await asyncio.wait({task})


async def refresh_now(hub: Hub, integration: str, *, actor: Actor = SYSTEM) -> dict[str, Any]:
    """Refresh ``integration``'s connection now (the CLI, the API): the connection as :func:`one`
    shows it after, with ``outcome`` (``refreshed``, ``failed``, ``refused``, ``not_due``).
    :class:`NotFound` when not connected; :class:`RefreshRefused` when it can't be refreshed
    (needs re-auth, no refresh token, another worker refreshing it)."""
    store = hub.require_store()
    async with store.read() as conn:
        row = await connections.get(conn, integration)
    if row is None:
        raise NotFound(f"integration {integration!r} is not connected: run `tidings connect {integration}`")
    if row["status"] == connections.NEEDS_REAUTH:
        raise RefreshRefused(f"{integration} needs re-auth: connect it again (`tidings connect {integration}`)")
    if not row["has_refresh"]:
        raise RefreshRefused(f"{integration} has no refresh token ({row['provider']} granted none): connect it again"
                             " when it expires")
    outcome = await refresh_one(hub, integration, _owner(), force=True)
    await purged(hub)  # a one-off: its process may end right after
    if outcome == "busy":
        raise RefreshRefused(f"{integration} is being refreshed by another worker now: try again in a moment")
    async with store.write() as conn:
        await append(conn, actor, "oauth.refresh_now", target=f"integration/{integration}", project=row["project"],
                     after={"outcome": outcome})
    return {**await one(hub, integration), "outcome": outcome}


# -- what the API and the CLI show and do ------------------------------------------------------------
def connectable_names(hub: Hub, project: str | None = None) -> dict[str, str]:
    """The integrations (of ``project``) that connect through OAuth (``oauth: true``) -> provider."""
    from ..integrations.base import ConnectableSettings

    return {name: s.oauth_provider for name, s in hub.config.integrations.items()
            if isinstance(s, ConnectableSettings) and s.oauth and s.oauth_provider
            and (project is None or s.project == project)}


def start_url(hub: Hub, integration: str) -> str:
    """Where a person goes to connect ``integration`` (``GET /oauth/NAME/start``)."""
    return f"{hub.config.server.base_url}/oauth/{integration}/start"


def _view(hub: Hub, name: str, project: str, provider: str, row: dict[str, Any] | None,
          configured: bool) -> dict[str, Any]:
    out: dict[str, Any] = {k: None for k in connections.SHOWN}
    out.update(integration=name, project=project, provider=provider, status=connections.NOT_CONNECTED,
               has_refresh=False, failures=0, version=0, extra={})
    if row is not None:
        out.update(row)
    out["scopes"] = out["scopes"].split() if out["scopes"] else []
    out["health"] = connections.health(row)
    out["access_expired"] = bool(row and connections.access_expired(row))
    out["configured"] = configured
    out["start_url"] = start_url(hub, name)
    return out


async def overview(hub: Hub, project: str | None = None) -> list[dict[str, Any]]:
    """Every connection-capable integration (of ``project``) with its connection's health, the
    not connected ones too, and connections whose integration is no longer configured; by name."""
    names = connectable_names(hub, project)
    async with hub.require_store().read() as conn:
        rows = {r["integration"]: r for r in await connections.list_connections(conn, project)}
    out = [_view(hub, name, hub.config.integrations[name].project, provider, rows.get(name), True)
           for name, provider in names.items()]
    out += [_view(hub, name, row["project"], row["provider"], row, False) for name, row in rows.items()
            if name not in names]
    return sorted(out, key=lambda c: c["integration"])


async def one(hub: Hub, integration: str, project: str | None = None) -> dict[str, Any]:
    """The connection of ``integration`` (of ``project``) as :func:`overview` shows it; :class:`NotFound`."""
    for item in await overview(hub, project):
        if item["integration"] == integration:
            return item
    raise NotFound(f"no integration {integration!r} connects through OAuth" +
                   (f" in project {project}" if project else "") + " (`oauth: true` on a kind that can)")


async def disconnect(hub: Hub, integration: str, *, actor: Actor = SYSTEM) -> dict[str, Any]:
    """Forget ``integration``'s connection: the row and both tokens in one transaction (audited),
    then purge the vault. Its next send is held as not connected (the vault watch drops the token).
    :class:`NotFound` when not connected."""
    vault = hub.vault
    assert vault is not None
    async with vault.transaction() as conn:
        old = await connections.disconnect(vault, conn, integration, actor=actor)
    if old is None:
        raise NotFound(f"integration {integration!r} is not connected")
    if hub.vault_watch is not None:
        await hub.vault_watch.check()  # this process at once; the others within a second
    await vault.purge()
    return old


class Keeper(Background):
    """Refreshes every due connection of a dispatching hub (``hub.keeper``)."""

    task_name = "tidings-oauth-keeper"

    def __init__(self, hub: Hub, *, poll: float = POLL) -> None:
        self.hub = hub
        self.owner = _owner()
        self.poll = poll
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        await super().stop()
        await purged(self.hub)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            wait = self.poll
            try:
                wait = await self.tick()
            except Exception as exc:
                log.error("oauth.keeper_failed", error=clip(f"{type(exc).__name__}: {exc}", 300))
            await wait_at_most(self._wake.wait(), wait)

    async def tick(self) -> float:
        """Refresh the connections due now, one after another; seconds until the next is due."""
        names = set(self.hub.config.integrations)
        now = time.time()
        async with self.hub.require_store().read() as conn:
            rows = list(await conn.execute(select(oauth_connections).where(
                oauth_connections.c.status != connections.NEEDS_REAUTH, oauth_connections.c.has_refresh == 1,
                oauth_connections.c.expires_at.is_not(None))))
        wait = self.poll
        for row in rows:
            if row.integration not in names:
                continue
            due = due_at(row)
            if due is None:
                continue
            if row.claimed_until is not None and row.claimed_until > now:
                wait = min(wait, row.claimed_until - now)
                continue
            if due > now:
                wait = min(wait, due - now)
                continue
            try:
                outcome = await refresh_one(self.hub, row.integration, self.owner)
            except Exception as exc:  # the store failed: the others still get their turn
                log.error("oauth.refresh_not_recorded", integration=row.integration,
                          error=clip(f"{type(exc).__name__}: {exc}", 300))
                outcome = "busy"
            if outcome == "busy":
                wait = min(wait, 1.0)
            elif outcome in ("refreshed", "failed"):  # its next due (or retry) time is new
                wait = min(wait, await self._next(row.integration))
        return max(0.0, wait)

    async def _next(self, integration: str) -> float:
        """Seconds until ``integration``'s connection is due again, or its retry (the poll when never)."""
        async with self.hub.require_store().read() as conn:
            row = (await conn.execute(select(oauth_connections).where(
                oauth_connections.c.integration == integration))).first()
        due = due_at(row) if row is not None else None
        if due is None:
            return self.poll
        if row is not None and row.claimed_until is not None:
            due = max(due, row.claimed_until)
        return max(0.0, due - time.time())


__all__ = ["BACKOFF", "LEASE", "MARGIN", "REAUTH", "Keeper", "RefreshRefused", "backoff", "connectable_names",
           "disconnect", "due_at", "one", "overview", "refresh_now", "refresh_one", "start_url"]
