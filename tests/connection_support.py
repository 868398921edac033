"""Connections for the tests of integrations with ``oauth: true``: tokens written straight through
``oauth.connections.store_tokens`` (what the OAuth callback and the refresher do), no OAuth flow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import eventually

from tidings.hub import Hub
from tidings.oauth import connections
from tidings.oauth.connections import TokenSet
from tidings.security.vault import new_key, write_key_file


def with_key(config_dir: Path) -> None:
    """A vault key where the hub will look (``TIDINGS_KEY_FILE`` points there in tests)."""
    write_key_file(config_dir / "tidings.key", [new_key()])


async def store(hub: Hub, integration: str, provider: str, access: str, *, refresh: bool = False,
                extra: dict[str, Any] | None = None, project: str | None = None) -> dict[str, Any]:
    """Connect ``integration`` with ``access`` (``refresh=True``: as the refresher's new token)."""
    vault = hub.vault
    assert vault is not None
    project = project or hub.config.integrations[integration].project
    async with vault.transaction() as conn:
        return await connections.store_tokens(
            vault, conn, integration=integration, project=project, provider=provider,
            tokens=TokenSet(access, refresh_token=f"refresh-{access[-6:]}", expires_at=None),
            account="ops@example.com", extra=extra, connected=not refresh,
        )


async def holds(hub: Hub, integration: str, token: str, field: str = "token", timeout: float = 5.0) -> None:
    """Until the running integration holds ``token`` in ``field`` (the vault watch's next check)."""

    async def held() -> bool:
        value = getattr(hub._integrations[integration].settings, field)
        return value is not None and value.get_secret_value() == token

    await eventually(held, timeout=timeout)
