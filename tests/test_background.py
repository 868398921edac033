"""Background loops stop when told to, even when a cancellation races with the end of a wait."""

from __future__ import annotations

import asyncio

import pytest

from tidings.background import Background, wait_at_most


async def test_wait_at_most_says_whether_the_wait_ended_in_time() -> None:
    event = asyncio.Event()
    assert await wait_at_most(event.wait(), 0.01) is False
    event.set()
    assert await wait_at_most(event.wait(), 1.0) is True


async def test_a_cancellation_arriving_as_the_wait_ends_is_kept() -> None:
    """The event is set and the task cancelled in the same turn of the loop: ``asyncio.wait_for``
    on Python 3.11 returns normally here and the loop below would run on forever."""
    event = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            event.clear()
            await wait_at_most(event.wait(), 10.0)

    task = asyncio.create_task(loop())
    for _ in range(3):
        await asyncio.sleep(0)
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2.0)
    assert rounds == 1


class _Stubborn(Background):
    """Swallows the first cancellation, as code below a loop sometimes does."""

    task_name = "stubborn"

    def __init__(self) -> None:
        self.cancellations = 0

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancellations += 1
                if self.cancellations > 1:
                    raise


async def test_stop_ends_a_task_that_swallowed_a_cancellation() -> None:
    stubborn = _Stubborn()
    stubborn.start()
    await asyncio.sleep(0)
    await asyncio.wait_for(stubborn.stop(), 5.0)
    assert stubborn.cancellations == 2
    assert stubborn._task is None


async def test_stop_passes_on_a_crash_of_the_task() -> None:
    class Crashing(Background):
        async def _run(self) -> None:
            raise RuntimeError("boom")

    crashing = Crashing()
    crashing.start()
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="boom"):
        await crashing.stop()


async def test_stop_itself_can_be_cancelled() -> None:
    """A task that never ends holds stop() up, but not its caller's cancellation (the old stop
    suppressed CancelledError around its wait, the caller's own included)."""

    class Endless(Background):
        holding = True

        async def _run(self) -> None:
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    if not self.holding:
                        raise

    endless = Endless()
    endless.start()
    task = endless._task
    assert task is not None
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await endless.stop()
    endless.holding = False
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_the_code_waits_with_asyncio_timeout_not_wait_for() -> None:
    """``asyncio.wait_for`` loses cancellations on Python 3.11 (see ``wait_at_most``)."""
    from pathlib import Path

    import tidings

    src = Path(tidings.__file__).parent
    users = [str(p.relative_to(src)) for p in src.rglob("*.py") if "wait_for(" in p.read_text()]
    assert users == []
