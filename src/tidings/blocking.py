"""The hub for code without an event loop: ``with Hub.from_config() as hub: hub.notify_sync(...)``.

The hub runs on its own event loop in a daemon thread; each call waits for its coroutine there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

if TYPE_CHECKING:
    from .delivery.outbox import Receipt
    from .message import Message

T = TypeVar("T")


class Blocking:
    """What :class:`~tidings.hub.Hub` offers synchronously (a mixin: it needs the hub's
    ``start``, ``stop``, ``notify`` and ``wait``)."""

    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    if TYPE_CHECKING:  # the hub's own
        async def start(self) -> None: ...
        async def stop(self, timeout: float | None = None) -> None: ...
        async def notify(self, *args: Any, **kwargs: Any) -> Receipt: ...
        async def wait(self, message_id: str, timeout: float = 30.0) -> dict[str, Any]: ...

    def __enter__(self) -> Self:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tidings-hub", daemon=True)
        self._thread.start()
        try:
            self._call(self.start())
        except BaseException:
            self._close_loop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self._call(self.stop())
        finally:
            self._close_loop()

    def notify_sync(self, message: Message, **kwargs: Any) -> Receipt:
        """``notify`` for code without an event loop; use inside ``with Hub.from_config() as hub:``."""
        return self._call(self.notify(message, **kwargs))

    def wait_sync(self, message_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return self._call(self.wait(message_id, timeout))

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the sync API needs `with Hub.from_config(...) as hub:`")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _close_loop(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = None
