"""The sync engine: one tracker integration's items ⇄ its project's tasks (DESIGN.md "Sync").

Per item: the link (remote id, base snapshot, hash of what we last wrote), a 3-way merge against
the base, the echo guard, the lease that serializes work on it, and creates that are never made
twice. Scheduling, persistence of runs and the API are ``sync/service.py``'s; this module only does
the work, recording what happened in a :class:`RunState`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import structlog
from sqlalchemy.exc import IntegrityError

from ..audit.chain import Actor, Entry, append, append_many
from ..ids import new_id
from ..security.redact import ERROR_MAX, clip
from . import links
from .conflicts import ConflictError, get_conflict, mark_resolved, park
from .events import after_commit
from .links import CREATING, DELETED, LINKED, UNLINKED, item_lock
from .merge import merge
from .model import Merged, NotFound, RemoteItem, TrackerError, Unavailable, digest, normalize
from .state import Outcome, RunState, Stop, call, plan_merged, stats
from .sweep import export_pass, sweep_remote
from .tasks import StaleTask, TaskChange, TaskError, create_tasks, get_task_by_id, task_fields, update_task

__all__ = ["Engine", "RunState"]

if TYPE_CHECKING:
    from ..hub import Hub
    from ..integrations.base import Tracker
    from ..store.engine import Conn

log = structlog.get_logger("tidings.sync")
T = TypeVar("T")


class Engine:
    """Syncs one tracker integration with its project's tasks. Stateless between calls: every
    decision is made from the rows, so any number of engines (workers, processes) can share them."""

    retry_delays: tuple[float, ...] = (0.5, 2.0)
    """Backoff between attempts when the tracker is unavailable (tests set zeros)."""
    claim_poll: float = 0.05

    def __init__(self, hub: Hub, tracker: Tracker) -> None:
        self.hub = hub
        self.tracker = tracker
        self.name = tracker.name
        self.project = tracker.project
        self.actor = Actor("system", name=f"sync:{self.name}", auth_method="system")
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{new_id()[-12:]}"

    @property
    def settings(self) -> Any:
        return self.tracker.sync_settings

    @property
    def lease(self) -> float:
        """How long a claim on an item lasts: long enough for its calls, rate-limit waits included."""
        return 60.0 + 3 * float(self.settings.max_wait)

    @property
    def store(self) -> Any:
        return self.hub.require_store()

    # -- public ------------------------------------------------------------------------------

    async def sync_item(self, item: RemoteItem, run: RunState) -> None:
        """One remote item ⇄ its task (created, merged, unlinked as the rows say)."""
        with stats(run):
            await self._attempt(run, self._sync_item(item, run), remote=item.key)

    async def sync_remote_id(self, remote_id: str, run: RunState) -> None:
        """A webhook hint: fetch the item (conditionally on the ETag we have) and sync it."""
        with stats(run):
            await self._attempt(run, self._sync_remote_id(remote_id, run), remote=remote_id)

    async def push_task(self, task_id: str, run: RunState) -> None:
        """A local change → this tracker: merged into the linked item, or a new item when the task
        has none and ``sync.create`` exports."""
        with stats(run):
            await self._attempt(run, self._push_task(task_id, run), task=task_id)

    async def sweep(self, run: RunState, mark: float | None, list_etag: str | None) -> None:
        """Everything changed on the tracker since ``mark`` (less the overlap), then the export pass.
        ``run.mark`` ends at the newest item fully processed, never past one that must be retried."""
        with stats(run):
            run.mark, run.list_etag = mark, list_etag
            try:
                await sweep_remote(self, run, mark, list_etag)
                if run.stopped is None:
                    await export_pass(self, run)
            except Stop as stop:
                run.stopped, run.resume_at = stop.reason, stop.resume_at
                if run.mark != mark:
                    run.list_etag = None

    async def resolve_conflict(
        self, conflict_id: str, choice: Literal["local", "remote"] | None, value: Any, actor: Actor,
    ) -> RunState:
        """Settle a parked conflict: the task takes the chosen side (or ``value``), the conflict is
        marked resolved (audited), and the task is pushed to this tracker. Returns the push's run."""
        async with self.store.write() as conn:
            conflict = await get_conflict(conn, conflict_id)
            if conflict is None or conflict["integration"] != self.name:
                raise ConflictError(f"no conflict {conflict_id} on {self.name}")
            if conflict["resolved_at"] is not None:
                raise ConflictError(f"conflict {conflict_id} was already resolved")
            if choice is not None:
                value = conflict[choice]
            task = await get_task_by_id(conn, conflict["task_id"])
            if task is None:
                raise ConflictError(f"the task of conflict {conflict_id} no longer exists")
            name = conflict["field"]
            change = await update_task(conn, task, {name: value}, actor=actor, origin=self.name)
            link = await links.by_task(conn, self.name, task["id"])
            if link is not None and link["state"] == LINKED:
                # The remote value the person saw becomes the base: the choice then reads as a change
                # made here and is written there (a later remote edit is a new conflict, as it should).
                await links.update(conn, link["id"], base={**link["base"], name: normalize({name: conflict["remote"]})[name]})
            await mark_resolved(conn, conflict, normalize({name: value})[name], actor=actor, task_key=task["key"])
        await self._after(change)
        run = RunState("manual")
        await self.push_task(task["id"], run)
        return run

    # -- one item ----------------------------------------------------------------------------

    async def _attempt(self, run: RunState, work: Awaitable[None], *, task: str | None = None,
                       remote: str | None = None) -> Outcome:
        """Run one item's work; what goes wrong is recorded in ``run``, never raised."""
        try:
            await work
            return "ok"
        except Stop as stop:
            run.stopped, run.resume_at = stop.reason, stop.resume_at
            return "stopped"
        except Unavailable as exc:
            run.problem(task, remote, f"unavailable: {exc}")
            return "held"
        except (TrackerError, TaskError, ConflictError) as exc:
            run.problem(task, remote, f"{type(exc).__name__}: {exc}")
            return "failed"
        except Exception as exc:  # a bug or the database: that item is retried by the next sweep
            log.exception("sync.item_failed", integration=self.name, task=task, remote=remote)
            run.problem(task, remote, f"{type(exc).__name__}: {exc}")
            return "held"

    async def _sync_remote_id(self, remote_id: str, run: RunState) -> None:
        async with self.store.read() as conn:
            link = await links.by_remote(conn, self.name, remote_id)
        linked = link is not None and link["state"] == LINKED
        try:
            item = await self._call(self.tracker.fetch, remote_id, link["etag"] if linked else None)
        except NotFound:
            if linked:
                await self._remote_gone(link, run)  # type: ignore[arg-type]
            else:
                run.unchanged += 1
            return
        if item is None:  # 304: nothing changed since we last read it
            run.unchanged += 1
            return
        await self._sync_item(item, run)

    async def _sync_item(self, item: RemoteItem, run: RunState, *, pushing: bool = False) -> None:
        async with item_lock(self.name, item.id) as waited:
            deadline = time.monotonic() + self.lease + 5
            for attempt in range(1000):
                async with self.store.read() as conn:
                    link = await links.by_remote(conn, self.name, item.id)
                    if link is None and item.marker:
                        mine = await links.by_id(conn, item.marker)
                        if mine is not None and mine["integration"] == self.name and mine["remote_id"] is None:
                            link = mine  # a create of ours whose answer was lost
                    task = await get_task_by_id(conn, link["task_id"]) if link and link["task_id"] else None
                if run.dry:
                    return self._plan_item(link, task, item, run, pushing)
                if link is None:
                    if item.deleted or self.settings.create not in ("both", "import"):
                        run.unchanged += 1
                        return
                    if await self._import_new(item, run):
                        return
                elif link["remote_id"] is None:
                    if await self._adopt(link, item):
                        continue  # linked now: merge it
                else:
                    return await self._sync_linked(link, item, run, pushing, stale=bool(waited))
                if time.monotonic() > deadline:
                    raise Unavailable(f"{item.key} is being synced by another worker")
                await asyncio.sleep(min(self.claim_poll * 2 ** min(attempt, 4), 0.5))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _import_new(self, item: RemoteItem, run: RunState) -> bool:
        """A new task and its link in one transaction; ``False`` when another worker linked the item first."""
        return await self.import_new([item], run)

    async def import_new(self, items: list[RemoteItem], run: RunState) -> bool:
        """New items as tasks, each with its link, in one transaction (a sweep page's new items
        share one commit, one insert of tasks, one of links and one audit append per kind). ``False``
        when any link (or task number) was taken meanwhile: nothing is kept, and the caller takes
        the items one by one."""
        try:
            async with self.store.write() as conn:
                changes, made = await self._insert_new(conn, items)
        except IntegrityError:
            return False
        run.created += len(changes)
        run.seen.update(c.task["id"] for c in changes)
        await asyncio.gather(*(self._after(c, [link]) for c, link in zip(changes, made, strict=True)))
        return True

    async def _insert_new(self, conn: Conn, items: list[RemoteItem]) -> tuple[list[TaskChange], list[dict[str, Any]]]:
        """The tasks and their links (a new task has no other link: what its message shows)."""
        changes = await create_tasks(conn, self.project, [self._import_values(item, None) for item in items],
                                     actor=self.actor, origin=self.name)
        made = []
        for item, change in zip(items, changes, strict=True):
            task = change.task
            local = task_fields(task)
            base = {k: (v if self._imports(k) else local[k]) for k, v in self._carried(item).items()}
            made.append({"id": new_id(), "task_id": task["id"], "project": self.project, "integration": self.name,
                         "state": LINKED, "remote_id": item.id, "remote_key": item.key, "remote_url": item.url,
                         "remote_updated": item.updated_at, "etag": item.etag, "base": base,
                         "synced_at": task["updated_at"], "created_at": time.time()})
        await links.insert_many(conn, made)
        await append_many(conn, self.actor, [Entry("sync.link", target=c.task["key"], project=self.project,
                                                   after=links.summary(link)) for c, link in zip(changes, made, strict=True)])
        return changes, made

    async def _adopt(self, link: dict[str, Any], item: RemoteItem) -> bool:
        """``item`` is what the create of ``link`` made (its answer was lost): link them. ``False``
        while the worker that sent the create still holds the link (the caller waits and reads again)."""
        async with self.store.write() as conn:
            if not await links.claim(conn, link["id"], self.worker, self.lease):
                return False
            fresh = await links.by_id(conn, link["id"])
            if fresh is None or fresh["remote_id"] is not None:
                await links.release(conn, link["id"], self.worker)
                return True
            await self._store_created(conn, fresh, item, synced_at=None)
        return True

    async def _store_created(self, conn: Conn, link: dict[str, Any], item: RemoteItem,
                             synced_at: float | None) -> None:
        """Link ``item``, made by a create of ours. ``synced_at``: the task's time when its fields
        were sent (``None`` when unknown: the next export pass merges them)."""
        task = await get_task_by_id(conn, link["task_id"]) if link["task_id"] else None
        values = {"remote_id": item.id, "remote_key": item.key, "remote_url": item.url,
                  "remote_updated": item.updated_at, "etag": item.etag, "base": self._carried(item),
                  "written_hash": digest(item.fields), "state": LINKED if task else UNLINKED, "error": None,
                  "synced_at": synced_at, "claimed_by": None, "claimed_until": None}
        await links.update(conn, link["id"], **values)
        await append(conn, self.actor, "sync.link", target=task["key"] if task else None, project=self.project,
                     after=links.summary({**link, **values}))

    async def _sync_linked(self, link: dict[str, Any], item: RemoteItem, run: RunState, pushing: bool, *,
                           stale: bool = False) -> None:
        """``stale``: the item was read before waiting for another run of it, which may have written it."""
        if link["task_id"] is not None:
            run.seen.add(link["task_id"])
        if link["state"] != LINKED or link["task_id"] is None:
            run.unchanged += 1  # the task was deleted here, or the item there: never imported again
            return
        async with self.store.write() as conn:
            claimed = await links.claim(conn, link["id"], self.worker, self.lease)
        if not claimed:
            stale = True
            if not await links.claim_waiting(self.store, link["id"], self.worker, self.lease, self.claim_poll):
                raise Unavailable(f"{item.key} is being synced by another worker")
        claimed = True
        try:
            unseen_write = (not pushing and link["written_hash"] is not None
                            and digest(item.fields) != link["written_hash"])
            if (stale or unseen_write) and not item.deleted and not run.dry:
                # Merging what we read before another run wrote the item (a sweep's page listed
                # before a push) would take its old values for a change made there, and write them
                # into the task: read it again. Also while our last write's echo is still unseen
                # and this copy differs from it: it may be older than that write.
                item = await self._call(self.tracker.fetch, item.id, None) or item
            if item.deleted:
                claimed = False
                return await self._remote_gone(link, run)
            for attempt in range(3):
                try:
                    done = await self._merge_in(link["id"], item, run, pushing)
                    break
                except StaleTask:  # the task changed while we merged: merge again
                    if attempt == 2:
                        raise
            if done is None:
                claimed = False
                return
            merged, synced_at = done
            await self._call(self.tracker.update, item.id, merged.to_remote, item)
            written = normalize({**item.fields, **merged.to_remote})
            async with self.store.write() as conn:
                await links.update(conn, link["id"], base=merged.base, written_hash=digest(written), synced_at=synced_at,
                                   error=None, claimed_by=None, claimed_until=None)
            claimed = False
            run.updated += 1
        except NotFound:
            claimed = False
            await self._remote_gone(link, run)
        except (TrackerError, TaskError) as exc:
            await self._note_error(link["id"], exc)
            claimed = False
            raise
        finally:
            if claimed:
                async with self.store.write() as conn:
                    await links.release(conn, link["id"], self.worker)

    async def _merge_in(self, link_id: str, item: RemoteItem, run: RunState,
                        pushing: bool) -> tuple[Merged, float] | None:
        """Merge the item with its task and apply what goes to the task, in one transaction with
        the link. Returns the merge and the link's ``synced_at`` when the tracker must be written
        (the lease stays held for that), else ``None`` (the lease is given back)."""
        change: TaskChange | None = None
        async with self.store.write() as conn:
            link = await links.by_id(conn, link_id)
            task = await get_task_by_id(conn, link["task_id"]) if link and link["task_id"] else None
            if link is None or task is None or link["state"] != LINKED:
                if link is not None:
                    await links.release(conn, link_id, self.worker)
                run.unchanged += 1
                return None
            seen = {"remote_updated": max(item.updated_at, link["remote_updated"] or 0), "etag": item.etag,
                    "error": None}
            if not pushing and digest(item.fields) == link["written_hash"]:  # our own write coming back
                await links.update(conn, link_id, **seen, claimed_by=None, claimed_until=None)
                run.unchanged += 1
                return None
            merged = self._merge(link, task, item)
            if merged.conflicts:
                await park(conn, task, self.name, merged.conflicts, actor=self.actor)
                run.conflicts += len(merged.conflicts)
            if merged.to_local:
                values = self._import_values(item, task, merged.to_local)
                change = await update_task(conn, task, values, actor=self.actor, origin=self.name, at=item.updated_at)
            synced_at = change.task["updated_at"] if change else task["updated_at"]
            # Until the tracker has the fields going there, their base stays as it was: if that
            # write fails, the next merge still sees them as changed here.
            base = {k: v for k, v in merged.base.items() if k not in merged.to_remote}
            base.update({k: link["base"][k] for k in merged.to_remote if k in link["base"]})
            release = {} if merged.to_remote else {"claimed_by": None, "claimed_until": None}
            # The item moved past our last write: that write's digest must no longer pass for our echo
            # (a person putting the item back to exactly those values is a change, not an echo).
            await links.update(conn, link_id, **seen, base=base, synced_at=synced_at, written_hash=None, **release)
        if not merged.to_remote:  # else counted once the tracker has it
            if change is not None:
                run.updated += 1
            elif not merged.conflicts:
                run.unchanged += 1
        await self._after(change)
        return (merged, synced_at) if merged.to_remote else None

    def _merge(self, link: dict[str, Any], task: dict[str, Any], item: RemoteItem) -> Merged:
        local = task_fields(task)
        remote = {k: v for k, v in item.fields.items() if self.tracker.can_hold(k, local.get(k))}
        directions = {k: self.settings.direction(k) for k in remote}
        merged = merge(link["base"] or None, local, remote, directions, self.settings.conflict,
                       local_newer=task["updated_at"] > item.updated_at)
        for k in item.fields.keys() - remote.keys():  # not carried here now: its base stays
            if link["base"] and k in link["base"]:
                merged.base[k] = link["base"][k]
        return merged

    async def _remote_gone(self, link: dict[str, Any], run: RunState) -> None:
        """The item was deleted there: the link is marked (audited), the task stays."""
        async with self.store.read() as conn:
            task = await get_task_by_id(conn, link["task_id"]) if link["task_id"] else None
        if run.dry:
            run.plan("unlink", task["key"] if task else None, link["remote_key"], {})
            run.updated += 1
            return
        async with self.store.write() as conn:
            await links.update(conn, link["id"], state=DELETED, error=None, claimed_by=None, claimed_until=None)
            await append(conn, self.actor, "sync.unlink", target=task["key"] if task else None, project=self.project,
                         before=links.summary(link), after={"state": DELETED, "reason": "deleted on the tracker"})
        run.updated += 1

    async def _note_error(self, link_id: str, exc: Exception) -> None:
        async with self.store.write() as conn:
            await links.update(conn, link_id, error=clip(f"{type(exc).__name__}: {exc}", ERROR_MAX))
            await links.release(conn, link_id, self.worker)

    # -- local → tracker ---------------------------------------------------------------------

    async def _push_task(self, task_id: str, run: RunState) -> None:
        async with self.store.read() as conn:
            task = await get_task_by_id(conn, task_id)
            link = await links.by_task(conn, self.name, task_id)
        if task is None or task["project"] != self.project:
            return
        run.seen.add(task_id)
        if link is None or link["state"] == CREATING:
            if link is None and self.settings.create not in ("both", "export"):
                return
            return await self._create_remote(task, link, run)
        if link["state"] != LINKED:
            return
        try:
            item = await self._call(self.tracker.fetch, link["remote_id"], None)
        except NotFound:
            return await self._remote_gone(link, run)
        if item is not None:
            await self._sync_item(item, run, pushing=True)

    async def _create_remote(self, task: dict[str, Any], link: dict[str, Any] | None, run: RunState) -> None:
        """Create the task's item, never twice: the link is committed first (state ``creating``, its
        id the marker the item carries); a create whose answer was lost is found before a retry."""
        fields = self._export_values(task)
        if run.dry:
            found = None
            if link is not None:
                found = await self._call(self.tracker.find_created, link["id"], link["created_at"] - 60)
            if found is None:
                run.plan("create_remote", task["key"], None, fields)
                run.created += 1
            return
        async with item_lock(self.name, f"task:{task['id']}"):
            now = time.time()
            try:
                async with self.store.write() as conn:
                    if link is None:
                        link = {"id": new_id(), "task_id": task["id"], "project": self.project,
                                "integration": self.name, "state": CREATING, "created_at": now,
                                "claimed_by": self.worker, "claimed_until": now + self.lease}
                        await links.insert(conn, **link)
                        sent_before = False
                    else:
                        if not await links.claim(conn, link["id"], self.worker, self.lease):
                            return  # another worker is creating it right now
                        fresh = await links.by_id(conn, link["id"])
                        if fresh is None or fresh["state"] != CREATING:
                            await links.release(conn, link["id"], self.worker)
                            return
                        sent_before = True
            except IntegrityError:  # another worker linked or is creating this task's item
                return
            try:
                item = await self._create_once(fields, link, sent_before)
                async with self.store.write() as conn:
                    fresh = await links.by_id(conn, link["id"])
                    if fresh is None or fresh["remote_id"] is not None:
                        return
                    await self._store_created(conn, fresh, item, synced_at=task["updated_at"])
            except Exception as exc:
                await self._note_error(link["id"], exc)
                raise
        run.created += 1

    async def _create_once(self, fields: dict[str, Any], link: dict[str, Any], sent_before: bool) -> RemoteItem:
        """``tracker.create``, looking first for what an earlier attempt may have made."""
        since = link["created_at"] - 60
        delays = iter(self.retry_delays)
        while True:
            if sent_before:
                found = await self._call(self.tracker.find_created, link["id"], since)
                if found is not None:
                    return found
            try:
                return await self._call(self.tracker.create, fields, link["id"], retry_unavailable=False)
            except Unavailable:  # it may have been made all the same: look before trying again
                delay = next(delays, None)
                if delay is None:
                    raise
                sent_before = True
                await asyncio.sleep(delay)

    # -- helpers -----------------------------------------------------------------------------

    async def _after(self, change: TaskChange | None, task_links: list[dict[str, Any]] | None = None) -> None:
        """What follows a committed task change (a message, pushes to the other trackers): its
        failure is logged, it does not undo the sync that is already committed."""
        try:
            await after_commit(self.hub, change, task_links)
        except Exception:
            log.exception("sync.after_commit_failed", integration=self.name)

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, retry_unavailable: bool = True) -> T:
        return await call(fn, *args, max_wait=float(self.settings.max_wait),
                          delays=self.retry_delays if retry_unavailable else ())

    def _imports(self, name: str) -> bool:
        return self.settings.direction(name) in ("both", "import")

    def _carried(self, item: RemoteItem) -> dict[str, Any]:
        """The item's fields that sync (direction not ``off``), normalized."""
        return normalize({k: v for k, v in item.fields.items() if self.settings.direction(k) != "off"})

    def _import_values(self, item: RemoteItem, task: dict[str, Any] | None,
                       to_local: dict[str, Any] | None = None) -> dict[str, Any]:
        """What a task takes from ``item``: ``to_local`` (all imported fields for a new task, whose
        title it needs whatever the direction), with the tracker's own status name."""
        if to_local is None:
            to_local = {k: v for k, v in item.fields.items() if self._imports(k) or k == "title"}
        values = dict(to_local)
        if item.status_name and "status" in values:
            values["status_name"] = item.status_name
        return values

    def _export_values(self, task: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in task_fields(task).items()
                if (self.settings.direction(k) in ("both", "export") or k == "title") and self.tracker.can_hold(k, v)}

    def _plan_item(self, link: dict[str, Any] | None, task: dict[str, Any] | None, item: RemoteItem,
                   run: RunState, pushing: bool) -> None:
        """What :meth:`_sync_item` would do, appended to ``run.planned`` (and counted)."""
        key = task["key"] if task else None
        if task is not None:
            run.seen.add(task["id"])
        if link is None:
            if item.deleted or self.settings.create not in ("both", "import"):
                run.unchanged += 1
            else:
                run.plan("create_task", None, item.key, self._import_values(item, None))
                run.created += 1
        elif link["state"] != LINKED or task is None or (not pushing and digest(item.fields) == link["written_hash"]):
            run.unchanged += 1
        elif item.deleted:
            run.plan("unlink", key, item.key, {})
            run.updated += 1
        else:
            plan_merged(run, key, item.key, self._merge(link, task, item))
