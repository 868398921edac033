"""Reading the outbox for people: messages, deliveries, the inbox; retrying and holding deliveries
(the counts dashboards and health show are in :mod:`.stats`).

Every reader takes ``project``: given, it sees only that project's messages (and their deliveries
and inbox rows), and another project's id is not found; None (the CLI, the library) sees all."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select, true, update

from ..acks import acks_of
from ..audit import SYSTEM, Actor, append
from ..errors import NotFound, TidingsError
from ..ids import id_floor
from ..message import Message
from ..store.engine import Conn
from ..store.pages import newest_first
from ..store.tables import (
    deliveries,
    delivery_attempts,
    inbox,
    integration_state,
    messages,
)
from .holds import set_disabled

STATUSES = ("pending", "sending", "retrying", "delivered", "dead", "suppressed", "grouped", "held")
RETRYABLE_BY_HAND = ("dead", "retrying")


class RetryRefused(TidingsError):
    """Only dead and retrying deliveries can be retried by hand."""


def _delivery(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "message_id": row.message_id,
        "integration": row.integration,
        "route": row.route,
        "status": row.status,
        "attempts": row.attempts,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "next_attempt_at": row.next_attempt_at if row.status in ("pending", "retrying") else None,
        "delivered_at": row.delivered_at,
        "latency_ms": _ms(row.latency_ms),
        "remote_id": row.remote_id,
        "last_error": row.last_error,
        "recipient": row.recipient,
        "reason": row.reason,
    }


def _ms(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


async def _attempts_logs(conn: Conn, where: Any) -> dict[str, list[dict[str, Any]]]:
    """Delivery id -> its failed attempts, oldest first, of the deliveries ``where`` (a condition on
    ``delivery_attempts``) selects."""
    a = delivery_attempts
    rows = await conn.execute(select(a).where(where).order_by(a.c.at, a.c.id))
    logs: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        logs.setdefault(r.delivery_id, []).append({
            "attempt": r.attempt, "at": r.at, "outcome": r.outcome, "status_code": r.status_code,
            "latency_ms": _ms(r.latency_ms), "error": r.error, "remote_id": None,
        })
    return logs


def _with_log(delivery: dict[str, Any], failed: list[dict[str, Any]]) -> dict[str, Any]:
    """``attempts_log``: the failed attempts, then the successful one (from the delivery row)."""
    log = list(failed)
    if delivery["status"] == "delivered" and delivery["delivered_at"] is not None:
        log.append({
            "attempt": delivery["attempts"], "at": delivery["delivered_at"], "outcome": "delivered", "status_code": None,
            "latency_ms": delivery["latency_ms"], "error": delivery["last_error"], "remote_id": delivery["remote_id"],
        })
    return {**delivery, "attempts_log": log}


def _of_message(project: str | None) -> Any:
    """The condition on ``messages`` that keeps ``project``'s rows (None: no condition)."""
    return true() if project is None else messages.c.project == project


async def get_message(conn: Conn, message_id: str, project: str | None = None) -> dict[str, Any]:
    row = (await conn.execute(select(messages).where(messages.c.id == message_id, _of_message(project)))).first()
    if row is None:
        raise NotFound(f"no message {message_id}")
    rows = await conn.execute(
        select(deliveries).where(deliveries.c.message_id == message_id).order_by(deliveries.c.id)
    )
    logs = await _attempts_logs(conn, delivery_attempts.c.delivery_id.in_(
        select(deliveries.c.id).where(deliveries.c.message_id == message_id)))
    return {
        "id": row.id,
        "created_at": row.created_at,
        "project": row.project,
        **Message.from_stored(row.data).to_dict(),
        "idempotency_key": row.idempotency_key,
        "deliveries": [_with_log(_delivery(d), logs.get(d.id, [])) for d in rows],
        "acks": await acks_of(conn, message_id),
        **await _escalation(conn, message_id),
    }


async def _escalation(conn: Conn, message_id: str) -> dict[str, Any]:
    """``escalation``: the message's escalation (the first route's, when several escalate it;
    null when none does) and ``escalations``: every one."""
    from .escalation import escalation_of

    found = await escalation_of(conn, message_id)
    return {"escalation": found[0] if found else None, "escalations": found}


