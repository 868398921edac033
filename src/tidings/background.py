"""The one shape of a component that works in the background while its hub runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import ClassVar

STOP_RECHECK = 0.5
"""How long :meth:`Background.stop` waits for a cancelled task before cancelling it again."""


async def wait_at_most(awaitable: Awaitable[object], seconds: float) -> bool:
    """Await ``awaitable`` for at most ``seconds``; True if it finished in time.

    Not ``asyncio.wait_for``: on Python 3.11 it returns normally when the caller is cancelled just
    as the awaited wait ends (the cancellation is lost), so a loop stopped by cancelling its task ran
    on, and ``tidings serve`` did not exit on SIGTERM. ``asyncio.timeout`` keeps the cancellation."""
    try:
        async with asyncio.timeout(seconds):
            await awaitable
    except TimeoutError:
        return False
    return True


class Loads:
    """Orders the overlapping loads of an in-memory view (a periodic one, one right after a change):
    a load begun before one already shown read older rows and is dropped. On PostgreSQL a read
    awaits, so a periodic load begun just before a change committed can end after the load that
    change made, and would put the old rows back until the next period."""

    __slots__ = ("_begun", "_shown")

    def __init__(self) -> None:
        self._begun = self._shown = 0

    def begin(self) -> int:
        """A number for a load about to read."""
        self._begun += 1
        return self._begun

    def show(self, load: int) -> bool:
        """Whether what load ``load`` read may replace what is shown (if so, it now is the newest shown)."""
        if load < self._shown:
            return False
        self._shown = load
        return True


class Background:
    """Runs ``_run`` as one asyncio task between :meth:`start` and :meth:`stop`."""

    task_name: ClassVar[str] = "tidings-background"
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended. A cancellation that code below ``_run``
        swallows (a library's, or Python 3.11's ``wait_for``) is sent again, so stopping never
        hangs on one."""
        task, self._task = self._task, None
        if task is None:
            return
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_RECHECK)
        with contextlib.suppress(asyncio.CancelledError):
            await task
