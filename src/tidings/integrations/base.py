"""What an integration is: settings, the Notifier protocol, and the Outcome of a send.

A notifier turns a :class:`~tidings.Message` into a platform payload with :meth:`Notifier.render`
(pure, so it can be previewed) and delivers it with :meth:`Notifier.send`, which never raises for
a peer's failure: it classifies it as an :class:`Outcome`.
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import aiohttp
from limits import parse as parse_rate
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ..message import Message, Priority
from ..security.outbound import Destinations, check_entry, guarded_session
from ..security.redact import redact
from ..templates import Template
from ..units import Duration, Size

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ..recipients.model import Person
    from ..store.engine import Store
    from ..sync.model import Page, RemoteItem
    from ..sync.settings import SyncSettings
    from ..threads import Threads

VAULT_REF = re.compile(r"^\$\{vault:([A-Za-z0-9_.\-/]+)\}$")
TRUNCATED = "…(truncated)"
AllowEntry = Annotated[str, AfterValidator(check_entry)]
DISABLED = "; integration disabled"
"""How an error that disabled its integration ends."""
WOULD_DISABLE = "; a send would disable the integration (this test changed nothing)"
RETIRE_GRACE = 5.0
"""A session replaced by new settings closes this long after the integration's timeout."""
DEFAULT_PROJECT = "default"
"""The project of everything configured without one (and of the unscoped API routes)."""
PROJECT_SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
"""How a project slug is written (as ``accounts.projects.create_project`` checks it)."""


def is_vault_ref(value: str) -> bool:
    return bool(VAULT_REF.match(value))


class RetryPolicy(BaseModel):
    """Exponential backoff with full jitter: attempt n waits a random time up to
    ``min(cap, base * factor**(n-1))``; the delivery is dead after ``max_attempts`` or ``max_age``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    base: Duration = Field(5.0, gt=0)
    factor: float = Field(2.0, ge=1.0, le=10.0)
    cap: Duration = 3600.0
    max_attempts: int = Field(10, ge=1, le=1000)
    max_age: Duration = 86400.0


def _old_breaker_name(schema: dict[str, Any]) -> None:
    """`failures` (see BreakerPolicy._failures) in the JSON Schema too, so editors accept old files."""
    schema["properties"]["failures"] = {"type": "integer", "minimum": 1, "deprecated": True,
                                        "description": "the old name of min_calls"}


class BreakerPolicy(BaseModel):
    """Open when at least ``failure_rate`` of the sends of the last ``window`` failed (retryably),
    once the window holds ``min_calls`` sends. Open, it holds sends back for ``cool_off``, then lets
    ``trials`` sends through (half-open): their success closes it, a failure opens it again for
    twice as long, at most ``max_cool_off`` (never below ``cool_off``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_old_breaker_name)
    failure_rate: float = Field(0.5, gt=0.0, le=1.0, description="share of failed sends in the window that opens it")
    min_calls: int = Field(20, ge=1, le=100_000, description="sends the window must hold before it may open")
    window: Duration = Field(10.0, gt=0, description="the sliding window the failure rate is measured over")
    cool_off: Duration = Field(1.0, gt=0, description="the first time it stays open")
    max_cool_off: Duration = Field(4.0, gt=0, description="the longest it stays open while the peer stays down")
    trials: int = Field(1, ge=1, le=100, description="sends let through half-open; all must succeed to close it")

    @model_validator(mode="before")
    @classmethod
    def _failures(cls, data: Any) -> Any:
        """``failures: N`` (before the failure rate) still reads, as ``min_calls: N``."""
        if isinstance(data, dict) and "failures" in data:
            data = dict(data)
            if "min_calls" in data:
                raise ValueError("failures is the old name of min_calls: give one of them")
            data["min_calls"] = data.pop("failures")
        return data

    @property
    def longest_cool_off(self) -> float:
        return max(self.cool_off, self.max_cool_off)


