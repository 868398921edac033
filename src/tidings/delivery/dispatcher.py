"""The dispatcher: claim due deliveries, send them within each integration's limits, record the
outcomes in batches.

One loop claims (most urgent first) as long as there is room and queues each delivery on its
integration's *lane* (``lanes.py``: a circuit breaker, a rate limit, and as many worker coroutines
as the integration's concurrency; a worker of a :class:`~tidings.integrations.base.BatchNotifier`
sends what its lane has queued in one request, each delivery with its own outcome). Results collect
in memory and a flusher writes them with one statement per batch (``recording.py``). A watchdog
cancels a send that outlives its integration's timeout. A delivery whose outcome was never written
(crash, kill -9) comes back when its lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import structlog

from ..background import Loads, wait_at_most
from ..config.models import DispatcherSettings
from ..integrations.base import BatchNotifier, Notifier, Outcome
from ..message import Message
from ..metrics import Metrics
from ..routing import NO_ROUTE, RouteOptions
from ..security.redact import clip, register
from ..store.engine import Store
from ..store.tables import integration_state
from . import circuits, outbox
from .lanes import Lane, lane_for
from .outbox import Claimed, Result
from .recording import Recorder
from .sending import DISABLED_REFRESH, TIMEOUT_GRACE, Sending
from .throttle import SharedLimits

log = structlog.get_logger("tidings.dispatcher")


class Dispatcher(Sending):
    def __init__(
        self,
        store: Store,
        notifiers: Iterable[Notifier],
        settings: DispatcherSettings | None = None,
        *,
        metrics: Metrics | None = None,
        owner: str | None = None,
        on_flush: Callable[[], None] | None = None,
        routes: Callable[[str | None], RouteOptions] = lambda _: NO_ROUTE,
        clock: Callable[[], float] = time.time,
        address: Callable[[Notifier, Claimed, Message], Message | str] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or DispatcherSettings()
        self.metrics = metrics or Metrics()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        storage = self.settings.rate_limit_storage
        self.shared_limits = None
        if storage.startswith(("redis://", "rediss://")):
            password = urlsplit(storage).password
            if password:
                register([password])  # never in a log line
            self.shared_limits = SharedLimits(storage)
        self.lanes: dict[str, Lane] = {n.name: lane_for(n, self.shared_limits) for n in notifiers}
        self.routes = routes
        """Route name -> what the route adds (a template applied before the integration's own...)."""
        self.address = address
        """A delivery to a recipient: the message as sent to them, or why it can't be (``recipients/addressing.py``)."""
        self._on_flush = on_flush
        self._clock = clock
        self._wake = asyncio.Event()
        self._timed_out: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._watchdog_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._starved = False
        self._disabled_checked = 0.0
        self._disabled_loads = Loads()
        self.before_enabled: Callable[[], Awaitable[list[str]]] | None = None
        """Applies rotated secrets now; the integrations that took new ones (the hub: its vault watch).
        Called before lanes another process enabled send again, and before a send's refusal disables
        an integration: a refusal of credentials this process had not caught up with (an OAuth connect
        or refresh elsewhere a moment ago) is tried again with the new ones instead."""
        self.recorder = Recorder(self)
        self.on_recorded: Callable[[list[Result]], None] | None = None
        """Told the outcomes of each committed batch (the watch: failing, dead, recovered)."""
        self._inflight = 0
        self._retired: list[Lane] = []
        """Lanes a configuration change replaced or removed whose sends are not over yet."""
        self.circuits = circuits.Circuits(store, [lane.breaker for lane in self.lanes.values()], self.wake, clock)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self._refresh_disabled(force=True)
        await self.circuits.sync(force=True)
        self._loop_task = asyncio.create_task(self._claim_loop(), name="tidings-dispatcher")
        self._flush_task = asyncio.create_task(self.recorder.loop(), name="tidings-flusher")
        self._watchdog_task = asyncio.create_task(self._watchdog(), name="tidings-watchdog")

    async def stop(self, timeout: float | None = None) -> None:
        """Stop claiming, hand back what hasn't started, give in-flight sends up to ``timeout`` to
        finish, hand the rest back too, and write every outcome."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        now = self._clock()
        lanes = [*self.lanes.values(), *self._retired]
        for lane in lanes:
            while lane.queue:
                self._done(lane, self._release(lane.queue.popleft(), now, None))
        deadline = time.monotonic() + timeout
        while any(lane.sending for lane in lanes) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        workers = [w for lane in lanes for w in lane.workers]
        for task in [self._watchdog_task, *workers]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await self.circuits.close()
        if self._flush_task is not None:
            self._flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush_task
        for _ in range(3):
            try:
                await self.recorder.flush()
                break
            except Exception as exc:  # the leases bring the deliveries back; nothing is lost
                log.warning("dispatcher.final_flush_failed", error=str(exc))
                await asyncio.sleep(0.2)
        if self.shared_limits is not None:
            await self.shared_limits.close()

    def wake(self) -> None:
        """Look for work now (called after this process stored new deliveries)."""
        self._wake.set()

    def set_enabled(self, integration: str, enabled: bool) -> None:
        """Follow an enable or disable this process just committed at once (other processes read
        it from ``integration_state`` within ``DISABLED_REFRESH``); enabling looks for work now."""
        lane = self.lanes.get(integration)
        if lane is not None:
            lane.disabled = not enabled
        self._disabled_loads.show(self._disabled_loads.begin())  # newer than a read under way
        if enabled:
            self.wake()

    def breaker_state(self, integration: str) -> str | None:
        """This process's view of the breaker (every process's: ``circuits.circuits``)."""
        lane = self.lanes.get(integration)
        return lane.breaker.state if lane else None

    @property
    def inflight(self) -> int:
        """Deliveries held by all lanes: queued or being sent."""
        return self._inflight

    # -- configuration changes -----------------------------------------------------------------
    def update(self, notifiers: Iterable[Notifier]) -> list[Lane]:
        """Send through ``notifiers`` from now on (a new configuration revision), synchronously:
        a new lane for each notifier without one, a new lane (limits, breaker) for each whose
        object changed, and the lanes of the rest retired. A retired lane hands its queued
        deliveries back now; its sends under way go on: :meth:`retire` waits for them. Returns
        the retired lanes."""
        wanted = {n.name: n for n in notifiers}
        retired: list[Lane] = []
        for name, lane in list(self.lanes.items()):
            if wanted.get(name) is not lane.notifier:
                retired.append(self.lanes.pop(name))
        now = self._clock()
        for lane in retired:
            lane.drained = asyncio.Event()
            while lane.queue:
                self._done(lane, self._release(lane.queue.popleft(), now, None))
            if lane.active == 0:
                lane.drained.set()
            self.circuits.breakers.pop(lane.notifier.name, None)
            self._retired.append(lane)
        added = False
        for name, notifier in wanted.items():
            if name in self.lanes:
                continue
            lane = self.lanes[name] = lane_for(notifier, self.shared_limits)
            old = next((r for r in retired if r.notifier.name == name), None)
            lane.disabled = old.disabled if old is not None else False
            self.circuits.breakers[name] = lane.breaker
            added = True
        if added:
            self._disabled_checked = 0.0  # read which are disabled, and the breakers, at the next claim
            self.circuits._read_at = float("-inf")
        self.wake()
        return retired

    async def retire(self, lanes: Iterable[Lane]) -> None:
        """Wait until the sends under way on ``lanes`` (from :meth:`update`) are over and their
        outcomes flushed, then end their workers. Their notifiers stay open: closing is the
        caller's (the hub closes the integrations it no longer runs)."""
        lanes = list(lanes)
        for lane in lanes:
            if lane.drained is not None:
                await lane.drained.wait()
            for worker in lane.workers:
                worker.cancel()
            await asyncio.gather(*lane.workers, return_exceptions=True)
            lane.workers = []
            with contextlib.suppress(ValueError):
                self._retired.remove(lane)
        if lanes:
            await self.recorder.flush()

    # -- claiming --------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        s = self.settings
        while not self._stopping:
            await self.circuits.sync()
            room, threshold = self._room()
            if room < threshold:
                # Wait for in-flight sends to free a useful amount of room, not for each one.
                self._starved = True
                await self._sleep(self.circuits.until_half_open(s.poll_interval))
                self._starved = False
                continue
            limit = min(s.batch, room)
            try:
                claimed = await self._claim_once(limit)
            except Exception as exc:
                log.error("dispatcher.claim_failed", error=str(exc))
                await self._sleep(s.poll_interval)
                continue
            if claimed == limit:
                continue
            await self._sleep(await self._idle_time())

    def _room(self) -> tuple[int, int]:
        """How many more deliveries to claim now, and the least worth a query."""
        capacity = free = 0
        for lane in self.lanes.values():
            if lane.accepting:
                capacity += lane.capacity
                free += lane.capacity - lane.active
        room = min(self.settings.max_inflight - self.inflight, free)
        # Never above what max_inflight can ever leave room for: the claim loop would wait forever.
        return room, max(1, min(self.settings.batch, capacity, self.settings.max_inflight) // 4)

    async def _claim_once(self, limit: int) -> int:
        await self._refresh_disabled()
        names = [name for name, lane in self.lanes.items() if lane.accepting]
        if not names:
            return 0
        now = self._clock()
        async with self.store.write() as conn:
            rows = await outbox.claim(conn, self.owner, names, limit, now, self.settings.lease)
        self.take(rows)
        if len(rows) < limit:
            # A switch may have retired some of ``names``' lanes while the claim ran.
            await self.circuits.probe([n for n in names if (lane := self.lanes.get(n)) is not None and lane.active == 0])
        return len(rows)

    def lease(self) -> outbox.Lease:
        """Lets this process's writer lease new deliveries straight to this dispatcher."""
        return outbox.Lease(self.owner, self.settings.lease, self._wants)

    def _wants(self, integration: str) -> bool:
        lane = self.lanes.get(integration)
        return (
            not self._stopping
            and lane is not None
            and lane.accepting
            and self.inflight < self.settings.max_inflight
        )

    def take(self, claimed: Iterable[Claimed]) -> None:
        """Queue deliveries leased to this dispatcher on their lanes (one leased just before a
        configuration change retired its lane goes back to the queue)."""
        for c in claimed:
            lane = self.lanes.get(c.integration)
            if lane is None:
                self.recorder.queue(self._release(c, self._clock(), None))
                continue
            lane.active += 1
            self._inflight += 1
            lane.put(c)
            if not lane.workers:
                lane.workers = [
                    asyncio.create_task(self._work(lane), name=f"tidings-{lane.notifier.name}-{i}")
                    for i in range(lane.concurrency)
                ]

    def _done(self, lane: Lane, result: Result) -> None:
        lane.active -= 1
        self._inflight -= 1
        self.recorder.queue(result)
        if lane.drained is not None and lane.active == 0:
            lane.drained.set()
        if self._starved:
            room, threshold = self._room()
            if room >= threshold:
                self._wake.set()

    async def _idle_time(self) -> float:
        poll = self.circuits.until_half_open(self.settings.poll_interval)
        names = [name for name, lane in self.lanes.items() if lane.accepting]
        if not names:
            return poll
        try:
            async with self.store.read() as conn:
                due = await outbox.next_due(conn, names, self._clock())
        except Exception:
            return poll
        if due is None:
            return poll
        return max(0.0, min(poll, due - self._clock()))

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0 or self._stopping:
            self._wake.clear()
            return
        await wait_at_most(self._wake.wait(), seconds)
        self._wake.clear()

    async def _fresh_secrets(self) -> list[str]:
        """The integrations that took rotated secrets just now (:attr:`before_enabled`)."""
        if self.before_enabled is None:
            return []
        try:
            return await self.before_enabled()
        except Exception as exc:  # a send without them says why
            log.warning("dispatcher.secrets_not_checked", error=clip(f"{type(exc).__name__}: {exc}", 300))
            return []

    async def _refresh_disabled(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._disabled_checked < DISABLED_REFRESH:
            return
        self._disabled_checked = now
        from sqlalchemy import select

        load = self._disabled_loads.begin()
        async with self.store.read() as conn:
            rows = await conn.execute(select(integration_state.c.name).where(integration_state.c.disabled.is_(True)))
            disabled = {r.name for r in rows}
        if not self._disabled_loads.show(load):  # set_enabled told newer meanwhile
            return
        if any(lane.disabled and name not in disabled for name, lane in self.lanes.items()):
            await self._fresh_secrets()
        for name, lane in self.lanes.items():
            lane.disabled = name in disabled

    # -- sending ---------------------------------------------------------------------------
    async def _work(self, lane: Lane) -> None:
        """One of a lane's workers: send what is queued, one delivery at a time (a
        :class:`BatchNotifier`'s: what is queued, up to its batch, in one request)."""
        me = asyncio.current_task()
        assert me is not None
        batching = isinstance(lane.notifier, BatchNotifier)
        while True:
            c = await lane.get()
            group = [c]  # taken from the queue and not yet in results (a batch takes more)
            results: list[Result] = []
            try:
                if batching:
                    await self._attempt_batch(lane, group, results, me)
                else:
                    results.append(await self._attempt(lane, c, me))
                    group.clear()
            except asyncio.CancelledError:
                if me not in self._timed_out:
                    now = self._clock()
                    results += [self._release(c, now, "shutdown: handed back before the send finished") for c in group]
                    for result in results:
                        self._done(lane, result)
                    raise
                me.uncancel()
                timeout = lane.notifier.effective_timeout
                error = Outcome.retry(f"timed out after {timeout:g}s")
                results += [self._finish(lane, c, error, timeout + TIMEOUT_GRACE) for c in group]
            except Exception as exc:  # a bug of ours must not strand the delivery until its lease ends
                log.exception("dispatcher.attempt_failed", integration=c.integration, delivery=c.id)
                error = Outcome.retry(f"internal error: {type(exc).__name__}: {exc}")
                results += [self._finish(lane, c, error, None) for c in group]
            finally:
                lane.sending.pop(me, None)
                self._timed_out.discard(me)
            for result in results:
                self._done(lane, result)

    async def _watchdog(self) -> None:
        """Cancel sends that outlive their integration's timeout (a peer or library that hangs)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for lane in [*self.lanes.values(), *self._retired]:
                for worker, deadline in list(lane.sending.items()):
                    if now > deadline and worker not in self._timed_out:
                        log.warning("dispatcher.send_hung", integration=lane.notifier.name)
                        self._timed_out.add(worker)
                        worker.cancel()
