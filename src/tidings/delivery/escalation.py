"""Escalation: a critical (or high) message nobody acknowledges goes further, step by step.

A route's ``escalation:`` policy names steps (``after: 10m, to: ["@oncall-secondary", sms]``).
When a message matches such a route, an ``escalations`` row (step 0, due after the first step's
``after``) is written in the same transaction as the message (``outbox.write_messages``). The
:class:`Escalator`, run by every dispatching hub, claims due rows with a lease and fires each in
ONE transaction: if the message was acknowledged meanwhile, the row is ``stopped`` with who
acknowledged it, through what and when; otherwise the step's targets are planned through
``Hub.plan`` (integrations and ``@recipients``), written as new deliveries of the existing
message (``reason``: ``escalation step 2/3 of route pager: not acknowledged within 10m``), and
the row moves to the next step or ends ``done``.

Ack and step never both happen silently. The step locks its row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite has one writer at a time) and reads the acknowledgements under that lock;
:func:`~tidings.acks.record_ack` stops the message's waiting rows with an ``UPDATE`` that takes
the same row lock, in the ack's transaction. So either the ack's update waits for the step's
commit (the step happened first: its deliveries are in the history before the ack, which then
stops what is left), or the step waits for the ack's commit and then finds the row ``stopped``
(and the ack) and fires nothing. The ack takes that lock before appending its audit entry and a
step appends none, so the two never wait on each other's locks in opposite orders.

Restart-safe: everything lives in the row. A worker that dies holding a lease leaves the row to
be claimed again once the lease ends; the step check (``step`` and ``lease_owner`` unchanged
since the claim) keeps a step from firing twice when a slow worker and its successor overlap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, update

from ..acks import acknowledged, acks_of
from ..background import Background, wait_at_most
from ..errors import TidingsError
from ..message import Message
from ..security.redact import clip
from ..store import leases
from ..store.engine import Conn
from ..store.recipient_tables import escalations
from ..store.tables import messages
from .outbox import add_deliveries

if TYPE_CHECKING:
    from ..hub import Hub

log = structlog.get_logger("tidings.escalation")

LEASE = 60.0
"""How long a claimed escalation is this worker's before another may take it."""
BATCH = 50


@dataclass(frozen=True, slots=True)
class Due:
    """An escalation claimed by this worker: its next step is due."""

    id: str
    message_id: str
    project: str
    route: str
    step: int


async def claim_due(conn: Conn, owner: str, now: float, *, limit: int = BATCH, lease: float = LEASE) -> list[Due]:
    """Lease up to ``limit`` escalations whose next step is due (skipping rows another worker is
    claiming or holds a live lease on)."""
    ids = await leases.claim_due(conn, escalations, "id", status="waiting", owner=owner, now=now, lease=lease,
                                 limit=limit)
    if not ids:
        return []
    e = escalations.c
    rows = await conn.execute(select(e.id, e.message_id, e.project, e.route, e.step).where(e.id.in_(ids)))
    return sorted((Due(r.id, r.message_id, r.project, r.route, r.step) for r in rows), key=lambda d: d.id)


