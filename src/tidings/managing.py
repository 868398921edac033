"""What :class:`~tidings.hub.Hub` changes by hand: silences, acknowledgements, retries, an
integration enabled or disabled, an event replayed, a scheduled message cancelled. Each takes the
``actor`` its audit entry names and, where given, the ``project`` the thing must belong to."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog

from .acks import record_ack
from .audit import SYSTEM, Actor
from .delivery import queries
from .delivery.schedule import cancel_scheduled
from .inbound import replay_event
from .integrations.base import DEFAULT_PROJECT

if TYPE_CHECKING:
    from .delivery.dispatcher import Dispatcher
    from .integrations.base import Notifier
    from .integrations.receiver import Receiver
    from .silences import Silence, Silences
    from .store.engine import Store

log = structlog.get_logger("tidings.hub")


class Managing:
    """The hub's changes by hand (a mixin: it needs the hub's store, silences, receivers and dispatcher)."""

    if TYPE_CHECKING:  # the hub's own
        silences: Silences | None
        receivers: dict[str, Receiver]
        dispatcher: Dispatcher | None

        def require_store(self) -> Store: ...
        def wake_events(self) -> None: ...
        def _wake_dispatcher(self) -> None: ...
        def _notifier(self, name: str, project: str | None = None) -> Notifier: ...

    async def cancel(self, message_id: str, *, project: str | None = None, actor: Actor = SYSTEM) -> dict[str, Any]:
        """Cancel a scheduled message (of ``project``, when given) before it is due: it never gets
        a delivery. :class:`~tidings.delivery.schedule.CancelRefused` once it was routed."""
        async with self.require_store().write() as conn:
            return await cancel_scheduled(conn, message_id, project=project, actor=actor, now=time.time())

    async def replay(self, event_id: str, *, project: str | None = None, actor: Actor = SYSTEM) -> dict[str, Any]:
        async with self.require_store().write() as conn:
            result = await replay_event(conn, event_id, self.receivers, project, actor=actor)
        self.wake_events()
        return result

    async def silence(
        self, matchers: dict[str, str], seconds: float, *, by: str, reason: str | None = None,
        silence_id: str | None = None, project: str = DEFAULT_PROJECT, actor: Actor = SYSTEM,
    ) -> tuple[Silence, bool]:
        """Suppress messages of ``project`` whose labels match all ``matchers`` for ``seconds``
        (see :mod:`tidings.silences`); (the silence, whether it is new)."""
        self.require_store()
        assert self.silences is not None
        return await self.silences.create(matchers, seconds, by=by, reason=reason, silence_id=silence_id, project=project,
                                          actor=actor)

    async def unsilence(self, silence_id: str, *, project: str | None = None, actor: Actor = SYSTEM) -> Silence | None:
        """End a silence now (by id or a unique id prefix); None when no active one (of
        ``project``, when given) has it."""
        self.require_store()
        assert self.silences is not None
        return await self.silences.expire(silence_id, project, actor=actor)

    async def ack(
        self, message_id: str, *, by: str, via: str, integration: str | None = None, project: str | None = None,
        actor: Actor = SYSTEM,
    ) -> tuple[dict[str, Any], bool]:
        """Acknowledge a message (of ``project``, when given) once: a later ack returns the
        first; (the ack, whether it is new)."""
        async with self.require_store().write() as conn:
            return await record_ack(conn, message_id, by=by, via=via, integration=integration, project=project,
                                    actor=actor)

    async def retry(self, delivery_id: str, *, project: str | None = None, actor: Actor = SYSTEM) -> dict[str, Any]:
        async with self.require_store().write() as conn:
            result = await queries.retry_delivery(conn, delivery_id, project=project, actor=actor)
        self._wake_dispatcher()
        return result

    async def retry_many(
        self, *, status: str = "dead", integration: str | None = None, since: float | None = None, by: str | None = None,
        project: str | None = None,
        actor: Actor = SYSTEM,
    ) -> list[str]:
        """Retry every matching delivery (of ``project``, when given; see
        :func:`queries.retry_deliveries`); their ids."""
        async with self.require_store().write() as conn:
            ids = await queries.retry_deliveries(conn, status=status, integration=integration, since=since,
                                                 project=project, actor=actor)
        log.info("hub.deliveries_retried", count=len(ids), status=status, integration=integration, since=since, by=by)
        self._wake_dispatcher()
        return ids

    async def set_enabled(self, name: str, enabled: bool, *, project: str | None = None, actor: Actor = SYSTEM) -> None:
        """Re-enable an integration (of ``project``, when given) disabled by its peer (HTTP 410), or disable one by hand."""
        notifier = self._notifier(name, project)
        async with self.require_store().write() as conn:
            await queries.set_enabled(conn, name, enabled, actor=actor, project=notifier.project)
        if self.dispatcher is not None:
            self.dispatcher.set_enabled(name, enabled)
            self.dispatcher.wake()