class IntegrationSettings(BaseModel):
    """Settings every kind shares. Leave a limit out to get the kind's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    description: str = ""
    project: str = Field(
        DEFAULT_PROJECT, pattern=PROJECT_SLUG,
        description="the project it belongs to: only that project's routes and messages use it, only its"
        " members see it; created at start when missing",
    )
    rate_limit: str | None = Field(None, description="e.g. '4/second', '60/minute'")
    burst: int | None = Field(None, ge=1, le=10_000, description="sends allowed at once above the rate")
    concurrency: int | None = Field(None, ge=1, le=1_000)
    timeout: Duration | None = None
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    template: Template | None = Field(None, description="Jinja2 rewrite of title, body, fields")
    max_body: Size | None = Field(None, description="largest inbound webhook body accepted (default 5MiB)")
    allow_destinations: list[AllowEntry] = Field(
        default_factory=list,
        description="networks (10.0.0.0/8) and host names this integration may connect to although they are"
        " private, loopback or link-local; added to server.allow_destinations",
    )

    outbound: ClassVar[tuple[str, ...]] = ()
    """The fields holding a URL or host this integration connects to (checked by `config validate`)."""

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            parse_rate(v)
        except ValueError:
            raise ValueError(f"invalid rate {v!r}; write e.g. '4/second' or '60/minute'") from None
        return v

    def secret_values(self) -> list[str]:
        """Every secret in these settings, so that logs and errors can mask it."""
        out: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out.append(value.get_secret_value())
        return [v for v in out if v and not is_vault_ref(v)]

    def vault_refs(self) -> dict[str, str]:
        """Field name -> vault secret name, for secrets written as ``${vault:NAME}``."""
        refs: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and (m := VAULT_REF.match(value.get_secret_value())):
                refs[name] = m.group(1)
        return refs


class ConnectableSettings(IntegrationSettings):
    """Settings of a kind whose token may come from an OAuth connection instead of being pasted:
    with ``oauth: true`` the field :attr:`token_field` is filled from the vault secret the
    connection keeps current (``oauth/NAME/access``), so a refreshed token reaches the running
    integration like any rotated secret (``security/vault_watch.py``)."""

    oauth: bool = Field(
        False,
        description="take the token from this integration's OAuth connection (Connect in the UI, or `tidings connect"
        " NAME`) instead of a pasted one; the oauth.<provider> app registration must be configured",
    )

    oauth_provider: ClassVar[str] = ""
    """github, slack, google, microsoft or atlassian."""
    token_field: ClassVar[str] = "token"
    """The field the connection's access token fills."""


def not_connected(name: str) -> str:
    """Why integration ``name`` (``oauth: true``) can't call its provider yet: its send's permanent
    error (``disable=True``: its deliveries are held until it is connected) and its sync run's."""
    return f"not connected: open /oauth/{name}/start or run `tidings connect {name}`"


def not_connected_outcome(name: str) -> Outcome:
    """A send of ``name`` before its connection exists: held, the integration disabled."""
    return Outcome.held(not_connected(name))


def secret_refs(name: str, settings: IntegrationSettings) -> dict[str, str]:
    """Field -> vault secret for integration ``name``: its ``${vault:NAME}`` fields and, with
    ``oauth: true``, its token field -> the connection's access token."""
    from ..oauth.names import access_secret

    refs = settings.vault_refs()
    if isinstance(settings, ConnectableSettings) and settings.oauth:
        refs[settings.token_field] = access_secret(name)
    return refs


