"""A running hub follows its ``${vault:NAME}`` secrets: a value rotated by another process (``tidings
secret rotate``, the API of another worker) reaches the integrations that use it within
:data:`CHECK_EVERY` seconds, without a restart; it also keeps each secret's ``last_used_at``.

Every :data:`CHECK_EVERY` seconds one query reads the ``updated_at`` of the secrets the
integrations refer to (a change of value always moves it forward). An integration with a changed
secret is resolved again and, if a value really differs (a new key alone changes nothing), takes
its new settings in place (:meth:`~tidings.integrations.base.Integration.reconfigure`): the next
send uses the new value, sends under way finish with the old one.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from ..background import Background
from ..errors import VaultError
from ..integrations.base import secret_refs
from ..oauth.names import is_connection_secret
from .redact import clip, redact, register
from .vault import Vault, load_keys

if TYPE_CHECKING:
    from ..hub import Hub
    from ..integrations.base import IntegrationSettings

log = structlog.get_logger("tidings.vault")

CHECK_EVERY = 1.0
"""Seconds between two checks for rotated secrets (one small indexed query)."""


class VaultWatch(Background):
    """Resolves ``${vault:NAME}`` for the hub's integrations and keeps them current."""

    task_name = "tidings-vault-watch"

    def __init__(self, hub: Hub, interval: float = CHECK_EVERY) -> None:
        self.hub = hub
        self.interval = interval
        self.refs: dict[str, dict[str, str]] = {
            name: refs for name, settings in hub.config.integrations.items() if (refs := secret_refs(name, settings))
        }
        """Integration -> its fields written as ``${vault:NAME}`` -> the secret's name."""
        self.seen: dict[str, float | None] = {}
        """Secret -> the ``updated_at`` of the value the integrations hold."""
        self._activity: Counter[str] = Counter()
        self._missing: set[str] = set()
        self._checking = asyncio.Lock()

    @property
    def secrets(self) -> set[str]:
        return {secret for refs in self.refs.values() for secret in refs.values()}

    @property
    def vault(self) -> Vault:
        assert self.hub.vault is not None
        return self.hub.vault

    async def resolve(self, integration: str, settings: IntegrationSettings) -> IntegrationSettings:
        """``settings`` with each ``${vault:NAME}`` replaced by its value (what the integration is
        built with); remembers which version of each value it read."""
        refs = self.refs.get(integration)
        if not refs:
            return settings
        resolved: dict[str, str | None] = {}
        for field, secret in refs.items():
            try:
                resolved[field], self.seen[secret] = await self.vault.fetch(secret)
            except VaultError:
                if not is_connection_secret(secret) or await self.vault.info(secret) is not None:
                    raise
                # Not connected yet: built without a token (its sends are held) until the
                # connection stores one, which the next check picks up like a rotation.
                resolved[field], self.seen[secret] = None, None
        return type(settings).model_validate({**settings.model_dump(), **resolved})

    def start(self) -> None:
        if self.refs:
            self._activity = self._counts()
            super().start()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away for a moment: try again next time
                log.warning("vault.check_failed", error=clip(f"{type(exc).__name__}: {exc}", 300))

    async def check(self) -> list[str]:
        """Apply rotated values now; the integrations that took new settings. Also records which
        secrets integrations used since the last check."""
        if not self.refs:
            return []
        async with self._checking:
            versions = await self.vault.versions(self.secrets)
            changed = {s for s in self.secrets if versions.get(s) != self.seen.get(s)}
            # A connection's token gone (disconnected): its integrations go back to not connected
            # (their sends held) rather than keep a token that was revoked with it.
            disconnected = {s for s in changed - versions.keys() if is_connection_secret(s)}
            for secret in sorted(changed - versions.keys() - self._missing - disconnected):
                log.warning("vault.secret_deleted", secret=secret,
                            hint="the integrations using it keep the value they hold; their next start fails")
            self._missing = self.secrets - versions.keys()
            # Seen even if reloading fails (an unreadable value is reported once, not every second).
            self.seen.update({s: versions[s] for s in changed - self._missing})
            self.seen.update(dict.fromkeys(disconnected))
            reload = (changed - self._missing) | disconnected
            updated = [name for name, refs in self.refs.items() if set(refs.values()) & reload]
            done = [name for name in updated if await self._reload(name)]
            await self._mark_used()
            return done

    async def _reload(self, name: str) -> bool:
        integration = self.hub._integrations.get(name)
        if integration is None:
            return False
        try:
            settings = await self._resolve_reloading_keys(name)
        except Exception as exc:  # unreadable or invalid: keep what works, say why
            log.warning("vault.reload_failed", integration=name, error=clip(_why(exc), 300))
            return False
        fields = self.refs[name]
        if _values(settings, fields) == _values(integration.settings, fields):
            return False
        integration.reconfigure(settings)
        values = settings.secret_values()
        register(values)
        integration.context.secrets.update(values)
        log.info("vault.secret_reloaded", integration=name, secrets=sorted(set(self.refs[name].values())))
        return True

    async def _resolve_reloading_keys(self, name: str) -> IntegrationSettings:
        settings = self.hub.config.integrations[name]
        try:
            return await self.resolve(name, settings)
        except VaultError:
            # `tidings keys rotate` may have re-encrypted with a key this process has not read yet.
            fresh = Vault(self.hub.store, load_keys(self.hub.config_dir))  # type: ignore[arg-type]
            fresh._used = self.vault._used
            if fresh.keys == self.vault.keys:
                raise
            self.hub.vault = fresh
            return await self.resolve(name, settings)

    def _counts(self) -> Counter[str]:
        """Sends and inbound requests so far, per integration (from the hub's metrics)."""
        counts: Counter[str] = Counter()
        metrics = self.hub.metrics
        for family in (*metrics.deliveries.collect(), *metrics.inbound.collect()):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["integration"]] += int(sample.value)
        return counts

    async def _mark_used(self) -> None:
        counts = self._counts()
        active = [name for name in self.refs if counts[name] > self._activity[name]]
        self._activity = counts
        await self.mark_used(active)

    async def mark_used(self, integrations: Any = None) -> None:
        """Record that ``integrations`` (default: all) used their secrets (at most once a minute
        each); a failure is only logged: it never stops a start or a send."""
        names = self.refs if integrations is None else integrations
        secrets = {s for name in names for s in self.refs.get(name, {}).values()} - self._missing
        try:
            await self.vault.mark_used(secrets)
        except Exception as exc:
            log.warning("vault.mark_used_failed", error=clip(f"{type(exc).__name__}: {exc}", 300))


def _values(settings: IntegrationSettings, fields: dict[str, str]) -> dict[str, str | None]:
    return {field: value.get_secret_value() if (value := getattr(settings, field)) is not None else None
            for field in fields}


def _why(exc: Exception) -> str:
    """Why a reload failed, never with the value refused (pydantic quotes the input: the secret)."""
    if isinstance(exc, ValidationError):
        return "invalid settings: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return redact(f"{type(exc).__name__}: {exc}")
