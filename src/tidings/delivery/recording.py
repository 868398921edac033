"""Recording outcomes: the dispatcher's results collect in memory and one flusher writes them,
one statement per batch (``outbox.record``), with the integrations their peers disabled. A batch
that fails to commit is kept for the next flush: an outcome is never dropped while the process
runs (and a delivery whose outcome a crash lost comes back when its lease expires)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from ..store.batch import Batch
from ..store.engine import Conn
from . import holds, outbox
from .outbox import Result

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

log = structlog.get_logger("tidings.dispatcher")

FLUSH_RETRY = 1.0


@dataclass
class _Flush:
    results: list[Result] = field(default_factory=list)
    disable: dict[str, str] = field(default_factory=dict)


class Recorder:
    """The dispatcher's results waiting to be written, and the loop that writes them."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._pending = _Flush()
        self._wake = asyncio.Event()
        self._batch = _Record(dispatcher)

    def queue(self, result: Result) -> None:
        self._pending.results.append(result)
        self._wake.set()

    def disable(self, integration: str, reason: str) -> None:
        """Record with the next batch that ``integration``'s peer disabled it."""
        self._pending.disable[integration] = reason

    async def loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            flush = asyncio.ensure_future(self.flush())
            try:
                await asyncio.shield(flush)
            except asyncio.CancelledError:
                # stop() cancels this loop: let a write under way finish rather than close its
                # connection while the commit still runs (SQLite commits in a worker thread).
                with contextlib.suppress(Exception):
                    await flush
                raise
            except Exception as exc:
                log.error("dispatcher.flush_failed", error=str(exc))
                await asyncio.sleep(FLUSH_RETRY)
                self._wake.set()

    async def flush(self) -> None:
        batch, self._pending = self._pending, _Flush()
        if not batch.results and not batch.disable:
            return
        try:
            await self._dispatcher.store.submit(self._batch, batch)
        except BaseException:
            # Keep them for the next flush: an outcome is never dropped while we run.
            self._pending.results[:0] = batch.results
            self._pending.disable.update(batch.disable)
            raise


class _Record(Batch[_Flush, None]):
    """Delivery outcomes (and integrations their peers disabled), one statement per batch."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def apply(self, conn: Conn, items: list[_Flush]) -> list[None | BaseException]:
        d = self.dispatcher
        now = d._clock()
        results = [r for f in items for r in f.results]
        # Deliveries left waiting for an integration that can't send (removed, disabled) are held
        # (see holds.py): the locks first, as the revision commit and set_enabled take them.
        waiting = {r.integration for r in results if r.status in ("pending", "retrying")}
        gone = {n for n in waiting if n not in d.lanes}
        revision, removed = await holds.lock_removed(conn, gone) if gone else (0, [])
        disable = {name: reason for f in items for name, reason in f.disable.items()}
        for name, reason in disable.items():
            await holds.set_disabled(conn, name, True, reason, now)
        off = {n for n in waiting - gone if d.lanes[n].disabled} | set(disable)
        disabled = await holds.lock_disabled(conn, off) if off else {}
        await outbox.record(conn, d.owner, results, now)
        if removed:
            await holds.hold(conn, removed, holds.removed_reason(revision), now)
        if disabled:
            await holds.hold_locked(conn, disabled, now)
        return [None] * len(items)

    def committed(self, items: list[_Flush], results: list[None | BaseException]) -> None:
        d = self.dispatcher
        d.metrics.observe_batch(r for f in items for r in f.results if not r.released)
        if any(r.thread is not None for f in items for r in f.results):
            d.wake()  # the next delivery of a thread may go now: claim it without waiting for the poll
        if d._on_flush is not None:
            d._on_flush()
        if d.on_recorded is not None:
            d.on_recorded([r for f in items for r in f.results])