def span(seconds: float) -> str:
    """``10m``, ``1h30m``, ``45s``: a step's ``after`` as people write it."""
    s = int(round(seconds))
    parts = [(s // 86400, "d"), (s % 86400 // 3600, "h"), (s % 3600 // 60, "m"), (s % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


class Escalator(Background):
    """Fires the escalation steps that are due. Runs in every process that dispatches; on
    PostgreSQL any number of them share the rows."""

    task_name = "tidings-escalations"

    def __init__(
        self, hub: Hub, owner: str, *, poll_interval: float = 1.0, lease: float = LEASE, batch: int = BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hub = hub
        self.owner = owner
        self._poll = poll_interval
        self._lease = lease
        self._clock = clock
        self._batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                fired = await self.run_once()
            except Exception as exc:  # the database away for a moment: try again at the next poll
                log.error("escalation.run_failed", error=clip(f"{type(exc).__name__}: {exc}", 300))
                fired = 0
            if fired < self._batch:
                timeout = await self._until_next()  # first: a cancel here leaves no wait() coroutine unawaited
                await wait_at_most(self._wake.wait(), timeout)
                self._wake.clear()

    async def _until_next(self) -> float:
        try:
            async with self.hub.require_store().read() as conn:
                due = await leases.next_due(conn, escalations, status="waiting")
        except Exception:
            return self._poll
        return self._poll if due is None else max(0.01, min(self._poll, due - self._clock()))

    async def run_once(self, now: float | None = None) -> int:
        """Claim the escalations due at ``now`` (default: the clock) and take their steps; how many
        were handled (fired, stopped or ended)."""
        now = self._clock() if now is None else now
        store = self.hub.require_store()
        async with store.write() as conn:
            due = await claim_due(conn, self.owner, now, limit=self._batch, lease=self._lease)
        handled = 0
        for d in due:
            try:
                handled += await self.step(d, now)
            except Exception as exc:  # one bad row must not stop the others; its lease runs out, it is tried again
                log.error("escalation.step_failed", escalation=d.id, message=d.message_id, route=d.route,
                          error=clip(f"{type(exc).__name__}: {exc}", 300))
        if handled:
            self.hub._wake_dispatcher()
        return handled

    async def step(self, due: Due, now: float) -> int:
        """Take ``due``'s step in one transaction (see the module's docstring); 1 if it did anything."""
        async with self.hub.require_store().write() as conn:
            row = (await conn.execute(select(escalations).where(escalations.c.id == due.id).with_for_update())).first()
            if row is None or row.status != "waiting" or row.step != due.step or row.lease_owner != self.owner:
                return 0  # acknowledged, or taken by another worker after our lease ran out
            acks = await acks_of(conn, due.message_id)
            if acks:
                await _set(conn, due.id, now, status="stopped", reason=acknowledged(acks[0]))
                log.info("escalation.stopped", message=due.message_id, route=due.route, reason="acknowledged")
                return 1
            policy = self.hub.router.escalation_of.get(due.route)
            if policy is None or self.hub.router.project_of_route.get(due.route) != due.project:
                await _set(conn, due.id, now, status="done", reason=f"route {due.route} no longer escalates")
                return 1
            steps = policy.steps
            if due.step >= len(steps):
                await _set(conn, due.id, now, status="done",
                           reason=f"route {due.route} has {len(steps)} escalation steps now; all fired")
                return 1
            step = steps[due.step]
            number = f"{due.step + 1}/{len(steps)}"
            reason = f"escalation step {number} of route {due.route}: not acknowledged within {span(step.after)}"
            data = (await conn.execute(select(messages.c.data).where(messages.c.id == due.message_id))).scalar_one()
            message = Message.from_stored(data)
            try:
                planned = self.hub.plan(message, to=step.to, project=due.project)
            except TidingsError as exc:  # the step names what no longer exists: say so and go on
                reason = f"escalation step {number} of route {due.route} skipped: {exc}"
                log.warning("escalation.step_skipped", message=due.message_id, route=due.route, error=str(exc))
            else:
                await add_deliveries(conn, due.message_id, message, planned.targets, now, reason=reason,
                                     route=due.route, silenced=planned.silenced, project=due.project)
                log.info("escalation.fired", message=due.message_id, route=due.route, step=number,
                         targets=[t.integration for t in planned.targets])
            if due.step + 1 < len(steps):
                await _set(conn, due.id, now, step=due.step + 1, due_at=now + steps[due.step + 1].after, reason=reason)
            else:
                await _set(conn, due.id, now, step=due.step + 1, status="done",
                           reason=f"{reason}; that was the last step")
            return 1


async def _set(conn: Conn, escalation_id: str, now: float, **values: Any) -> None:
    """Update the row and end this worker's lease on it."""
    await conn.execute(update(escalations).where(escalations.c.id == escalation_id)
                       .values(**values, updated_at=now, lease_owner=None, lease_until=None))


async def escalation_of(conn: Conn, message_id: str) -> list[dict[str, Any]]:
    """A message's escalations, as ``GET /api/v1/messages/{id}`` shows them: per route, how many
    steps fired (``step``), ``waiting`` / ``stopped`` / ``done``, when the next step is due and why
    it stopped or ended."""
    rows = await conn.execute(select(escalations).where(escalations.c.message_id == message_id)
                              .order_by(escalations.c.created_at, escalations.c.route))
    return [{"route": r.route, "step": r.step, "status": r.status,
             "due_at": r.due_at if r.status == "waiting" else None, "reason": r.reason} for r in rows]
