"""The watcher: turns what the hub notices about itself into incidents and notices.

The hooks (:meth:`Watch.circuit`, :meth:`Watch.recorded`, :meth:`Watch.inbound`,
:meth:`Watch.sync_run`, :meth:`Watch.connection`) are plain synchronous calls that never raise and
never query: they count in memory and queue a *signal* only on a change of state (a breaker
opened, the Nth failure in a row, deliveries went dead, the Nth rejected request). One background
task takes the signals in order, writes the incidents (``incidents.py``) and sends the notices
through ``hub.notify`` to the project's ``alerts_to`` minus the integration the incident is about.

Loops are cut twice: a notice never goes to the integration it is about, and deliveries of a
notice (thread key ``tidings-incident:...``) that go dead open no incident of their own. A notice
about ``email`` that ``slack`` fails to carry may still make ``slack`` failing or circuit-open: that
is one more incident, told through ``email`` at most once per cooldown, never a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select

from ..config.people import HANDLE, ProjectSettings
from ..integrations.base import DEFAULT_PROJECT
from ..message import Message, Priority
from ..security.redact import clip
from ..store.tables import deliveries, messages
from . import incidents as inc

if TYPE_CHECKING:
    from ..delivery.outbox import Result
    from ..hub import Hub

log = structlog.get_logger("tidings.watch")

FAIL_AFTER = 5
"""Attempts in a row that failed (retrying or dead) before an integration is ``failing``."""
REJECT_AFTER = 5
REJECT_WINDOW = 600.0
"""An inbound sender is failing verification after :data:`REJECT_AFTER` refused requests within this many seconds."""
REFRESH = 5.0
"""How often the watcher reads which incidents are open (another worker may have opened them)."""
THREAD_PREFIX = "tidings-incident:"
SETTLING = frozenset({"failing", "dead", "circuit_open"})
"""Kinds about a peer's health, resolved only once it stayed clear of the trouble for the project's
``alert_recover_after``: a peer failing now and then stays one open incident instead of opening,
telling and resolving at every turn."""
VERIFIED = frozenset({"stored", "duplicate", "requeued", "answered", "malformed"})
"""Inbound results of a request whose signature checked out."""

_TITLES = {
    "failing": "{name} is failing",
    "circuit_open": "{name}: circuit open, tidings stopped sending to it",
    "dead": "{name}: deliveries went dead",
    "verification": "{name}: inbound requests keep failing verification",
    "sync": "Sync of {name} failed",
    "connection": "{name} needs to be connected again",
}
_RECOVERED = {
    "failing": "{name} recovered: deliveries go through again",
    "circuit_open": "{name} recovered: circuit closed",
    "dead": "{name} recovered: a delivery went through",
    "verification": "{name} recovered: inbound requests verify again",
    "sync": "Sync of {name} recovered",
    "connection": "{name} is connected again",
}


@dataclass(frozen=True, slots=True)
class Signal:
    project: str
    subject: str
    kind: str
    opened: bool
    """True: open (or bump) the incident; False: resolve it."""
    detail: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.project, self.subject, self.kind


class Watch:
    """One per hub. ``clock`` is injectable for tests (cooldowns)."""

    def __init__(self, hub: Hub, clock: Callable[[], float] = time.time) -> None:
        self.hub = hub
        self.clock = clock
        self._queue: asyncio.Queue[Signal] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._open: set[tuple[str, str, str]] = set()
        self._read_at = float("-inf")
        self._fails: dict[str, int] = {}
        self._rejected: dict[str, deque[float]] = {}
        self._dead: dict[str, list[str]] = {}
        """Integration -> deliveries that went dead, not yet in an incident (taken by the next ``dead`` signal)."""
        self._settling: dict[tuple[str, str, str], asyncio.TimerHandle] = {}
        """Open incidents of :data:`SETTLING` kinds that recovered: the timer that resolves them."""
        self._tail: dict[tuple[str, str, str], Signal] = {}
        """The last signal queued per incident key: one of the same direction behind it adds nothing."""
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tidings-watch")

    async def stop(self, timeout: float = 2.0) -> None:
        """Handle the signals already queued (at most ``timeout`` seconds), then stop."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.settled()
        task, self._task = self._task, None
        for timer in self._settling.values():
            timer.cancel()
        self._settling.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._idle.set()

    async def settled(self) -> None:
        """Wait until every signal queued so far has been handled (tests, shutdown)."""
        while self._task is not None and (self._busy or not self._queue.empty()):
            self._idle.clear()
            await self._idle.wait()

    def alerting(self, project: str) -> bool:
        """Whether ``project`` names an ``alerts_to`` (then the watch tells it, not the older notices)."""
        return bool(self._settings(project).alerts_to)

    def is_open(self, project: str, subject: str, kind: str) -> bool:
        """As this process last read it (within :data:`REFRESH`), plus what it did itself since."""
        return (project, subject, kind) in self._open

    # -- hooks (synchronous, never raise, no I/O) -------------------------------------------------
    def signal(self, signal: Signal) -> None:
        """Queue ``signal`` for the worker, unless the last one queued for its incident (not
        handled yet) goes the same way: a burst of failures is one write, not one each."""
        if self._task is None:
            return  # not started, or stopping: nothing to tell anyone with
        if signal.opened and (settling := self._settling.pop(signal.key, None)) is not None:
            settling.cancel()  # the trouble came back before it settled: the incident stays open
        tail = self._tail.get(signal.key)
        if tail is not None and tail.opened == signal.opened:
            return
        self._tail[signal.key] = signal
        if signal.opened:
            self._open.add(signal.key)  # a success right behind it resolves it (queued after)
        self._busy += 1
        self._idle.clear()
        self._queue.put_nowait(signal)

    def _project(self, integration: str) -> str:
        return self.hub.router.project_of.get(integration, DEFAULT_PROJECT)

    def circuit(self, integration: str, state: str) -> None:
        """A breaker transition this process stored (one process stores each)."""
        try:
            subject = inc.subject_of("integration", integration)
            if state == "closed":
                self._recovered(self._project(integration), subject, "circuit_open")
            else:
                self.signal(Signal(self._project(integration), subject, "circuit_open", True,
                                   "the circuit breaker opened: sends are held back until the peer answers again"))
        except Exception:
            log.exception("watch.hook_failed", hook="circuit")

    def recorded(self, results: Iterable[Result]) -> None:
        """Delivery outcomes just committed by the dispatcher."""
        try:
            dead: dict[str, str | None] = {}
            for r in results:
                status = r.status
                if status == "delivered":
                    if self._fails or self._open:  # nothing to do (the usual case) costs two checks
                        self._succeeded(r.integration)
                elif status in ("retrying", "dead") and not r.released:
                    name = r.integration
                    n = self._fails[name] = self._fails.get(name, 0) + 1
                    if n % FAIL_AFTER == 0:  # the first time opens, the next ones bump (a reminder after the cooldown)
                        self.signal(Signal(self._project(name), inc.subject_of("integration", name), "failing", True,
                                           f"{n} attempts in a row failed; last error: {r.last_error or 'unknown'}"))
                    if status == "dead":
                        self._dead.setdefault(name, []).append(r.id)
                        dead[name] = r.last_error
            for name, error in dead.items():
                self.signal(Signal(self._project(name), inc.subject_of("integration", name), "dead", True, error))
        except Exception:
            log.exception("watch.hook_failed", hook="recorded")

    def _succeeded(self, name: str) -> None:
        self._fails.pop(name, None)
        project, subject = self._project(name), inc.subject_of("integration", name)
        for kind in ("failing", "dead"):
            if (project, subject, kind) in self._open:
                self._recovered(project, subject, kind)

    def _recovered(self, project: str, subject: str, kind: str) -> None:
        """The peer of an incident of a :data:`SETTLING` kind is well again: resolve the incident
        once ``alert_recover_after`` has passed without it opening again (at once when that is 0)."""
        key = (project, subject, kind)
        if key in self._settling:
            return
        after = float(self._settings(project).alert_recover_after)
        if after <= 0 or self._task is None:
            self._open.discard(key)
            self.signal(Signal(project, subject, kind, False))
            return
        self._settling[key] = asyncio.get_running_loop().call_later(after, self._settled, key)

    def _settled(self, key: tuple[str, str, str]) -> None:
        if self._settling.pop(key, None) is not None:
            self._open.discard(key)
            self.signal(Signal(*key, opened=False))

    def inbound(self, integration: str, result: str) -> None:
        """An inbound request's result (``hub.count_inbound``)."""
        try:
            project, subject = self._project(integration), inc.subject_of("inbound", integration)
            if result == "rejected":
                now = self.clock()
                seen = self._rejected.setdefault(integration, deque())
                seen.append(now)
                while seen and seen[0] < now - REJECT_WINDOW:
                    seen.popleft()
                if len(seen) >= REJECT_AFTER:
                    seen.clear()
                    self.signal(Signal(project, subject, "verification", True,
                                       f"{REJECT_AFTER} requests within {REJECT_WINDOW / 60:g} min failed verification"
                                       " (a wrong signing secret, or someone probing the endpoint)"))
            elif result in VERIFIED and (project, subject, "verification") in self._open:
                self._open.discard((project, subject, "verification"))
                self.signal(Signal(project, subject, "verification", False))
        except Exception:
            log.exception("watch.hook_failed", hook="inbound")

    def sync_run(self, project: str, integration: str, status: str, error: str | None) -> None:
        """A sync run of a mapping ended ``status`` (``failed`` opens, ``ok``/``partial`` resolve)."""
        subject = inc.subject_of("sync", integration)
        if status == "failed":
            self.signal(Signal(project, subject, "sync", True, error or "the sync run failed"))
        elif status in ("ok", "partial"):  # not the hot path: ask the table (another worker may have opened it)
            self.signal(Signal(project, subject, "sync", False))

    def connection(self, project: str, integration: str, broken: bool, error: str | None = None) -> None:
        """An OAuth connection needs re-auth (``broken``), or works again."""
        subject = inc.subject_of("connection", integration)
        if broken:
            self.signal(Signal(project, subject, "connection", True, error))
        else:  # a refresh or a connect: rare enough to ask the table
            self.signal(Signal(project, subject, "connection", False))

    # -- the worker ------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self._refresh()
            except Exception as exc:
                log.warning("watch.refresh_failed", error=clip(f"{type(exc).__name__}: {exc}", 300))
            try:  # asyncio.timeout, not wait_for: in 3.11 a cancel racing wait_for's inner task could be lost
                async with asyncio.timeout(REFRESH):
                    signal = await self._queue.get()
            except TimeoutError:
                continue
            if self._tail.get(signal.key) is signal:
                del self._tail[signal.key]
            try:
                await self.handle(signal)
            except Exception:
                log.exception("watch.signal_failed", subject=signal.subject, kind=signal.kind)
            finally:
                self._busy -= 1
                if not self._busy and self._queue.empty():
                    self._idle.set()

    async def _refresh(self) -> None:
        if time.monotonic() - self._read_at < REFRESH:
            return
        self._read_at = time.monotonic()  # a failed read waits its turn too (one warning per REFRESH at most)
        async with self.hub.require_store().read() as conn:
            stored = await inc.open_keys(conn)
        self._open = stored | {key for key, s in self._tail.items() if s.opened}  # and those about to open

    async def handle(self, s: Signal) -> dict[str, Any] | None:
        """Write the incident of ``s`` and send the notice it calls for; the incident's row."""
        if s.opened:
            dead = self._dead.pop(inc.integration_of(s.subject), []) if s.kind == "dead" else ()
            if s.kind == "dead" and not dead:
                return None
            return await self.open(s.project, s.subject, s.kind, s.detail, dead_ids=dead)
        quiet_for = float(self._settings(s.project).alert_recover_after) if s.kind in SETTLING else 0.0
        return await self.resolve(s.project, s.subject, s.kind, quiet_for=quiet_for)

    async def open(self, project: str, subject: str, kind: str, detail: str | None, *,
                   dead_ids: Sequence[str] = ()) -> dict[str, Any] | None:
        """Open (or bump) an incident and tell the owners if it is new or the cooldown has passed
        since they last heard; the row (None: every dead delivery was a notice's)."""
        store = self.hub.require_store()
        if dead_ids:
            async with store.read() as conn:
                notices = set((await conn.execute(
                    select(deliveries.c.id).join(messages, messages.c.id == deliveries.c.message_id)
                    .where(deliveries.c.id.in_(list(dead_ids)), messages.c.thread_key.like(f"{THREAD_PREFIX}%"))
                )).scalars())
            dead_ids = [d for d in dead_ids if d not in notices]
            if not dead_ids:
                return None
            detail = f"{len(dead_ids)} deliveries went dead (last: {dead_ids[-1]}): {detail or 'unknown error'}"
        settings = self._settings(project)
        now = self.clock()
        async with store.write() as conn:
            row, new = await inc.open_incident(conn, project, subject, kind, detail, now)
            before = row["notified_at"]
            targets, why_not = self._targets(project, subject, settings)
            told = bool(targets) and await inc.claim_notice(conn, row["id"], now, float(settings.alert_cooldown))
            if not targets and new:
                await inc.note(conn, row["id"], why_not)
        self._open.add((project, subject, kind))
        if new:
            log.warning("watch.incident_opened", project=project, subject=subject, kind=kind, incident=row["id"])
            if not targets:
                log.warning("watch.no_notice", project=project, subject=subject, kind=kind, reason=why_not)
        if told:
            await self._send(row, targets, "opened" if new else "reminder", before, row["detail"])
        return row

    async def resolve(self, project: str, subject: str, kind: str, quiet_for: float = 0.0) -> dict[str, Any] | None:
        """Resolve the open incident (unless it recurred within ``quiet_for`` seconds), and send the
        recovery notice if its opening was told."""
        now = self.clock()
        async with self.hub.require_store().write() as conn:
            row = await inc.resolve(conn, project, subject, kind, now, quiet_for)
        self._open.discard((project, subject, kind))
        if row is None:
            return None
        log.info("watch.incident_resolved", project=project, subject=subject, kind=kind, incident=row["id"],
                 open_s=round(now - row["opened_at"], 3))
        if row["notified_at"] is not None:
            targets, why_not = self._targets(project, subject, self._settings(project))
            if targets:
                await self._send(row, targets, "resolved", None, None)
            else:
                async with self.hub.require_store().write() as conn:
                    await inc.note(conn, row["id"], f"no recovery notice: {why_not}")
        return row

    # -- notices ---------------------------------------------------------------------------------
    def _settings(self, project: str) -> ProjectSettings:
        return self.hub.config.projects.get(project) or ProjectSettings()

    def _targets(self, project: str, subject: str, settings: ProjectSettings) -> tuple[list[str], str]:
        """``alerts_to`` without the integration the incident is about (nor integrations this
        project doesn't have); why none are left, when none are."""
        broken = inc.integration_of(subject)
        if not settings.alerts_to:
            return [], f"no notice: project {project} sets no alerts_to"
        ours = self.hub.router.project_of
        targets = [t for t in settings.alerts_to
                   if t != broken and (HANDLE.match(t) or ours.get(t) == project)]
        if not targets:
            return [], f"no notice: alerts_to names no integration of project {project} but {broken}"
        return targets, ""

    async def _send(self, row: dict[str, Any], targets: list[str], stage: str, before: float | None,
                    detail: str | None) -> None:
        message = notice(row, stage, detail)
        try:
            receipt = await self.hub.notify(message, to=targets, project=row["project"])
        except Exception as exc:  # the next occurrence tries again; the row says why it didn't go
            error = clip(f"{type(exc).__name__}: {exc}", 300)
            log.error("watch.notice_failed", incident=row["id"], error=error)
            async with self.hub.require_store().write() as conn:
                await inc.note(conn, row["id"], f"{stage} notice not sent: {error}",
                               unclaim=None if stage == "resolved" else (before or 0.0))
            return
        async with self.hub.require_store().write() as conn:
            await inc.note(conn, row["id"], f"{stage} notice {receipt.id} to {', '.join(targets)}")
        log.info("watch.notice_sent", incident=row["id"], stage=stage, to=targets, message=receipt.id)


def notice(row: dict[str, Any], stage: str, detail: str | None) -> Message:
    """The message telling the owners that an incident opened, is still open, or was resolved."""
    name = inc.integration_of(row["subject"])
    kind = row["kind"]
    resolved = stage == "resolved"
    title = (_RECOVERED if resolved else _TITLES)[kind].format(name=name)
    if stage == "reminder":
        title = f"Still: {title}"
    opened = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(row["opened_at"]))
    body = (f"Resolved after {_duration(row['resolved_at'] - row['opened_at'])} ({row['count']} occurrences)."
            if resolved else (detail or row.get("detail") or ""))
    return Message(
        title=title,
        body=f"{body}\nProject {row['project']}, {row['subject']}, since {opened}. "
             f"See `tidings incidents --project {row['project']}`.".strip(),
        priority=Priority.MEDIUM if resolved else Priority.HIGH,
        labels={"source": "tidings", "event_type": f"incident.{stage}", "incident": row["id"], "kind": kind,
                "subject": row["subject"]},
        fields={"incident": row["id"], "occurrences": str(row["count"])},
        thread_key=f"{THREAD_PREFIX}{row['id']}",
    )


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
