"""The circuit breakers' shared state: one row per integration in ``breakers``, so that every
process on the database (workers, an API-only ``serve --no-dispatch``) sees the same breaker.

Rows are written on transitions only (open, reopen, close), never per send, as a compare-and-set
on the row's generation: of two workers that open (or close) the same breaker at once, one
writes, the other adopts what it wrote. Closing also makes the deliveries the outage held back
due at once, so the backlog resumes when the peer does rather than after long retry delays.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import structlog
from sqlalchemy import TextClause, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from ..store.engine import Conn, Store
from ..store.tables import breakers, from_active_deliveries
from .throttle import CLOSED, Breaker, BreakerState, Pending

log = structlog.get_logger("tidings.dispatcher")

REFRESH = 1.0
"""How often a dispatcher reads the breakers other processes stored."""
WRITE_RETRY = 1.0


class Circuits:
    """Keeps one process's breakers in step with the stored ones: reads them every
    :data:`REFRESH` seconds (:meth:`sync`, from the claim loop), stores each transition in the
    background (:meth:`changed`), and logs every stored transition once."""

    def __init__(self, store: Store, breakers: Sequence[Breaker], wake: Callable[[], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.breakers = {b.name: b for b in breakers}
        self._wake = wake
        self._clock = clock
        self._read_at = float("-inf")
        self._writes: dict[str, asyncio.Task[None]] = {}
        self._probed: dict[str, int] = {}
        self._read_failing = False
        self.on_transition: Callable[[str, str], None] | None = None
        """Told (integration, ``open`` or ``closed``) of each transition this process stored (the watch)."""

    async def sync(self, force: bool = False) -> None:
        """Adopt what other processes stored (at most every :data:`REFRESH` seconds)."""
        now = time.monotonic()
        if not force and now - self._read_at < REFRESH:
            return
        self._read_at = now
        try:
            async with self.store.read() as conn:
                stored = await load(conn, list(self.breakers))
        except Exception as exc:  # the next read tries again; sends go on meanwhile
            if not self._read_failing:  # once per streak, not every second
                log.warning("breaker.read_failed", error=str(exc)[:300])
            self._read_failing = True
            return
        self._read_failing = False
        for name, state in stored.items():
            breaker = self.breakers.get(name)  # None: a configuration change removed it meanwhile
            if breaker is not None:
                breaker.adopt(state)

    def until_half_open(self, longest: float) -> float:
        """Seconds until the first open breaker lets a trial through, at most ``longest``."""
        now = self._clock()
        waits = [b.half_open_at - now for b in self.breakers.values() if b.state == "open"]
        return max(0.0, min([longest, *waits]))

    async def probe(self, idle: Sequence[str]) -> None:
        """A half-open breaker needs a send to try. For those of ``idle`` (integrations the last
        claim found nothing due for) make the next waiting delivery due now, once per opening,
        so a backlog in long retry delays doesn't keep the breaker from ever closing."""
        due = [b for b in (self.breakers[n] for n in idle) if b.state == "half-open" and b.admits
               and self._probed.get(b.name) != b.epoch]
        if not due:
            return
        now = self._clock()
        async with self.store.write() as conn:
            for b in due:
                self._probed[b.name] = b.epoch
                if (await conn.execute(_PROBE[conn.dialect.name], {"name": b.name, "now": now})).rowcount:
                    self._wake()

    def changed(self, breaker: Breaker) -> None:
        """``breaker`` made a transition: store it (in the background, one write at a time)."""
        if breaker.opened_at is None:
            self._wake()  # closed: claim its deliveries again
        task = self._writes.get(breaker.name)
        if task is None or task.done():
            self._writes[breaker.name] = asyncio.create_task(self._write(breaker), name=f"tidings-breaker-{breaker.name}")

    async def close(self, timeout: float = 2.0) -> None:
        """Let transitions under way be stored (bounded), then stop."""
        writes = [t for t in self._writes.values() if not t.done()]
        if writes:
            await asyncio.wait(writes, timeout=timeout)
            for task in writes:
                task.cancel()
            await asyncio.gather(*writes, return_exceptions=True)

    async def _write(self, breaker: Breaker) -> None:
        failed = False
        while (p := breaker.pending()) is not None:
            now = self._clock()
            try:
                async with self.store.write() as conn:
                    there = await store(conn, breaker.name, p.expected, p.state, now, breaker.policy.window)
            except Exception as exc:
                if not failed:
                    log.warning("breaker.write_failed", integration=breaker.name, error=str(exc)[:300])
                failed = True
                await asyncio.sleep(WRITE_RETRY)
                continue
            if there is not None:
                breaker.adopt(there, force=True)  # another process stored a transition first
                continue
            breaker.stored(p)
            _log(breaker, p, now)
            if self.on_transition is not None:
                self.on_transition(breaker.name, p.state.state)
            if p.state.state == "closed":
                self._wake()  # its held-back deliveries are due now


