"""The outbox: every state change of a delivery is one of these batched statements.

``write_messages`` stores messages with their delivery rows in the caller's transaction;
``claim`` leases due deliveries (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of
workers share the queue); ``record`` writes many outcomes at once (see :class:`_Rows`).

Priority orders work across threads, never inside one: a delivery whose message has a
``thread_key`` carries the key's hash and its order of acceptance, and is claimed only when no
other active delivery of that thread to that integration is ahead of it or being sent
(:func:`~tidings.store.tables.in_thread_turn`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import time
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
from ..store.recipient_tables import escalations
from ..store.tables import dedup, deliveries, from_active_deliveries, in_thread_turn, messages
from ..threads import thread_hash
from .digest import join_groups
from .holds import disabled_reason
from .quiet_digest import join_quiet_digests


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
    status: str = "routed"
    """``routed`` (it has its deliveries), ``scheduled`` (no deliveries until ``send_at``) or ``cancelled``."""
    send_at: float | None = None
    """When a scheduled message is routed (Unix time)."""


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
    project: str = "default"
    """The project the message belongs to."""
    escalations: list[tuple[str, float]] = field(default_factory=list)
    """(route, seconds until its first step) per matched route whose ``escalation:`` covers the
    message: an ``escalations`` row each, written with the message (none for a silenced one)."""
    message_id: str | None = None
    """A message stored already (a scheduled one, now due): only its deliveries are written."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Lease new deliveries to the writing process's own dispatcher, skipping the claim query,
    while ``wants(integration)`` says it has room. A crash before they are sent loses nothing:
    the lease expires and any worker claims them. Deliveries of a thread never take this path:
    an earlier one of their thread may still wait or be sent by another worker, which only the
    claim can tell."""

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
    thread: str | None = None
    """The hash of the message's thread_key: the next delivery of the thread waits for this one."""
    recipient: str | None = None
    """The recipient this delivery addresses (``recipients.id``): the dispatcher sends to their address."""


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
    thread: str | None = None
    """The claimed delivery's thread: recording this result may let the thread's next one go."""
    status_code: int | None = None
    """The peer's HTTP status code for a failed attempt, if it answered one."""


ATTEMPT_OUTCOMES = {"retrying": "retry", "dead": "dead"}
"""A failed attempt's result status -> the ``outcome`` of its row in ``delivery_attempts``."""


