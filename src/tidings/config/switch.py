"""Building a hub's integrations and switching a running hub to another configuration.

:func:`apply_config` rebuilds only the integrations whose settings changed (as validated, with
``${vault:NAME}`` still a reference: a rotated secret is the vault watch's business), keeps the
others as the very same objects, and swaps the hub's configuration, router, integration maps and
revision in one synchronous block: a message is routed by the old routes or by the new ones,
never by a mix. The dispatcher's lanes change in the same block (:meth:`Dispatcher.update`).

What the change leaves behind is cleaned up in the background (:class:`Switch`): the sends still
under way through a replaced or removed integration finish and are recorded, then its workers
end and the old object is closed (its HTTP session with it); the waiting deliveries of a removed
integration end ``held`` (``delivery/holds.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from ..acks import ack_links
from ..integrations.base import Context, Integration, Notifier, secret_refs
from ..integrations.receiver import Receiver
from ..integrations.registry import integration_class
from ..recipients.teams import TeamsUrls
from ..routing import Router
from ..security.outbound import Destinations
from ..security.redact import clip, register
from ..threads import Threads
from .models import Config

if TYPE_CHECKING:
    from ..delivery.lanes import Lane
    from ..hub import Hub

log = structlog.get_logger("tidings.config")

CLOSE_WAIT = 10.0
"""How long a switch waits for event handlers using a replaced receiver before closing it."""


@dataclass
class Switch:
    """What :func:`apply_config` changed; ``cleanup`` ends once the old integrations are closed."""

    revision: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    routes_changed: bool = False
    cleanup: asyncio.Task[None] | None = None

    async def done(self) -> None:
        """Until the sends through the old integrations are over and those are closed."""
        if self.cleanup is not None:
            await asyncio.shield(self.cleanup)


def compare(old: Config, new: Config) -> tuple[list[str], list[str], list[str]]:
    """The integrations ``new`` adds, removes and changes (their validated settings differ)."""
    added = [n for n in new.integrations if n not in old.integrations]
    removed = [n for n in old.integrations if n not in new.integrations]
    changed = [n for n, s in new.integrations.items() if n in old.integrations and not same(old.integrations[n], s)]
    return added, removed, changed


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a.model_dump() == b.model_dump()


def context_of(hub: Hub) -> Context:
    """The context every integration of ``hub`` shares (made once)."""
    if hub._context is None:
        assert hub.store is not None
        hub._context = Context(
            store=hub.store,
            threads=Threads(hub.store),
            destinations=Destinations.parse(hub.config.server.allow_destinations),
            oauth=dict(hub.config.oauth),
            ack_link=ack_links(hub),
            person_url=TeamsUrls(hub),
        )
    return hub._context


async def build_integrations(hub: Hub, config: Config, names: list[str] | None = None) -> dict[str, Integration]:
    """Build ``names`` (default: all) of ``config``'s integrations, ``${vault:NAME}`` resolved
    (``hub.vault_watch.refs`` must name their references already)."""
    assert hub.vault_watch is not None
    context = context_of(hub)
    context.oauth = dict(config.oauth)  # the registrations of the config being built (a switch may change them)
    out: dict[str, Integration] = {}
    for name in config.integrations if names is None else names:
        settings = await hub.vault_watch.resolve(name, config.integrations[name])
        secrets = settings.secret_values()
        register(secrets)
        context.secrets.update(secrets)
        out[name] = integration_class(settings.kind)(name, settings, context)
    return out


def senders(integrations: dict[str, Integration]) -> dict[str, Notifier]:
    return {n: i for n, i in integrations.items() if isinstance(i, Notifier) and i.can_send(i.settings)}


def receivers(integrations: dict[str, Integration]) -> dict[str, Receiver]:
    return {n: i for n, i in integrations.items() if isinstance(i, Receiver) and i.can_receive(i.settings)}


async def apply_config(hub: Hub, config: Config, revision: int) -> Switch:
    """Run ``config`` (revision ``revision``) from now on. Raises (a ``${vault:NAME}`` that
    can't be read...) before anything changed: the hub then runs what it ran."""
    assert hub.store is not None and hub.vault_watch is not None
    watch = hub.vault_watch
    async with hub._switching, watch._checking:
        old = hub.config
        added, removed, changed = compare(old, config)
        switch = Switch(revision, added, removed, changed,
                        routes_changed=old.routes != config.routes or old.default != config.default)
        saved = dict(watch.refs)
        for name in (*removed, *changed):
            watch.refs.pop(name, None)
        for name in (*added, *changed):
            if refs := secret_refs(name, config.integrations[name]):
                watch.refs[name] = refs
        try:
            built = await build_integrations(hub, config, [*added, *changed])
        except BaseException:
            watch.refs = saved
            raise
        # One synchronous block: no await from here to the end of the swap.
        before = hub._integrations
        integrations = {n: built[n] if n in built else before[n] for n in config.integrations}
        gone = [before[n] for n in (*removed, *changed)]
        gone_senders = [n for n in removed if n in hub.notifiers]
        hub.config = config
        hub.router = Router(config)
        hub._integrations = integrations
        hub.notifiers = senders(integrations)
        hub.receivers = receivers(integrations)
        hub.revision = revision
        if hub.grouper is not None:
            hub.grouper.router = hub.router
        if hub.events is not None:
            hub.events.receivers = hub.receivers
        retired = hub.dispatcher.update(hub.notifiers.values()) if hub.dispatcher is not None else []
    if added or changed or removed or switch.routes_changed:
        log.info("config.switched", revision=revision, added=added, removed=removed, changed=changed,
                 routes_changed=switch.routes_changed)
    if hub.started and not hub._stopping:
        watch.start()  # a first ${vault:NAME} reference: follow its rotations from now on
    switch.cleanup = asyncio.create_task(_clean_up(hub, retired, gone, gone_senders, [*added, *changed]),
                                         name=f"tidings-switch-{revision}")
    hub._cleanups.add(switch.cleanup)
    switch.cleanup.add_done_callback(hub._cleanups.discard)
    if added or changed:
        await _make_projects(hub)
    hub.wake_events()
    if hub.dispatcher is not None:
        hub.dispatcher.wake()
    return switch


async def _clean_up(hub: Hub, retired: list[Lane], gone: list[Integration], removed: list[str], new: list[str]) -> None:
    try:
        if hub.dispatcher is not None and retired:
            await hub.dispatcher.retire(retired)
        if hub.events is not None and gone:
            running = set(hub.events._running)
            if running:
                await asyncio.wait(running, timeout=CLOSE_WAIT)
        if removed and hub.store is not None:
            # Messages routed by the old routes while they switched are stored by now: hold them too.
            from ..delivery.holds import hold_removed

            await hub.store.drain(hub.config.dispatcher.shutdown_timeout)
            async with hub.store.write() as conn:
                held = await hold_removed(conn, removed)
            if held:
                log.info("config.deliveries_held", integrations=removed, count=held)
        if new and hub.vault_watch is not None:
            await hub.vault_watch.mark_used(new)
    except Exception as exc:  # what is left waiting is held by the next flush or revision commit
        log.warning("config.cleanup_failed", error=clip(f"{type(exc).__name__}: {exc}", 300))
    finally:
        for integration in gone:
            try:
                await integration.close()
            except Exception as exc:
                log.warning("hub.close_failed", integration=integration.name, error=clip(str(exc), 300))


async def _make_projects(hub: Hub) -> None:
    with contextlib.suppress(Exception):
        await hub._make_projects()
