"""Running sync: what starts runs, and the record each leaves (DESIGN.md "Sync").

:class:`SyncService` (``hub.sync`` in a dispatching hub) runs four kinds of run, each one row of the
sync log (``sync/runs.py``):

- **sweep**: every mapping (a tracker integration with ``sync.enabled``) is swept every
  ``sync.interval`` from its high-water mark. Sweeps are claimed (``sync/cursors.py``), so any
  number of workers share the mappings and none runs twice at once.
- **webhook**: ``hint(integration, remote_id)``, from the GitHub and Jira receivers, re-fetches and
  syncs that item soon. Hints for one integration queue together: one run at a time, at most one
  starting per second, and an item already waiting is not queued twice.
- **local**: ``local_changed(change)``, after every committed task change, pushes the task to each
  tracker of its project but the one the change came from; queued like hints.
- **manual**: ``run_now`` sweeps now (under the same claim as sweeps); ``plan`` is a dry sweep
  that writes nothing and is not a run.

The set of trackers is read from the hub at every use, never kept: a configuration switch
(``config/switch.py``) replaces integration objects, and the next loop sees the new ones.
A mapping whose runs fail ``fail_after`` times in a row tells the project's owners through
tidings' own routes, at most once an hour.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select

from ..audit import SYSTEM, Actor
from ..audit.chain import append
from ..background import Background, wait_at_most
from ..errors import NotFound, TidingsError
from ..integrations.base import Tracker
from ..message import Message, Priority
from ..security.redact import clip
from ..store.pages import by_id
from ..store.tables import sync_conflicts, tasks
from . import cursors, runs
from .engine import Engine, RunState
from .model import AuthFailed, RateLimited, Unavailable, current_stats

if TYPE_CHECKING:
    from ..hub import Hub
    from .tasks import TaskChange

log = structlog.get_logger("tidings.sync")
BATCH = 100
"""Queued items taken into one webhook or local run."""
CLEANUP_EVERY = 600.0
"""How often the sweep loop marks webhook and local runs a dead process left ``running`` (runs.abandon_stale)."""
INTERRUPTED = "interrupted: the process stopped; the next sweep goes on from here"


class SyncRefused(TidingsError):
    """A sync request that can't be done now (a disabled mapping, a conflict already resolved)."""


def trackers_of(hub: Hub, project: str | None = None, *, enabled_only: bool = True) -> dict[str, Tracker]:
    """The hub's integrations that sync now (of ``project``, when given): a ``sync:`` block, and
    ``sync.enabled`` unless ``enabled_only`` is false."""
    out: dict[str, Tracker] = {}
    for name, x in list(hub._integrations.items()):
        if not isinstance(x, Tracker) or not x.can_sync(x.settings) or (project is not None and x.project != project):
            continue
        if enabled_only and not x.sync_settings.enabled:
            continue
        out[name] = x
    return out


def _describe(exc: BaseException) -> str:
    return clip(f"{type(exc).__name__}: {exc}".replace("\x00", ""), runs.ERROR_MAX)


@dataclass
class _Queue:
    """One integration's waiting webhook hints (or local changes): keys in arrival order."""

    keys: dict[str, None] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    not_before: float = 0.0


