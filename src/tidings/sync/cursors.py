"""``sync_cursors``: where each mapping's sweep stands, and who runs it now.

A worker runs a mapping's sweep only under a claim (``claimed_by`` / ``claimed_until``): the claim
is one atomic UPDATE, and on PostgreSQL the due rows are picked ``FOR UPDATE SKIP LOCKED`` (as the
outbox and the inbound events are), so any number of workers share the mappings and none runs twice
at once. A worker renews its claim while the sweep runs; a claim that ran out (the worker died) is
taken by the next worker that looks, and the run it left ``running`` is marked abandoned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..store.engine import Conn
from ..store.tables import sync_cursors
from .runs import abandon

c = sync_cursors.c


def _free(now: float) -> Any:
    return or_(c.claimed_until.is_(None), c.claimed_until < now)


async def ensure(conn: Conn, trackers: Mapping[str, str], now: float) -> None:
    """A cursor for every ``integration -> project`` that has none (due now); a mapping moved to
    another project follows it."""
    if not trackers:
        return
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(sync_cursors)
    rows = [{"integration": n, "project": p, "next_run_at": now, "failures": 0} for n, p in trackers.items()]
    await conn.execute(ins.on_conflict_do_nothing(index_elements=[c.integration]), rows)
    for name, project in trackers.items():
        await conn.execute(update(sync_cursors).where(c.integration == name, c.project != project).values(project=project))


async def claim_due(conn: Conn, names: list[str], owner: str, lease: float, now: float, limit: int) -> list[Any]:
    """Claim up to ``limit`` of ``names``' cursors that are due and not claimed; their rows."""
    if not names or limit <= 0:
        return []
    due = (select(c.integration)
           .where(c.integration.in_(names), c.next_run_at <= now, _free(now))
           .order_by(c.next_run_at).limit(limit))
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return await _claim(conn, and_(c.integration.in_(due.scalar_subquery()), c.next_run_at <= now, _free(now)),
                        owner, lease, now)


async def claim_one(conn: Conn, name: str, owner: str, lease: float, now: float) -> Any | None:
    """Claim ``name``'s cursor now, due or not (a manual run); None while someone holds it."""
    rows = await _claim(conn, and_(c.integration == name, _free(now)), owner, lease, now)
    return rows[0] if rows else None


async def _claim(conn: Conn, where: Any, owner: str, lease: float, now: float) -> list[Any]:
    stmt = update(sync_cursors).where(where).values(claimed_by=owner, claimed_until=now + lease).returning(*sync_cursors.c)
    rows = list((await conn.execute(stmt)).all())
    for row in rows:  # a run left running by a worker whose claim ran out
        await abandon(conn, row.last_run_id)
    return rows


async def started(conn: Conn, name: str, run_id: str) -> None:
    await conn.execute(update(sync_cursors).where(c.integration == name).values(last_run_id=run_id))


async def renew(conn: Conn, name: str, owner: str, lease: float, now: float) -> bool:
    """Extend ``owner``'s claim; False when it is no longer its own."""
    result = await conn.execute(update(sync_cursors).where(c.integration == name, c.claimed_by == owner)
                                .values(claimed_until=now + lease))
    return bool(result.rowcount)


async def release(
    conn: Conn, name: str, owner: str, *, next_run_at: float, mark: float | None, list_etag: str | None,
) -> None:
    """End ``owner``'s claim: the sweep's new mark and first-page ETag, and when it is due next."""
    await conn.execute(update(sync_cursors).where(c.integration == name, c.claimed_by == owner).values(
        claimed_by=None, claimed_until=None, next_run_at=next_run_at, mark=mark, list_etag=list_etag))


async def holder(conn: Conn, name: str) -> Any | None:
    return (await conn.execute(select(sync_cursors).where(c.integration == name))).first()


async def claim_notice(conn: Conn, name: str, failures: int, now: float, every: float) -> bool:
    """Whether to tell the owners now that ``name``'s runs keep failing: at most once per ``every``
    seconds per mapping, whichever worker asks (one atomic UPDATE decides)."""
    result = await conn.execute(update(sync_cursors).where(
        c.integration == name, c.failures >= failures, or_(c.notified_at.is_(None), c.notified_at <= now - every),
    ).values(notified_at=now))
    return bool(result.rowcount)


async def next_due(conn: Conn, names: list[str]) -> float | None:
    """When the soonest of ``names``' sweeps is due (claimed ones: when their claim runs out)."""
    if not names:
        return None
    due = func.max(c.next_run_at, func.coalesce(c.claimed_until, 0)) if conn.dialect.name == "sqlite" else \
        func.greatest(c.next_run_at, func.coalesce(c.claimed_until, 0))
    found = (await conn.execute(select(func.min(due)).where(c.integration.in_(names)))).scalar()
    return float(found) if found is not None else None
