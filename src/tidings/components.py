"""What a started hub runs beside its writer: the dispatcher and the background components.

``start`` makes them in the order they depend on each other. Stopping is in two steps so that
nothing accepted is lost: ``stop_feeders`` stops whatever notifies (inbound event handlers, the
grouper, escalations, schedules, sync...) while the hub still takes messages; the hub then stops
taking them and ``stop_rest`` lets accepted messages commit, stops the dispatcher (which sends or
hands back what it holds) and closes the integrations and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from .audit.checkpointer import checkpointer_for
from .config.live import ConfigWatcher
from .delivery.digest import Grouper
from .delivery.dispatcher import Dispatcher
from .delivery.escalation import Escalator
from .delivery.schedule import Scheduler
from .inbound import EventProcessor
from .recipients.addressing import Addresser
from .retention import Pruner

if TYPE_CHECKING:
    from .hub import Hub

log = structlog.get_logger("tidings.hub")


class _Stoppable(Protocol):
    async def stop(self) -> Any: ...


async def _stop(*components: _Stoppable | None) -> None:
    """Stop each component that was made, in this order."""
    for component in components:
        if component is not None:
            await component.stop()


async def start(hub: Hub) -> None:
    assert hub.store is not None
    if hub.silences is not None:
        hub.silences.start()
    if hub.directory is not None:
        hub.directory.start()
    if hub.vault_watch is not None:
        hub.vault_watch.start()
    from .watch import Watch

    hub.watch = Watch(hub)
    hub.watch.start()
    poll = hub.config.dispatcher.poll_interval
    if hub.dispatch:
        hub.dispatcher = Dispatcher(
            hub.store,
            hub.notifiers.values(),
            hub.config.dispatcher,
            metrics=hub.metrics,
            on_flush=hub._notify_flushed,
            routes=lambda route: hub.router.options_for(route),  # the router running now
            address=Addresser(hub),
        )
        if hub.vault_watch is not None:
            hub.dispatcher.before_enabled = hub.vault_watch.check
        hub.dispatcher.on_recorded = hub.watch.recorded
        hub.dispatcher.circuits.on_transition = hub.watch.circuit
        await hub.dispatcher.start()
        hub.grouper = Grouper(hub.store, hub.router, lease=hub.dispatcher.lease, take=hub._handoff, poll_interval=poll)
        hub.grouper.start()
        hub.escalator = Escalator(hub, hub.dispatcher.owner, poll_interval=poll)
        hub.escalator.start()
        hub.scheduler = Scheduler(hub, owner=hub.dispatcher.owner, poll_interval=poll)
        hub.scheduler.start()
        hub.events = EventProcessor(hub, hub.receivers, poll_interval=poll)
        hub.events.start()
        from .sync.service import SyncService

        hub.sync = SyncService(hub)
        hub.sync.start()
        from .calendars.reconcile import Reconciler

        hub.calendars = Reconciler(hub)
        hub.calendars.start()
        from .oauth.keeper import Keeper

        hub.keeper = Keeper(hub)
        hub.keeper.start()
        hub.pruner = Pruner(hub.store, hub.config.retention, hub.metrics)
        hub.pruner.start()
        hub.checkpointer = checkpointer_for(hub.store, hub.config_dir, hub.config.audit, poll=max(1.0, poll * 5),
                                            archive=hub._audit_archive())
        if hub.checkpointer is not None:
            hub.checkpointer.start()
    if hub._watch:
        hub.watcher = ConfigWatcher(hub, owner=hub.dispatcher.owner if hub.dispatcher else None,
                                    **hub._watch_options)  # type: ignore[arg-type]
        hub.watcher.start()


async def stop_feeders(hub: Hub) -> None:
    """Stop what watches the hub or gives it messages (the hub still takes them meanwhile)."""
    await _stop(hub.watcher, hub.watch, hub.vault_watch, hub.events, hub.sync, hub.calendars, hub.keeper, hub.grouper,
                hub.escalator, hub.scheduler)


async def stop_rest(hub: Hub, timeout: float | None) -> None:
    """Stop the rest once the hub takes no more messages; close the integrations and the store."""
    await _stop(hub.pruner, hub.checkpointer)
    if hub.store is not None:
        # Messages already accepted finish their transaction first: the dispatcher then sends or
        # hands back their deliveries instead of leaving them leased to nobody.
        await hub.store.drain(hub.config.dispatcher.shutdown_timeout)
    if hub.dispatcher is not None:
        await hub.dispatcher.stop(timeout)
    for cleanup in list(hub._cleanups):  # a switch's: its old integrations get closed
        cleanup.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cleanup
    await _stop(hub.silences, hub.directory)
    for integration in hub._integrations.values():
        try:
            await integration.close()
        except Exception as exc:  # closing must not hide the rest of shutdown
            log.warning("hub.close_failed", integration=integration.name, error=str(exc))
    if hub.store is not None:
        await hub.store.close()
