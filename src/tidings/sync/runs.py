"""The sync log: one ``sync_runs`` row per run (DESIGN.md "Sync").

A run is a sweep, a manual run, the webhook hints of one integration taken together, or the local
changes pushed to one integration taken together. Its row is written ``running`` when it starts and
gets its counts, cost and status when it ends: ``ok``; ``partial`` (some items failed, their errors
in ``problems``); ``failed`` (the run could not do its work: a credential refused, a peer down,
``error`` says why); ``rate_limited`` (a limit longer than the mapping's ``max_wait`` stopped it; it
resumes where it stopped). Plans write nothing, so they are not runs and have no row.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select, update

from ..ids import new_id
from ..security.redact import clip
from ..store.engine import Conn, Store
from ..store.pages import by_id, newest_first, where_given
from ..store.tables import sync_cursors, sync_runs
from .engine import RunState

STATUSES = ("running", "ok", "partial", "failed", "rate_limited")
TRIGGERS = ("sweep", "webhook", "local", "manual")
PROBLEMS_MAX = 100
"""Per-item errors kept per run (the count is in ``errors``)."""
ERROR_MAX = 2000
ABANDONED = "abandoned: the worker running it stopped before it ended"


def status_of(run: RunState, error: str | None) -> str:
    """A finished run's status: failed (``error``), rate_limited (stopped by a limit), partial
    (item errors) or ok."""
    if error is not None:
        return "failed"
    if run.stopped is not None or run.resume_at is not None:
        return "rate_limited"
    return "partial" if run.errors else "ok"


async def insert_run(conn: Conn, project: str, integration: str, trigger: str, *, now: float | None = None) -> str:
    """A ``running`` row for a run starting now (in the caller's transaction); its id."""
    run_id = new_id()
    await conn.execute(sync_runs.insert().values(
        id=run_id, project=project, integration=integration, trigger=trigger, status="running",
        started_at=time.time() if now is None else now,
    ))
    return run_id


async def start_run(store: Store, project: str, integration: str, trigger: str) -> str:
    async with store.write() as conn:
        return await insert_run(conn, project, integration, trigger)


def _text(value: Any, limit: int = 500) -> Any:
    """A problem's value as stored: text masked, cut and without NUL (PostgreSQL's text can't hold it)."""
    if isinstance(value, str):
        return clip(value.replace("\x00", ""), limit)
    if isinstance(value, dict):
        return {str(k)[:100]: _text(v, limit) for k, v in list(value.items())[:20]}
    if isinstance(value, list | tuple):
        return [_text(v, limit) for v in value[:20]]
    return value if value is None or isinstance(value, bool | int | float) else clip(str(value), limit)


async def record_finish(conn: Conn, run_id: str, run: RunState, status: str, error: str | None = None) -> None:
    """Write a run's outcome, counts and cost (in the caller's transaction)."""
    s = run.stats
    await conn.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(
        status=status, ended_at=time.time(), created=run.created, updated=run.updated, unchanged=run.unchanged,
        conflicts=run.conflicts, errors=run.errors, api_calls=s.api_calls, not_modified=s.not_modified,
        rate_limit_waits=s.rate_limit_waits, waited=round(s.waited, 3),
        error=_text(error or run.stopped, ERROR_MAX) if (error or run.stopped) else None,
        problems=[_text(p) for p in run.problems[:PROBLEMS_MAX]] or None,
    ))


async def count_outcome(conn: Conn, integration: str, status: str) -> int:
    """The mapping's failures in a row after a run that ended ``status``: one more when it
    failed, none after ok or partial; a rate-limited run changes nothing."""
    if status == "failed":
        values: dict[str, Any] = {"failures": sync_cursors.c.failures + 1}
    elif status in ("ok", "partial"):
        values = {"failures": 0}
    else:
        values = {}
    if values:
        await conn.execute(update(sync_cursors).where(sync_cursors.c.integration == integration).values(**values))
    found = (await conn.execute(select(sync_cursors.c.failures).where(sync_cursors.c.integration == integration))).scalar()
    return int(found or 0)


async def finish_run(store: Store, run_id: str, run: RunState, status: str, error: str | None = None) -> int:
    """Record a run's end and count it against its mapping; the mapping's failures in a row."""
    async with store.write() as conn:
        await record_finish(conn, run_id, run, status, error)
        integration = (await conn.execute(select(sync_runs.c.integration).where(sync_runs.c.id == run_id))).scalar()
        return await count_outcome(conn, integration, status) if integration is not None else 0


async def abandon(conn: Conn, run_id: str | None) -> None:
    """Mark a run whose worker went away (its claim expired while it was ``running``) failed."""
    if run_id is not None:
        await conn.execute(update(sync_runs).where(sync_runs.c.id == run_id, sync_runs.c.status == "running")
                           .values(status="failed", ended_at=time.time(), error=ABANDONED))


STALE_AFTER = 3600.0
"""A webhook or local run still ``running`` after this long lost its process (they last seconds,
minutes with rate-limit waits): no claim marks them, so this age does."""


async def abandon_stale(conn: Conn, integrations: list[str], now: float) -> int:
    """Mark webhook and local runs of ``integrations`` left ``running`` by a process that died
    (started over :data:`STALE_AFTER` ago, within the day before) failed; how many. Sweeps and
    manual runs are marked through their mapping's claim (:func:`abandon`)."""
    if not integrations:
        return 0
    before = now - STALE_AFTER
    result = await conn.execute(update(sync_runs).where(
        sync_runs.c.integration.in_(integrations), sync_runs.c.started_at >= before - 86400,
        sync_runs.c.started_at < before, sync_runs.c.status == "running",
        sync_runs.c.trigger.in_(("webhook", "local")),
    ).values(status="failed", ended_at=now, error=ABANDONED))
    return int(result.rowcount or 0)


_LISTED = [c for c in sync_runs.c if c.name != "problems"]


def _run(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    if "problems" in out:
        out["problems"] = out["problems"] or []
    return out


async def list_runs(
    conn: Conn, project: str, integration: str | None = None, *, status: str | None = None, limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """A project's runs, newest first, ``limit`` at a time (without their problems): ``{"items",
    "next"}``; pass ``next`` as ``cursor`` for the page after."""
    q = where_given(select(*_LISTED).where(sync_runs.c.project == project),
                    (sync_runs.c.integration, integration), (sync_runs.c.status, status))
    return await newest_first(conn, q, sync_runs.c.id, limit=limit, before=cursor, item=_run)


async def get_run(conn: Conn, project: str | None, run_id: str) -> dict[str, Any]:
    """One run with its per-item problems (of ``project`` when given, else :class:`NotFound`)."""
    return _run(await by_id(conn, sync_runs, run_id, project, "sync run"))