class OutcomeStatus(str, enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one send. Build it with :meth:`delivered`, :meth:`retry` or :meth:`permanent`."""

    status: OutcomeStatus
    remote_id: str | None = None
    retry_after: float | None = None
    error: str | None = None
    disable: bool = False
    http_status: int | None = None
    """The peer's HTTP status code, when it answered one (kept in the delivery's attempt history)."""

    @classmethod
    def delivered(cls, remote_id: str | None = None, warning: str | None = None) -> Outcome:
        """``warning``: delivered, but not entirely (recipients an email server refused...);
        shown as the delivery's last error."""
        if remote_id is None and warning is None and cls is Outcome:
            return _DELIVERED  # frozen, so one instance serves every plain success
        return cls(OutcomeStatus.DELIVERED, remote_id=remote_id, error=warning)

    @classmethod
    def retry(cls, error: str, after: float | None = None, *, http_status: int | None = None) -> Outcome:
        return cls(OutcomeStatus.RETRY, error=error, retry_after=after, http_status=http_status)

    @classmethod
    def held(cls, error: str) -> Outcome:
        """Nothing can go until someone acts (an ``oauth: true`` integration not connected yet): the
        integration is disabled and this delivery waits, held with the others (``delivery/holds.py``),
        until it is enabled again. Unlike a permanent outcome, nothing is lost."""
        return cls(OutcomeStatus.RETRY, error=error + DISABLED, disable=True)

    @classmethod
    def permanent(cls, error: str, *, disable: bool = False, http_status: int | None = None) -> Outcome:
        """``disable=True`` also disables the integration (a webhook answering 410 Gone); the
        error then ends with :data:`DISABLED`."""
        return cls(OutcomeStatus.PERMANENT, error=error + DISABLED if disable else error, disable=disable,
                   http_status=http_status)

    def as_test(self) -> Outcome:
        """What a test reports: this answer masked, and with no effect. A test changes nothing,
        so an answer that would disable the integration says so instead of doing it."""
        error = self.error
        if self.disable and error is not None:
            error = error.removesuffix(DISABLED) + WOULD_DISABLE
        remote_id = redact(self.remote_id) if self.remote_id else self.remote_id
        return Outcome(self.status, remote_id, self.retry_after, redact(error) if error else error,
                       http_status=self.http_status)

    @property
    def ok(self) -> bool:
        return self.status is OutcomeStatus.DELIVERED


_DELIVERED = Outcome(OutcomeStatus.DELIVERED)


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """What a route adds to how its deliveries are rendered."""

    mention: Literal["here", "channel"] | None = None
    """Critical messages may alert the whole channel (Slack ``@here``/``@channel``): only when the
    route says so, never from message text."""


NO_OPTIONS = RenderOptions()


@dataclass(frozen=True, slots=True)
class Attempt:
    """Which delivery a send belongs to. ``delivery_id`` is stable across retries: use it as the
    idempotency key the peer sees."""

    delivery_id: str
    message_id: str
    number: int
    created_at: float
    message: Message


ACK_PRIORITIES = frozenset({Priority.CRITICAL, Priority.HIGH})
"""Messages whose emails and Teams cards carry an acknowledge link (``Context.ack_link``)."""


@dataclass
class Context:
    """What the hub lends an integration."""

    store: Store
    threads: Threads
    secrets: set[str] = field(default_factory=set)
    destinations: Destinations = Destinations()
    """Where integrations may connect: public addresses plus ``server.allow_destinations``."""
    oauth: dict[str, Any] = field(default_factory=dict)
    """The ``oauth:`` app registrations (provider -> :class:`~tidings.oauth.settings.OAuthClient`):
    where an integration with ``oauth: true`` reaches its provider's API (Atlassian's gateway)."""
    ack_link: Callable[[str, float, str], str | None] | None = None
    """(message id, issued at, channel) -> the signed link that acknowledges the message, or None
    (no secret key to sign with): emails and Teams cards of critical and high messages carry it."""
    person_url: Callable[[str, str], Awaitable[tuple[str, str]]] | None = None
    """(recipient id, project) -> (their name, their own Teams workflow URL), read from the vault when
    sent; raises ``LookupError`` with the reason when there is none (``recipients/teams.py``)."""


