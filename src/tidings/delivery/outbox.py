"""The outbox: every state change of a delivery is one of these batched statements.

``write_messages`` stores messages with their delivery rows in the caller's transaction;
``claim`` leases due deliveries (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of
workers share the queue); ``record`` writes many outcomes in one ``executemany``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import IdempotencyConflict
from ..ids import new_id
from ..message import Message
from ..routing import Target
from ..store.tables import ACTIVE, dedup, deliveries, messages


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


@dataclass(slots=True)
class Claimed:
    id: str
    message_id: str
    integration: str
    attempts: int
    created_at: float
    queued_at: float
    message: Message


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
    conn: AsyncConnection, planned: Sequence[Planned], now: float
) -> list[Receipt | BaseException]:
    """Store messages and their deliveries. Replays and conflicts of idempotency keys are answered
    per item; suppressed duplicates (same ``dedup_key`` inside the cooldown) get a ``suppressed`` row."""
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

    message_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    replays: dict[int, str] = {}
    for i, p in enumerate(planned):
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
            {
                "id": msg_id,
                "created_at": now,
                "title": m.title,
                "priority": m.priority.rank,
                "source": m.labels.get("source"),
                "thread_key": m.thread_key,
                "dedup_key": m.dedup_key,
                "data": m.to_dict(),
                "idempotency_key": key,
                "request_hash": p.request_hash,
            }
        )
        refs = []
        for t in p.targets:
            status = "pending"
            if m.dedup_key is not None and not await _first_in_window(conn, t.integration, m.dedup_key, t.cooldown, now):
                status = "suppressed"
            d_id = new_id()
            delivery_rows.append(
                {
                    "id": d_id,
                    "message_id": msg_id,
                    "integration": t.integration,
                    "route": t.route,
                    "status": status,
                    "priority": m.priority.rank,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                    "queued_at": now,
                    "next_attempt_at": now,
                }
            )
            refs.append(DeliveryRef(d_id, t.integration, status))
        out[i] = Receipt(msg_id, refs)

    if message_rows:
        await conn.execute(messages.insert(), message_rows)
    if delivery_rows:
        await conn.execute(deliveries.insert(), delivery_rows)
    for i, msg_id in replays.items():
        out[i] = Receipt(msg_id, await delivery_refs(conn, msg_id), replay=True)
    return out  # type: ignore[return-value]


async def _first_in_window(conn: AsyncConnection, integration: str, dedup_key: str, cooldown: float, now: float) -> bool:
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


async def delivery_refs(conn: AsyncConnection, message_id: str) -> list[DeliveryRef]:
    rows = await conn.execute(
        select(deliveries.c.id, deliveries.c.integration, deliveries.c.status)
        .where(deliveries.c.message_id == message_id)
        .order_by(deliveries.c.id)
    )
    return [DeliveryRef(r.id, r.integration, r.status) for r in rows]


async def claim(
    conn: AsyncConnection, owner: str, integrations: Sequence[str], limit: int, now: float, lease: float
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries, most urgent first, then oldest."""
    if not integrations or limit <= 0:
        return []
    due = (
        select(deliveries.c.id)
        .where(
            deliveries.c.status.in_(ACTIVE),
            deliveries.c.next_attempt_at <= now,
            deliveries.c.integration.in_(list(integrations)),
        )
        .order_by(deliveries.c.priority, deliveries.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(deliveries)
        .where(deliveries.c.id.in_(due.scalar_subquery()))
        .values(status="sending", lease_owner=owner, next_attempt_at=now + lease, updated_at=now)
        .returning(
            deliveries.c.id,
            deliveries.c.message_id,
            deliveries.c.integration,
            deliveries.c.attempts,
            deliveries.c.created_at,
            deliveries.c.queued_at,
            deliveries.c.priority,
        )
    )
    rows = (await conn.execute(stmt)).all()
    if not rows:
        return []
    ids = list({r.message_id for r in rows})
    data = {
        r.id: Message.from_stored(r.data)
        for r in await conn.execute(select(messages.c.id, messages.c.data).where(messages.c.id.in_(ids)))
    }
    rows.sort(key=lambda r: (r.priority, r.created_at))
    return [
        Claimed(r.id, r.message_id, r.integration, r.attempts, r.created_at, r.queued_at, data[r.message_id])
        for r in rows
    ]


_record = (
    update(deliveries)
    .where(
        deliveries.c.id == bindparam("r_id"),
        deliveries.c.lease_owner == bindparam("r_owner"),
        deliveries.c.status == "sending",
    )
    .values(
        status=bindparam("r_status"),
        attempts=bindparam("r_attempts"),
        next_attempt_at=bindparam("r_next"),
        last_error=bindparam("r_error"),
        remote_id=func.coalesce(bindparam("r_remote"), deliveries.c.remote_id),
        latency_ms=func.coalesce(bindparam("r_latency"), deliveries.c.latency_ms),
        delivered_at=bindparam("r_delivered"),
        updated_at=bindparam("r_now"),
        lease_owner=None,
    )
)


async def record(conn: AsyncConnection, owner: str, results: Sequence[Result], now: float) -> None:
    """Write many outcomes at once. A result whose lease was lost (another worker took the
    delivery after the lease expired) changes nothing."""
    if not results:
        return
    await conn.execute(
        _record,
        [
            {
                "r_id": r.id,
                "r_owner": owner,
                "r_status": r.status,
                "r_attempts": r.attempts,
                "r_next": r.next_attempt_at,
                "r_error": r.last_error,
                "r_remote": r.remote_id,
                "r_latency": r.latency_ms,
                "r_delivered": r.delivered_at,
                "r_now": now,
            }
            for r in results
        ],
    )


async def next_due(conn: AsyncConnection, integrations: Sequence[str]) -> float | None:
    if not integrations:
        return None
    return (
        await conn.execute(
            select(func.min(deliveries.c.next_attempt_at)).where(
                deliveries.c.status.in_(ACTIVE), deliveries.c.integration.in_(list(integrations))
            )
        )
    ).scalar()
