"""One ticket per alert, not per message: the ledger every ticket integration (jira, servicenow) shares.

An alert is named by its message's ``thread_key``, else its ``dedup_key``, else the message id (the
thread key first: Alertmanager's dedup key carries the alert's status, so a resolve would never find
the ticket its firing opened). Per (integration, alert) the ledger (``store/ticket_tables.py``) keeps
the remote ticket and its state:

- no row, or ``resolved`` with ``reopen: false``: a new ticket. The row is written ``creating`` with
  a fresh marker (carried by the ticket: a Jira label, a ServiceNow correlation id) and the delivery
  that creates it, committed *before* the create is sent; a retry finds the marker first, so a
  create whose answer was lost is never made twice;
- ``open`` and a firing message: a repeat, commented at most once per ``comment_every`` (the repeats
  in between are counted in the next comment);
- ``open`` and a resolving message: the ticket is resolved (repeats not yet commented counted);
- ``resolved`` and a firing message with ``reopen: true``: the ticket is reopened.

A ticket deleted (or closed for good) on the other side is :class:`TicketGone`: the next firing
opens a new one; a resolve of it has nothing left to do.

Work on one alert is serialized by a lease on its row (a conditional insert claims a new alert, a
conditional update an existing one), so two sends, in one process or in two workers, never both
create: the second waits for the first and then sees the ticket.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..ids import new_id
from ..message import Message
from ..store.ticket_tables import ticket_ledger
from ..units import Duration
from .base import Attempt, Outcome

LEASE = 60.0
"""A send holds its alert this long at most (or three times its timeout, if longer; the dispatcher
cancels a send after its timeout): a worker that died lets go."""
LEASE_WAIT = 0.05


class TicketPolicy(BaseModel):
    """How repeats and new firings of an alert with a ticket are handled."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    comment_every: Duration = Field(
        900.0, ge=0, description="at most one comment (work note) per this long for an alert's repeats; the repeats in"
        " between are counted in the next one; 0: a comment per repeat",
    )
    reopen: bool = Field(
        True, description="a new firing of a resolved alert reopens its ticket (true) or opens a new one (false)"
    )


@dataclass(frozen=True, slots=True)
class Ticket:
    """A remote ticket: its id, its human key, its address."""

    remote_id: str
    key: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """What one send is about: the alert's key, the message, the delivery."""

    key: str
    message: Message
    delivery_id: str


class TicketFailure(Exception):
    """A ticket call that failed, classified: the :class:`Outcome` the send answers."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


class TicketGone(Exception):
    """The alert's ticket can no longer be written (deleted, closed for good): a firing opens a new one."""


class TicketBackend(Protocol):
    """What a ticket system does for the ledger; each method raises :class:`TicketFailure`."""

    async def find_ticket(self, marker: str) -> Ticket | None:
        """The ticket a create with ``marker`` made, if any (its answer may have been lost)."""

    async def create_ticket(self, payload: Any, alert: Alert, marker: str) -> Ticket:
        """A new ticket for the alert, carrying ``marker``."""

    async def comment_ticket(self, ticket: Ticket, payload: Any, alert: Alert, repeats: int) -> None:
        """A comment saying the alert fired again (``repeats`` times since the last comment).
        This and the next two raise :class:`TicketGone` when the ticket is gone."""

    async def resolve_ticket(self, ticket: Ticket, payload: Any, alert: Alert, repeats: int) -> None:
        """Move the ticket to resolved / done."""

    async def reopen_ticket(self, ticket: Ticket, payload: Any, alert: Alert) -> None:
        """Move a resolved ticket back to open."""


def alert_key(message: Message, message_id: str) -> str:
    """The alert a message belongs to: its thread key, else its dedup key, else its id."""
    return message.thread_key or message.dedup_key or message_id