class Integration:
    """What every integration is: a named, configured connection to one provider.

    Subclasses set ``kind`` and ``Settings``. Sending integrations derive from :class:`Notifier`,
    receiving ones from :class:`Receiver`; a provider that does both derives from both.
    """

    kind: ClassVar[str]
    Settings: ClassVar[type[IntegrationSettings]] = IntegrationSettings
    timeout: ClassVar[float] = 10.0
    live_state: ClassVar[tuple[str, ...]] = ()
    """Attributes ``__init__`` sets that hold live state rather than something derived from the
    settings (a lock per channel...): :meth:`reconfigure` keeps them."""

    def __init__(self, name: str, settings: IntegrationSettings, context: Context) -> None:
        self.name = name
        self.settings = settings
        self.context = context

    def reconfigure(self, settings: IntegrationSettings) -> None:
        """Take new ``settings`` (a rotated secret) in place, without a restart. Whatever ``__init__``
        derives from the settings (a signer, a mode) is derived again, as a new instance would have
        it; attributes set later (an open session) and :attr:`live_state` stay. The object stays the
        same, so the dispatcher's lanes and the hub's maps keep pointing at it."""
        fresh = type(self)(self.name, settings, self.context)
        vars(self).update({k: v for k, v in vars(fresh).items() if k not in self.live_state})

    @property
    def project(self) -> str:
        """The project it belongs to: the messages its events produce, the silences it makes are that project's."""
        return self.settings.project

    @property
    def effective_timeout(self) -> float:
        return self.settings.timeout or self.timeout

    @property
    def destinations(self) -> Destinations:
        """The outbound guard's allow list: the server's and this integration's own."""
        return self.context.destinations.merged(self.settings.allow_destinations)

    @classmethod
    def can_send(cls, settings: IntegrationSettings) -> bool:
        """Whether an integration so configured can be a route's target."""
        return False

    @classmethod
    def can_receive(cls, settings: IntegrationSettings) -> bool:
        """Whether an integration so configured answers ``POST /hooks/{name}``."""
        return False

    async def open(self) -> None:
        """Acquire resources (an HTTP session...). Called once before the first use."""

    async def close(self) -> None:
        """Release what :meth:`open` acquired."""

    async def test(self) -> Outcome:
        """Check the integration end to end."""
        return Outcome.permanent(f"{self.kind} integrations have no test")


class Tracker(Integration):
    """The sync capability (DESIGN.md "Sync"): an integration whose settings have a ``sync:`` block
    (:class:`~tidings.sync.settings.SyncSettings`) lists, reads, creates and updates items of one
    repository / Jira project, in task space (:mod:`tidings.sync.model`).

    Every method counts its HTTP requests (``model.count_call``) and raises the errors of
    :mod:`tidings.sync.model`: ``RateLimited(wait)``, ``Unavailable``, ``AuthFailed``,
    ``NotFound``, ``Rejected``. None of them writes to the store: the engine does."""

    @classmethod
    def can_sync(cls, settings: IntegrationSettings) -> bool:
        return getattr(settings, "sync", None) is not None

    @property
    def sync_settings(self) -> SyncSettings:
        return self.settings.sync  # type: ignore[attr-defined, no-any-return]

    def changes(self, since: float | None, etag: str | None) -> AsyncIterator[Page]:
        """Items updated at or after ``since`` (all when ``None``), oldest first, page by page. The
        first request is conditional on ``etag`` (the first page's ETag of the last sweep with the
        same ``since``): unchanged, it yields one ``Page(not_modified=True)``."""
        raise NotImplementedError

    def can_hold(self, name: str, value: Any) -> bool:
        """Whether this tracker can hold task-space ``value`` in field ``name`` (an assignee with no
        login here can't be written). The engine leaves such a field out of that item's sync until
        it can be carried, so it is neither written nor read back as cleared."""
        return True

    async def fetch(self, remote_id: str, etag: str | None = None) -> RemoteItem | None:
        """One item; ``None`` when ``etag`` still matches (304). Raises ``NotFound`` once deleted."""
        raise NotImplementedError

    async def create(self, fields: dict[str, Any], marker: str) -> RemoteItem:
        """A new item from task-space ``fields``, carrying ``marker`` where :meth:`find_created` looks."""
        raise NotImplementedError

    async def find_created(self, marker: str, since: float) -> RemoteItem | None:
        """The item a create with ``marker`` made at or after ``since``, if it exists (its answer was lost)."""
        raise NotImplementedError

    async def update(self, remote_id: str, changes: dict[str, Any], current: RemoteItem) -> None:
        """Write task-space ``changes`` to the item (``current`` as last read): fields in one
        request, a status change through the tracker's own means (Jira transitions)."""
        raise NotImplementedError


