"""The tables, as SQLAlchemy Core. Times are epoch seconds (float) so SQLite and PostgreSQL compare
and subtract them the same way. Migrations in ``migrations/versions`` must match this file."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()


def _any_status(states: tuple[str, ...]) -> str:
    return " OR ".join(f"status = '{s}'" for s in states)


ACTIVE = ("pending", "retrying", "sending")
"""Delivery states the dispatcher still has work for."""
ACTIVE_SQL = _any_status(ACTIVE)
"""The same as a literal condition: the partial index ``ix_deliveries_due`` serves a query only
when its WHERE states these statuses literally (bound parameters hide them from the planner).
OR-ed equalities, not ``status IN (...)``: SQLite tests a partial index's condition on every row
written, and for an IN list of three or more it builds a temporary b-tree each time (measured
with callgrind: 23k of the 141k instructions the outbox's SQLite work costs per message)."""


HELD = ("pending", "retrying", "dead", "suppressed", "grouped")
"""States a delivery can stay in and people list: every state but ``sending`` and ``delivered``,
the two a delivery passes through on the hot path, which so never touch ``ix_deliveries_held``."""
HELD_SQL = _any_status(HELD)
"""As OR-ed equalities: the form that lets SQLite use the partial index for ``status = 'dead'``."""


ERRORS_SQL = "last_error IS NOT NULL AND status <> 'suppressed'"
"""Deliveries with an error to show (a suppressed one's last_error says why it was suppressed)."""


def from_active_deliveries(dialect: str, *, of_integrations: bool = False) -> str:
    """``FROM deliveries WHERE <active>`` read through the partial index of active deliveries,
    which holds only the work left (with ``of_integrations``: ``AND integration IN :names``, an
    expanding parameter). Left to itself, SQLite planned such queries on another index and read
    every delivery ever made, on every claim: slower the longer tidings ran. INDEXED BY makes
    SQLite use the due index (or fail loudly)."""
    hint = " INDEXED BY ix_deliveries_due" if dialect == "sqlite" else ""
    names = " AND integration IN :names" if of_integrations else ""
    return f"FROM deliveries{hint} WHERE ({ACTIVE_SQL}){names}"

messages = Table(
    "messages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("title", Text, nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("source", String(200)),
    Column("thread_key", String(500)),
    Column("dedup_key", String(500)),
    Column("data", JSON, nullable=False),
    Column("idempotency_key", String(300), unique=True),
    Column("request_hash", String(64)),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("message_id", String(36), ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("integration", String(100), nullable=False),
    Column("route", String(100)),
    Column("status", String(16), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("queued_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_owner", String(64)),
    Column("delivered_at", Float),
    Column("latency_ms", Float),
    Column("remote_id", Text),
    Column("last_error", Text),
    Index(
        "ix_deliveries_due",
        "priority",
        "created_at",
        "next_attempt_at",
        sqlite_where=text(ACTIVE_SQL),
        postgresql_where=text(ACTIVE_SQL),
    ),
    Index("ix_deliveries_message", "message_id"),
    # Ids are time-ordered (UUIDv7): (x, id) serves "newest first" and time windows alike.
    Index("ix_deliveries_integration_id", "integration", "id"),
    Index("ix_deliveries_held", "status", "id", sqlite_where=text(HELD_SQL), postgresql_where=text(HELD_SQL)),
    Index(
        "ix_deliveries_errors",
        "integration",
        "updated_at",
        sqlite_where=text(ERRORS_SQL),
        postgresql_where=text(ERRORS_SQL),
    ),
)

inbox = Table(
    "inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(36), nullable=False, unique=True),
    Column("message_id", String(36), nullable=False),
    Column("integration", String(100), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("payload", JSON, nullable=False),
    Index("ix_inbox_integration", "integration", "id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE", name="fk_api_tokens_user")),
    Column("project", String(64), ForeignKey("projects.slug", ondelete="CASCADE", name="fk_api_tokens_project"),
           comment="a scoped token acts only in this project"),
    Column("expires_at", Float),
)

secrets = Table(
    "secrets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

integration_state = Table(
    "integration_state",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("reason", Text),
    Column("updated_at", Float, nullable=False),
)

dedup = Table(
    "dedup",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

threads = Table(
    "threads",
    metadata,
    Column("integration", String(100), primary_key=True),
    Column("key", String(64), primary_key=True, comment="sha256 of thread_key"),
    Column("thread_key", Text, nullable=False),
    Column("ref", JSON, nullable=False, comment="where the channel keeps the thread: Slack channel + ts..."),
    Column("message_id", String(36), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("resolved_at", Float),
)

groups = Table(
    "groups",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("route", String(100), nullable=False),
    Column("key", String(64), nullable=False, comment="sha256 of the group_by label values"),
    Column("labels", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("flush_at", Float, comment="when the next digest is due; NULL when none is"),
    Column("last_flush_at", Float),
    Column("pending", Integer, nullable=False, server_default=text("0")),
    Column("total", Integer, nullable=False, server_default=text("0")),
    Column("firing", Boolean, nullable=False, server_default=text("true")),
    Index("ux_groups_route_key", "route", "key", unique=True),
    Index("ix_groups_flush", "flush_at"),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", String(36), ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("message_id", String(36), ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("flushed_at", Float),
    Index("ix_group_members_pending", "group_id", "flushed_at"),
    Index("ix_group_members_message", "message_id"),  # deleting a message looks its memberships up
)

EVENT_ACTIVE = ("received", "processing")
"""Inbound event states the processor still has work for."""

events = Table(
    "events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("integration", String(100), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("delivery_key", String(300), nullable=False, comment="the sender's delivery id, for dedup"),
    Column("received_at", Float, nullable=False),
    Column("content_type", String(200)),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_owner", String(64)),
    Column("last_error", Text),
    Column("result", JSON),
    Column("processed_at", Float),
    Index("ux_events_delivery", "integration", "delivery_key", unique=True),
    Index(
        "ix_events_due",
        "next_attempt_at",
        sqlite_where=text("status IN ('received', 'processing')"),
        postgresql_where=text("status IN ('received', 'processing')"),
    ),
    Index("ix_events_integration", "integration", "received_at"),
    Index("ix_events_status", "status", "received_at"),
)

acks = Table(
    "acks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("message_id", String(36), ForeignKey("messages.id", ondelete="CASCADE")),
    Column("thread_key", String(500)),
    Column("integration", String(100)),
    Column("by", String(200), nullable=False),
    Column("via", String(40), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_acks_message", "message_id"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("matchers", JSON, nullable=False, comment="label -> value every silenced message carries"),
    Column("until", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("reason", Text),
    Index("ix_silences_until", "until"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False, comment="gap-free, from 1"),
    Column("at", Float, nullable=False),
    Column("actor", String(20), nullable=False, comment="user, token or system"),
    Column("actor_id", String(64)),
    Column("actor_name", String(320)),
    Column("auth_method", String(20)),
    Column("token_id", String(64)),
    Column("ip", String(64)),
    Column("user_agent", String(500)),
    Column("request_id", String(64)),
    Column("project", String(100)),
    Column("action", String(100), nullable=False),
    Column("target", String(500)),
    Column("before", JSON),
    Column("after", JSON),
    Column("outcome", String(20), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_action", "action", "seq"),
    Index("ix_audit_log_project", "project", "seq"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("tree_size", Integer, primary_key=True, autoincrement=False),
    Column("head_hash", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(100), nullable=False, comment="base64 Ed25519 over the canonical checkpoint"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False, unique=True, comment="lower-cased"),
    Column("name", String(200), nullable=False),
    Column("password_hash", String(200), comment="argon2id; NULL: can't sign in with a password"),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("site_admin", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("slug", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("project", String(64), ForeignKey("projects.slug", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_memberships_user", "user_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True, comment="SHA-256 of the cookie's value"),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("ip", String(64)),
    Column("user_agent", String(500)),
    Index("ix_sessions_user", "user_id"),
)
