"""How the API, the CLI and the unsubscribe link change a project's people: in one transaction
(the vault's, since a Teams URL is a secret), then this process's directory reloads the project so
the next message planned sees the change (other workers within their refresh)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..store.engine import Conn

if TYPE_CHECKING:
    from ..hub import Hub


@contextlib.asynccontextmanager
async def editing(hub: Hub, project: str, *, secret: bool = False) -> AsyncIterator[Conn]:
    """A write transaction for changes to ``project``'s people. ``secret``: the change stores or
    removes a Teams URL (the vault's transaction, and its old ciphertext purged after the commit)."""
    vault = hub.vault
    use_vault = secret and vault is not None
    async with (vault.transaction() if use_vault and vault is not None else hub.require_store().write()) as conn:
        yield conn
    if use_vault and vault is not None:
        await vault.purge()
    if hub.directory is not None:
        await hub.directory.reload(project)
