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

ACTIVE = ("pending", "retrying", "sending")
"""Delivery states the dispatcher still has work for."""

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
    Index("ix_messages_created", "created_at"),
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
        sqlite_where=text("status IN ('pending', 'retrying', 'sending')"),
        postgresql_where=text("status IN ('pending', 'retrying', 'sending')"),
    ),
    Index("ix_deliveries_message", "message_id"),
    Index("ix_deliveries_status", "status", "created_at"),
    Index("ix_deliveries_integration", "integration", "created_at"),
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
