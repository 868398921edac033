"""The tables of OAuth connections (``oauth/``): one connection per integration, and the pending
authorizations (``state``) of flows under way. Tokens themselves live in the vault (``secrets``),
named by :func:`tidings.oauth.connections.secret_name`; these rows hold only what may be shown."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, ForeignKey, Index, Integer, LargeBinary, String, Table

from .tables import SafeString, SafeText, metadata

oauth_connections = Table(
    "oauth_connections",
    metadata,
    Column("integration", String(100), primary_key=True, comment="the integration whose token this is"),
    Column("project", String(64), ForeignKey("projects.slug", ondelete="CASCADE"), nullable=False),
    Column("provider", String(32), nullable=False, comment="github, slack, google, microsoft, atlassian"),
    Column("status", String(16), nullable=False,
           comment="healthy, or needs_reauth (a refresh was refused: a person must connect again);"
                   " 'expiring' is worked out from the expiry columns"),
    Column("account", SafeString(320), comment="who connected, as the provider names them (login, email, team)"),
    Column("account_id", SafeString(200), comment="their id at the provider"),
    Column("scopes", SafeText, comment="the granted scopes, space-separated"),
    Column("expires_at", Float, comment="when the access token expires; NULL: it does not"),
    Column("refresh_expires_at", Float, comment="when the refresh token expires; NULL: it does not, or there is none"),
    Column("has_refresh", Integer, nullable=False, server_default="0", comment="1 when a refresh token is stored"),
    Column("extra", JSON, comment="provider facts the integration needs: Atlassian cloud id and site, Slack team..."),
    Column("connected_at", Float, nullable=False),
    Column("connected_by", String(36), comment="the tidings user who connected it"),
    Column("refreshed_at", Float),
    Column("failures", Integer, nullable=False, server_default="0", comment="refreshes failed in a row (retryable)"),
    Column("last_error", SafeText, comment="the last refresh or use error, secrets masked"),
    Column("claimed_by", String(100), comment="the worker refreshing it now (one at a time per connection)"),
    Column("claimed_until", Float),
    Column("notified_at", Float, comment="when the owners were last told it needs re-auth"),
    Column("version", Integer, nullable=False, server_default="1", comment="bumped by every token write"),
    Index("ix_oauth_connections_project", "project"),
)
"""One row per connected integration: what may be shown of its OAuth grant and its health."""

oauth_states = Table(
    "oauth_states",
    metadata,
    Column("state_hash", String(64), primary_key=True, comment="SHA-256 of the state sent to the provider"),
    Column("integration", String(100), nullable=False),
    Column("project", String(64), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("verifier", LargeBinary, nullable=False, comment="the PKCE code verifier, encrypted with the vault keys"),
    Column("redirect_uri", SafeText, nullable=False),
    Column("created_by", String(36), comment="the user who started the flow"),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, comment="set once, by the callback that used it: a replay finds it used"),
    Index("ix_oauth_states_expires", "expires_at"),
)
"""Authorizations under way: a callback must bring back a state found here, unused and unexpired."""
