"""The outbox: every state change of a delivery is one of these batched statements.

``write_messages`` stores messages with their delivery rows in the caller's transaction;
``claim`` leases due deliveries (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of
workers share the queue); ``record`` writes many outcomes in one ``executemany``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Table, TextClause, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite

from ..errors import IdempotencyConflict
from ..ids import new_id
from ..message import Message
from ..routing import Grouping, Target
from ..store.engine import Conn
from ..store.tables import dedup, deliveries, from_active_deliveries, messages
from .digest import join_groups


@dataclass(frozen=True, slots=True)
class DeliveryRef:
    id: str
    integration: str
    status: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """What ``Hub.notify`` returns: the stored message id and one entry per delivery."""

    id: str
    deliveries: list[DeliveryRef]
    replay: bool = False


@dataclass(slots=True)
class Planned:
    message: Message
    targets: list[Target]
    idempotency_key: str | None = None
    request_hash: str | None = None
    leased: list[Claimed] = field(default_factory=list)
    """Deliveries written already leased to this process, to hand to its dispatcher after commit."""
    silenced: str | None = None
    """The silence covering the message (its id and matchers): every delivery is stored
    ``suppressed``, with this as the reason."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Lease new deliveries to the writing process's own dispatcher, skipping the claim query,
    while ``wants(integration)`` says it has room. A crash before they are sent loses nothing:
    the lease expires and any worker claims them."""

    owner: str
    seconds: float
    wants: Callable[[str], bool]


@dataclass(slots=True)
class Claimed:
    id: str
    message_id: str
    integration: str
    attempts: int
    created_at: float
    queued_at: float
    message: Message
    route: str | None = None


@dataclass(slots=True)
class Result:
    """The new state of a claimed delivery, written by :func:`record`."""

    id: str
    integration: str
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None = None
    remote_id: str | None = None
    latency_ms: float | None = None
    delivered_at: float | None = None
    released: bool = False
    """Handed back without an attempt (breaker open, rate limit, shutdown)."""


def request_hash(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


async def write_messages(
    conn: Conn, planned: Sequence[Planned], now: float, lease: Lease | None = None
) -> list[Receipt | BaseException]:
    """Store messages and their deliveries. Replays and conflicts of idempotency keys are answered
    per item; suppressed duplicates (same ``dedup_key`` inside the cooldown) and silenced messages
    get ``suppressed`` rows."""
    out: list[Receipt | BaseException | None] = [None] * len(planned)
    keys = {p.idempotency_key for p in planned if p.idempotency_key}
    existing: dict[str, tuple[str, str | None]] = {}
    if keys:
        rows = await conn.execute(
            select(messages.c.idempotency_key, messages.c.id, messages.c.request_hash).where(
                messages.c.idempotency_key.in_(keys)
            )
        )
        existing = {r.idempotency_key: (r.id, r.request_hash) for r in rows}

    message_rows: list[tuple[Any, ...]] = []
    delivery_rows: list[tuple[Any, ...]] = []
    replays: dict[int, str] = {}
    joins: list[tuple[str, Grouping, Message, str]] = []
    joined: set[tuple[str, str | None]] = set()
    for i, p in enumerate(planned):
        p.leased = []
        key = p.idempotency_key
        if key and key in existing:
            original_id, original_hash = existing[key]
            if original_hash != p.request_hash:
                out[i] = IdempotencyConflict(
                    f"Idempotency-Key {key!r} was used with a different request body"
                )
            else:
                replays[i] = original_id
            continue
        msg_id = new_id()
        if key:
            existing[key] = (msg_id, p.request_hash)
        m = p.message
        message_rows.append(
            (
                msg_id,
                now,
                m.title,
                m.priority.rank,
                # The column holds 200 characters (a label up to 500); the full value stays in data.
                m.labels["source"][:200] if "source" in m.labels else None,
                m.thread_key,
                m.dedup_key,
                orjson.dumps(m.to_dict()).decode(),
                key,
                p.request_hash,
            )
        )
        refs = []
        for t in p.targets:
            status, reason = "pending", None
            if p.silenced is not None:
                status, reason = "suppressed", f"silenced by {p.silenced}"
            elif t.group is not None:
                # Folded into its route's digest; the route joins the group once for all its targets.
                status = "grouped"
                if (msg_id, t.route) not in joined:
                    joined.add((msg_id, t.route))
                    joins.append((t.route or "default", t.group, m, msg_id))
            elif m.dedup_key is not None and not await _first_in_window(conn, t.integration, m.dedup_key, t.cooldown, now):
                status, reason = "suppressed", f"a duplicate: dedup_key {m.dedup_key!r} already sent within the {t.cooldown:g}s cooldown"
            d_id = new_id()
            owner, due = None, now
            if status == "pending" and lease is not None and lease.wants(t.integration):
                status, owner, due = "sending", lease.owner, now + lease.seconds
                p.leased.append(Claimed(d_id, msg_id, t.integration, 0, now, now, m, t.route))
            delivery_rows.append(
                (d_id, msg_id, t.integration, t.route, status, m.priority.rank, 0, now, now, now, due, owner, reason)
            )
            refs.append(DeliveryRef(d_id, t.integration, status))
        out[i] = Receipt(msg_id, refs)

    if message_rows:
        await conn.exec_driver_sql(_INSERT_MESSAGE[conn.dialect.paramstyle], message_rows)
    if delivery_rows:
        await conn.exec_driver_sql(_INSERT_DELIVERY[conn.dialect.paramstyle], delivery_rows)
    if joins:
        await join_groups(conn, joins, now)
    for i, msg_id in replays.items():
        out[i] = Receipt(msg_id, await delivery_refs(conn, msg_id), replay=True)
    return out  # type: ignore[return-value]


async def _first_in_window(conn: Conn, integration: str, dedup_key: str, cooldown: float, now: float) -> bool:
    """True when no delivery of this key to this integration started a cooldown window still open.
    One atomic upsert, so concurrent writers (many workers on PostgreSQL) agree."""
    key = hashlib.sha256(f"{integration}\x1f{dedup_key}".encode()).hexdigest()
    dialect = conn.dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(dedup)
    stmt = (
        ins.values(key=key, seen_at=now, expires_at=now + cooldown)
        .on_conflict_do_update(
            index_elements=[dedup.c.key],
            set_={"seen_at": ins.excluded.seen_at, "expires_at": ins.excluded.expires_at},
            where=dedup.c.expires_at <= ins.excluded.seen_at,
        )
        .returning(dedup.c.key)
    )
    return (await conn.execute(stmt)).first() is not None


async def delivery_refs(conn: Conn, message_id: str) -> list[DeliveryRef]:
    rows = await conn.execute(
        select(deliveries.c.id, deliveries.c.integration, deliveries.c.status)
        .where(deliveries.c.message_id == message_id)
        .order_by(deliveries.c.id)
    )
    return [DeliveryRef(r.id, r.integration, r.status) for r in rows]


async def claim(
    conn: Conn, owner: str, integrations: Sequence[str], limit: int, now: float, lease: float
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries, most urgent first, then oldest."""
    if not integrations or limit <= 0:
        return []
    params = {"owner": owner, "until": now + lease, "now": now, "names": list(integrations), "limit": limit}
    rows = (await conn.execute(_CLAIM[conn.dialect.name], params)).all()
    if not rows:
        return []
    ids = list({r.message_id for r in rows})
    data = {
        r.id: Message.from_stored(r.data)
        for r in await conn.execute(select(messages.c.id, messages.c.data).where(messages.c.id.in_(ids)))
    }
    rows.sort(key=lambda r: (r.priority, r.created_at))
    return [
        Claimed(r.id, r.message_id, r.integration, r.attempts, r.created_at, r.queued_at, data[r.message_id], r.route)
        for r in rows
    ]


