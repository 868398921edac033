"""Group commit: concurrent writers share one transaction, and each is answered after its commit.

Every write on the hot path goes through the store's one :class:`GroupCommit`: callers
``await store.submit(op, item)``; a writer task takes everything waiting (new messages, delivery
outcomes, inbox rows...), applies each kind with its :class:`Batch` in a single transaction, and
answers every caller with its own result. Under load N commits (and N fsyncs) become one, and no
caller is answered before its row is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any, Generic, TypeVar

import structlog

from .engine import Conn, Store

T = TypeVar("T")
R = TypeVar("R")

log = structlog.get_logger("tidings.store")


class Batch(Generic[T, R]):
    """One kind of write. ``apply`` returns one result (or exception) per item, in order;
    ``committed`` runs right after the commit, before any caller is answered."""

    async def apply(self, conn: Conn, items: list[T]) -> list[R | BaseException]:
        raise NotImplementedError

    def committed(self, items: list[T], results: list[R | BaseException]) -> None:
        """Work that must follow the commit even if a caller has gone away."""


_Entry = tuple[Batch[Any, Any], Any, "asyncio.Future[Any]"]


class GroupCommit:
    """If a shared transaction fails, each item is tried again alone, so one bad item can't sink
    the others."""

    def __init__(self, store: Store, *, max_batch: int = 1000) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: deque[_Entry] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        """Set while the writer waits for work."""
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._busy = False
        """A batch is being written (taken off the queue, not yet answered)."""

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="tidings-group-commit")

    async def stop(self) -> None:
        """Refuse new writes, commit (and answer) everything already submitted, then stop.
        Cancelling the writer instead could cut a commit short: its callers would be told it
        failed while it went through."""
        task = self._task
        if task is None:
            return
        self._closing = True
        self._wake()
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise
        finally:
            self._task = None
            while self._queue:  # only when the writer died: nothing may wait forever
                _, _, fut = self._queue.popleft()
                _settle(fut, RuntimeError("the writer stopped before committing"))

    async def drain(self, timeout: float) -> None:
        """Until nothing submitted waits to be written and answered (its ``committed`` hooks
        run), or ``timeout``. New writes are still taken."""
        deadline = time.monotonic() + timeout
        while self._task is not None and (self._queue or self._busy) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    async def submit(self, op: Batch[T, R], item: T) -> R:
        if self._task is None:
            raise RuntimeError("the writer is not running (start the hub first)")
        if self._closing:
            raise RuntimeError("the writer is stopping")
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((op, item, fut))
        self._wake()
        return await fut

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def submit_many(self, op: Batch[T, R], items: list[T]) -> list[R]:
        """``submit`` of each item, queued together and in order (so they share transactions,
        ``max_batch`` items at most each); their results in order, or the first error once all
        are answered. No task per item: on the hot path a task cost more than the item's write."""
        if self._task is None:
            raise RuntimeError("the writer is not running (start the hub first)")
        if self._closing:
            raise RuntimeError("the writer is stopping")
        loop = asyncio.get_running_loop()
        futs: list[asyncio.Future[R]] = [loop.create_future() for _ in items]
        self._queue.extend((op, item, fut) for item, fut in zip(items, futs, strict=True))
        self._wake()
        # Awaited one by one rather than gathered (a callback per future): the writer answers in
        # queue order, so past the first wait the rest are mostly answered already.
        results: list[R] = []
        error: BaseException | None = None
        try:
            for fut in futs:
                try:
                    results.append(await fut)
                except Exception as exc:
                    error = error or exc
        except asyncio.CancelledError:
            for fut in futs:
                fut.cancel()  # their writes still commit; nobody waits for the answers
            raise
        if error is not None:
            raise error
        return results

    async def _run(self) -> None:
        queue = self._queue
        while True:
            while not queue:
                if self._closing:
                    return
                self._wakeup = asyncio.get_running_loop().create_future()
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
            # Let writers woken by the last commit add to this one (fewer, larger transactions).
            self._busy = True
            await asyncio.sleep(0)
            batch = [queue.popleft() for _ in range(min(len(queue), self._max_batch))]
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError("the writer stopped before committing"))
                raise
            except Exception:  # never let the writer die: every later caller would wait forever
                log.exception("group_commit.failed", size=len(batch))
                for _, _, fut in batch:
                    _settle(fut, RuntimeError("the write failed; see the log"))
            finally:
                self._busy = False

    async def _commit(self, batch: list[_Entry]) -> None:
        groups: dict[Batch[Any, Any], list[_Entry]] = {}
        for entry in batch:
            groups.setdefault(entry[0], []).append(entry)
        outcomes: list[tuple[Batch[Any, Any], list[_Entry], list[Any]]] = []
        try:
            async with self._store.write() as conn:
                for op, entries in groups.items():
                    results = await op.apply(conn, [item for _, item, _ in entries])
                    if len(results) != len(entries):
                        raise RuntimeError(f"{type(op).__name__}.apply returned {len(results)} results for {len(entries)} items")
                    outcomes.append((op, entries, results))
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][2], exc)
                return
            log.warning("group_commit.split", size=len(batch), error=type(exc).__name__)
            for one in batch:
                await self._commit([one])
            return
        for op, entries, results in outcomes:
            try:
                op.committed([item for _, item, _ in entries], results)
            except Exception:
                log.exception("group_commit.committed_hook_failed", op=type(op).__name__)
            for (_, _, fut), result in zip(entries, results, strict=True):
                _settle(fut, result)


def _settle(fut: asyncio.Future[Any], result: Any) -> None:
    if fut.done():
        return
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)