async def list_deliveries(
    conn: Conn,
    *,
    status: str | None = None,
    integration: str | None = None,
    limit: int = 50,
    before: str | None = None,
    project: str | None = None,
) -> dict[str, Any]:
    """Newest first, ``limit`` at a time; pass the returned ``next`` as ``before`` for the next page."""
    q = select(deliveries, messages.c.title).join(messages, messages.c.id == deliveries.c.message_id)
    if project is not None:
        q = q.where(messages.c.project == project)
    if status:
        if status not in STATUSES:
            raise TidingsError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        # A literal, so the planner sees the partial index of held states applies.
        q = q.where(deliveries.c.status == bindparam("status", status, literal_execute=True))
    if integration:
        q = q.where(deliveries.c.integration == integration)
    page = await newest_first(conn, q, deliveries.c.id, limit=limit, before=before,
                              item=lambda r: {**_delivery(r), "title": r.title})
    # The page's attempts in one query, by the ids found (the index on delivery_id serves it).
    ids = [d["id"] for d in page["items"]]
    logs = await _attempts_logs(conn, delivery_attempts.c.delivery_id.in_(ids)) if ids else {}
    page["items"] = [_with_log(d, logs.get(d["id"], [])) for d in page["items"]]
    return page


async def list_messages(
    conn: Conn,
    *,
    status: str | None = None,
    integration: str | None = None,
    priority: str | None = None,
    since: float | None = None,
    limit: int = 50,
    before: str | None = None,
    project: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Messages newest first, ``limit`` at a time (pass ``next`` as ``before``), each with its
    deliveries counted by status and the integrations they go to. ``status`` and ``integration``
    keep messages with at least one such delivery (both: one delivery that is both); ``since``
    (seconds) those created that recently; ``priority`` a priority's name."""
    from ..message import Priority
    from ..store.recipient_tables import schedules

    now = time.time() if now is None else now
    q = (select(messages.c.id, messages.c.created_at, messages.c.title, messages.c.priority, messages.c.thread_key,
                messages.c.data, schedules.c.status.label("scheduled"), schedules.c.due_at)
         .outerjoin(schedules, schedules.c.message_id == messages.c.id))
    if project is not None:
        q = q.where(messages.c.project == project)
    if priority:
        q = q.where(messages.c.priority == Priority(priority).rank)
    if since is not None:
        q = q.where(messages.c.id >= id_floor(now - since))
    if status or integration:
        if status and status not in STATUSES:
            raise TidingsError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        has = select(deliveries.c.id).where(deliveries.c.message_id == messages.c.id)
        if status:
            has = has.where(deliveries.c.status == status)
        if integration:
            has = has.where(deliveries.c.integration == integration)
        q = q.where(has.exists())
    page = await newest_first(conn, q, messages.c.id, limit=limit, before=before, item=lambda r: r)
    rows = page["items"]
    counts: dict[str, dict[str, int]] = {r.id: {} for r in rows}
    targets: dict[str, set[str]] = {r.id: set() for r in rows}
    if rows:
        found = await conn.execute(
            select(deliveries.c.message_id, deliveries.c.integration, deliveries.c.status, func.count())
            .where(deliveries.c.message_id.in_(list(counts)))
            .group_by(deliveries.c.message_id, deliveries.c.integration, deliveries.c.status))
        for message_id, name, state, n in found:
            counts[message_id][state] = counts[message_id].get(state, 0) + n
            targets[message_id].add(name)

    def item(r: Any) -> dict[str, Any]:
        stored = Message.from_stored(r.data)
        status_of = r.scheduled if r.scheduled in ("scheduled", "cancelled", "failed") else "routed"
        return {"id": r.id, "created_at": r.created_at, "title": r.title, "priority": Priority.from_rank(r.priority).value,
                "labels": dict(stored.labels), "thread_key": r.thread_key, "status": status_of,
                "send_at": r.due_at, "deliveries": counts[r.id], "integrations": sorted(targets[r.id])}

    return {"items": [item(r) for r in rows], "next": page["next"]}


async def _delivery_row(conn: Conn, delivery_id: str, project: str | None) -> Any:
    q = (select(deliveries, messages.c.project).join(messages, messages.c.id == deliveries.c.message_id)
         .where(deliveries.c.id == delivery_id))
    if project is not None:
        q = q.where(messages.c.project == project)
    row = (await conn.execute(q)).first()
    if row is None:
        raise NotFound(f"no delivery {delivery_id}")
    return row


async def get_delivery(conn: Conn, delivery_id: str, project: str | None = None) -> dict[str, Any]:
    """One delivery with its outcome so far and the message it carries."""
    row = await _delivery_row(conn, delivery_id, project)
    message = await get_message(conn, row.message_id)
    message.pop("deliveries")
    logs = await _attempts_logs(conn, delivery_attempts.c.delivery_id == delivery_id)
    return {**_with_log(_delivery(row), logs.get(delivery_id, [])), "message": message}


def _requeue(ids: list[str], status: str, now: float) -> Any:
    return (
        update(deliveries)
        .where(deliveries.c.id.in_(ids), deliveries.c.status == status)
        .values(status="pending", attempts=0, next_attempt_at=now, queued_at=now, updated_at=now, lease_owner=None)
    )


async def retry_delivery(
    conn: Conn, delivery_id: str, now: float | None = None, project: str | None = None, *, actor: Actor = SYSTEM
) -> dict[str, Any]:
    """Bring a dead (or waiting) delivery back now, with a fresh retry budget (audited as
    ``delivery.retry`` in the same transaction)."""
    now = time.time() if now is None else now
    row = await _delivery_row(conn, delivery_id, project)
    if row.status not in RETRYABLE_BY_HAND:
        raise RetryRefused(f"delivery {delivery_id} is {row.status}; only dead or retrying deliveries can be retried")
    await conn.execute(_requeue([delivery_id], row.status, now))
    after = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
    await append(conn, actor, "delivery.retry", target=f"delivery/{delivery_id}", project=row.project,
                 before={"status": row.status, "attempts": row.attempts, "last_error": row.last_error},
                 after={"status": after.status, "attempts": after.attempts}, at=now)
    return _delivery(after)


RETRY_CHUNK = 500
AUDITED_IDS = 1000
"""A bulk retry's audit entry lists at most this many ids (and always the count)."""


async def retry_deliveries(
    conn: Conn,
    *,
    status: str = "dead",
    integration: str | None = None,
    since: float | None = None,
    now: float | None = None,
    project: str | None = None,
    actor: Actor = SYSTEM,
) -> list[str]:
    """Bring back every delivery in ``status`` (dead or retrying), of ``integration`` if given,
    last changed within ``since`` seconds if given (after an outage: what died during it).
    Returns the ids retried, oldest first; one ``delivery.retry`` audit entry lists them."""
    now = time.time() if now is None else now
    if status not in RETRYABLE_BY_HAND:
        raise RetryRefused(f"only {' or '.join(RETRYABLE_BY_HAND)} deliveries can be retried, not {status!r}")
    if since is not None and since <= 0:
        raise TidingsError("since must be a positive duration")
    q = (select(deliveries.c.id, messages.c.project).join(messages, messages.c.id == deliveries.c.message_id)
         .where(deliveries.c.status == bindparam("status", status, literal_execute=True)))
    if integration:
        q = q.where(deliveries.c.integration == integration)
    if project is not None:
        q = q.where(messages.c.project == project)
    if since is not None:
        q = q.where(deliveries.c.updated_at >= now - since)
    rows = (await conn.execute(q.order_by(deliveries.c.id))).all()
    ids = [r.id for r in rows]
    for i in range(0, len(ids), RETRY_CHUNK):
        await conn.execute(_requeue(ids[i : i + RETRY_CHUNK], status, now))
    if ids:
        projects = sorted({r.project for r in rows})
        await append(
            conn, actor, "delivery.retry", target="deliveries", project=projects[0] if len(projects) == 1 else None,
            before={"status": status},
            after={"status": "pending", "count": len(ids), "ids": ids[:AUDITED_IDS], "ids_complete": len(ids) <= AUDITED_IDS,
                   "filters": {"status": status, "integration": integration, "since_s": since}, "projects": projects},
            at=now,
        )
    return ids


async def hold_deliveries(conn: Conn, integrations: Sequence[str], reason: str, now: float | None = None) -> int:
    """Hold every delivery of ``integrations`` waiting to be sent (pending or retrying): an
    integration removed from the configuration. Nothing is lost: :func:`resume_held` sends them
    when it comes back. Deliveries being sent finish first; a process holds what they leave."""
    now = time.time() if now is None else now
    result = await conn.execute(
        update(deliveries)
        .where(deliveries.c.integration.in_(list(integrations)),
               or_(deliveries.c.status == "pending", deliveries.c.status == "retrying",
                   and_(deliveries.c.status == "sending", deliveries.c.next_attempt_at <= now)))
        .values(status="held", last_error=reason, updated_at=now, lease_owner=None)
    )
    return int(result.rowcount or 0)


PENDING = ("pending", "retrying", "held", "sending")
"""The statuses of a delivery not finished yet (deleting its integration would leave it waiting)."""


async def count_pending(conn: Conn, integration: str) -> int:
    """How many deliveries of ``integration`` are not finished (:data:`PENDING`)."""
    q = select(func.count()).select_from(deliveries).where(
        deliveries.c.integration == integration, deliveries.c.status.in_(PENDING))
    return int((await conn.execute(q)).scalar() or 0)


async def kill_deliveries(conn: Conn, integrations: Sequence[str], reason: str, now: float | None = None) -> int:
    """End every unfinished delivery of ``integrations`` as ``dead`` with ``reason`` (an
    integration deleted by force): pending, retrying, held, and sending ones whose lease ran out.
    A send under way (its lease alive) finishes first; if it must wait, it is held like any
    delivery of a removed integration. A dead delivery can be retried by hand if the integration
    comes back."""
    now = time.time() if now is None else now
    result = await conn.execute(
        update(deliveries)
        .where(deliveries.c.integration.in_(list(integrations)),
               or_(deliveries.c.status.in_(("pending", "retrying", "held")),
                   and_(deliveries.c.status == "sending", deliveries.c.next_attempt_at <= now)))
        .values(status="dead", last_error=reason, updated_at=now, lease_owner=None)
    )
    return int(result.rowcount or 0)


async def resume_held(conn: Conn, integrations: Sequence[str], now: float | None = None) -> int:
    """Send the held deliveries of ``integrations`` now (they came back)."""
    now = time.time() if now is None else now
    result = await conn.execute(
        update(deliveries)
        .where(deliveries.c.integration.in_(list(integrations)), deliveries.c.status == "held")
        .values(status=case((deliveries.c.attempts > 0, "retrying"), else_="pending"), last_error=None,
                next_attempt_at=now, updated_at=now)
    )
    return int(result.rowcount or 0)


async def set_enabled(
    conn: Conn, name: str, enabled: bool, *, actor: Actor = SYSTEM, project: str = "default", now: float | None = None
) -> None:
    """Enable or disable an integration by hand (audited as ``integration.enable|disable``).
    Disabling holds its waiting deliveries (``held: integration disabled by hand``); enabling
    resumes its held ones (also those a peer's HTTP 410 held)."""
    from .holds import BY_HAND, disabled_reason

    now = time.time() if now is None else now
    was = (await conn.execute(select(integration_state.c.disabled, integration_state.c.reason)
                              .where(integration_state.c.name == name))).first()
    await set_disabled(conn, name, not enabled, None if enabled else BY_HAND, now)
    if enabled:
        await resume_held(conn, [name], now)
    else:
        await hold_deliveries(conn, [name], disabled_reason(BY_HAND), now)
    await append(conn, actor, f"integration.{'enable' if enabled else 'disable'}", target=f"integration/{name}",
                 project=project, before={"disabled": bool(was and was.disabled), "reason": was.reason if was else None},
                 after={"disabled": not enabled}, at=now)


async def list_inbox(
    conn: Conn, *, integration: str | None = None, limit: int = 50, before: int | None = None,
    project: str | None = None, own: Sequence[str] = (),
) -> dict[str, Any]:
    """Newest first. With ``project``: the items of its messages, and of its integrations ``own``
    whose message retention removed already (an inbox item may outlive its message)."""
    q = select(inbox)
    if project is not None:
        q = q.outerjoin(messages, messages.c.id == inbox.c.message_id).where(or_(
            messages.c.project == project, and_(messages.c.id.is_(None), inbox.c.integration.in_(list(own)))))
    if integration:
        q = q.where(inbox.c.integration == integration)
    return await newest_first(conn, q, inbox.c.id, limit=limit, before=before, item=lambda r: {
        "id": r.id, "integration": r.integration, "message_id": r.message_id, "delivery_id": r.delivery_id,
        "received_at": r.received_at, "message": r.payload,
    })


async def settled(conn: Conn, message_id: str) -> bool:
    """True when no delivery of the message is waiting for its first outcome."""
    n = (
        await conn.execute(
            select(func.count()).where(
                deliveries.c.message_id == message_id,
                or_(deliveries.c.status.in_(("pending", "sending")), and_(deliveries.c.status == "retrying", deliveries.c.attempts == 0)),
            )
        )
    ).scalar()
    return not n