class SyncService(Background):
    task_name = "tidings-sync"

    def __init__(
        self, hub: Hub, *, poll: float | None = None, lease: float = 120.0, concurrency: int = 4,
        fail_after: int = 3, notice_every: float = 3600.0, window: float = 1.0,
    ) -> None:
        self.hub = hub
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}:sync"
        self.poll = poll if poll is not None else max(1.0, hub.config.dispatcher.poll_interval * 5)
        """How often the sweep loop looks for due mappings (also when new trackers appear)."""
        self.lease = lease
        self.concurrency = concurrency
        self.fail_after = fail_after
        self.notice_every = notice_every
        self.window = window
        """At most one webhook (or local) run starts per integration in this many seconds."""
        self._wake = asyncio.Event()
        self._engines: weakref.WeakKeyDictionary[Tracker, Engine] = weakref.WeakKeyDictionary()
        self._queues: dict[tuple[str, str], _Queue] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self._sweeping: set[str] = set()
        self._known: dict[str, str] = {}
        self._next_cleanup = 0.0

    @classmethod
    def of(cls, hub: Hub) -> SyncService:
        """The hub's service; a hub that does not dispatch gets one without the sweep loop (for
        manual runs, plans and conflicts from the API or the CLI)."""
        service: SyncService | None = getattr(hub, "sync", None)
        if service is None:
            service = hub.sync = cls(hub)
        return service

    def trackers(self, project: str | None = None, *, enabled_only: bool = True) -> dict[str, Tracker]:
        return trackers_of(self.hub, project, enabled_only=enabled_only)

    def engine(self, tracker: Tracker) -> Engine:
        """The engine of ``tracker`` (a new one for a rebuilt integration object)."""
        engine = self._engines.get(tracker)
        if engine is None:
            engine = self._engines[tracker] = Engine(self.hub, tracker)
        return engine

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and the runs under way; each is recorded as interrupted and its mapping
        is due again at once (another worker goes on from its mark)."""
        await super().stop()
        for queue in self._queues.values():
            queue.keys.clear()
        running = set(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=timeout)

    async def settle(self, timeout: float | None = None) -> None:
        """Until every run this process started has ended (the CLI waits for its manual runs)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._running:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("sync runs still under way")
            await asyncio.wait(set(self._running), timeout=left)

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    # -- sweeps -----------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            wait = self.poll
            try:
                wait = await self._tick()
            except Exception as exc:
                log.error("sync.claim_failed", error=_describe(exc))
            await wait_at_most(self._wake.wait(), wait)

    async def _tick(self) -> float:
        """Claim and start the due sweeps there is room for; how long until the next may be due."""
        trackers = self.trackers()
        store = self.hub.require_store()
        now = time.time()
        new = {n: t.project for n, t in trackers.items() if self._known.get(n) != t.project}
        if new:
            async with store.write() as conn:
                await cursors.ensure(conn, new, now)
            self._known.update(new)
        if now >= self._next_cleanup:
            self._next_cleanup = now + CLEANUP_EVERY
            async with store.write() as conn:
                await runs.abandon_stale(conn, list(trackers), now)
        names = [n for n in trackers if n not in self._sweeping]
        async with store.read() as conn:
            due = await cursors.next_due(conn, names)
        free = self.concurrency - len(self._sweeping)
        if due is None or free <= 0:
            return self.poll
        if due <= now:
            started = []
            async with store.write() as conn:
                for row in await cursors.claim_due(conn, names, self.owner, self.lease, now, free):
                    tracker = trackers[row.integration]
                    run_id = await runs.insert_run(conn, tracker.project, tracker.name, "sweep", now=now)
                    await cursors.started(conn, tracker.name, run_id)
                    started.append((tracker, row, run_id))
            for tracker, row, run_id in started:
                self._start_sweep(tracker, row, run_id, "sweep")
            return 0.0 if len(started) == free else self.poll  # room left: look again
        return max(0.0, min(self.poll, due - now))

    def _start_sweep(self, tracker: Tracker, row: Any, run_id: str, trigger: str) -> None:
        name = tracker.name
        self._sweeping.add(name)
        task = self._spawn(self._sweep(tracker, row, run_id, trigger), f"tidings-sync-{trigger}-{name}")

        def ended(_: object) -> None:
            self._sweeping.discard(name)
            self._wake.set()

        task.add_done_callback(ended)

    async def _sweep(self, tracker: Tracker, row: Any, run_id: str, trigger: str) -> None:
        run = RunState(trigger, mark=row.mark, list_etag=row.list_etag)
        keeper = asyncio.create_task(self._keep_claim(tracker.name))
        try:
            await self._execute(tracker, run_id, run, lambda engine: engine.sweep(run, row.mark, row.list_etag),
                                sweep=True)
        finally:
            keeper.cancel()

    async def _keep_claim(self, name: str) -> None:
        """Renew the claim while the sweep runs, so no other worker takes it meanwhile."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                async with self.hub.require_store().write() as conn:
                    if not await cursors.renew(conn, name, self.owner, self.lease, time.time()):
                        log.warning("sync.claim_lost", integration=name)
            except Exception as exc:
                log.warning("sync.claim_not_renewed", integration=name, error=_describe(exc))

    async def _execute(
        self, tracker: Tracker, run_id: str, run: RunState, work: Callable[[Engine], Awaitable[Any]], *,
        sweep: bool = False,
    ) -> None:
        """Do ``work`` as run ``run_id`` (its API calls counted on ``run.stats``) and record how it
        ended; a sweep also moves its mapping's cursor on and hands its claim back."""
        token = current_stats.set(run.stats)
        error: str | None = None
        interrupted = False
        try:
            await work(self.engine(tracker))
        except asyncio.CancelledError:
            error, interrupted = INTERRUPTED, True
        except Exception as exc:
            error = _describe(exc)
            log.warning("sync.run_failed", integration=tracker.name, run=run_id, trigger=run.trigger, error=error)
        finally:
            current_stats.reset(token)
        status = runs.status_of(run, error)
        now = time.time()
        notify = False
        async with self.hub.require_store().write() as conn:
            await runs.record_finish(conn, run_id, run, status, error)
            failures = 0 if interrupted else await runs.count_outcome(conn, tracker.name, status)
            if sweep:
                interval = float(tracker.sync_settings.interval)
                next_at = now if interrupted else (run.resume_at or now + interval) if status == "rate_limited" \
                    else now + interval
                # The first page's ETag only after a clean sweep: a 304 must not hide items that failed.
                await cursors.release(conn, tracker.name, self.owner, next_run_at=next_at, mark=run.mark,
                                      list_etag=run.list_etag if status == "ok" else None)
            if status == "failed" and failures >= self.fail_after:
                notify = await cursors.claim_notice(conn, tracker.name, self.fail_after, now, self.notice_every)
        log.info("sync.run", integration=tracker.name, run=run_id, trigger=run.trigger, status=status,
                 created=run.created, updated=run.updated, errors=run.errors, api_calls=run.stats.api_calls)
        watch = self.hub.watch
        if watch is not None and not interrupted:
            watch.sync_run(tracker.project, tracker.name, status, error)
            notify = notify and not watch.alerting(tracker.project)  # alerts_to hears it from the watch instead
        if notify:
            await self._tell_owners(tracker, failures, error)
        if interrupted:
            raise asyncio.CancelledError

    async def _tell_owners(self, tracker: Tracker, failures: int, error: str | None) -> None:
        """A message routed in the mapping's project (``source: tidings``, ``event_type:
        sync.failing``), naming its owners."""
        from ..accounts.projects import list_members

        try:
            async with self.hub.require_store().read() as conn:
                owners = [m["email"] for m in await list_members(conn, tracker.project) if m["role"] == "owner"]
            message = Message(
                title=f"Sync of {tracker.name} keeps failing",
                body=f"The last {failures} sync runs of {tracker.name} (project {tracker.project}) failed.\n"
                     f"Last error: {error or 'unknown'}\nSee `tidings sync log {tracker.project}`.",
                priority=Priority.HIGH,
                labels={"source": "tidings", "event_type": "sync.failing", "integration": tracker.name,
                        "owners": clip(", ".join(owners), 500) or "none"},
                fields={"owners": clip(", ".join(owners), 1000) or "none", "failures in a row": str(failures)},
                thread_key=f"sync-failing:{tracker.name}",
            )
            await self.hub.notify(message, project=tracker.project)
        except Exception as exc:  # the run is recorded; the notice waits for the next failure after the hour
            log.error("sync.notice_failed", integration=tracker.name, error=_describe(exc))

    # -- webhook hints and local changes ---------------------------------------------------------
    def hint(self, integration: str, remote_id: str) -> None:
        """Sync item ``remote_id`` of ``integration`` soon (a webhook said it changed). Returns at
        once; an item already waiting is not queued twice."""
        if integration in self.trackers():
            self._enqueue(integration, "webhook", str(remote_id))

    def local_changed(self, change: TaskChange) -> None:
        """Push a committed task change to every tracker of its project but the one it came from."""
        for name in self.trackers(change.task["project"]):
            if name != change.origin:
                self._enqueue(name, "local", change.task["id"])

    def _enqueue(self, integration: str, trigger: str, key: str) -> None:
        queue = self._queues.setdefault((integration, trigger), _Queue())
        if key in queue.keys:
            return
        queue.keys[key] = None
        if queue.task is None:
            queue.task = self._spawn(self._drain(integration, trigger, queue), f"tidings-sync-{trigger}-{integration}")

    async def _drain(self, integration: str, trigger: str, queue: _Queue) -> None:
        try:
            while queue.keys:
                wait = queue.not_before - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                tracker = self.trackers().get(integration)
                if tracker is None:  # left the configuration, or stopped syncing: the sweep repairs later
                    queue.keys.clear()
                    break
                keys = list(itertools.islice(queue.keys, BATCH))
                for key in keys:
                    del queue.keys[key]
                began = time.time()
                try:
                    run = await self._items(tracker, trigger, keys, queue)
                except Exception as exc:  # the store failed: these items wait for the next sweep
                    log.error("sync.run_not_recorded", integration=integration, trigger=trigger, error=_describe(exc))
                    queue.not_before = began + self.window
                    continue
                queue.not_before = max(began + self.window, run.resume_at or 0.0)
        finally:
            queue.task = None
            if not queue.keys:
                self._queues.pop((integration, trigger), None)

    async def _items(self, tracker: Tracker, trigger: str, keys: list[str], queue: _Queue) -> RunState:
        """One run over queued ``keys``. A rate limit puts what is left back in front of the queue
        (it goes on once the limit resets); a refused credential or a peer down fails the run."""
        async with self.hub.require_store().write() as conn:
            await cursors.ensure(conn, {tracker.name: tracker.project}, time.time())
            run_id = await runs.insert_run(conn, tracker.project, tracker.name, trigger)
        run = RunState(trigger)
        what = "remote" if trigger == "webhook" else "task"

        async def work(engine: Engine) -> None:
            for i, key in enumerate(keys):
                try:
                    if trigger == "webhook":
                        await engine.sync_remote_id(key, run)
                    else:
                        await engine.push_task(key, run)
                except RateLimited as exc:
                    run.stopped = clip(f"rate limited: {exc}", 500)
                    run.resume_at = time.time() + max(0.0, exc.wait)
                    queue.keys = dict.fromkeys([*keys[i:], *queue.keys])
                    return
                except (AuthFailed, Unavailable):
                    raise
                except Exception as exc:
                    run.errors += 1
                    run.problems.append({what: key, "error": _describe(exc)})

        await self._execute(tracker, run_id, run, work)
        return run

    # -- manual runs, plans, conflicts ------------------------------------------------------------
    def _chosen(self, project: str, integration: str | None, *, enabled_only: bool) -> dict[str, Tracker]:
        every = self.trackers(project, enabled_only=False)
        if integration is None:
            return {n: t for n, t in every.items() if t.sync_settings.enabled or not enabled_only}
        tracker = every.get(integration)
        if tracker is None:
            raise NotFound(f"no sync mapping {integration!r} in project {project!r}")
        if enabled_only and not tracker.sync_settings.enabled:
            raise SyncRefused(f"the sync of {integration!r} is disabled (sync.enabled: false); a plan still works")
        return {integration: tracker}

    async def run_now(self, project: str, integration: str | None = None, *, actor: Actor = SYSTEM) -> list[str]:
        """Sweep ``project``'s mappings (or ``integration``'s) now, in the background, audited as
        ``sync.run``; the run ids. A mapping a worker sweeps already answers that run's id."""
        trackers = self._chosen(project, integration, enabled_only=True)
        now = time.time()
        ids: list[str] = []
        claimed = []
        async with self.hub.require_store().write() as conn:
            await cursors.ensure(conn, {n: t.project for n, t in trackers.items()}, now)
            for name, tracker in trackers.items():
                row = await cursors.claim_one(conn, name, self.owner, self.lease, now)
                if row is None:
                    held = await cursors.holder(conn, name)
                    if held is not None and held.last_run_id:
                        ids.append(held.last_run_id)
                    continue
                run_id = await runs.insert_run(conn, project, name, "manual", now=now)
                await cursors.started(conn, name, run_id)
                ids.append(run_id)
                claimed.append((tracker, row, run_id))
            await append(conn, actor, "sync.run", target=integration or project, project=project,
                         after={"integrations": sorted(trackers), "runs": ids})
        for tracker, row, run_id in claimed:
            self._start_sweep(tracker, row, run_id, "manual")
        return ids

    async def plan(self, project: str, integration: str | None = None) -> list[dict[str, Any]]:
        """What a sweep of each mapping would create, update, transition and which conflicts it would
        raise, from its mark (everything when it never ran), without writing anything; disabled
        mappings too. A mapping the peer refuses gives one ``{"action": "error"}`` entry."""
        out: list[dict[str, Any]] = []
        for name, tracker in self._chosen(project, integration, enabled_only=False).items():
            async with self.hub.require_store().read() as conn:
                row = await cursors.holder(conn, name)
            mark = row.mark if row is not None else None
            run = RunState("plan", dry=True, mark=mark)
            token = current_stats.set(run.stats)
            try:
                await self.engine(tracker).sweep(run, mark, None)
            except Exception as exc:
                out.append({"integration": name, "action": "error", "error": _describe(exc)})
                continue
            finally:
                current_stats.reset(token)
            out.extend({"integration": name, **p} for p in run.planned)
            if run.stopped:
                out.append({"integration": name, "action": "stopped", "error": run.stopped})
        return out

    async def conflict(self, conflict_id: str, project: str | None = None) -> dict[str, Any]:
        """One parked conflict (of ``project``, when given)."""
        q = select(sync_conflicts, tasks.c.number).outerjoin(tasks, tasks.c.id == sync_conflicts.c.task_id)
        async with self.hub.require_store().read() as conn:
            row = await by_id(conn, sync_conflicts, conflict_id, project, "sync conflict", q)
        found = dict(row._mapping)
        number = found.pop("number")
        return {**found, "task": f"T-{number}" if number is not None else None}

    async def resolve(
        self, conflict_id: str, *, choice: str | None = None, value: Any = None, project: str | None = None,
        actor: Actor = SYSTEM,
    ) -> dict[str, Any]:
        """Settle a parked conflict by a side (``local``/``remote``) or a value, through its
        tracker's engine (which writes the task and the remote item, audited); the conflict after."""
        found = await self.conflict(conflict_id, project)
        if found["resolved_at"] is not None:
            raise SyncRefused(f"conflict {conflict_id} was resolved already")
        tracker = self.trackers(found["project"], enabled_only=False).get(found["integration"])
        if tracker is None:
            raise SyncRefused(f"integration {found['integration']!r} no longer syncs: the conflict can't be settled")
        await self.engine(tracker).resolve_conflict(found["id"], choice, value, actor)
        return await self.conflict(found["id"])
