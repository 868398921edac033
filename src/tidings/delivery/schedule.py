"""Scheduled messages: stored now, routed when due (``Hub.notify(..., send_at=|delay=)``).

A scheduled message is a ``messages`` row with a ``schedules`` row (``scheduled``) and no
deliveries. When it is due, the :class:`Scheduler` of any dispatching process leases it
(:mod:`tidings.store.leases`: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so many workers share
the work), plans it through ``Hub.plan`` (the routes, silences and preferences of that moment),
writes its deliveries and marks it ``routed`` in one transaction: it is routed exactly once,
whichever worker takes it, and a worker that dies holding it loses its lease to another.
Until then ``cancel`` turns it ``cancelled``; it then never gets a delivery.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, update

from ..audit import SYSTEM, Actor, append
from ..background import Background, wait_at_most
from ..errors import MessageError, NotFound, TidingsError, UnknownIntegration
from ..message import Message
from ..store import leases
from ..store.engine import Conn
from ..store.recipient_tables import schedules
from ..store.tables import messages
from ..units import parse_duration
from .outbox import Planned, Receipt, delivery_refs, write_messages

if TYPE_CHECKING:
    from ..hub import Hub

log = structlog.get_logger("tidings.schedule")

MAX_AHEAD = 366 * 86400.0
"""How far ahead a message may be scheduled: further is refused (a typo of the year, most likely)."""
NOW_WITHIN = 1.0
"""A ``send_at`` this close (or in the past) is sent now, as an unscheduled message."""
BATCH = 50
LEASE = 60.0
"""How long a worker holds a due schedule while routing it (a dead worker's lease then expires)."""

SendAt = dt.datetime | float | int | str
Delay = float | int | str


class CancelRefused(TidingsError):
    """The message can't be cancelled any more (it was routed): the reason says why."""


def parse_send_at(value: SendAt) -> float:
    """Unix time from an aware datetime, an ISO 8601 text with an offset (``Z`` or ``+02:00``),
    or a number of seconds since the epoch. A time without an offset is refused: whose 09:00?"""
    if isinstance(value, bool):
        raise MessageError("send_at: give an ISO 8601 time with an offset or a Unix time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise MessageError("send_at: must be finite")
        return float(value)
    if isinstance(value, str):
        try:
            if not value.isprintable():  # fromisoformat lets a NUL through in places
                raise ValueError(value)
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise MessageError(f"send_at: {value[:60]!r} is not an ISO 8601 time such as 2026-12-24T09:00:00+01:00") from None
    if not isinstance(value, dt.datetime):
        raise MessageError("send_at: give an ISO 8601 time with an offset or a Unix time")
    if value.tzinfo is None or value.utcoffset() is None:
        raise MessageError(f"send_at: {value.isoformat()} has no time zone offset; add one (Z, +01:00)")
    return value.timestamp()


def due_time(send_at: SendAt | None, delay: Delay | None, now: float) -> float | None:
    """When a message given ``send_at`` or ``delay`` is due; None when that is now (within a
    second, or past). Raises :class:`MessageError` for both, neither-valid or too far ahead."""
    if send_at is not None and delay is not None:
        raise MessageError("give send_at or delay, not both")
    if send_at is not None:
        due, what = parse_send_at(send_at), "send_at"
    elif delay is not None:
        try:
            due, what = now + parse_duration(delay), "delay"
        except ValueError as exc:
            raise MessageError(f"delay: {exc}") from None
    else:
        return None
    if due - now > MAX_AHEAD:
        raise MessageError(f"{what}: at most {MAX_AHEAD / 86400:g} days ahead")
    return None if due - now <= NOW_WITHIN else due


def when_given(send_at: SendAt | None, delay: Delay | None) -> dict[str, float] | None:
    """What an Idempotency-Key binds of the timing: the time or the delay as given (so a retried
    ``delay: 10m`` is the same request, not ten minutes later)."""
    if send_at is not None:
        return {"send_at": parse_send_at(send_at)}
    if delay is not None:
        return {"delay": parse_duration(delay)}
    return None


async def schedule_message(
    hub: Hub, message: Message, due: float, *, to: Sequence[str] | None, idempotency_key: str | None,
    request_hash: str | None, project: str, actor: Actor | None, now: float | None = None,
) -> Receipt:
    """Store ``message`` to be routed at ``due``: the message and its schedule (and the audit
    entry, when ``actor`` is given) in one transaction. ``to`` is checked now (an unknown
    integration is refused at once) and kept; the routes are applied when it is due."""
    planned = hub.plan(message, to=to, idempotency_key=idempotency_key, project=project)
    planned.targets, planned.silenced, planned.request_hash = [], None, request_hash
    now = time.time() if now is None else now
    async with hub.require_store().write() as conn:
        [result] = await write_messages(conn, [planned], now)
        if isinstance(result, BaseException):
            raise result
        if result.replay:
            row = (await conn.execute(select(schedules).where(schedules.c.message_id == result.id))).first()
            return Receipt(result.id, result.deliveries, replay=True, status=row.status if row else "routed",
                           send_at=row.due_at if row else None)
        await conn.execute(schedules.insert().values(
            message_id=result.id, project=project, due_at=due, status="scheduled",
            to=list(to) if to is not None else None, created_at=now, updated_at=now))
        if actor is not None:
            await append(conn, actor, "message.schedule", target=f"message/{result.id}", project=project,
                         after={"title": message.title, "send_at": due, "to": list(to) if to is not None else None}, at=now)
    if hub.scheduler is not None:
        hub.scheduler.wake()
    return Receipt(result.id, [], status="scheduled", send_at=due)


async def cancel_scheduled(conn: Conn, message_id: str, *, project: str | None, actor: Actor, now: float) -> dict[str, Any]:
    """Cancel a message still scheduled (of ``project``, when given), audited; a message
    cancelled already is answered as it is. :class:`NotFound` for an unknown message (or
    another project's), :class:`CancelRefused` for one routed already."""
    q = update(schedules).where(schedules.c.message_id == message_id, schedules.c.status == "scheduled")
    if project is not None:
        q = q.where(schedules.c.project == project)
    who = actor.name or actor.kind
    done = (await conn.execute(q.values(status="cancelled", cancelled_by=who[:200], updated_at=now, lease_owner=None,
                                        lease_until=None).returning(schedules.c.due_at, schedules.c.project))).first()
    if done is not None:
        await append(conn, actor, "message.cancel", target=f"message/{message_id}", project=done.project,
                     before={"status": "scheduled", "send_at": done.due_at}, after={"status": "cancelled"}, at=now)
        return {"id": message_id, "status": "cancelled", "send_at": done.due_at, "cancelled_by": who[:200]}
    found = select(messages.c.id).where(messages.c.id == message_id)
    if project is not None:
        found = found.where(messages.c.project == project)
    if (await conn.execute(found)).first() is None:
        raise NotFound(f"no message {message_id}")
    row = await schedule_of(conn, message_id)
    if row is None:
        raise CancelRefused(f"message {message_id} was not scheduled: it was routed when it was accepted")
    if row["status"] == "cancelled":
        return {"id": message_id, **row}
    if row["status"] == "failed":
        raise CancelRefused(f"message {message_id} failed when it was due ({row.get('reason')})")
    raise CancelRefused(f"message {message_id} was routed already (it was due at {iso_time(row['send_at'])}): "
                        "its deliveries are under way")


async def schedule_of(conn: Conn, message_id: str) -> dict[str, Any] | None:
    """The schedule of a message (status, send_at, who cancelled it, why it failed); None for a
    message sent without one."""
    row = (await conn.execute(select(schedules).where(schedules.c.message_id == message_id))).first()
    if row is None:
        return None
    out: dict[str, Any] = {"status": row.status, "send_at": row.due_at}
    if row.cancelled_by is not None:
        out["cancelled_by"] = row.cancelled_by
    if row.reason is not None:
        out["reason"] = row.reason
    return out


def iso_time(when: float) -> str:
    """A Unix time as ISO 8601 in UTC (2026-12-24T08:00:00+00:00)."""
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="seconds")


class Scheduler(Background):
    """Routes the scheduled messages that are due. Runs in every process that dispatches; it
    sleeps until the next one is due (at most ``poll_interval``: others may schedule sooner) and
    is woken when this process schedules one."""

    task_name = "tidings-scheduler"

    def __init__(self, hub: Hub, *, owner: str, poll_interval: float = 1.0, lease: float = LEASE,
                 clock: Callable[[], float] = time.time) -> None:
        self.hub = hub
        self.owner = owner
        self._poll = poll_interval
        self._lease = lease
        self._clock = clock
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def _run(self) -> None:
        while True:
            self._woken.clear()
            try:
                taken = await self.route_due()
                wait = 0.0 if taken >= BATCH else await self._until_next()
            except Exception as exc:
                log.error("schedule.route_failed", error=str(exc))
                wait = self._poll
            if wait > 0:
                await wait_at_most(self._woken.wait(), wait)

    async def stop(self) -> None:
        """Stop, and give back the leases held (a schedule being routed when stopped goes to the
        next worker at once, not when its lease ends)."""
        await super().stop()
        try:
            async with self.hub.require_store().write() as conn:
                held = (await conn.execute(select(schedules.c.message_id).where(
                    schedules.c.lease_owner == self.owner, schedules.c.status == "scheduled"))).scalars().all()
                await leases.release(conn, schedules, "message_id", list(held), owner=self.owner)
        except Exception as exc:  # the lease then simply expires
            log.warning("schedule.release_failed", error=str(exc))

    async def _until_next(self) -> float:
        async with self.hub.require_store().read() as conn:
            due = await leases.next_due(conn, schedules, status="scheduled")
        if due is None:
            return self._poll
        return max(0.0, min(self._poll, due - self._clock()))

    async def route_due(self) -> int:
        """Lease the schedules due now and route each; how many were leased."""
        now = self._clock()
        async with self.hub.require_store().write() as conn:
            due = await leases.claim_due(conn, schedules, "message_id", status="scheduled", owner=self.owner, now=now,
                                         lease=self._lease, limit=BATCH)
        for message_id in due:
            try:
                await self.route(message_id)
            except Exception as exc:  # this one waits for its lease to end; the others go on
                log.error("schedule.route_failed", message=message_id, error=str(exc))
        return len(due)

    async def route(self, message_id: str) -> bool:
        """Route one leased schedule: its deliveries and its ``routed`` mark in one transaction,
        while this worker still holds the lease; whether it did."""
        hub = self.hub
        dispatcher = hub.dispatcher
        now = self._clock()
        async with hub.require_store().write() as conn:
            if not await leases.held(conn, schedules, "message_id", message_id, status="scheduled", owner=self.owner):
                return False  # cancelled meanwhile, or taken over by a worker after this lease ended
            row = (await conn.execute(select(schedules.c.to, schedules.c.project, messages.c.data)
                                      .join(messages, messages.c.id == schedules.c.message_id)
                                      .where(schedules.c.message_id == message_id))).one()
            done = {"status": "routed", "updated_at": now, "lease_owner": None, "lease_until": None}
            try:
                planned: Planned = hub.plan(Message.from_stored(row.data), to=row.to, project=row.project)
            except (UnknownIntegration, MessageError) as exc:
                reason = f"not routed: {exc}"[:500]
                await conn.execute(update(schedules).where(schedules.c.message_id == message_id)
                                   .values({**done, "status": "failed", "reason": reason}))
                await append(conn, SYSTEM, "message.schedule_failed", target=f"message/{message_id}", project=row.project,
                             after={"reason": reason}, at=now)
                log.warning("schedule.not_routed", message=message_id, reason=reason)
                return False
            planned.message_id = message_id
            await write_messages(conn, [planned], now, dispatcher.lease() if dispatcher is not None else None)
            await conn.execute(update(schedules).where(schedules.c.message_id == message_id).values(done))
            refs = await delivery_refs(conn, message_id)
            await append(conn, SYSTEM, "message.route", target=f"message/{message_id}", project=row.project,
                         before={"status": "scheduled"},
                         after={"status": "routed", "deliveries": [f"{r.integration}: {r.status}" for r in refs]}, at=now)
        if dispatcher is not None:
            dispatcher.take(planned.leased)
            dispatcher.wake()
        return True
