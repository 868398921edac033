"""Inbound events: accepted durably, deduplicated, processed from the stored row.

``accept`` is the request path: verify the raw bytes, identify the event, store it (group commit)
and answer; nothing is processed inside the request. The :class:`EventProcessor` claims stored
events (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), runs each receiver's handler with retries and
backoff, and records ``processed`` or, when retries run out, ``failed`` with the error; a
redelivery of a failed event, or ``replay``, processes it again.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from .audit import SYSTEM, Actor, append
from .background import Background, wait_at_most
from .delivery.retry import gives_up, next_delay
from .errors import MessageError, TidingsError
from .ids import new_id
from .integrations.receiver import ANSWER_TIMEOUT, Inbound, InboundEvent, InboundRequest, Receiver, Rejected, Reply
from .logs import Throttle
from .security.redact import ERROR_MAX, clip, redact
from .store.batch import Batch
from .store.engine import Conn
from .store.pages import by_id, newest_first, where_given
from .store.tables import EVENT_ACTIVE, events
from .templates import TemplateError

if TYPE_CHECKING:
    from .hub import Hub

log = structlog.get_logger("tidings.inbound")
noisy = Throttle()

BUSY_WINDOW = 0.05
"""Seconds after a webhook arrived during which processing yields to ingest."""
BUSY_SHARE = 2
"""Handlers that run at once while webhooks keep arriving."""
EVENT_STATUSES = ("received", "processing", "processed", "ignored", "unsupported", "failed")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


def _json(status: int, data: dict[str, Any]) -> Answer:
    return Answer(status, orjson.dumps(data))


def refusal(status: int, error: str, detail: str) -> Answer:
    return _json(status, {"error": error, "detail": clip(detail, ERROR_MAX)})


async def accept(hub: Hub, receiver: Receiver, request: InboundRequest) -> Answer:
    """Verify, identify and store one request; the answer to send back."""
    try:
        receiver.verify(request)
    except Rejected as exc:
        hub.count_inbound(receiver.name, "rejected")
        _log_refusal(receiver, request, exc, "rejected")
        return refusal(exc.status, "rejected", exc.reason)
    try:
        inbound = receiver.identify(request)
    except Rejected as exc:
        hub.count_inbound(receiver.name, "malformed")
        error = "malformed" if exc.status == 400 else "rejected"
        _log_refusal(receiver, request, exc, error)
        return refusal(exc.status, error, exc.reason)
    if not inbound.store:
        hub.count_inbound(receiver.name, "answered")
        reply = await _answer(hub, inbound)
        assert reply is not None
        return Answer(reply.status, reply.body, reply.content_type)
    status = receiver.status_for(inbound.event_type)
    row = {
        "id": new_id(),
        "integration": receiver.name,
        "kind": receiver.kind,
        "event_type": inbound.event_type[:200],
        "delivery_key": inbound.delivery_key[:300],
        "received_at": request.received_at or time.time(),
        "content_type": request.content_type[:200],
        "headers": {k: request.headers[k] for k in receiver.kept_headers if k in request.headers},
        "body": request.body,
        "status": status,
        "attempts": 0,
        "next_attempt_at": request.received_at or time.time(),
        "project": receiver.project,
    }
    event_id, outcome = await hub.require_store().submit(STORE_EVENTS, (row, receiver.repeat_after))
    hub.count_inbound(receiver.name, outcome)
    if outcome != "duplicate" and status == "received":
        hub.wake_events()
    if hub.events is not None:
        hub.events.arrived()
    reply = await _answer(hub, inbound) if inbound.answer is not None else inbound.reply
    if reply is not None:
        return Answer(reply.status, reply.body, reply.content_type)
    return _json(200, {"id": event_id, "status": "duplicate" if outcome == "duplicate" else status})


def _log_refusal(receiver: Receiver, request: InboundRequest, exc: Rejected, error: str) -> None:
    """One line per integration and answer a minute (a sender with a wrong secret, or a scanner,
    retries a lot): the reason and where the request came from, never a credential it carried."""
    noisy(log.warning, (receiver.name, exc.status), f"inbound.{error}", integration=receiver.name, status=exc.status,
          reason=redact(exc.reason), client=request.client or None)


async def _answer(hub: Hub, inbound: Inbound) -> Reply | None:
    """The reply to send: computed by ``inbound.answer`` when it has one (within
    ``ANSWER_TIMEOUT``; else, or when it fails, the plain ``inbound.reply``)."""
    if inbound.answer is None:
        return inbound.reply
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            return await inbound.answer(hub)
    except Exception as exc:
        log.warning("events.answer_failed", error=redact(f"{type(exc).__name__}: {exc}"))
        return inbound.reply


class _StoreEvents(Batch[tuple[dict[str, Any], float | None], tuple[str, str]]):
    """Insert events (each with its receiver's ``repeat_after``); a delivery id seen before is a
    duplicate, unless that event failed (the sender's redelivery is a retry: it is queued again)
    or it was done with longer than ``repeat_after`` ago (a repeat: stored as a new event, the old
    one keeping its history under ``<delivery id>@<its id>``)."""

    async def apply(
        self, conn: Conn, items: list[tuple[dict[str, Any], float | None]]
    ) -> list[tuple[str, str] | BaseException]:
        ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(events)
        ins = ins.on_conflict_do_nothing(index_elements=[events.c.integration, events.c.delivery_key])
        # The rows that went in come back; only the others (redeliveries) need a look-up.
        stored = set((await conn.execute(ins.returning(events.c.id), [row for row, _ in items])).scalars())
        out: list[tuple[str, str] | BaseException] = []
        for row, repeat_after in items:
            if row["id"] in stored:
                out.append((row["id"], "stored"))
                continue
            same_key = (events.c.integration == row["integration"], events.c.delivery_key == row["delivery_key"])
            found = (await conn.execute(select(events.c.id, events.c.status, events.c.received_at).where(*same_key))).one()
            if found.id == row["id"]:
                out.append((found.id, "stored"))
            elif found.status == "failed":
                await conn.execute(
                    update(events)
                    .where(events.c.id == found.id, events.c.status == "failed")
                    .values(status="received", attempts=0, next_attempt_at=row["received_at"], last_error=None)
                )
                out.append((found.id, "requeued"))
            elif (
                repeat_after is not None
                and found.status not in EVENT_ACTIVE
                and found.received_at < row["received_at"] - repeat_after
            ):
                archived = f"{row['delivery_key'][: 300 - 1 - len(found.id)]}@{found.id}"
                await conn.execute(update(events).where(events.c.id == found.id).values(delivery_key=archived))
                await conn.execute(events.insert(), row)
                out.append((row["id"], "stored"))
            else:
                out.append((found.id, "duplicate"))
        return out


STORE_EVENTS = _StoreEvents()


@dataclass(frozen=True, slots=True)
class _Outcome:
    id: str
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    result: dict[str, Any] | None
    processed_at: float | None


class _RecordEvents(Batch[tuple[str, _Outcome], None]):
    # One statement for the whole batch (executemany): building one per item cost more than running it.
    _stmt = (
        update(events)
        .where(events.c.id == bindparam("o_id"), events.c.lease_owner == bindparam("o_owner"), events.c.status == "processing")
        .values(
            status=bindparam("o_status"), attempts=bindparam("o_attempts"), next_attempt_at=bindparam("o_next"),
            last_error=bindparam("o_error"), result=bindparam("o_result", type_=events.c.result.type),
            processed_at=bindparam("o_processed"), lease_owner=None,
        )
    )

    async def apply(self, conn: Conn, items: list[tuple[str, _Outcome]]) -> list[None | BaseException]:
        await conn.execute(
            self._stmt,
            [
                {
                    "o_id": o.id, "o_owner": owner, "o_status": o.status, "o_attempts": o.attempts,
                    "o_next": o.next_attempt_at, "o_error": o.last_error, "o_result": o.result,
                    "o_processed": o.processed_at,
                }
                for owner, o in items
            ],
        )
        return [None] * len(items)


RECORD_EVENTS = _RecordEvents()


# SQLite plans the due-event queries on the unique (integration, delivery_key) index unless told
# otherwise: a scan of every event ever received, on every wake-up, slower the longer tidings runs.
# The partial index on due events serves them in order, and it is usable only when the statuses
# are literals in the query.
_SQLITE_DUE = (
    "FROM events INDEXED BY ix_events_due WHERE status IN ({}) AND integration IN :names".format(
        ", ".join(f"'{s}'" for s in EVENT_ACTIVE)
    )
)
_SQLITE_NEXT_DUE = text(f"SELECT min(next_attempt_at) {_SQLITE_DUE}").bindparams(bindparam("names", expanding=True))
_SQLITE_CLAIM = (
    text(
        "UPDATE events SET status = 'processing', lease_owner = :owner, next_attempt_at = :until WHERE id IN"
        f" (SELECT id {_SQLITE_DUE} AND next_attempt_at <= :now ORDER BY next_attempt_at LIMIT :limit)"
        " RETURNING id, integration, kind, event_type, delivery_key, received_at, headers, body, attempts"
    )
    .bindparams(bindparam("names", expanding=True))
    .columns(
        events.c.id, events.c.integration, events.c.kind, events.c.event_type, events.c.delivery_key,
        events.c.received_at, events.c.headers, events.c.body, events.c.attempts,
    )
)


class _ClaimEvents(Batch[tuple[str, float, tuple[str, ...], int], list[Any]]):
    """Lease due events: (owner, lease seconds, integrations, how many) -> the leased rows."""

    async def apply(self, conn: Conn, items: list[tuple[str, float, tuple[str, ...], int]]) -> list[list[Any] | BaseException]:
        out: list[list[Any] | BaseException] = []
        for owner, lease, names, limit in items:
            now = time.time()
            if conn.dialect.name == "sqlite":
                params = {"owner": owner, "until": now + lease, "names": list(names), "now": now, "limit": limit}
                out.append(list((await conn.execute(_SQLITE_CLAIM, params)).all()))
                continue
            due = (
                select(events.c.id)
                .where(events.c.status.in_(EVENT_ACTIVE), events.c.next_attempt_at <= now, events.c.integration.in_(names))
                .order_by(events.c.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            stmt = (
                update(events)
                .where(events.c.id.in_(due.scalar_subquery()))
                .values(status="processing", lease_owner=owner, next_attempt_at=now + lease)
                .returning(
                    events.c.id, events.c.integration, events.c.kind, events.c.event_type, events.c.delivery_key,
                    events.c.received_at, events.c.headers, events.c.body, events.c.attempts,
                )
            )
            out.append(list((await conn.execute(stmt)).all()))
        return out


CLAIM_EVENTS = _ClaimEvents()


class EventProcessor(Background):
    """Processes stored events in the background of every process that dispatches."""

    task_name = "tidings-events"

    def __init__(
        self,
        hub: Hub,
        receivers: dict[str, Receiver],
        *,
        concurrency: int = 16,
        batch: int = 100,
        lease: float = 120.0,
        poll_interval: float = 1.0,
    ) -> None:
        self.hub = hub
        self.receivers = receivers
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}:events"
        self._concurrency = concurrency
        self._batch = batch
        self._last_arrival = 0.0
        self._lease = lease
        self._poll = poll_interval
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    def arrived(self) -> None:
        """A webhook was just answered: while they keep coming, processing takes a smaller share."""
        self._last_arrival = time.monotonic()

    def _slots(self) -> int:
        """Handlers that may run now. Answering senders comes first (Slack wants an answer in 3 s,
        GitHub in 10 s): while requests arrive, at most BUSY_SHARE handlers share the loop with
        them; the backlog, stored and leased, drains once the burst is over."""
        busy = time.monotonic() - self._last_arrival < BUSY_WINDOW
        return (min(BUSY_SHARE, self._concurrency) if busy else self._concurrency) - len(self._running)

    async def stop(self, timeout: float = 5.0) -> None:
        await super().stop()
        if self._running:
            # Unfinished handlers keep their lease; another worker takes them when it ends.
            _, still = await asyncio.wait(set(self._running), timeout=timeout)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            free = min(self._slots(), self._batch)
            claimed = 0
            if free > 0:
                try:
                    claimed = await self._claim(free)
                except Exception as exc:
                    log.error("events.claim_failed", error=str(exc))
            if free > 0 and claimed >= free:
                continue  # maybe more are due
            # Wait for a new event, a handler to finish, the next due retry, or the poll.
            idle = BUSY_WINDOW if free <= 0 else await self._idle()
            await wait_at_most(self._wake.wait(), idle)

    async def _idle(self) -> float:
        names = list(self.receivers)
        if not names:
            return self._poll
        async with self.hub.require_store().read() as conn:
            if conn.dialect.name == "sqlite":
                due = (await conn.execute(_SQLITE_NEXT_DUE, {"names": names})).scalar()
            else:
                due = (
                    await conn.execute(
                        select(func.min(events.c.next_attempt_at)).where(
                            events.c.status.in_(EVENT_ACTIVE), events.c.integration.in_(names)
                        )
                    )
                ).scalar()
        return self._poll if due is None else max(0.0, min(self._poll, due - time.time()))

    async def _claim(self, limit: int) -> int:
        names = list(self.receivers)
        if not names:
            return 0
        # In the transaction of the next group commit, with the events being stored meanwhile:
        # no commit (and fsync) of its own, and no wait for the write lock.
        rows = await self.hub.require_store().submit(CLAIM_EVENTS, (self.owner, self._lease, tuple(names), limit))
        return self._start(rows)

    def _start(self, rows: list[Any]) -> int:
        for r in rows:
            event = InboundEvent(
                r.id, r.integration, r.kind, r.event_type, r.delivery_key, r.received_at, dict(r.headers),
                bytes(r.body), r.attempts,
            )
            task = asyncio.create_task(self._process(event))
            self._running.add(task)
            task.add_done_callback(self._finished)
        return len(rows)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()

    async def _process(self, event: InboundEvent) -> None:
        receiver = self.receivers.get(event.integration)
        if receiver is None:
            # Its integration left the configuration after the claim: the event keeps its lease
            # and waits (stored, not lost) until an integration of that name receives again.
            log.info("events.integration_gone", integration=event.integration, event_id=event.id)
            return
        attempts = event.attempts + 1
        try:
            result = await receiver.process(event, self.hub)
        except Exception as exc:
            error = clip(f"{type(exc).__name__}: {exc}", ERROR_MAX)
            noisy(log.warning, (event.integration, "handler_failed"), "events.handler_failed",
                  integration=event.integration, event_id=event.id, error=error)
            now = time.time()
            policy = receiver.settings.retry
            # Bad content (a payload the mapping can't make a message of) won't improve with retries.
            if isinstance(exc, (MessageError, TemplateError)) or gives_up(policy, attempts, event.received_at, now):
                outcome = _Outcome(event.id, "failed", attempts, now, error, None, now)
            else:
                outcome = _Outcome(event.id, "received", attempts, now + next_delay(policy, attempts), error, None, None)
        else:
            # A handler may decide from the payload that the event is not news ("ignored").
            status = result["status"] if result.get("status") in ("unsupported", "ignored") else "processed"
            outcome = _Outcome(event.id, status, attempts, time.time(), None, result, time.time())
        await self.hub.require_store().submit(RECORD_EVENTS, (self.owner, outcome))


# -- reading and managing -------------------------------------------------------------------------------
class ReplayRefused(TidingsError):
    pass


def _event(row: Any, with_body: bool = False) -> dict[str, Any]:
    out = {
        "id": row.id,
        "integration": row.integration,
        "kind": row.kind,
        "event_type": row.event_type,
        "delivery_key": row.delivery_key,
        "received_at": row.received_at,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "result": row.result,
        "processed_at": row.processed_at,
        "project": row.project,
    }
    if with_body:
        body = bytes(row.body)
        out["headers"] = row.headers
        out["content_type"] = row.content_type
        out["size"] = len(body)
        try:
            out["body"] = body.decode("utf-8") if len(body) <= 64 * 1024 else None
        except UnicodeDecodeError:
            out["body"] = None
    return out


async def list_events(
    conn: Conn, *, integration: str | None = None, status: str | None = None, limit: int = 50, before: str | None = None,
    project: str | None = None, received_since: float | None = None,
) -> dict[str, Any]:
    """Newest first; ``project``'s only when given; received at or after ``received_since``."""
    q = select(*[c for c in events.c if c.name not in ("body", "headers")])
    if received_since is not None:
        q = q.where(events.c.received_at >= received_since)
    if project is not None:
        q = q.where(events.c.project == project)
    q = where_given(q, (events.c.integration, integration), (events.c.status, status))
    return await newest_first(conn, q, events.c.id, limit=limit, before=before, item=_event)


async def get_event(conn: Conn, event_id: str, project: str | None = None) -> dict[str, Any]:
    """One event with the headers and body received (of ``project`` when given, else NotFound)."""
    return _event(await by_id(conn, events, event_id, project, "event"), with_body=True)


async def replay_event(
    conn: Conn, event_id: str, receivers: dict[str, Receiver], project: str | None = None, *, actor: Actor = SYSTEM
) -> dict[str, Any]:
    """Process an event again (audited as ``event.replay``). Effects it already had (messages it
    sent) are not repeated."""
    row = await by_id(conn, events, event_id, project, "event")
    receiver = receivers.get(row.integration)
    if receiver is None:
        raise ReplayRefused(f"integration {row.integration!r} no longer receives")
    if row.status == "processing":
        raise ReplayRefused(f"event {event_id} is being processed")
    status = receiver.status_for(row.event_type)
    now = time.time()
    await conn.execute(
        update(events)
        .where(events.c.id == event_id)
        .values(status=status, attempts=0, next_attempt_at=now, last_error=None, lease_owner=None)
    )
    await append(conn, actor, "event.replay", target=f"event/{event_id}", project=row.project,
                 before={"status": row.status, "attempts": row.attempts, "last_error": row.last_error},
                 after={"status": status, "attempts": 0}, at=now)
    return _event((await conn.execute(select(events).where(events.c.id == event_id))).one())


async def inbound_stats(conn: Conn, names: list[str], since: float) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {n: {} for n in names}
    rows = await conn.execute(
        select(events.c.integration, events.c.status, func.count())
        .where(events.c.received_at >= since, events.c.integration.in_(names))
        .group_by(events.c.integration, events.c.status)
    )
    for integration, status, n in rows:
        out[integration][status] = n
    return out
