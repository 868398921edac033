"""Leasing due rows of a work table (``schedules``, ``escalations``) to one worker at a time.

A table that uses this has ``status``, ``due_at``, ``lease_owner`` and ``lease_until`` columns.
:func:`claim_due` leases rows that are due and not leased (or whose lease expired: its worker
died) in one statement; on PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``, so any
number of workers claim at once and each row goes to one of them. Whoever then acts on a row
does so only while it still holds the lease: :func:`held` in the acting transaction (it locks the
row on PostgreSQL, so a worker that took over an expired lease meanwhile waits, then finds the
row no longer leased to it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, func, or_, select, update

from .engine import Conn


def _free(table: Table, status: str, now: float) -> Any:
    return and_(table.c.status == status, or_(table.c.lease_until.is_(None), table.c.lease_until <= now))


async def claim_due(
    conn: Conn, table: Table, key: str, *, status: str, owner: str, now: float, lease: float, limit: int
) -> list[Any]:
    """Lease up to ``limit`` rows of ``table`` in ``status`` that are due at ``now``, earliest
    first, to ``owner`` until ``now + lease``; the keys (column ``key``) of the rows leased."""
    pk = table.c[key]
    pick = select(pk).where(_free(table, status, now), table.c.due_at <= now).order_by(table.c.due_at).limit(limit)
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (update(table).where(pk.in_(pick.scalar_subquery())).values(lease_owner=owner, lease_until=now + lease)
            .returning(pk))
    return [r[0] for r in await conn.execute(stmt)]


async def held(conn: Conn, table: Table, key: str, value: Any, *, status: str, owner: str) -> bool:
    """Whether ``owner`` still holds the lease on row ``value`` in ``status``; the row stays
    locked (PostgreSQL) until the transaction ends, so acting on it now is acting alone."""
    query = select(table.c[key]).where(table.c[key] == value, table.c.status == status, table.c.lease_owner == owner)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return (await conn.execute(query)).first() is not None


async def release(conn: Conn, table: Table, key: str, values: list[Any], *, owner: str) -> None:
    """Give back leases ``owner`` holds (shutting down, or a row it could not act on now)."""
    if values:
        await conn.execute(update(table).where(table.c[key].in_(values), table.c.lease_owner == owner)
                           .values(lease_owner=None, lease_until=None))


async def next_due(conn: Conn, table: Table, *, status: str) -> float | None:
    """When the next row in ``status`` can be claimed: its due time, or the end of the lease
    that holds it."""
    when = func.max(table.c.due_at, func.coalesce(table.c.lease_until, table.c.due_at)) \
        if conn.dialect.name == "sqlite" else func.greatest(table.c.due_at, func.coalesce(table.c.lease_until, table.c.due_at))
    return (await conn.execute(select(func.min(when)).where(table.c.status == status))).scalar()