class Notifier(Integration):
    """Base class of every sending integration. A user's settings override the class defaults
    (limits) per integration."""

    title_max: ClassVar[int | None] = None
    body_max: ClassVar[int | None] = None
    rate_limit: ClassVar[str | None] = None
    burst: ClassVar[int] = 1
    concurrency: ClassVar[int] = 8

    @classmethod
    def can_send(cls, settings: IntegrationSettings) -> bool:
        return True

    # The limits that apply: the user's settings first, then the kind's defaults.
    @property
    def effective_rate_limit(self) -> str | None:
        return self.settings.rate_limit or self.rate_limit

    @property
    def effective_burst(self) -> int:
        return self.settings.burst or self.burst

    @property
    def effective_concurrency(self) -> int:
        return self.settings.concurrency or self.concurrency

    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> Any:
        """The platform payload for ``message``. Pure: no I/O, same input, same output."""
        raise NotImplementedError

    def preview(self, payload: Any) -> Any:
        """``payload`` as JSON-ready data, for previews (an email's text and HTML...)."""
        return payload

    async def send(self, payload: Any, attempt: Attempt) -> Outcome:
        raise NotImplementedError

    def rate_key(self, payload: Any) -> str:
        """What the rate limit counts against; Slack overrides it to count per channel."""
        return self.name

    async def test(self) -> Outcome:
        """Check the integration end to end. By default: send a test message."""
        message = test_message(self.name)
        attempt = Attempt(_test_id(), _test_id(), number=1, created_at=time.time(), message=message)
        return await self.send(self.render(message), attempt)

    def truncate_title(self, text: str) -> str:
        return truncate(text, self.title_max)

    def truncate_body(self, text: str) -> str:
        return truncate(text, self.body_max)


class BatchNotifier(Notifier):
    """A notifier that can carry several deliveries in one request (Splunk HEC's concatenated
    events). The dispatcher takes up to :attr:`max_batch` ready deliveries of the integration,
    renders each, keeps the first :meth:`batch_cut` of them for one :meth:`send_batch` (the rest
    go back to the front of the lane's queue, in order) and records each delivery's own outcome.
    One batch is one send for the rate limit and the breaker. A thread's deliveries are claimed one
    at a time (``outbox.claim``), so a batch never holds two of one thread."""

    max_batch: ClassVar[int] = 100

    @property
    def effective_max_batch(self) -> int:
        """Deliveries one request may carry (settings may lower the class default)."""
        return self.max_batch

    def batch_cut(self, payloads: list[Any]) -> int:
        """How many of ``payloads``, from the first, fit in one request (at least one)."""
        return len(payloads)

    async def send_batch(self, payloads: list[Any], attempts: list[Attempt]) -> list[Outcome]:
        """Send ``payloads`` (one per attempt) in one request; one outcome per payload, in order.
        Never raises for a peer's failure."""
        raise NotImplementedError

    async def send(self, payload: Any, attempt: Attempt) -> Outcome:
        return (await self.send_batch([payload], [attempt]))[0]


class Addressable:
    """A notifier that can reach a person at their own address (their mailbox, a Slack DM): a
    route's ``@handle`` becomes one delivery per person on each of the project's addressable
    integrations that :meth:`reaches` them (see ``recipients/plan.py``)."""

    unsubscribe: ClassVar[bool] = False
    """Its messages carry a one-click unsubscribe link (the ``unsubscribe_url`` label) for topics
    that aren't required."""

    def reaches(self, person: Person) -> bool:
        """Whether ``person`` has an address here. Pure and cheap: called while planning."""
        raise NotImplementedError

    def address(self, message: Message, person: Person) -> Message | None:
        """``message`` as sent to ``person`` on this integration (usually through a label), or
        None when they have no address here (any more)."""
        raise NotImplementedError