async def record(conn: Conn, owner: str, results: Sequence[Result], now: float) -> None:
    """Write many outcomes at once. A result whose lease was lost (another worker took the
    delivery after the lease expired) changes nothing."""
    if not results:
        return
    await conn.exec_driver_sql(
        _RECORD[conn.dialect.paramstyle],
        [
            (r.status, r.attempts, r.next_attempt_at, r.last_error, r.remote_id, r.latency_ms, r.delivered_at, now, r.id, owner)
            for r in results
        ],
    )


# The hot statements run at driver level with positional rows: SQLAlchemy's per-row parameter
# processing cost more than the database's own work for them. Keep them in step with tables.py.
def _by_paramstyle(sql: str) -> dict[str, str]:
    return {"qmark": sql, "format": sql.replace("?", "%s"), "pyformat": sql.replace("?", "%s")}


def _insert_sql(table: Table, columns: tuple[str, ...]) -> dict[str, str]:
    assert set(columns) <= set(table.columns.keys()), columns
    return _by_paramstyle(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})")


_INSERT_MESSAGE = _insert_sql(
    messages,
    ("id", "created_at", "title", "priority", "source", "thread_key", "dedup_key", "data", "idempotency_key", "request_hash"),
)
_INSERT_DELIVERY = _insert_sql(
    deliveries,
    ("id", "message_id", "integration", "route", "status", "priority", "attempts", "created_at", "updated_at",
     "queued_at", "next_attempt_at", "lease_owner", "last_error"),
)
_RECORD = _by_paramstyle(
    "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?,"
    " remote_id = COALESCE(?, remote_id), latency_ms = COALESCE(?, latency_ms), delivered_at = ?,"
    " updated_at = ?, lease_owner = NULL WHERE id = ? AND lease_owner = ? AND status = 'sending'"
)


async def next_due(conn: Conn, integrations: Sequence[str]) -> float | None:
    if not integrations:
        return None
    return (await conn.execute(_NEXT_DUE[conn.dialect.name], {"names": list(integrations)})).scalar()


def _due(dialect: str) -> str:
    return f"{from_active_deliveries(dialect)} AND integration IN :names"


def _by_dialect(build: Callable[[str], str]) -> dict[str, TextClause]:
    return {d: text(build(d)).bindparams(bindparam("names", expanding=True)) for d in ("sqlite", "postgresql")}


_CLAIM = _by_dialect(
    lambda d: "UPDATE deliveries SET status = 'sending', lease_owner = :owner, next_attempt_at = :until, updated_at = :now"
    f" WHERE id IN (SELECT id {_due(d)} AND next_attempt_at <= :now ORDER BY priority, created_at LIMIT :limit"
    f"{' FOR UPDATE SKIP LOCKED' if d == 'postgresql' else ''})"
    " RETURNING id, message_id, integration, attempts, created_at, queued_at, priority, route"
)
_NEXT_DUE = _by_dialect(lambda d: f"SELECT min(next_attempt_at) {_due(d)}")
