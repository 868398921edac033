"""The one shape of a component that works in the background while its hub runs."""

from __future__ import annotations

import asyncio
import contextlib
from typing import ClassVar


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
        """Cancel the task and wait until it has ended."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