class HttpClient(Integration):
    """An integration that speaks HTTP: one pooled, guarded aiohttp session for its lifetime (DESIGN
    rules 8 and 10), opened on first use (once, even when the first requests start together) and
    closed with it. New settings get a new session; the old one closes once requests still using
    it have timed out at the latest."""

    _session: aiohttp.ClientSession | None = None
    _opening: asyncio.Lock | None = None
    _retiring: dict[aiohttp.ClientSession, asyncio.Task[None]] | None = None
    """Sessions replaced by :meth:`reconfigure`, each with the task that closes it once its requests are over."""

    @property
    def http_concurrency(self) -> int:
        """Connections the session may hold at once."""
        return self.settings.concurrency or 8

    def session_headers(self) -> dict[str, str]:
        """Headers on every request (credentials that never change belong here)."""
        from .. import __version__

        return {"User-Agent": f"tidings/{__version__}"}

    async def session(self) -> aiohttp.ClientSession:
        if self._session is not None:
            return self._session
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._session is None:
                self._session = guarded_session(
                    self.destinations,
                    concurrency=self.http_concurrency,
                    timeout=self.effective_timeout,
                    headers=self.session_headers(),
                )
        return self._session

    async def open(self) -> None:
        await self.session()

    def reconfigure(self, settings: IntegrationSettings) -> None:
        """New settings, and a new session for the next request (its headers may carry the old
        credential, its guard the old destinations)."""
        super().reconfigure(settings)
        old, self._session = self._session, None
        if old is None:
            return

        async def retire() -> None:
            await asyncio.sleep(self.effective_timeout + RETIRE_GRACE)
            if self._retiring is not None and self._retiring.pop(old, None) is not None:
                await old.close()

        if self._retiring is None:
            self._retiring = {}
        self._retiring[old] = asyncio.get_running_loop().create_task(retire(), name=f"tidings-retire-{self.name}")

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        retiring, self._retiring = self._retiring or {}, None
        for old, task in retiring.items():
            task.cancel()
            await old.close()
        await super().close()


class HttpNotifier(HttpClient, Notifier):
    """A notifier that speaks HTTP (see :class:`HttpClient`)."""

    @property
    def http_concurrency(self) -> int:
        return self.effective_concurrency


def truncate(text: str, limit: int | None, marker: str = TRUNCATED) -> str:
    """``text`` cut to ``limit`` characters with a visible marker at the end."""
    if limit is None or len(text) <= limit:
        return text
    if limit <= len(marker):
        return text[:limit]
    return text[: limit - len(marker)].rstrip() + marker


def test_message(integration: str) -> Message:
    return Message(
        title=f"tidings test for {integration}",
        body="If you can read this, the integration works.",
        priority=Priority.INFO,
        labels={"source": "tidings", "event_type": "integration.test"},
    )


def _test_id() -> str:
    from ..ids import new_id

    return new_id()



@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """One task's event as every calendar gets it (provider-neutral): all day on ``date``."""

    task_id: str
    project: str
    summary: str
    description: str
    date: str
    """YYYY-MM-DD; the event ends the next day (exclusive)."""
    reminders: tuple[int, ...] | None = None
    """Minutes before the start; None: the calendar's default reminders."""


@dataclass(frozen=True, slots=True)
class EventRef:
    """An event we wrote, as the calendar names it: its id (None while a create's answer is not
    known), its etag for ``If-Match``, and the task it belongs to (from our private property)."""

    event_id: str | None
    etag: str | None = None
    task_id: str | None = None
    creates: int = 0
    """Events made for the task so far: a new one after a delete needs a new create key."""


class CalendarFailure(Exception):
    """A calendar call that failed, classified: raise it with the :class:`Outcome` the send answers."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


class Calendar(Integration):
    """The calendar capability: one event per task, which we create or update, delete, and list
    (only events carrying our private property: never anyone else's). Each method raises
    :class:`CalendarFailure` for a failed call and aiohttp's errors for a failed connection."""

    async def upsert(self, event: CalendarEvent, known: EventRef | None) -> EventRef:
        """Create the task's event, or update it in place (``known``: where it was last written)."""
        raise NotImplementedError

    async def delete(self, ref: EventRef) -> None:
        """Delete the event; one already gone is fine."""
        raise NotImplementedError

    def list_ours(self) -> AsyncIterator[EventRef]:
        """Every event of this calendar that carries our private property for this project, page by page."""
        raise NotImplementedError