async def send_ticket(
    backend: TicketBackend, *, store: Any, integration: str, project: str, payload: Any, attempt: Attempt,
    policy: TicketPolicy, timeout: float = 10.0, clock: Any = time.time,
) -> Outcome:
    """One delivery to a ticket system, through the ledger (see the module's docstring). ``timeout``:
    the integration's; a send waits at most half of it for another send of the same alert."""
    alert = Alert(alert_key(attempt.message, attempt.message_id), attempt.message, attempt.delivery_id)
    owner = new_id()
    row = await _claim(store, integration, alert.key, project, owner, clock, timeout / 2, max(LEASE, 3 * timeout))
    if row is None:
        return Outcome.retry("another send is working on this alert's ticket", after=1.0)
    try:
        async def mark(values: dict[str, Any]) -> None:
            """Commit ``creating`` + the marker + this delivery (keeping the lease) before a create is sent."""
            async with store.write() as conn:
                await conn.execute(update(ticket_ledger).where(
                    _pk(integration, alert.key), ticket_ledger.c.lease_owner == owner).values(**values))

        outcome, changes = await _act(backend, row, alert, payload, policy, clock, mark)
    except TicketFailure as exc:
        await _save(store, integration, alert.key, owner, {})
        return exc.outcome
    except BaseException:
        await asyncio.shield(_save(store, integration, alert.key, owner, {}))
        raise
    await _save(store, integration, alert.key, owner, changes)
    return outcome


async def _act(
    backend: TicketBackend, row: dict[str, Any], alert: Alert, payload: Any, policy: TicketPolicy, clock: Any,
    mark: Any,
) -> tuple[Outcome, dict[str, Any]]:
    if row["state"] == "creating" and row["created_by"] is not None:
        found = await backend.find_ticket(row["marker"])
        if found is not None:  # the create went through, its answer was lost
            opened = {**_opened(found, clock()), "tickets": row["tickets"] + 1}
            if row["created_by"] == alert.delivery_id:
                return Outcome.delivered(found.key), opened
            outcome, changes = await _step(backend, {**row, **opened}, alert, payload, policy, clock, mark)
            return outcome, {**opened, **changes}
    return await _step(backend, row, alert, payload, policy, clock, mark)


async def _step(
    backend: TicketBackend, row: dict[str, Any], alert: Alert, payload: Any, policy: TicketPolicy, clock: Any,
    mark: Any,
) -> tuple[Outcome, dict[str, Any]]:
    now = clock()
    message = alert.message
    state = row["state"]
    ticket = Ticket(row["remote_id"], row["remote_key"] or row["remote_id"], row["url"]) if row["remote_id"] else None
    if state == "creating" or (state == "resolved" and not policy.reopen and not message.resolves):
        if message.resolves:
            return Outcome.delivered(warning="no open ticket for this alert: nothing to resolve"), {}
        marker = row["marker"] if state == "creating" else new_id()
        await mark({"state": "creating", "marker": marker, "created_by": alert.delivery_id,
                    "remote_id": None, "remote_key": None, "url": None})
        created = await backend.create_ticket(payload, alert, marker)
        return Outcome.delivered(created.key), {**_opened(created, now), "marker": marker, "tickets": row["tickets"] + 1,
                                                "comments": 0, "last_comment_at": None, "resolved_at": None}
    assert ticket is not None
    try:
        return await _update(backend, row, ticket, alert, payload, policy, now)
    except TicketGone as gone:
        if message.resolves:
            return Outcome.delivered(ticket.key, warning=f"{gone}: nothing to resolve"), {
                "state": "resolved", "resolved_at": now, "updated_at": now, "pending_repeats": 0}
        fresh = {**row, "state": "creating", "created_by": None, "marker": new_id()}
        outcome, changes = await _step(backend, fresh, alert, payload, policy, clock, mark)
        return outcome, {"marker": fresh["marker"], **changes}


