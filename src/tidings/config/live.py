"""Every process runs the current configuration revision, switching within about a second of
its commit, without a restart.

:class:`ConfigWatcher` runs in each hub that dispatches or serves: it polls the revision pointer
(:func:`~tidings.config.revisions.current_number`, one tiny query) every ``interval`` seconds and,
on PostgreSQL, also ``LISTEN``\\s on :data:`~tidings.config.revisions.CHANNEL` on a connection of
its own, so that a commit's ``NOTIFY`` makes it look at once (the poll stays as the fallback
while that connection is lost). A new revision is turned into this process's configuration
(:func:`~tidings.config.document.to_config`, with its file's process settings and ``${file:...}``
values) and applied (:func:`~tidings.config.switch.apply_config`). A revision this process can't
run (a ``${file:...}`` value its file lacks, a ``${vault:NAME}`` not stored) leaves the running
one in place: each problem is logged once and recorded.

Table ``config_processes`` says which revision each process runs (:func:`processes`): one row per
process, written at start and at each switch, deleted at stop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from ..background import Background, wait_at_most
from ..errors import ConfigError
from ..security.redact import clip
from ..store.engine import Conn, Store
from ..store.tables import config_processes
from . import revisions
from .document import PROCESS_SECTIONS, to_config

if TYPE_CHECKING:
    from ..hub import Hub

log = structlog.get_logger("tidings.config")

POLL_INTERVAL = 0.5
"""Seconds between two reads of the revision pointer."""
RETRY_FAILED = 30.0
"""A revision this process could not run is tried again this often (a secret stored meanwhile)."""
LISTEN_RETRY = 2.0
"""Seconds before connecting again after the ``LISTEN`` connection was lost."""
PROBLEM_MAX = 2000
HEARTBEAT = 30.0
"""A running process writes its row's ``seen_at`` this often."""
GONE_AFTER = 600.0
"""A row not seen for this long belongs to a process that died without stopping (kill -9, a lost
machine): the next row written removes it, and `tidings config status` ignores it before that."""


def process_id() -> str:
    """``host:pid:random``: names a process that has no dispatcher owner."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


@dataclass(frozen=True)
class Process:
    owner: str
    revision: int
    applied_at: float
    problem: str | None
    seen_at: float | None = None

    @property
    def silent(self) -> bool:
        """No sign of life for :data:`HEARTBEAT` × 3: probably gone without stopping."""
        return self.seen_at is not None and time.time() - self.seen_at > 3 * HEARTBEAT

    def as_dict(self) -> dict[str, Any]:
        return {"owner": self.owner, "revision": self.revision, "applied_at": self.applied_at, "problem": self.problem,
                "seen_at": self.seen_at, "silent": self.silent}


async def processes(conn: Conn) -> list[Process]:
    """Every running process and the revision it runs (with why it could not switch, if so)."""
    rows = await conn.execute(select(config_processes).order_by(config_processes.c.owner))
    return [Process(r.owner, r.revision, r.applied_at, r.problem, r.seen_at) for r in rows]


async def record(conn: Conn, owner: str, revision: int, applied_at: float, problem: str | None) -> None:
    """Write ``owner``'s row (and remove the rows of processes gone for :data:`GONE_AFTER`)."""
    now = time.time()
    await conn.execute(delete(config_processes).where(config_processes.c.seen_at < now - GONE_AFTER))
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(config_processes)
    values = {"revision": revision, "applied_at": applied_at, "problem": problem, "seen_at": now}
    await conn.execute(ins.values(owner=owner, **values).on_conflict_do_update(
        index_elements=[config_processes.c.owner], set_=values))


