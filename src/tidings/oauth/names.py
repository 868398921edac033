"""Where a connection's tokens live in the vault (no imports: the integrations' settings use it)."""

from __future__ import annotations


def access_secret(integration: str) -> str:
    """The vault name of ``integration``'s access token (what the integration sends with)."""
    return f"oauth/{integration}/access"


def refresh_secret(integration: str) -> str:
    """The vault name of ``integration``'s refresh token (only the refresher reads it)."""
    return f"oauth/{integration}/refresh"


def is_connection_secret(name: str) -> bool:
    """True for the vault names of connections' tokens (managed by tidings, not by hand)."""
    return name.startswith("oauth/") and name.endswith(("/access", "/refresh"))
