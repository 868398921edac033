"""The ticket ledger on its own (SQLite and PostgreSQL): leases, markers, takeovers, with a scripted backend."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import update

from tidings import Message
from tidings.integrations.base import Attempt, Outcome
from tidings.integrations.tickets import Alert, Ticket, TicketFailure, TicketPolicy, ledger_row, send_ticket
from tidings.store.ticket_tables import ticket_ledger

POLICY = TicketPolicy(comment_every=0)


class Backend:
    """Tickets in memory; ``hold`` makes creates wait until released; ``lose`` makes the next create
    happen and then fail as a lost answer would."""

    def __init__(self) -> None:
        self.tickets: list[tuple[str, Ticket]] = []
        self.comments: list[int] = []
        self.hold = False
        self.lose = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def find_ticket(self, marker: str) -> Ticket | None:
        return next((t for m, t in self.tickets if m == marker), None)

    async def create_ticket(self, payload: Any, alert: Alert, marker: str) -> Ticket:
        self.entered.set()
        if self.hold:
            await self.release.wait()
        ticket = Ticket(f"id-{len(self.tickets)}", f"T-{len(self.tickets) + 1}")
        self.tickets.append((marker, ticket))
        if self.lose:
            self.lose -= 1
            raise TicketFailure(Outcome.retry("connection reset"))
        return ticket

    async def comment_ticket(self, ticket: Ticket, payload: Any, alert: Alert, repeats: int) -> None:
        self.comments.append(repeats)

    async def resolve_ticket(self, ticket: Ticket, payload: Any, alert: Alert, repeats: int) -> None:
        pass

    async def reopen_ticket(self, ticket: Ticket, payload: Any, alert: Alert) -> None:
        pass


MESSAGE = Message("Queue stuck", thread_key="queue:orders")


def attempt(delivery: str, message: Message = MESSAGE) -> Attempt:
    return Attempt(delivery, f"m-{delivery}", 1, time.time(), message)


async def send(store: Any, backend: Backend, delivery: str, timeout: float = 10.0) -> Outcome:
    return await send_ticket(backend, store=store, integration="tix", project="default", payload={},
                             attempt=attempt(delivery), policy=POLICY, timeout=timeout)


async def test_a_second_send_waits_for_the_create_and_comments(store: Any) -> None:
    backend = Backend()
    backend.hold = True
    first = asyncio.create_task(send(store, backend, "d1"))
    await backend.entered.wait()
    second = asyncio.create_task(send(store, backend, "d2"))
    row = await ledger_row(store, "tix", "queue:orders")
    assert row is not None and row["state"] == "creating" and row["created_by"] == "d1"
    assert not second.done()
    backend.release.set()
    one, two = await asyncio.gather(first, second)
    assert one.ok and two.ok and one.remote_id == two.remote_id == "T-1"
    assert len(backend.tickets) == 1 and backend.comments == [1]


async def test_a_send_that_cannot_get_the_alert_in_time_is_retried(store: Any) -> None:
    backend = Backend()
    backend.hold = True
    first = asyncio.create_task(send(store, backend, "d1"))
    await backend.entered.wait()
    blocked = await send(store, backend, "d2", timeout=0.2)
    assert not blocked.ok and blocked.retry_after == 1.0 and "another send" in (blocked.error or "")
    backend.release.set()
    assert (await first).ok


async def test_a_lost_answer_is_found_by_its_marker(store: Any) -> None:
    backend = Backend()
    backend.lose = 1
    lost = await send(store, backend, "d1")
    assert not lost.ok
    row = await ledger_row(store, "tix", "queue:orders")
    assert row is not None and row["state"] == "creating" and row["lease_owner"] is None
    again = await send(store, backend, "d1")
    assert again.ok and again.remote_id == "T-1" and len(backend.tickets) == 1
    assert backend.comments == [], "the retry of the creating delivery is not a repeat"
    other = await send(store, backend, "d2")
    assert other.ok and backend.comments == [1]


async def test_the_lease_of_a_dead_worker_lapses(store: Any) -> None:
    backend = Backend()
    assert (await send(store, backend, "d1")).ok
    async with store.write() as conn:  # a worker died holding the alert
        await conn.execute(update(ticket_ledger).values(lease_owner="dead-worker", lease_until=time.time() + 3600))
    assert not (await send(store, backend, "d2", timeout=0.1)).ok
    async with store.write() as conn:
        await conn.execute(update(ticket_ledger).values(lease_until=time.time() - 1))
    assert (await send(store, backend, "d3")).ok and backend.comments == [1]
    row = await ledger_row(store, "tix", "queue:orders")
    assert row is not None and row["lease_owner"] is None
