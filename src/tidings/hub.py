"""The embedded hub: configuration, store, router, writer and dispatcher in one object.

    async with Hub.from_config("tidings.yaml") as hub:
        receipt = await hub.notify(Message("Deploy finished", labels={"service": "api"}))

Projects own integrations, routes, messages, events and silences. ``notify`` without ``project``
sends in ``default``; the readers take ``project`` to see one project only (None: all of them).

Scripts without asyncio use the same hub synchronously::

    with Hub.from_config() as hub:
        hub.notify_sync(Message("Backup done"))
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from . import components, gc_tuning
from .audit import SYSTEM, Actor
from .audit.archive import ObjectArchive, archive_of
from .audit.checkpointer import Checkpointer
from .background import wait_at_most
from .blocking import Blocking
from .config import Config, config_path, load_config, switch
from .config.live import ConfigWatcher, adopt_revision, catch_up, import_planned, reload_file
from .delivery import queries
from .delivery.digest import Grouper
from .delivery.dispatcher import Dispatcher
from .delivery.escalation import Escalator
from .delivery.outbox import Planned, Receipt, write_messages
from .delivery.schedule import (
    Delay,
    Scheduler,
    SendAt,
    due_time,
    schedule_message,
    when_given,
)
from .errors import NotFound, UnknownIntegration
from .inbound import Answer, EventProcessor, accept
from .integrations.base import DEFAULT_PROJECT, Context, Integration, Notifier, Outcome
from .integrations.receiver import InboundRequest, Receiver
from .logs import library_default
from .managing import Managing
from .message import Message
from .metrics import Metrics
from .reading import Reading
from .recipients.directory import Directory
from .recipients.model import People
from .recipients.plan import addressable, plan_people
from .recipients.quiet import apply_quiet_hours
from .retention import Pruner, prune
from .routing import Router
from .security.redact import clip
from .security.signed import Signer
from .security.vault import Vault, load_keys
from .security.vault_watch import VaultWatch
from .silences import Silences
from .store.batch import Batch
from .store.engine import Store
from .templates import apply_templates

if TYPE_CHECKING:
    from .calendars.reconcile import Reconciler
    from .oauth.keeper import Keeper
    from .sync.service import SyncService
    from .watch import Watch

log = structlog.get_logger("tidings.hub")


def request_fingerprint(
    message: Message, to: Sequence[str] | None, project: str = DEFAULT_PROJECT, when: dict[str, float] | None = None
) -> str:
    """What an Idempotency-Key is bound to: the message, its explicit targets and its project (so
    a key reused in another project is a conflict, never a replay of that project's message), and
    ``send_at``/``delay`` when given."""
    body: dict[str, Any] = {"message": message.to_dict(), "to": list(to) if to is not None else None}
    if project != DEFAULT_PROJECT:
        body["project"] = project
    if when:
        body["when"] = when
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Hub(Reading, Managing, Blocking):
    def __init__(
        self,
        config: Config,
        *,
        config_dir: Path | None = None,
        dispatch: bool | None = None,
        migrate: bool = True,
        import_file: bool | None = None,
        watch: bool | None = None,
        watch_interval: float = 0.5,
        listen: bool = True,
    ) -> None:
        library_default()
        self.config = config
        """What this hub runs: the current revision's integrations and routes with the file's process settings."""
        self.file_config = config
        """What the file (or the caller) gave: imported as a revision at start (see ``config/imports.py``)."""
        self.revision = 0
        """The configuration revision this hub runs (0: none stored, the file as given)."""
        self.config_dir = config_dir or Path.cwd()
        self.router = Router(config)
        self.metrics = Metrics()
        self.dispatch = config.dispatcher.enabled if dispatch is None else dispatch
        self._migrate = migrate
        self._import_file = self.dispatch if import_file is None else import_file
        self._watch = self.dispatch if watch is None else watch
        self._watch_options = {"interval": watch_interval, "listen": listen}
        self.watcher: ConfigWatcher | None = None
        """Follows the current configuration revision (a dispatching hub, a server): see ``config/live.py``."""
        self._switching = asyncio.Lock()
        self._cleanups: set[asyncio.Task[None]] = set()
        self._context: Context | None = None
        self._to_import: dict[str, Any] | None = None
        """The document ``config.live.import_planned`` imports at start (see ``config.live.adopt_revision``)."""
        self.store: Store | None = None
        self.vault: Vault | None = None
        self.vault_watch: VaultWatch | None = None
        """Resolves ``${vault:NAME}`` and applies rotated values while the hub runs."""
        self.notifiers: dict[str, Notifier] = {}
        """Integrations that can send (route targets)."""
        self.receivers: dict[str, Receiver] = {}
        """Integrations that answer ``POST /hooks/{name}``."""
        self._integrations: dict[str, Integration] = {}
        self.events: EventProcessor | None = None
        self.rejected: Counter[str] = Counter()
        """Inbound requests refused (bad signature...) per integration, since this process started."""
        self.dispatcher: Dispatcher | None = None
        self.grouper: Grouper | None = None
        self.escalator: Escalator | None = None
        """Fires the escalation steps of unacknowledged messages (``delivery/escalation.py``)."""
        self.scheduler: Scheduler | None = None
        """Routes scheduled messages when they are due (``delivery/schedule.py``)."""
        self.pruner: Pruner | None = None
        self.checkpointer: Checkpointer | None = None
        """Signs audit checkpoints (a dispatching hub with an audit key)."""
        self.silences: Silences | None = None
        """Active silences, in memory (checked on every notify without a query)."""
        self.directory: Directory | None = None
        """Every project's recipients and groups, in memory (read while planning, without a query)."""
        self.keeper: Keeper | None = None
        """Refreshes OAuth connections before their access tokens expire (``oauth/keeper.py``)."""
        self.sync: SyncService | None = None
        """Sweeps, webhook hints, local changes and manual runs of task sync (``sync/service.py``)."""
        self.calendars: Reconciler | None = None
        self.watch: Watch | None = None
        """Turns failures of tidings itself into incidents told to ``alerts_to`` (``watch/``)."""
        """Reconciles the calendar integrations once an hour (``calendars/reconcile.py``)."""
        self._writer = _WriteMessages(self)
        self._flushed: asyncio.Condition | None = None
        self.started = False
        self._stopping = False
        self._gc_tuned = False
        self._projects: set[str] = set()
        self._path: Path | None = None
        """The file the configuration came from (``reload_file`` reads it again)."""
        """Projects known to exist (those of the configuration are made at start)."""

    @classmethod
    def from_config(cls, path: str | Path | None = None, **kwargs: Any) -> Hub:
        """Load ``path`` (else ``TIDINGS_CONFIG``, else ``./tidings.yaml``, else built-in defaults)."""
        config = load_config(path)
        hub = cls(config, config_dir=config_path(path).resolve().parent, **kwargs)
        hub._path = config_path(path).resolve()
        return hub

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if self.started:
            return
        s = self.config.server
        self.store = Store(s.database, synchronous=s.sqlite_synchronous)
        try:
            if self._migrate:
                await self.store.migrate()
            self.vault = Vault(self.store, load_keys(self.config_dir))
            await self._adopt_revision()
            self.vault_watch = VaultWatch(self)
            self._integrations = await switch.build_integrations(self, self.config)
            await self.vault_watch.mark_used()
            await import_planned(self)
            self.notifiers = switch.senders(self._integrations)
            self.receivers = switch.receivers(self._integrations)
            self.silences = Silences(self.store, refresh=max(1.0, self.config.dispatcher.poll_interval * 5))
            self.directory = Directory(self.store, refresh=max(1.0, self.config.dispatcher.poll_interval * 5))
            for step, event in ((self._make_projects, "hub.projects_not_made"), (self.silences.load, "hub.silences_not_loaded"),
                                (self.directory.load, "hub.recipients_not_loaded")):
                try:
                    await step()
                except Exception as exc:  # a schema not migrated yet: start anyway (readyz says why)
                    log.warning(event, error=clip(f"{type(exc).__name__}: {exc}", 300))
        except BaseException:
            await self.store.close()
            raise
        self._flushed = asyncio.Condition()
        try:
            await components.start(self)
        except BaseException:
            self.started = True  # stop() undoes whatever did start
            await self.stop()
            raise
        # Last: a start that fails has nothing of it to undo.
        self._gc_tuned = gc_tuning.tune(s.gc_threshold)
        self.started = True
        log.info("hub.started", database=self.store.safe_url(), integrations=list(self._integrations), dispatch=self.dispatch)

    async def _adopt_revision(self) -> None:
        await adopt_revision(self)

    async def _make_projects(self) -> None:
        """Create the projects the configuration names that the database lacks, audited as SYSTEM
        (several workers starting at once: one makes each, the others find it)."""
        from sqlalchemy.exc import IntegrityError

        from .accounts.projects import create_project
        from .accounts.users import AccountError

        assert self.store is not None
        for slug in self.config.project_names():
            if await self.project_exists(slug, self.store):
                continue
            try:
                async with self.store.write() as conn:
                    await create_project(conn, SYSTEM, slug)
                log.info("hub.project_created", project=slug)
            except (AccountError, IntegrityError):  # made meanwhile by another process
                pass
            self._projects.add(slug)

    async def project_exists(self, slug: str, store: Store | None = None) -> bool:
        """Whether project ``slug`` exists (asks the database only about a project not seen yet)."""
        if slug in self._projects:
            return True
        from sqlalchemy import select

        from .store.tables import projects

        async with (store or self.require_store()).read() as conn:
            found = (await conn.execute(select(projects.c.slug).where(projects.c.slug == slug))).first() is not None
        if found:
            self._projects.add(slug)
        return found

    def integrations_of(self, project: str | None) -> list[str]:
        """The integrations of ``project`` (None: every one), in configuration order."""
        of = self.router.project_of
        return [n for n in self._integrations if project is None or of.get(n) == project]

    async def stop(self, timeout: float | None = None) -> None:
        if not self.started or self._stopping:
            return
        self._stopping = True
        try:
            await components.stop_feeders(self)
            self.started = False  # no more messages
            self._stopping = False
            await components.stop_rest(self, timeout)
        finally:
            self.started = self._stopping = False
            if self._gc_tuned:
                gc_tuning.restore()
                self._gc_tuned = False
        log.info("hub.stopped")

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- configuration changes -------------------------------------------------------------
    async def apply_config(self, config: Config, revision: int) -> switch.Switch:
        """Run ``config`` (configuration revision ``revision``) from now on, without a restart:
        only integrations whose settings changed are rebuilt, routes switch at once (see
        ``config/switch.py``). Raises before changing anything when an integration can't be built."""
        self.require_store()
        return await switch.apply_config(self, config, revision)

    async def catch_up(self) -> bool:
        """Run the current configuration revision now, without waiting for the watcher's next
        look (after a commit made by this process); whether the hub switched."""
        return await catch_up(self)

    async def reload_file(self, path: str | Path | None = None) -> int:
        """Import the configuration file (default: the one the hub came from) again, as SIGHUP
        does, and run the current revision; the revision now running. A file that doesn't parse
        or validate raises :class:`~tidings.errors.ConfigError` (one line per problem) and
        changes nothing. Its process settings (server, dispatcher...) apply at the next start."""
        return await reload_file(self, path if path is not None else self._path)

    # -- sending ---------------------------------------------------------------------------
    async def notify(
        self,
        message: Message,
        *,
        to: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        project: str = DEFAULT_PROJECT,
        send_at: SendAt | None = None,
        delay: Delay | None = None,
        actor: Actor | None = None,
    ) -> Receipt:
        """Route ``message`` as a message of ``project`` and store it with its deliveries; returns
        once they are committed. ``to`` names integrations (of the project) directly and skips the routes.

        ``send_at`` (an aware datetime, ISO 8601 text with an offset, or Unix time) or ``delay``
        (seconds or ``"10m"``) schedule it instead: it is stored now and routed when due (see
        ``delivery/schedule.py``); the receipt says ``scheduled``. ``actor``: who schedules it (audited)."""
        store = self.require_store()
        if send_at is None and delay is None:
            return await store.submit(self._writer, self.plan(message, to=to, idempotency_key=idempotency_key, project=project))
        due = due_time(send_at, delay, time.time())
        fingerprint = request_fingerprint(message, to, project, when_given(send_at, delay)) if idempotency_key else None
        if due is None:  # due now: sent as any message
            planned = self.plan(message, to=to, idempotency_key=idempotency_key, project=project)
            planned.request_hash = fingerprint
            return await store.submit(self._writer, planned)
        return await schedule_message(self, message, due, to=to, idempotency_key=idempotency_key, request_hash=fingerprint,
                                      project=project, actor=actor)

    def plan(
        self,
        message: Message,
        *,
        to: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        project: str = DEFAULT_PROJECT,
    ) -> Planned:
        """What storing ``message`` now writes: its targets by the routes (or ``to``), the silence
        covering it. The one place a message is routed: ``notify``, a scheduled message when it is
        due and an escalation step all plan through it."""
        silence = self.silences.match(message.labels, project=project) if self.silences is not None else None
        routed = self.router.route(message, to, project)
        targets = routed.targets
        if routed.people:  # @handles: one delivery per person and channel (recipients/plan.py)
            people = self.directory.people(project) if self.directory is not None else People(project)
            settings = self.config.projects.get(project)
            targets = targets + plan_people(message, routed.people, people, addressable(self.notifiers.values(), project),
                                            settings)
            if silence is None:  # the quiet hours of the people addressed
                targets = apply_quiet_hours(targets, people, settings, message, time.time())
        return Planned(
            message,
            targets,
            idempotency_key,
            request_fingerprint(message, to, project) if idempotency_key else None,
            silenced=f"silence {silence.id} ({silence.describe()})" if silence is not None else None,
            project=project,
            escalations=[] if to is not None else [
                (r, self.router.escalation_of[r].steps[0].after) for r in self.router.escalations(message, project)],
        )

    async def notify_many(
        self, messages: Sequence[Message], *, to: Sequence[str] | None = None, project: str = DEFAULT_PROJECT
    ) -> list[Receipt]:
        """``notify`` of each message, planned first (an error writes none) and stored together:
        committed in as few transactions as the writer takes, each answered once all are."""
        store = self.require_store()
        return await store.submit_many(self._writer, [self.plan(m, to=to, project=project) for m in messages])

    def count_inbound(self, integration: str, result: str) -> None:
        self.metrics.inbound.labels(integration, result).inc()
        if result == "rejected":
            self.rejected[integration] += 1
        if self.watch is not None:
            self.watch.inbound(integration, result)

    def wake_events(self) -> None:
        if self.events is not None:
            self.events.wake()

    async def receive(self, name: str, request: InboundRequest) -> Answer:
        """Take one inbound request for integration ``name`` (what ``POST /hooks/{name}`` does)."""
        receiver = self.receivers.get(name)
        if receiver is None:
            raise NotFound(f"no integration {name!r} receives webhooks")
        return await accept(self, receiver, request)

    def _handoff(self, leased: list[Any]) -> None:
        if self.dispatcher is not None:
            self.dispatcher.take(leased)
            self.dispatcher.wake()

    def _wake_dispatcher(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def _notify_flushed(self) -> None:
        flushed = self._flushed
        if flushed is None:
            return

        async def _notify() -> None:
            async with flushed:
                flushed.notify_all()

        asyncio.get_running_loop().create_task(_notify())

    async def wait(self, message_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until every delivery of a message has its first outcome (delivered, dead,
        suppressed, or retrying after an attempt); return the message with its deliveries."""
        store = self.require_store()
        deadline = time.monotonic() + timeout
        while True:
            async with store.read() as conn:
                if await queries.settled(conn, message_id):
                    return await queries.get_message(conn, message_id)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"message {message_id} still has deliveries in flight after {timeout:g}s")
            assert self._flushed is not None
            async with self._flushed:
                await wait_at_most(self._flushed.wait(), min(left, 0.25))

    # -- integrations: overview, test, preview; retention ------------------------------------
    def _audit_archive(self) -> ObjectArchive | None:
        """The integration ``audit.archive`` names (the loader checked it is an s3 one)."""
        name = self.config.audit.archive
        return archive_of(dict(self.notifiers), name) if name else None

    async def integrations(self, *, project: str | None = None) -> list[dict[str, Any]]:
        """Every integration (of ``project``, when given) with its health and stats (see ``integrations/overview.py``)."""
        from .integrations.overview import overview

        return await overview(self, project)

    async def test(self, name: str, *, project: str | None = None) -> Outcome:
        """Check an integration (of ``project``, when given) now, outside the queue, and report what its peer answered."""
        notifier = self._integrations.get(name)
        if notifier is None or (project is not None and notifier.project != project):
            raise UnknownIntegration(f"unknown integration {name!r}")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(notifier.effective_timeout + 5):
                outcome = await notifier.test()
        except TimeoutError:
            outcome = Outcome.retry(f"timed out after {notifier.effective_timeout:g}s")
        outcome = outcome.as_test()
        log.info("hub.integration_tested", integration=name, status=outcome.status.value,
                 ms=round((time.perf_counter() - started) * 1000, 1))
        return outcome

    def preview(
        self, message: Message, to: Sequence[str] | None = None, project: str = DEFAULT_PROJECT
    ) -> list[dict[str, Any]]:
        """What each target of a message of ``project`` would be sent, rendered (with its templates) but not sent."""
        out = []
        for t in self.router.targets(message, to, project):
            notifier = self._notifier(t.integration)
            route = self.router.options_for(t.route)
            templated = apply_templates(message, route.template, notifier.settings.template)
            out.append(
                {
                    "integration": t.integration,
                    "kind": notifier.kind,
                    "route": t.route,
                    "payload": notifier.preview(notifier.render(templated, route.render)),
                }
            )
        return out

    async def prune(self, *, dry_run: bool = False) -> dict[str, int]:
        """Remove now what ``retention`` no longer keeps (or count it); rows per table."""
        return await prune(self.require_store(), self.config.retention, dry_run=dry_run, metrics=self.metrics)

    def _notifier(self, name: str, project: str | None = None) -> Notifier:
        notifier = self.notifiers.get(name)
        if notifier is None or (project is not None and notifier.project != project):
            raise UnknownIntegration(f"unknown integration {name!r}")
        return notifier

    def signer(self) -> Signer:
        """Signs and checks the links people follow without signing in (ack, unsubscribe): keyed by
        the vault's keys. :class:`~tidings.security.signed.LinkError` without a secret key."""
        return Signer(self.vault.keys if self.vault is not None and self.vault.keys else [])

    def require_store(self) -> Store:
        """The store of a started hub."""
        if not self.started or self.store is None:
            raise RuntimeError("the hub is not started: use `async with hub:` or `await hub.start()`")
        return self.store


class _WriteMessages(Batch[Planned, Receipt]):
    """Messages and their deliveries. Deliveries this process can send now are leased to its
    dispatcher in the same transaction and handed to it right after the commit."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def apply(self, conn: Any, items: list[Planned]) -> list[Receipt | BaseException]:
        dispatcher = self.hub.dispatcher
        return await write_messages(conn, items, time.time(), dispatcher.lease() if dispatcher else None)

    def committed(self, items: list[Planned], results: list[Receipt | BaseException]) -> None:
        self.hub.metrics.enqueued.inc(sum(1 for r in results if isinstance(r, Receipt) and not r.replay))
        dispatcher = self.hub.dispatcher
        if dispatcher is None:
            return
        waiting = False
        for planned, result in zip(items, results, strict=True):
            dispatcher.take(planned.leased)
            if isinstance(result, Receipt) and not result.replay:
                waiting = waiting or any(d.status == "pending" for d in result.deliveries)
        if waiting:
            dispatcher.wake()


__all__ = ["Hub", "NotFound", "Receipt", "request_fingerprint"]