class ConfigWatcher(Background):
    """Keeps its hub on the current configuration revision (see the module's text)."""

    task_name = "tidings-config-watch"

    def __init__(self, hub: Hub, *, owner: str | None = None, interval: float = POLL_INTERVAL,
                 listen: bool = True, record: bool = True) -> None:
        self.hub = hub
        self.record = record
        """Keep this process's row in ``config_processes`` (False: a one-off :func:`catch_up`)."""
        self.owner = (owner or process_id())[:100]
        self.interval = interval
        self.listen = listen
        self.problem: str | None = None
        """Why the current revision isn't running here (None: it is)."""
        self.applied_at = time.time()
        self.listening = False
        """Whether the ``LISTEN`` connection is up (PostgreSQL)."""
        self.listen_pid: int | None = None
        """The server process of the ``LISTEN`` connection."""
        self._wake = asyncio.Event()
        self._checking = asyncio.Lock()
        self._failed: tuple[int, int, float] | None = None
        """(revision, id of the file config, when) of the last revision that could not run."""
        self._listener: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look at the pointer now."""
        self._wake.set()

    async def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        await super().stop()
        try:
            async with self._store().write() as conn:
                await conn.execute(delete(config_processes).where(config_processes.c.owner == self.owner))
        except Exception as exc:
            log.warning("config.process_row_not_deleted", error=clip(f"{type(exc).__name__}: {exc}", 300))

    async def _run(self) -> None:
        if self.listen and self._store().dialect == "postgresql":
            self._listener = asyncio.create_task(self._listen(), name="tidings-config-listen")
        await self._record()  # the revision the hub started with
        beat = time.monotonic()
        while True:
            try:
                if not await self.check() and time.monotonic() - beat >= HEARTBEAT:
                    await self._record()
                    beat = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away for a moment: the next poll tries again
                log.warning("config.check_failed", error=clip(f"{type(exc).__name__}: {exc}", 300))
            await wait_at_most(self._wake.wait(), self.interval)
            self._wake.clear()

    async def check(self) -> bool:
        """Switch to the current revision if this process doesn't run it; whether it switched."""
        async with self._checking:
            async with self._store().read() as conn:
                number = await revisions.current_number(conn)
                if number == 0 or number == self.hub.revision:
                    return False
                failed = self._failed
                if (failed is not None and failed[:2] == (number, id(self.hub.file_config))
                        and time.monotonic() - failed[2] < RETRY_FAILED):
                    return False
                revision = await revisions.get(conn, number)
            try:
                config = to_config(revision.document, self.hub.file_config)
                await self.hub.apply_config(config, number)
            except Exception as exc:
                problems = exc.problems if isinstance(exc, ConfigError) else [clip(f"{type(exc).__name__}: {exc}", 500)]
                problem = clip("; ".join(problems), PROBLEM_MAX)
                if problem != self.problem:
                    for line in problems:
                        log.error("config.revision_not_applied", revision=number, running=self.hub.revision,
                                  problem=line)
                self._failed = (number, id(self.hub.file_config), time.monotonic())
                self.problem = problem
                await self._record()
                return False
            self._failed = None
            self.problem = None
            self.applied_at = time.time()
            await self._record()
            return True

    def _store(self) -> Store:
        assert self.hub.store is not None, "the hub's store is open while its watcher runs"
        return self.hub.store

    async def _record(self) -> None:
        if not self.record:
            return
        try:
            async with self._store().write() as conn:
                await record(conn, self.owner, self.hub.revision, self.applied_at, self.problem)
        except Exception as exc:  # a schema not migrated yet, the database away: the next switch writes it
            log.warning("config.process_row_not_written", error=clip(f"{type(exc).__name__}: {exc}", 300))

    async def _listen(self) -> None:
        """PostgreSQL: wake on every ``NOTIFY`` of :data:`revisions.CHANNEL`; connect again
        when the connection is lost (meanwhile the poll goes on)."""
        import psycopg

        url = self._store().url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        failing = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {revisions.CHANNEL}")
                    self.listening = True
                    self.listen_pid = conn.info.backend_pid
                    if failing:
                        log.info("config.listening_again")
                    failing = False
                    self.wake()  # what was committed while not listening
                    async for _ in conn.notifies():
                        self.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("config.listen_lost", error=clip(f"{type(exc).__name__}: {exc}", 300),
                                hint=f"polling every {self.interval:g}s meanwhile")
                failing = True
            finally:
                self.listening = False
            await asyncio.sleep(LISTEN_RETRY)