def _log(breaker: Breaker, p: Pending, now: float) -> None:
    s = p.state
    if s.state == "closed":
        log.info("breaker.closed", integration=breaker.name,
                 down_s=round(now - s.opened_at, 3) if s.opened_at is not None else None)
    elif s.half_open_at is not None and s.opened_at is not None and s.half_open_at - s.cool_off > s.opened_at + 1e-3:
        # Info while the cool-off grows; at its cap, a peer down for long would repeat it every few seconds.
        (log.debug if breaker.at_cap else log.info)("breaker.reopened", integration=breaker.name, cool_off_s=s.cool_off,
                                            down_s=round(now - s.opened_at, 3))
    else:
        failures, calls = breaker.tripped
        log.warning("breaker.opened", integration=breaker.name, failures=failures, calls=calls,
                    window_s=breaker.policy.window, cool_off_s=s.cool_off)


async def load(conn: Conn, names: Sequence[str]) -> dict[str, BreakerState]:
    """The stored state of these integrations' breakers (those never opened have no row)."""
    if not names:
        return {}
    rows = await conn.execute(select(breakers).where(breakers.c.name.in_(list(names))))
    return {r.name: BreakerState(r.state, r.generation, r.cool_off, r.opened_at, r.half_open_at) for r in rows}


async def circuits(conn: Conn, names: Sequence[str], now: float) -> dict[str, str]:
    """Integration -> ``closed``, ``open`` or ``half-open``, as every process sees it."""
    stored = await load(conn, names)
    return {name: stored.get(name, CLOSED).circuit(now) for name in names}


async def store(conn: Conn, name: str, expected: int, state: BreakerState, now: float, window: float) -> BreakerState | None:
    """Write ``state`` if the stored generation is still ``expected``: None when written,
    otherwise the state that is there (to adopt). A write that closes the breaker also makes due
    now the deliveries of this integration handed back or put into retry since ``window``
    before the episode began."""
    values = {
        "state": state.state,
        "generation": state.generation,
        "cool_off": state.cool_off,
        "opened_at": state.opened_at,
        "half_open_at": state.half_open_at,
        "updated_at": now,
    }
    if expected == 0:
        ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(breakers)
        stmt = ins.values(name=name, **values).on_conflict_do_nothing(index_elements=[breakers.c.name])
    else:
        stmt = update(breakers).where(breakers.c.name == name, breakers.c.generation == expected).values(**values)
    written = await conn.execute(stmt.returning(breakers.c.name))
    if written.first() is None:
        return (await load(conn, [name])).get(name, CLOSED)
    if state.state == "closed" and state.opened_at is not None:
        await resume(conn, name, state.opened_at - window, now)
    return None


async def resume(conn: Conn, name: str, since: float, now: float) -> int:
    """Make due now the deliveries of ``name`` waiting (pending or retrying, due later) that were
    touched since ``since``; how many."""
    result = await conn.execute(_RESUME[conn.dialect.name], {"name": name, "since": since, "now": now})
    return int(result.rowcount or 0)


def _resume(dialect: str) -> TextClause:
    return text(
        "UPDATE deliveries SET next_attempt_at = :now WHERE id IN ("
        f"SELECT id {from_active_deliveries(dialect)} AND integration = :name AND status <> 'sending'"
        " AND next_attempt_at > :now AND updated_at >= :since)"
    )


_RESUME = {d: _resume(d) for d in ("sqlite", "postgresql")}
_PROBE = {
    d: text(
        "UPDATE deliveries SET next_attempt_at = :now WHERE id IN ("
        f"SELECT id {from_active_deliveries(d)} AND integration = :name AND status <> 'sending'"
        " AND next_attempt_at > :now ORDER BY next_attempt_at LIMIT 1)"
    )
    for d in ("sqlite", "postgresql")
}
