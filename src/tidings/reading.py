"""What :class:`~tidings.hub.Hub` reads: messages, deliveries, events, the inbox, silences, queue
gauges, ids from prefixes. Each reader takes ``project`` to see one project only (None: all of them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .delivery import queries, stats
from .delivery.schedule import schedule_of
from .inbound import get_event, list_events

if TYPE_CHECKING:
    from .silences import Silence, Silences
    from .store.engine import Store


class Reading:
    """The hub's readers (a mixin: it needs the hub's ``require_store``, ``integrations_of`` and
    ``silences``)."""

    if TYPE_CHECKING:  # the hub's own
        silences: Silences | None

        def require_store(self) -> Store: ...
        def integrations_of(self, project: str | None) -> list[str]: ...

    async def event_list(self, **filters: Any) -> dict[str, Any]:
        async with self.require_store().read() as conn:
            return await list_events(conn, **filters)

    async def event(self, event_id: str, *, project: str | None = None) -> dict[str, Any]:
        async with self.require_store().read() as conn:
            return await get_event(conn, event_id, project)

    async def active_silences(self, *, project: str | None = None) -> list[Silence]:
        self.require_store()
        assert self.silences is not None
        await self.silences.load()
        return self.silences.active_in(project)

    async def ended_silences(self, *, project: str | None = None, limit: int = 50) -> list[Silence]:
        """The silences that have ended (expired or ended by hand), most recently ended first."""
        self.require_store()
        assert self.silences is not None
        return await self.silences.ended(project, limit)

    async def message(self, message_id: str, *, project: str | None = None) -> dict[str, Any]:
        """The message with its deliveries and acks, and its ``status``: ``routed``, or for a
        scheduled one ``scheduled``/``cancelled``/``failed`` with ``send_at``."""
        async with self.require_store().read() as conn:
            found = await queries.get_message(conn, message_id, project)
            found.update(await schedule_of(conn, message_id) or {"status": "routed"})
            return found

    async def deliveries(self, **filters: Any) -> dict[str, Any]:
        async with self.require_store().read() as conn:
            return await queries.list_deliveries(conn, **filters)

    async def message_list(self, **filters: Any) -> dict[str, Any]:
        """Messages newest first with their deliveries counted (see :func:`queries.list_messages`)."""
        async with self.require_store().read() as conn:
            return await queries.list_messages(conn, **filters)

    async def delivery_summary(self, **filters: Any) -> dict[str, Any]:
        """Deliveries per minute by status, what waits, what is dead (see :func:`stats.delivery_summary`)."""
        async with self.require_store().read() as conn:
            return await stats.delivery_summary(conn, **filters)

    async def delivery(self, delivery_id: str, *, project: str | None = None) -> dict[str, Any]:
        async with self.require_store().read() as conn:
            return await queries.get_delivery(conn, delivery_id, project)

    async def resolve_id(self, kind: str, given: str) -> str:
        """The full id of a message, delivery, event, silence or token from a unique prefix."""
        from .store.lookup import resolve_id

        async with self.require_store().read() as conn:
            return await resolve_id(conn, kind, given)

    async def inbox(self, *, project: str | None = None, **filters: Any) -> dict[str, Any]:
        own = self.integrations_of(project) if project is not None else ()
        async with self.require_store().read() as conn:
            return await queries.list_inbox(conn, project=project, own=own, **filters)

    async def queue_gauges(self) -> tuple[dict[str, int], float]:
        async with self.require_store().read() as conn:
            return await stats.queue_gauges(conn)
