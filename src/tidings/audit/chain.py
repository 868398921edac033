"""Appending to the chain, in the caller's transaction."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import rfc8785
from sqlalchemy import select, text

from ..security.redact import redact_value
from ..store.engine import Conn
from ..store.tables import audit_log

DOMAIN = b"tidings-audit-v1"
GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry."""
PG_LOCK_ID = 0x7469_6461
"""The advisory lock ("tida") every appender, and the checkpointer, takes: one at a time, so the chain never forks."""

HASHED = (
    "seq", "at", "actor", "actor_id", "actor_name", "auth_method", "token_id", "ip", "user_agent",
    "request_id", "project", "action", "target", "before", "after", "outcome",
)
"""The columns an entry's hash covers (everything but the hashes themselves)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change, and how they were authenticated."""

    kind: Literal["user", "token", "system"]
    id: str | None = None
    name: str | None = None
    auth_method: str | None = None
    """``token``, ``session``, ``cli`` or ``system``."""
    token_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


SYSTEM = Actor("system", name="tidings", auth_method="system")
_HEAD = select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
_INSERT = audit_log.insert()
_LOCK = text("SELECT pg_advisory_xact_lock(:id)")
# Built once: compiling them on every append was two thirds of its cost (bench/authz.py).


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """The chained hash of one entry (only the :data:`HASHED` keys count)."""
    body = rfc8785.dumps({k: entry.get(k) for k in HASHED})
    return hashlib.sha256(DOMAIN + prev_hash.encode("ascii") + body).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    """What one entry of :func:`append_many` records (as :func:`append`'s arguments)."""

    action: str
    target: str | None = None
    project: str | None = None
    before: Any = None
    after: Any = None
    outcome: str = "ok"


async def append(
    conn: Conn,
    actor: Actor,
    action: str,
    *,
    target: str | None = None,
    project: str | None = None,
    before: Any = None,
    after: Any = None,
    outcome: str = "ok",
    at: float | None = None,
) -> dict[str, Any]:
    """Append one entry in ``conn``'s transaction and return it (with ``seq`` and ``hash``).

    The entry commits or rolls back with the change it records. Appenders are serialized (SQLite's
    write lock; on PostgreSQL a transaction-scoped advisory lock taken before the head is read), so
    ``seq`` stays gap-free and every entry links to the one before it. Secrets in ``before`` and
    ``after`` are masked before they are hashed or stored."""
    entry = Entry(action, target=target, project=project, before=before, after=after, outcome=outcome)
    return (await append_many(conn, actor, [entry], at=at))[0]


async def append_many(conn: Conn, actor: Actor, entries: Sequence[Entry], *, at: float | None = None) -> list[dict[str, Any]]:
    """Append ``entries`` (all by ``actor``, in this order) in ``conn``'s transaction, as
    :func:`append` would one by one, but with one lock, one read of the head and one insert: the
    entries are chained here (a page of imported tasks writes its hundreds of entries at once)."""
    if not entries:
        return []
    if conn.dialect.name == "postgresql":
        await conn.execute(_LOCK, {"id": PG_LOCK_ID})
    head = (await conn.execute(_HEAD)).first()
    seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS)
    when = round(time.time() if at is None else at, 6)
    who = {
        "actor": actor.kind,
        "actor_id": actor.id,
        "actor_name": actor.name,
        "auth_method": actor.auth_method,
        "token_id": actor.token_id,
        "ip": actor.ip,
        "user_agent": _cut(actor.user_agent, 500),
        "request_id": actor.request_id,
    }
    rows: list[dict[str, Any]] = []
    for e in entries:
        entry: dict[str, Any] = {
            "seq": seq,
            "at": when,
            **who,
            "project": e.project,
            "action": e.action,
            "target": _cut(e.target, 500),
            "before": _canonical(redact_value(e.before)),
            "after": _canonical(redact_value(e.after)),
            "outcome": e.outcome,
            "prev_hash": prev,
        }
        entry["hash"] = prev = entry_hash(prev, entry)
        rows.append(entry)
        seq += 1
    await conn.execute(_INSERT, rows if len(rows) > 1 else rows[0])
    return rows


def _cut(value: str | None, limit: int) -> str | None:
    return value if value is None or len(value) <= limit else value[: limit - 1] + "…"


def _canonical(value: Any) -> Any:
    """The value as it will read back from a JSON column (tuples become lists, keys strings), so
    the hash computed now equals the one recomputed from the stored row."""
    if value is None:
        return None
    import orjson

    return orjson.loads(rfc8785.dumps(value))