def request_hash(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


_last_seq = 0


def _thread_seq() -> int:
    """Order of acceptance within a thread: nanoseconds, strictly rising in this process (one
    batch writes several deliveries of a thread within the same clock reading)."""
    global _last_seq
    _last_seq = max(time.time_ns(), _last_seq + 1)
    return _last_seq


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
        rows = await conn.execute(_BY_IDEMPOTENCY_KEY, {"keys": list(keys)})
        existing = {r.idempotency_key: (r.id, r.request_hash) for r in rows}

    disabled = await _disabled(conn, {t.integration for p in planned for t in p.targets})
    message_rows: list[tuple[Any, ...]] = []
    delivery_rows: list[tuple[Any, ...]] = []
    escalation_rows: list[tuple[Any, ...]] = []
    replays: dict[int, str] = {}
    joins: list[tuple[str, Grouping, Message, str]] = []
    joined: set[tuple[str, str | None]] = set()
    quiet: list[tuple[str, str, float, str]] = []
    for i, p in enumerate(planned):
        p.leased = []
        key = p.idempotency_key or None  # an empty key is no key
        if key and key in existing and p.message_id is None:
            original_id, original_hash = existing[key]
            if original_hash != p.request_hash:
                out[i] = IdempotencyConflict(
                    f"Idempotency-Key {key!r} was used with a different request body"
                )
            else:
                replays[i] = original_id
            continue
        msg_id = p.message_id or new_id()
        if key:
            existing[key] = (msg_id, p.request_hash)
        m = p.message
        rank = m.priority.rank
        thread = thread_hash(m.thread_key) if m.thread_key is not None else None
        if p.message_id is None:
            message_rows.append(
                (
                    msg_id,
                    now,
                    m.title,
                    rank,
                    # The column holds 200 characters (a label up to 500); the full value stays in data.
                    m.labels["source"][:200] if "source" in m.labels else None,
                    m.thread_key,
                    m.dedup_key,
                    orjson.dumps(m.to_dict()).decode(),
                    key,
                    p.request_hash,
                    p.project,
                )
            )
        refs = []
        for t in p.targets:
            status, reason = "pending", None
            if t.status is not None:  # decided while planning (a preference, quiet hours): says why
                status, reason = t.status, t.reason if t.status == "suppressed" else None
                if status == "grouped" and t.recipient is not None and t.due is not None:  # quiet-hours digest
                    quiet.append((t.recipient, t.integration, t.due, msg_id))
            elif p.silenced is not None:
                status, reason = "suppressed", f"silenced by {p.silenced}"
            elif t.group is not None:
                # Folded into its route's digest; the route joins the group once for all its targets.
                status = "grouped"
                if (msg_id, t.route) not in joined:
                    joined.add((msg_id, t.route))
                    joins.append((t.route or "default", t.group, m, msg_id))
            elif m.dedup_key is not None and not await _first_in_window(conn, _dedup_scope(t), m.dedup_key, t.cooldown, now):
                status, reason = "suppressed", f"a duplicate: dedup_key {m.dedup_key!r} already sent within the {t.cooldown:g}s cooldown"
            if status == "pending" and t.integration in disabled:
                status, reason = "held", disabled[t.integration]
            d_id = new_id()
            owner, due = None, now if t.due is None else max(now, t.due)
            if status == "pending" and due == now and thread is None and lease is not None and lease.wants(t.integration):
                status, owner, due = "sending", lease.owner, now + lease.seconds
                p.leased.append(Claimed(d_id, msg_id, t.integration, 0, now, now, m, t.route, recipient=t.recipient))
            delivery_rows.append(
                (d_id, msg_id, t.integration, t.route, status, rank, 0, now, now, now, due, owner, reason,
                 thread, None if thread is None else _thread_seq(), t.recipient, t.reason)
            )
            refs.append(DeliveryRef(d_id, t.integration, status))
        out[i] = Receipt(msg_id, refs)
        if p.escalations and p.silenced is None:
            escalation_rows += [(new_id(), msg_id, p.project, route, 0, now + after, "waiting", now, now)
                                for route, after in p.escalations]

    await _INSERT_MESSAGE.run(conn, message_rows)
    await _INSERT_DELIVERY.run(conn, delivery_rows)
    await _INSERT_ESCALATION.run(conn, escalation_rows)
    if joins:
        await join_groups(conn, joins, now)
    if quiet:
        await join_quiet_digests(conn, quiet, now)
    for i, msg_id in replays.items():
        out[i] = Receipt(msg_id, await delivery_refs(conn, msg_id), replay=True)
    return out  # type: ignore[return-value]


async def _disabled(conn: Conn, names: set[str]) -> dict[str, str]:
    """Those of ``names`` that are disabled -> why their deliveries are held. A new delivery to a
    disabled integration is written ``held`` with that reason, as the disable held those waiting
    then; on PostgreSQL the rows are read ``FOR SHARE``, so a disable committing meanwhile waits
    for this transaction and then holds what it wrote."""
    if not names:
        return {}
    ordered = sorted(names)
    if conn.dialect.name == "sqlite":  # at driver level, as _Rows: SQLAlchemy's statement cost more than the query
        rows = await conn.exec_driver_sql(_disabled_sqlite(len(ordered)), tuple(ordered))
    else:
        rows = await conn.execute(_DISABLED_FOR_SHARE, {"names": ordered})
    return {name: disabled_reason(reason) for name, reason in rows}


@functools.cache
def _disabled_sqlite(count: int) -> str:
    return f"SELECT name, reason FROM integration_state WHERE name IN ({', '.join('?' * count)}) AND disabled = 1"


_DISABLED_FOR_SHARE = text(
    "SELECT name, reason FROM integration_state WHERE name IN :names AND disabled FOR SHARE"
).bindparams(bindparam("names", expanding=True))
_BY_IDEMPOTENCY_KEY = text(
    "SELECT idempotency_key, id, request_hash FROM messages WHERE idempotency_key IN :keys"
).bindparams(bindparam("keys", expanding=True, type_=messages.c.idempotency_key.type))


def _dedup_scope(t: Target) -> str:
    """Cooldowns count per integration, and per person on it (two people's emails are no duplicates)."""
    return t.integration if t.recipient is None else f"{t.integration}\x1e{t.recipient}"


async def add_deliveries(
    conn: Conn, message_id: str, message: Message, targets: Sequence[Target], now: float, *, reason: str,
    route: str | None = None, silenced: str | None = None, project: str = "default",
) -> list[DeliveryRef]:
    """More deliveries for a message already stored (an escalation step of ``route``), each saying
    ``reason`` (with the planner's own reason after it), written as :func:`write_messages` writes
    any: a planned decision holds (a preference, quiet hours), a silence suppresses, a disabled
    integration holds; but no route digest and no dedup window: the step is deliberate."""
    steps = [
        dataclasses.replace(t, route=t.route or route, group=None, cooldown=0.0,
                            reason=reason if t.reason is None else f"{reason}; {t.reason}")
        for t in targets
    ]
    planned = Planned(message, steps, silenced=silenced, project=project, message_id=message_id)
    (receipt,) = await write_messages(conn, [planned], now)
    assert isinstance(receipt, Receipt)
    return receipt.deliveries


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
    """Lease up to ``limit`` due deliveries, most urgent first, then oldest; of a thread only the
    delivery whose turn it is."""
    if not integrations or limit <= 0:
        return []
    params = {"owner": owner, "until": now + lease, "now": now, "names": list(integrations), "limit": limit}
    rows = (await conn.execute(_CLAIM[conn.dialect.name], params)).all()
    if conn.dialect.name == "postgresql" and any(r.thread is not None for r in rows):
        rows = await _one_claimer_per_thread(conn, owner, rows, now)
    if not rows:
        return []
    ids = list({r.message_id for r in rows})
    data = {
        r.id: Message.from_stored(r.data)
        for r in await conn.execute(select(messages.c.id, messages.c.data).where(messages.c.id.in_(ids)))
    }
    rows.sort(key=lambda r: (r.priority, r.created_at))
    return [
        Claimed(r.id, r.message_id, r.integration, r.attempts, r.created_at, r.queued_at, data[r.message_id], r.route,
                r.thread, r.recipient)
        for r in rows
    ]


async def _one_claimer_per_thread(conn: Conn, owner: str, rows: list[Any], now: float) -> list[Any]:
    """PostgreSQL: make sure no other worker holds a delivery of the threads just claimed.

    The claim's condition is read from the statement's snapshot, so two workers whose snapshots
    differ can each find a different delivery of one thread in turn: one claims S while a
    writer commits H, accepted just before S but committed after; a worker whose snapshot has
    H then claims H while S is being sent. SKIP LOCKED can't see that (two different rows).
    So each claimer of a thread takes a transaction-level advisory lock on it (ordered, so two
    claimers can't deadlock) and checks again with a fresh snapshot, which includes any claim
    committed by a claimer that held the lock before; a delivery no longer in turn is handed back."""
    threads = sorted({_thread_lock(r.integration, r.thread) for r in rows if r.thread is not None})
    await conn.execute(_LOCK_THREADS, {"keys": threads})
    claimed = [r.id for r in rows if r.thread is not None]
    late = {r.id for r in await conn.execute(_OUT_OF_TURN, {"ids": claimed, "now": now})}
    if not late:
        return rows
    await conn.execute(_HAND_BACK, {"ids": list(late), "owner": owner, "now": now})
    return [r for r in rows if r.id not in late]


def _thread_lock(integration: str, thread: str) -> int:
    digest = hashlib.sha256(f"tidings-thread\x1f{integration}\x1f{thread}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def record(conn: Conn, owner: str, results: Sequence[Result], now: float) -> None:
    """Write many outcomes at once. A result whose lease was lost (another worker took the
    delivery after the lease expired) changes nothing."""
    # One row per delivery, the first result (as a row-by-row update would leave it: the first
    # one ends the lease): a statement over many rows must not name a row twice.
    first: dict[str, Result] = {}
    for r in results:
        first.setdefault(r.id, r)
    # A failed attempt also goes to its delivery's history (a success does not: the delivery row
    # holds its time, latency and remote id). Inserted before the update, on the same condition
    # (the lease still ours), so a result whose lease was lost leaves no row either.
    failed = [
        (r.id, r.attempts, now, ATTEMPT_OUTCOMES[r.status], r.status_code, r.latency_ms, r.last_error, r.id, owner)
        for r in first.values() if r.status in ATTEMPT_OUTCOMES and not r.released
    ]
    if failed:
        await _INSERT_ATTEMPT.run(conn, failed)
    await _RECORD.run(
        conn,
        [
            (r.status, r.attempts, r.next_attempt_at, r.last_error, r.remote_id, r.latency_ms, r.delivered_at, now, r.id, owner)
            for r in first.values()
        ],
    )


class _Rows:
    """A hot statement over many positional rows, run at driver level: SQLAlchemy's per-row
    parameter processing cost more than the database's own work for them. PostgreSQL gets an
    executemany (psycopg pipelines it); SQLite one statement per chunk of rows
    (``VALUES (...), (...), ...``), because sqlite3's executemany binds and steps row by row:
    measured, 13-15 µs per message for its three rows, 8.5 µs in chunks. Chunks of a few fixed
    sizes keep the prepared statements few. Keep the columns in step with tables.py."""

    CHUNKS = (256, 64, 16, 4, 1)

    def __init__(self, one: str, many: Callable[[int], str]) -> None:
        self._one = {"qmark": one, "format": one.replace("?", "%s"), "pyformat": one.replace("?", "%s")}
        self._many = functools.cache(many)

    async def run(self, conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if conn.dialect.name != "sqlite":
            await conn.exec_driver_sql(self._one[conn.dialect.paramstyle], list(rows))
            return
        done = 0
        for size in self.CHUNKS:
            while len(rows) - done >= size:
                await conn.exec_driver_sql(self._many(size), tuple(itertools.chain.from_iterable(rows[done:done + size])))
                done += size


def _placeholders(width: int, count: int) -> str:
    row = f"({', '.join('?' * width)})"
    return ", ".join([row] * count)


def _insert(table: Table, columns: tuple[str, ...]) -> _Rows:
    assert set(columns) <= set(table.columns.keys()), columns
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    return _Rows(head + _placeholders(len(columns), 1), lambda n: head + _placeholders(len(columns), n))


_INSERT_MESSAGE = _insert(
    messages,
    ("id", "created_at", "title", "priority", "source", "thread_key", "dedup_key", "data", "idempotency_key", "request_hash",
     "project"),
)
_INSERT_DELIVERY = _insert(
    deliveries,
    ("id", "message_id", "integration", "route", "status", "priority", "attempts", "created_at", "updated_at",
     "queued_at", "next_attempt_at", "lease_owner", "last_error", "thread", "thread_seq", "recipient", "reason"),
)
_INSERT_ESCALATION = _insert(
    escalations, ("id", "message_id", "project", "route", "step", "due_at", "status", "created_at", "updated_at"),
)
_RECORD = _Rows(
    "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?,"
    " remote_id = COALESCE(?, remote_id), latency_ms = COALESCE(?, latency_ms), delivered_at = ?,"
    " updated_at = ?, lease_owner = NULL WHERE id = ? AND lease_owner = ? AND status = 'sending'",
    lambda n: "UPDATE deliveries SET status = v.column1, attempts = v.column2, next_attempt_at = v.column3,"
    " last_error = v.column4, remote_id = COALESCE(v.column5, deliveries.remote_id),"
    " latency_ms = COALESCE(v.column6, deliveries.latency_ms), delivered_at = v.column7, updated_at = v.column8,"
    f" lease_owner = NULL FROM (VALUES {_placeholders(10, n)}) AS v"
    " WHERE deliveries.id = v.column9 AND deliveries.lease_owner = v.column10 AND deliveries.status = 'sending'",
)
_ATTEMPT_COLUMNS = 'delivery_id, attempt, "at", outcome, status_code, latency_ms, error'
_INSERT_ATTEMPT = _Rows(
    f"INSERT INTO delivery_attempts ({_ATTEMPT_COLUMNS}) SELECT CAST(? AS varchar), CAST(? AS integer),"
    " CAST(? AS double precision), CAST(? AS varchar), CAST(? AS integer), CAST(? AS double precision), CAST(? AS text)"
    " WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = ? AND lease_owner = ? AND status = 'sending')",
    lambda n: f"INSERT INTO delivery_attempts ({_ATTEMPT_COLUMNS}) SELECT v.column1, v.column2, v.column3, v.column4,"
    f" v.column5, v.column6, v.column7 FROM (VALUES {_placeholders(9, n)}) AS v WHERE EXISTS (SELECT 1 FROM deliveries"
    " WHERE deliveries.id = v.column8 AND deliveries.lease_owner = v.column9 AND deliveries.status = 'sending')",
)


async def next_due(conn: Conn, integrations: Sequence[str], now: float) -> float | None:
    """When the next delivery that can be claimed is due (not one waiting for its thread)."""
    if not integrations:
        return None
    return (await conn.execute(_NEXT_DUE[conn.dialect.name], {"names": list(integrations), "now": now})).scalar()


def _by_dialect(build: Callable[[str], str]) -> dict[str, TextClause]:
    return {d: text(build(d)).bindparams(bindparam("names", expanding=True)) for d in ("sqlite", "postgresql")}


_CLAIM = _by_dialect(
    lambda d: "UPDATE deliveries SET status = 'sending', lease_owner = :owner, next_attempt_at = :until, updated_at = :now"
    f" WHERE id IN (SELECT id {from_active_deliveries(d, of_integrations=True)} AND next_attempt_at <= :now"
    f" AND {in_thread_turn(d)} ORDER BY priority, created_at LIMIT :limit"
    f"{' FOR UPDATE SKIP LOCKED' if d == 'postgresql' else ''})"
    " RETURNING id, message_id, integration, attempts, created_at, queued_at, priority, route, thread, recipient"
)
_NEXT_DUE = _by_dialect(
    lambda d: f"SELECT min(next_attempt_at) {from_active_deliveries(d, of_integrations=True)} AND {in_thread_turn(d)}"
)
_LOCK_THREADS = text(
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY k) AS t"
)
_OUT_OF_TURN = text(f"SELECT id FROM deliveries WHERE id IN :ids AND NOT {in_thread_turn('postgresql')}").bindparams(
    bindparam("ids", expanding=True)
)
_HAND_BACK = text(
    "UPDATE deliveries SET status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'pending' END, lease_owner = NULL,"
    " next_attempt_at = :now, updated_at = :now WHERE id IN :ids AND lease_owner = :owner AND status = 'sending'"
).bindparams(bindparam("ids", expanding=True))