async def _update(
    backend: TicketBackend, row: dict[str, Any], ticket: Ticket, alert: Alert, payload: Any, policy: TicketPolicy,
    now: float,
) -> tuple[Outcome, dict[str, Any]]:
    """The alert's ticket exists: reopen, resolve or comment it."""
    message = alert.message
    state = row["state"]
    if state == "resolved":
        if message.resolves:
            return Outcome.delivered(ticket.key, warning="the ticket is resolved already"), {}
        await backend.reopen_ticket(ticket, payload, alert)
        return Outcome.delivered(ticket.key), {"state": "open", "resolved_at": None, "updated_at": now, "pending_repeats": 0}
    repeats = row["pending_repeats"]
    if message.resolves:
        await backend.resolve_ticket(ticket, payload, alert, repeats)
        return Outcome.delivered(ticket.key), {"state": "resolved", "resolved_at": now, "updated_at": now,
                                               "pending_repeats": 0}
    repeats += 1
    last = row["last_comment_at"]
    if policy.comment_every and last is not None and now - last < policy.comment_every:
        return Outcome.delivered(ticket.key), {"pending_repeats": repeats, "updated_at": now}
    await backend.comment_ticket(ticket, payload, alert, repeats)
    return Outcome.delivered(ticket.key), {"pending_repeats": 0, "comments": row["comments"] + 1,
                                           "last_comment_at": now, "updated_at": now}


def _opened(ticket: Ticket, now: float) -> dict[str, Any]:
    return {"state": "open", "remote_id": ticket.remote_id, "remote_key": ticket.key, "url": ticket.url,
            "created_at": now, "updated_at": now, "pending_repeats": 0}


def _pk(integration: str, key: str) -> Any:
    return and_(ticket_ledger.c.integration == integration, ticket_ledger.c.alert_key == key)


async def _claim(
    store: Any, integration: str, key: str, project: str, owner: str, clock: Any, wait: float, lease: float,
) -> dict[str, Any] | None:
    """The alert's row, leased to ``owner``; a new alert's row is inserted ``creating`` (nothing sent
    yet). ``None`` when another send holds it for longer than ``wait``."""
    deadline = time.monotonic() + wait
    while True:
        now = clock()
        async with store.write() as conn:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            await conn.execute(insert(ticket_ledger).values(
                integration=integration, alert_key=key, project=project, state="creating", marker=new_id(),
                created_at=now, updated_at=now, lease_owner=owner, lease_until=now + lease,
            ).on_conflict_do_nothing())
            c = ticket_ledger.c
            taken = await conn.execute(update(ticket_ledger).where(
                _pk(integration, key), or_(c.lease_owner.is_(None), c.lease_owner == owner, c.lease_until < now),
            ).values(lease_owner=owner, lease_until=now + lease))
            if taken.rowcount:
                row = (await conn.execute(select(ticket_ledger).where(_pk(integration, key)))).mappings().one()
                return dict(row)
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(LEASE_WAIT)


async def _save(store: Any, integration: str, key: str, owner: str, changes: dict[str, Any]) -> None:
    """Write ``changes`` and let go of the lease (only ``owner``'s)."""
    async with store.write() as conn:
        await conn.execute(update(ticket_ledger).where(
            _pk(integration, key), ticket_ledger.c.lease_owner == owner,
        ).values(**changes, lease_owner=None, lease_until=None))


async def ledger_row(store: Any, integration: str, key: str) -> dict[str, Any] | None:
    """The ledger's row for one alert (tests, the CLI)."""
    async with store.read() as conn:
        row = (await conn.execute(select(ticket_ledger).where(_pk(integration, key)))).mappings().first()
    return dict(row) if row is not None else None


def alert_text(message: Message, *, markdown: bool = False) -> str:
    """The alert's body, fields and links as text (a ticket's description)."""
    parts = [message.body.strip()] if message.body.strip() else []
    if message.fields:
        if markdown:
            parts.append("\n".join(f"- **{f.name}:** {f.value}" for f in message.fields))
        else:
            parts.append("\n".join(f"{f.name}: {f.value}" for f in message.fields))
    if message.links:
        if markdown:
            parts.append("\n".join(f"- [{link.label}]({link.url})" for link in message.links))
        else:
            parts.append("\n".join(f"{link.label}: {link.url}" for link in message.links))
    parts.append(f"Priority: {message.priority}" + (f" · alert {message.thread_key or message.dedup_key}"
                                                     if message.thread_key or message.dedup_key else ""))
    return "\n\n".join(parts)


def repeat_text(message: Message, repeats: int) -> str:
    """A comment for an alert that fired again."""
    times = "once more" if repeats == 1 else f"{repeats} more times"
    return f"The alert fired again ({times} since the last comment): {message.title}"