async def catch_up(hub: Hub) -> bool:
    """Run the current revision now if the hub doesn't (after a commit made in this process, so
    that its answer already reflects it); whether it switched (a revision it can't run is logged
    and, with a watcher, recorded). A hub without a watcher (one that neither dispatches nor
    serves) is switched once, without a row of its own."""
    watcher = hub.watcher or ConfigWatcher(hub, listen=False, record=False)
    return await watcher.check()


async def adopt_revision(hub: Hub) -> None:
    """Take the configuration to run: what importing the file makes when the file changed
    since its last import (checked here, imported by :func:`import_planned` once the
    integrations are built), else the current revision. An import that is refused leaves the
    current revision running (each problem logged); a database not migrated yet runs the
    file as given. A hub that does not import (a CLI command) runs what the import would
    make without storing it; a dispatching hub, or the first start of all, imports."""
    from ..routing import Router
    from .document import to_config
    from .imports import plan_import

    assert hub.store is not None
    hub._to_import = None
    try:
        plan = await plan_import(hub.store, hub.file_config)
    except Exception as exc:  # a schema not migrated yet: start anyway (readyz says why)
        log.warning("hub.revisions_unreadable", error=clip(f"{type(exc).__name__}: {exc}", 300))
        return
    head = plan.head
    if plan.proposed is not None:
        try:
            hub.config = to_config(plan.proposed, hub.file_config)
        except ConfigError as exc:
            if head is None:
                raise
            for problem in exc.problems:
                log.error("config.import_refused", problem=problem, running=head.number)
        else:
            hub.router = Router(hub.config)
            hub.revision = head.number if head is not None else 0
            if head is None or hub._import_file:
                hub._to_import = plan.proposed
            return
    assert head is not None
    try:
        hub.config = to_config(head.document, hub.file_config)
    except ConfigError as exc:
        if hub._import_file:
            raise
        # A hub that only reads (a CLI command) with a file that can't run the revision
        # (a ${file:...} secret its file lacks): it runs its file as given.
        log.warning("config.revision_not_runnable", revision=head.number, problems=exc.problems)
        return
    hub.router = Router(hub.config)
    hub.revision = head.number


async def import_planned(hub: Hub) -> None:
    """Import the file as :func:`adopt_revision` planned, now that its integrations are
    built: a start that fails (a vault secret missing) stores nothing."""
    from .document import digest, normalize
    from .imports import import_file

    planned, hub._to_import = hub._to_import, None
    if planned is None:
        return
    assert hub.store is not None
    try:
        revision, made = await import_file(hub.store, hub.file_config)
    except ConfigError as exc:  # another process changed the configuration meanwhile
        for problem in exc.problems:
            log.error("config.import_refused", problem=problem, running=hub.revision)
        return
    if made:
        log.info("config.imported", revision=revision.number)
    if revision.digest == digest(normalize(planned)):
        hub.revision = revision.number
    # else another process committed meanwhile: config/live.py follows the pointer


async def reload_file(hub: Hub, path: str | Path | None) -> int:
    """See :meth:`Hub.reload_file`."""
    from .imports import import_file
    from .loader import load_config

    store = hub.require_store()
    loaded = load_config(path, required=True)
    running = hub.file_config
    changed = [k for k in PROCESS_SECTIONS if getattr(loaded, k) != getattr(running, k)]
    if changed:
        log.warning("config.process_settings_changed", sections=changed, hint="they apply at the next start")
    # The managed sections from the file as it is now; the process settings this process runs.
    merged = loaded.model_copy(update={k: getattr(running, k) for k in PROCESS_SECTIONS})
    merged._raw = {**{k: v for k, v in (getattr(loaded, "_raw", None) or {}).items() if k not in PROCESS_SECTIONS},
                   **{k: v for k, v in (getattr(running, "_raw", None) or {}).items() if k in PROCESS_SECTIONS}}
    revision, made = await import_file(store, merged)
    hub.file_config = merged
    if made:
        log.info("config.imported", revision=revision.number)
    if hub.watcher is not None:
        await hub.watcher.check()
    elif revision.number != hub.revision:
        await hub.apply_config(to_config(revision.document, merged), revision.number)
    return hub.revision
