"""Incidents of tidings watching itself: one ``incidents`` row per (project, subject, kind) while
it is open, bumped (``count``, ``updated_at``, ``detail``) as it recurs, resolved when it recovers.

Every function runs in the caller's transaction. Many workers on PostgreSQL stay in step:

- opening takes a transaction-scoped advisory lock on the incident's key, so two workers that
  see the same failure at once make one row (SQLite writers are serialized by ``BEGIN IMMEDIATE``);
- :func:`claim_notice` is a conditional UPDATE on ``notified_at``: of the workers that would tell
  the owners, exactly one does, and not again within the cooldown;
- :func:`resolve` is a conditional UPDATE on ``status``: exactly one worker resolves an
  incident, so exactly one sends its recovery notice.

Opening and resolving are audited (as ``system``) in the same transaction; a bump is not (it is
the same incident, counted).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import or_, select, text, update

from ..audit import SYSTEM, append
from ..ids import new_id
from ..security.redact import clip, redact
from ..store.engine import Conn
from ..store.pages import by_id, newest_first, where_given
from ..store.recipient_tables import incidents

KINDS = ("failing", "circuit_open", "dead", "verification", "sync", "connection")
AREAS = ("integration", "inbound", "sync", "connection")
"""A subject is ``AREA/NAME``: ``integration/slack``, ``inbound/github``, ``sync/jira``..."""
DETAIL_MAX = 2000
NOTICE_MAX = 500

_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")


def subject_of(area: str, name: str) -> str:
    return f"{area}/{name}"


def integration_of(subject: str) -> str:
    """The integration a subject is about (``integration/slack`` -> ``slack``)."""
    return subject.partition("/")[2] or subject


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


async def find_open(conn: Conn, project: str, subject: str, kind: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(incidents).where(
        incidents.c.project == project, incidents.c.subject == subject, incidents.c.kind == kind,
        incidents.c.status == "open").limit(1))).first()
    return _row(row) if row is not None else None


async def open_incident(conn: Conn, project: str, subject: str, kind: str, detail: str | None,
                        now: float | None = None) -> tuple[dict[str, Any], bool]:
    """Open the incident of (project, subject, kind), or bump the one open; (its row, whether it is new)."""
    if kind not in KINDS:
        raise ValueError(f"unknown incident kind {kind!r}")
    now = time.time() if now is None else now
    detail = clip(redact(detail), DETAIL_MAX).replace("\x00", "") if detail else None
    if conn.dialect.name == "postgresql":
        await conn.execute(_LOCK, {"key": f"tidings-incident:{project}:{subject}:{kind}"})
    found = await find_open(conn, project, subject, kind)
    if found is not None:
        values: dict[str, Any] = {"count": incidents.c.count + 1, "updated_at": now}
        if detail:
            values["detail"] = detail
        await conn.execute(update(incidents).where(incidents.c.id == found["id"]).values(**values))
        return {**found, "count": found["count"] + 1, "updated_at": now, "detail": detail or found["detail"]}, False
    row = {"id": new_id(), "project": project, "subject": subject, "kind": kind, "status": "open", "detail": detail,
           "opened_at": now, "updated_at": now, "notified_at": None, "resolved_at": None, "count": 1, "notice": None}
    await conn.execute(incidents.insert().values(**row))
    await append(conn, SYSTEM, "incident.opened", target=f"incident/{row['id']}", project=project,
                 after={k: row[k] for k in ("subject", "kind", "detail")})
    return row, True


async def resolve(conn: Conn, project: str, subject: str, kind: str, now: float | None = None,
                  quiet_for: float = 0.0) -> dict[str, Any] | None:
    """Resolve the open incident of (project, subject, kind): its row as resolved, or None when
    none was open, another worker resolved it first, or (``quiet_for``) it recurred within that
    many seconds (another worker saw it again)."""
    now = time.time() if now is None else now
    where = [incidents.c.project == project, incidents.c.subject == subject, incidents.c.kind == kind,
             incidents.c.status == "open"]
    if quiet_for > 0:
        where.append(incidents.c.updated_at <= now - quiet_for)
    done = (await conn.execute(update(incidents).where(*where).values(status="resolved", resolved_at=now, updated_at=now).returning(*incidents.c))).first()
    if done is None:
        return None
    row = _row(done)
    await append(conn, SYSTEM, "incident.resolved", target=f"incident/{row['id']}", project=project,
                 before={"status": "open", "count": row["count"]}, after={"status": "resolved"})
    return row


async def claim_notice(conn: Conn, incident_id: str, now: float, cooldown: float) -> bool:
    """Whether this worker tells the owners about open incident ``incident_id`` now: nobody did
    yet, or the last notice is at least ``cooldown`` old. Marks it told (one worker wins)."""
    result = await conn.execute(update(incidents).where(
        incidents.c.id == incident_id, incidents.c.status == "open",
        or_(incidents.c.notified_at.is_(None), incidents.c.notified_at <= now - cooldown),
    ).values(notified_at=now))
    return result.rowcount == 1


async def note(conn: Conn, incident_id: str, notice: str, *, unclaim: float | None = None) -> None:
    """Record what became of a notice; ``unclaim``: the notice did not go, restore ``notified_at``
    to this value (None clears it) so that the next occurrence tries again."""
    values: dict[str, Any] = {"notice": clip(redact(notice), NOTICE_MAX).replace("\x00", "")}
    if unclaim is not None:
        values["notified_at"] = unclaim if unclaim > 0 else None
    await conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**values))


async def open_keys(conn: Conn) -> set[tuple[str, str, str]]:
    """(project, subject, kind) of every open incident."""
    rows = await conn.execute(select(incidents.c.project, incidents.c.subject, incidents.c.kind)
                              .where(incidents.c.status == "open"))
    return {(r.project, r.subject, r.kind) for r in rows}


async def list_incidents(conn: Conn, project: str, *, status: str | None = None, subject: str | None = None,
                         limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """A project's incidents, newest first: ``{"items", "next"}`` (pass ``next`` as ``cursor``)."""
    q = where_given(select(incidents).where(incidents.c.project == project),
                    (incidents.c.status, status), (incidents.c.subject, subject))
    return await newest_first(conn, q, incidents.c.id, limit=limit, before=cursor, item=_row)


async def get_incident(conn: Conn, project: str | None, incident_id: str) -> dict[str, Any]:
    return _row(await by_id(conn, incidents, incident_id, project, "incident"))
