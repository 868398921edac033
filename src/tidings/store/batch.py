"""Group commit: concurrent callers share one transaction, and each is answered after its commit.

Callers ``await submit(item)``; one writer task takes every item waiting, applies them all in a
single write transaction and resolves each caller with its own result. Under load this turns N
commits (and N fsyncs) into one, without ever answering before the row is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from .engine import Store

T = TypeVar("T")
R = TypeVar("R")

Apply = Callable[[AsyncConnection, list[T]], Awaitable[list["R | BaseException"]]]
log = structlog.get_logger("tidings.store")


class GroupCommit(Generic[T, R]):
    """``apply(conn, items)`` returns one result (or exception) per item, in order. If the
    transaction itself fails, each item is retried alone so one bad item can't sink the others."""

    def __init__(self, store: Store, apply: Apply[T, R], *, max_batch: int = 1000, on_commit: Callable[[], None] | None = None) -> None:
        self._store = store
        self._apply = apply
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tidings-group-commit")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        while not self._queue.empty():
            await asyncio.sleep(0.001)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, item: T) -> R:
        if self._task is None:
            raise RuntimeError("the writer is not running (start the hub first)")
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, fut))
        return await fut

    async def submit_many(self, items: list[T]) -> list[R]:
        return list(await asyncio.gather(*(self.submit(i) for i in items)))

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError("the writer stopped before committing"))
                raise

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            async with self._store.write() as conn:
                results = await self._apply(conn, items)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            log.warning("group_commit.split", size=len(batch), error=type(exc).__name__)
            for one in batch:
                await self._commit([one])
            return
        if self._on_commit is not None:
            self._on_commit()
        for (_, fut), result in zip(batch, results, strict=True):
            _settle(fut, result)


def _settle(fut: asyncio.Future[R], result: R | BaseException) -> None:
    if fut.done():
        return
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)
