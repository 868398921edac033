"""The tables, as SQLAlchemy Core. Times are epoch seconds (float) so SQLite and PostgreSQL compare
and subtract them the same way. Migrations in ``migrations/versions`` must match this file."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
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
    TypeDecorator,
    text,
)

metadata = MetaData()

_NUL = "\x00"


def nul_safe(value: str) -> str:
    """``value`` as every database can store it: PostgreSQL's text types refuse U+0000 (SQLite takes
    it), so NUL is written as U+FFFD on both. Raw bodies are bytes (``LargeBinary``) and keep theirs."""
    return value.replace(_NUL, "\ufffd") if _NUL in value else value


class _NulSafe(TypeDecorator[str]):
    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        return value if value is None or _NUL not in value else nul_safe(value)


class SafeString(_NulSafe):
    """``String(n)`` for text that comes from outside (a request, a peer's answer): see :func:`nul_safe`."""

    impl = String
    cache_ok = True


class SafeText(_NulSafe):
    """``Text`` for text that comes from outside: see :func:`nul_safe`."""

    impl = Text
    cache_ok = True


def _any_status(states: tuple[str, ...], table: str = "") -> str:
    column = f"{table}.status" if table else "status"
    return " OR ".join(f"{column} = '{s}'" for s in states)


ACTIVE = ("pending", "retrying", "sending")
"""Delivery states the dispatcher still has work for."""
ACTIVE_SQL = _any_status(ACTIVE)
"""The same as a literal condition: the partial index ``ix_deliveries_due`` serves a query only
when its WHERE states these statuses literally (bound parameters hide them from the planner).
OR-ed equalities, not ``status IN (...)``: SQLite tests a partial index's condition on every row
written, and for an IN list of three or more it builds a temporary b-tree each time (measured
with callgrind: 23k of the 141k instructions the outbox's SQLite work costs per message)."""


THREAD_AHEAD = (*ACTIVE, "held")
"""States of a delivery a later one of its thread (to the same integration) waits for: the
active ones, and ``held`` (its integration removed or disabled: it goes first when it comes back)."""
THREAD_SQL = f"thread IS NOT NULL AND ({_any_status(THREAD_AHEAD)})"
"""The condition of ``ix_deliveries_thread``: the deliveries of a thread a later delivery of the
same thread waits for (see ``outbox.in_turn``). Deliveries without a thread, the common case,
are never in it."""


HELD = ("pending", "retrying", "dead", "suppressed", "grouped", "held")
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


def in_thread_turn(dialect: str) -> str:
    """The condition a delivery (the enclosing query's ``deliveries`` row) meets when it may be
    sent now as far as its thread goes: it has no thread, or no other active delivery of its
    thread to its integration is ahead of it (accepted earlier) or being sent under a live lease
    (``:now``). So a thread's deliveries go out one at a time, in the order they were accepted,
    whatever their priorities; a dead head lets the rest go (as do delivered, suppressed and
    grouped ones); a ``held`` one (its integration removed or disabled) blocks its thread until it
    is resumed. Deliveries without a thread pay one NULL test. A state added later that holds a
    delivery back to send it later must block its thread too: add it to :data:`THREAD_AHEAD`."""
    hint = " INDEXED BY ix_deliveries_thread" if dialect == "sqlite" else ""
    return (
        "(deliveries.thread IS NULL OR NOT EXISTS (SELECT 1"
        f" FROM deliveries AS ahead{hint} WHERE ahead.integration = deliveries.integration"
        f" AND ahead.thread = deliveries.thread AND ({_any_status(THREAD_AHEAD, 'ahead')}) AND ahead.id <> deliveries.id"
        " AND (ahead.thread_seq < deliveries.thread_seq"
        " OR (ahead.thread_seq = deliveries.thread_seq AND ahead.id < deliveries.id)"
        " OR (ahead.status = 'sending' AND ahead.next_attempt_at > :now))))"
    )

messages = Table(
    "messages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("title", SafeText, nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("source", SafeString(200)),
    Column("thread_key", SafeString(500)),
    Column("dedup_key", SafeString(500)),
    Column("data", JSON, nullable=False),
    Column("idempotency_key", SafeString(300), unique=True),
    Column("request_hash", String(64)),
    Column("project", String(64), nullable=False, server_default="default"),
    Index("ix_messages_project", "project", "created_at"),
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
    Column("remote_id", SafeText),
    Column("last_error", SafeText),
    Column("thread", String(64), comment="sha256 of the message's thread_key; NULL without one"),
    Column("thread_seq", BigInteger, comment="order of acceptance within the thread (ns, per writer strictly rising)"),
    Column("recipient", String(36), comment="the recipient (recipients.id) this delivery addresses; NULL: the channel"),
    Column("reason", SafeText,
           comment="why this delivery exists or waits: a recipient's route, quiet hours, a preference, an escalation step"),
    Index(
        "ix_deliveries_due",
        "priority",
        "created_at",
        "next_attempt_at",
        sqlite_where=text(ACTIVE_SQL),
        postgresql_where=text(ACTIVE_SQL),
    ),
    Index(
        "ix_deliveries_thread",
        "integration",
        "thread",
        "thread_seq",
        sqlite_where=text(THREAD_SQL),
        postgresql_where=text(THREAD_SQL),
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

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(36), ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False, comment="the delivery's attempt number (a retry by hand starts again at 1)"),
    Column("at", Float, nullable=False),
    Column("outcome", String(8), nullable=False, comment="retry or dead"),
    Column("status_code", Integer, comment="the peer's HTTP status; NULL when it answered none (a reset, a timeout)"),
    Column("latency_ms", Float),
    Column("error", SafeText, comment="what went wrong, masked then cut, as in deliveries.last_error"),
    Index("ix_delivery_attempts_delivery", "delivery_id", "attempt"),
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
    Column("name", SafeString(100), nullable=False),
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
    Column("name", SafeString(200), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("created_by", String(320)),
    Column("rotated_at", Float),
    Column("rotated_by", String(320)),
    Column("last_used_at", Float),
)

integration_state = Table(
    "integration_state",
    metadata,
    Column("name", SafeString(100), primary_key=True),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("reason", SafeText),
    Column("updated_at", Float, nullable=False),
)

breakers = Table(
    "breakers",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("state", String(10), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("cool_off", Float, nullable=False),
    Column("opened_at", Float),
    Column("half_open_at", Float),
    Column("updated_at", Float, nullable=False),
)
"""Each integration's circuit breaker as every process sees it, written on transitions only."""

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
    Column("thread_key", SafeText, nullable=False),
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
    Column("event_type", SafeString(200), nullable=False),
    Column("delivery_key", SafeString(300), nullable=False, comment="the sender's delivery id, for dedup"),
    Column("received_at", Float, nullable=False),
    Column("content_type", SafeString(200)),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_owner", String(64)),
    Column("last_error", SafeText),
    Column("result", JSON),
    Column("processed_at", Float),
    Column("project", String(64), nullable=False, server_default="default"),
    Index("ix_events_project", "project", "received_at"),
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
    Column("thread_key", SafeString(500)),
    Column("integration", String(100)),
    Column("by", SafeString(200), nullable=False),
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
    Column("created_by", SafeString(200), nullable=False),
    Column("reason", SafeText),
    Column("project", String(64), nullable=False, server_default="default"),
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

config_revisions = Table(
    "config_revisions",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False, comment="1, 2, ... (gap-free)"),
    Column("created_at", Float, nullable=False),
    Column("author", String(320), nullable=False),
    Column("source", String(10), nullable=False, comment="file, api, cli or ui"),
    Column("comment", SafeText),
    Column("document", Text, nullable=False, comment="JSON: integrations, routes, default; secrets as references"),
    Column("digest", String(64), nullable=False, comment="sha256 of the canonical document"),
    Column("parent", Integer, comment="the revision it was made from"),
    Column("audit_seq", Integer, comment="the audit entry that made it"),
)
"""Immutable, validated configuration documents (see ``config/revisions.py``)."""

config_state = Table(
    "config_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False, comment="always 1"),
    Column("current", Integer, nullable=False, comment="the revision every process runs"),
    Column("file_digest", String(64), comment="digest of the file document imported last"),
    Column("file_document", Text, comment="that file document (JSON), to merge the file's next change"),
    Column("updated_at", Float, nullable=False),
)
"""The pointer to the current revision (one row; writers lock it)."""

config_processes = Table(
    "config_processes",
    metadata,
    Column("owner", String(100), primary_key=True, comment="host:pid:random of a running hub"),
    Column("revision", Integer, nullable=False),
    Column("applied_at", Float, nullable=False),
    Column("problem", SafeText, comment="why it could not switch to the current revision"),
    Column("seen_at", Float, comment="its last sign of life (the watcher writes it every HEARTBEAT seconds)"),
)
"""Which revision each running process runs, and since when."""

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

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project", String(64), ForeignKey("projects.slug", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False, comment="per project: 1, 2, ...; the key people type (T-12)"),
    Column("title", SafeText, nullable=False),
    Column("description", SafeText, nullable=False),
    Column("status", SafeString(64), nullable=False, comment="the project's own name for it"),
    Column("category", String(12), nullable=False, comment="todo, in_progress or done"),
    Column("priority", String(10), nullable=False),
    Column("assignee", SafeString(320), comment="a tidings user's email or an external login (github:octocat)"),
    Column("labels", JSON, nullable=False, comment="sorted list of strings"),
    Column("due", String(10), comment="YYYY-MM-DD"),
    Column("version", Integer, nullable=False, comment="1, 2, ...: the ETag; every change adds one"),
    Column("created_by", SafeString(320)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ux_tasks_number", "project", "number", unique=True),
    Index("ix_tasks_updated", "project", "updated_at"),
)
"""A project's local tasks: the hub of the sync star (see ``sync/``)."""

task_numbers = Table(
    "task_numbers",
    metadata,
    Column("project", String(64), ForeignKey("projects.slug", ondelete="CASCADE"), primary_key=True),
    Column("last", Integer, nullable=False,
           comment="the project's last task number: a deleted task's number is not given again"),
)
"""Per project, the last task number given (T-12 names one task, ever)."""

task_links = Table(
    "task_links",
    metadata,
    Column("id", String(36), primary_key=True, comment="also the marker a create leaves on the remote item"),
    Column("task_id", String(36), ForeignKey("tasks.id", ondelete="SET NULL"),
           comment="NULL once the task was deleted here (the link stays so the item is not imported again)"),
    Column("project", String(64), nullable=False),
    Column("integration", String(100), nullable=False),
    Column("state", String(12), nullable=False,
           comment="creating (a create was sent, its answer not yet stored), linked, unlinked (task deleted here),"
                   " deleted (the remote item is gone)"),
    Column("remote_id", SafeString(100), comment="GitHub issue number, Jira issue id; NULL while creating"),
    Column("remote_key", SafeString(200), comment="owner/repo#12, PROJ-12"),
    Column("remote_url", SafeText),
    Column("remote_updated", Float, comment="the remote item's updated time we last synced"),
    Column("etag", SafeString(200), comment="the item's ETag, for conditional GETs"),
    Column("base", JSON, comment="each synced field's last agreed value (task space): the 3-way merge's base"),
    Column("written_hash", String(64), comment="digest of the remote state we last wrote: its echo is dropped"),
    Column("claimed_by", String(100), comment="the worker syncing this item now"),
    Column("claimed_until", Float),
    Column("synced_at", Float, comment="when this link last agreed with the task"),
    Column("created_at", Float, nullable=False),
    Column("error", SafeText, comment="the last sync error of this item"),
    Index("ux_task_links_remote", "integration", "remote_id", unique=True),
    Index("ux_task_links_task", "task_id", "integration", unique=True),
    Index("ix_task_links_project", "project", "integration"),
)
"""Each task's item in each tracker, with the base snapshot and echo guard of DESIGN.md "Sync"."""

sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("integration", String(100), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("mark", Float, comment="high-water mark: the newest remote updated time swept"),
    Column("list_etag", SafeString(200), comment="ETag of the sweep's first page, for a 304"),
    Column("next_run_at", Float, nullable=False),
    Column("claimed_by", String(100)),
    Column("claimed_until", Float),
    Column("failures", Integer, nullable=False, server_default=text("0"), comment="runs failed in a row"),
    Column("last_run_id", String(36)),
    Column("notified_at", Float, comment="when the owners were last told its runs keep failing"),
)
"""Per tracker integration: where its sweep stands and who runs it (claimed, so one worker at a time)."""

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("integration", String(100), nullable=False),
    Column("trigger", String(16), nullable=False, comment="webhook, sweep, manual, local, plan"),
    Column("status", String(16), nullable=False, comment="running, ok, partial, failed, rate_limited"),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("created", Integer, nullable=False, server_default=text("0")),
    Column("updated", Integer, nullable=False, server_default=text("0")),
    Column("unchanged", Integer, nullable=False, server_default=text("0")),
    Column("conflicts", Integer, nullable=False, server_default=text("0")),
    Column("errors", Integer, nullable=False, server_default=text("0")),
    Column("api_calls", Integer, nullable=False, server_default=text("0")),
    Column("not_modified", Integer, nullable=False, server_default=text("0"), comment="answers 304"),
    Column("rate_limit_waits", Integer, nullable=False, server_default=text("0")),
    Column("waited", Float, nullable=False, server_default=text("0"), comment="seconds spent waiting on limits"),
    Column("error", SafeText, comment="why the run failed or stopped"),
    Column("problems", JSON, comment="per-item errors: [{task, remote, error}], at most 100"),
    Index("ix_sync_runs_project", "project", "started_at"),
    Index("ix_sync_runs_integration", "integration", "started_at"),
)
"""The sync log: one row per run."""

sync_conflicts = Table(
    "sync_conflicts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("task_id", String(36), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("project", String(64), nullable=False),
    Column("integration", String(100), nullable=False),
    Column("field", String(20), nullable=False),
    Column("base", JSON),
    Column("local", JSON),
    Column("remote", JSON),
    Column("created_at", Float, nullable=False),
    Column("resolved_at", Float),
    Column("resolved_by", SafeString(320)),
    Column("resolution", JSON, comment="the value chosen"),
    Index("ix_sync_conflicts_open", "project", "resolved_at"),
    Index("ix_sync_conflicts_task", "task_id", "integration", "field"),
)
"""Fields changed on both sides under the ``manual`` policy, parked until a person chooses."""

calendar_feeds = Table(
    "calendar_feeds",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True, comment="SHA-256 of the feed URL's token"),
    Column("project", String(64), ForeignKey("projects.slug", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"),
           comment="a personal feed: the tasks assigned to this user; NULL: every task of the project"),
    Column("name", SafeString(100), nullable=False),
    Column("created_by", String(36), comment="the user who made it (may revoke it)"),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
    Index("ix_calendar_feeds_project", "project"),
)
"""ICS feeds (``GET /calendars/{token}.ics``): the token is the credential, stored hashed."""
from . import calendar_tables as _calendar_tables  # noqa: E402,F401  (registers its tables on metadata)
from . import connection_tables as _connection_tables  # noqa: E402,F401  (registers its tables on metadata)
from . import recipient_tables as _recipient_tables  # noqa: E402,F401  (registers its tables on metadata)
from . import ticket_tables as _ticket_tables  # noqa: E402,F401  (registers its tables on metadata)
