"""Counting the outbox: per-integration stats and health, the dashboard's deliveries per minute,
the queue gauges of /metrics. Every query reads an index range or a partial index, never the whole
history."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, bindparam, cast, func, select, text

from ..ids import id_floor
from ..store.engine import Conn
from ..store.tables import ERRORS_SQL, deliveries, from_active_deliveries, integration_state, messages

STATS_WINDOW = 24 * 3600.0
HEALTH_SAMPLE = 100
LATENCY_SAMPLE = 1000


async def delivery_summary(conn: Conn, *, minutes: int = 60, project: str | None = None,
                           now: float | None = None) -> dict[str, Any]:
    """What a dashboard shows: the deliveries made in each of the last ``minutes`` minutes by
    their status now (oldest minute first), the deliveries waiting (pending, sending, retrying,
    held) and the oldest of them, and the dead ones, however old. Reads the id range of the
    window and the partial indexes of unfinished and held deliveries, never the whole history."""
    now = time.time() if now is None else now
    start = (int(now) // 60 - minutes + 1) * 60
    minute = (cast(deliveries.c.created_at, BigInteger) // 60).label("minute")
    q = (select(minute, deliveries.c.status, func.count()).where(deliveries.c.id >= id_floor(start))
         .group_by(minute, deliveries.c.status))
    if project is not None:
        q = q.join(messages, messages.c.id == deliveries.c.message_id).where(messages.c.project == project)
    per: dict[int, dict[str, int]] = {}
    for m, state, n in await conn.execute(q):
        per.setdefault(int(m) * 60, {})[state] = n
    mine = " AND message_id IN (SELECT id FROM messages WHERE project = :project)" if project is not None else ""
    active = text(f"SELECT count(*), min(created_at) {from_active_deliveries(conn.dialect.name)}{mine}")
    # Literal statuses: the partial index of held states serves them (bound parameters would hide it).
    held = text(f"SELECT status, count(*), min(created_at) FROM deliveries WHERE (status = 'held' OR status = 'dead'){mine}"
                " GROUP BY status")
    params = {"project": project} if project is not None else {}
    waiting, oldest = (await conn.execute(active, params)).one()
    waiting = int(waiting or 0)
    dead = 0
    for state, n, first in await conn.execute(held, params):
        if state == "dead":
            dead = int(n)
        else:
            waiting += int(n)
            oldest = first if oldest is None else min(oldest, first)
    return {
        "since": float(start),
        "minutes": [{"at": float(at), "counts": per.get(at, {})} for at in range(start, start + minutes * 60, 60)],
        "waiting": waiting,
        "oldest_waiting_at": oldest,
        "dead": dead,
    }



@dataclass
class IntegrationStats:
    name: str
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    pending: int = 0
    suppressed: int = 0
    success_rate: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    recent_failure_ratio: float = 0.0
    recent_attempted: int = 0
    disabled: bool = False
    disabled_reason: str | None = None

    def health(self, breaker: str | None) -> str:
        if self.disabled:
            return "disabled"
        if breaker in ("open", "half-open"):
            return "circuit-open"
        if self.recent_attempted and self.recent_failure_ratio >= 0.5:
            return "failing"
        if self.recent_failure_ratio > 0 or self.retrying:
            return "degraded"
        return "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "retrying": self.retrying,
            "pending": self.pending,
            "suppressed": self.suppressed,
            "success_rate": self.success_rate,
            "latency_p50_ms": self.p50_ms,
            "latency_p95_ms": self.p95_ms,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


async def integration_stats(conn: Conn, names: list[str], now: float | None = None) -> dict[str, IntegrationStats]:
    """Counts over the last 24 hours (and whatever is still waiting, however old); health from
    the last 100 attempted deliveries. Every query reads an index range, never the history."""
    now = time.time() if now is None else now
    out = {n: IntegrationStats(n) for n in names}
    if not names:
        return out
    floor = id_floor(now - STATS_WINDOW)
    recent = (
        select(deliveries.c.integration, deliveries.c.status, func.count())
        .where(deliveries.c.integration.in_(names), deliveries.c.id >= floor)
        .group_by(deliveries.c.integration, deliveries.c.status)
    )
    older_waiting = text(
        f"SELECT integration, status, count(*) {from_active_deliveries(conn.dialect.name, of_integrations=True)}"
        " AND id < :floor GROUP BY integration, status"
    ).bindparams(bindparam("names", expanding=True))
    rows = [*(await conn.execute(recent)), *(await conn.execute(older_waiting, {"names": names, "floor": floor}))]
    for integration, status, n in rows:
        s = out.get(integration)
        if s is None:
            continue
        if status == "delivered":
            s.sent += n
        elif status == "dead":
            s.failed += n
        elif status == "retrying":
            s.retrying += n
        elif status in ("pending", "sending"):
            s.pending += n
        elif status == "suppressed":
            s.suppressed += n
    for s in out.values():
        done = s.sent + s.failed
        s.success_rate = round(100.0 * s.sent / done, 2) if done else None
        await _recent(conn, s)
    for r in await conn.execute(select(integration_state).where(integration_state.c.disabled.is_(True))):
        if r.name in out:
            out[r.name].disabled, out[r.name].disabled_reason = True, r.reason
    return out


async def _recent(conn: Conn, s: IntegrationStats) -> None:
    recent = (
        await conn.execute(
            select(deliveries.c.status)
            .where(deliveries.c.integration == s.name, deliveries.c.attempts > 0, deliveries.c.status != "sending")
            .order_by(deliveries.c.id.desc())
            .limit(HEALTH_SAMPLE)
        )
    ).all()
    if recent:
        failures = sum(1 for r in recent if r.status in ("dead", "retrying"))
        s.recent_attempted = len(recent)
        s.recent_failure_ratio = failures / len(recent)
    err = (
        await conn.execute(
            select(deliveries.c.last_error, deliveries.c.updated_at)
            .where(deliveries.c.integration == s.name, text(ERRORS_SQL))
            .order_by(deliveries.c.updated_at.desc())
            .limit(1)
        )
    ).first()
    if err is not None:
        s.last_error, s.last_error_at = err.last_error, err.updated_at
    latencies = sorted(
        r[0]
        for r in await conn.execute(
            select(deliveries.c.latency_ms)
            .where(deliveries.c.integration == s.name, deliveries.c.status == "delivered", deliveries.c.latency_ms.is_not(None))
            .order_by(deliveries.c.id.desc())
            .limit(LATENCY_SAMPLE)
        )
    )
    if latencies:
        s.p50_ms = round(_percentile(latencies, 50), 3)
        s.p95_ms = round(_percentile(latencies, 95), 3)


def _percentile(sorted_values: list[float], pct: float) -> float:
    k = (len(sorted_values) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


async def queue_gauges(conn: Conn, now: float | None = None) -> tuple[dict[str, int], float]:
    """Deliveries waiting per integration, and the age of the oldest one (0 when none waits)."""
    now = time.time() if now is None else now
    rows = (
        await conn.execute(
            text(f"SELECT integration, count(*), min(created_at) {from_active_deliveries(conn.dialect.name)} GROUP BY integration")
        )
    ).all()
    oldest = min((r[2] for r in rows), default=None)
    return {r[0]: r[1] for r in rows}, (now - oldest if oldest is not None else 0.0)
