"""Receiving: what an integration does with ``POST /hooks/{name}``.

The server hands a :class:`Receiver` the exact bytes received. The receiver

1. :meth:`~Receiver.verify`\\ s them (signature over the raw body, in constant time; replay
   window) before anything parses them, raising :class:`Rejected` (401) when they don't hold;
2. :meth:`~Receiver.identify`\\ s the event: its type and the sender's delivery id (for dedup),
   and any immediate answer the sender needs (a challenge, an ephemeral slash-command reply);
3. later, from the stored row and never inside the request, :meth:`~Receiver.process`\\ es it
   through its handler table (Zulip-style): ``handlers`` maps event types to methods,
   ``ignored`` lists what it deliberately drops, anything else is recorded as unsupported.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs

import orjson

from ..message import Message
from .base import Integration, IntegrationSettings

if TYPE_CHECKING:
    from ..hub import Hub

MAX_BODY = 5 * 1024 * 1024
REPLAY_WINDOW = 300.0
ANSWER_TIMEOUT = 2.0
"""How long an :attr:`Inbound.answer` may take: Slack wants every answer within 3 s."""


class Rejected(Exception):
    """The request is refused with ``status`` (401 bad signature, 400 malformed...) and a reason
    the sender sees. Never carries a secret."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class InboundRequest:
    integration: str
    headers: Mapping[str, str]
    """Lower-cased names."""
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)
    received_at: float = 0.0
    client: str = ""
    """The address the request came from (for logs)."""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        """The body as JSON; a malformed body is a 400 with the parser's reason."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise Rejected(400, f"malformed JSON: {exc}") from None

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body (last value wins); 400 when it isn't."""
        try:
            text = self.body.decode("utf-8")
            pairs = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Rejected(400, f"malformed form body: {exc}") from None
        return {k: v[-1] for k, v in pairs.items()}


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer the sender needs now, instead of the default ``{"id": ..., "status": ...}``."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Inbound:
    """What :meth:`Receiver.identify` found in a verified request."""

    event_type: str
    delivery_key: str
    """The sender's delivery id (the same on redelivery), or a digest that plays its role."""
    reply: Reply | None = None
    store: bool = True
    """False for requests that need only the reply (a URL verification challenge)."""
    answer: Callable[[Hub], Awaitable[Reply]] | None = None
    """A reply that needs the hub (a slash command's ``status``), computed after the event is
    stored (or at once, when ``store`` is False); it replaces ``reply``, which stays the answer
    when ``answer`` takes longer than :data:`ANSWER_TIMEOUT`."""


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """A stored event, as its handler sees it."""

    id: str
    integration: str
    kind: str
    event_type: str
    delivery_key: str
    received_at: float
    headers: dict[str, str]
    body: bytes
    attempts: int

    def json(self) -> Any:
        return orjson.loads(self.body)

    def form(self) -> dict[str, str]:
        return InboundRequest(self.integration, self.headers, self.body).form()


class Receiver(Integration):
    """Base class of every receiving integration."""

    max_body: ClassVar[int] = MAX_BODY
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    kept_headers: ClassVar[tuple[str, ...]] = ()
    """Headers stored with the event (never a signature or a secret)."""
    handlers: ClassVar[dict[str, str]] = {}
    """Event type (``issues.opened``) or family (``issues``) -> name of the handling method."""
    ignored: ClassVar[frozenset[str]] = frozenset()
    """Event types (or families) received on purpose and dropped: answered 200, recorded ignored."""

    @classmethod
    def can_receive(cls, settings: IntegrationSettings) -> bool:
        return True

    @property
    def repeat_after(self) -> float | None:
        """A delivery id seen longer ago than this (and done with) is news again, not a retry:
        for senders that repeat an unchanged notification on purpose (Alertmanager's
        ``repeat_interval``). None: a delivery id is processed once, ever."""
        return None

    @property
    def effective_max_body(self) -> int:
        return getattr(self.settings, "max_body", None) or self.max_body

    def verify(self, request: InboundRequest) -> None:
        """Check the request came from the sender: raise :class:`Rejected` (401) if not."""
        raise NotImplementedError

    def identify(self, request: InboundRequest) -> Inbound:
        """The event's type and delivery id, from a verified request."""
        raise NotImplementedError

    def status_for(self, event_type: str) -> str:
        """``received`` (to process), ``ignored`` or ``unsupported``, decided when it arrives."""
        family = event_type.split(".", 1)[0]
        if event_type in self.handlers or family in self.handlers:
            return "received"
        if event_type in self.ignored or family in self.ignored:
            return "ignored"
        return "unsupported"

    async def process(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        """Run the event's handler; its return value is stored as the event's result."""
        name = self.handlers.get(event.event_type) or self.handlers.get(event.event_type.split(".", 1)[0])
        if name is None:
            return {"status": "unsupported"}
        result: dict[str, Any] = await getattr(self, name)(event, hub)
        return result

    async def emit(
        self, hub: Hub, event: InboundEvent, message: Message, index: int = 0, to: list[str] | None = None
    ) -> str:
        """Notify ``message`` on behalf of ``event`` (through the routes, or to ``to``), as a message
        of this integration's project. The idempotency key ties it to the event, so processing the event again (a retry, a replay)
        never sends it twice."""
        receipt = await hub.notify(message, to=to, idempotency_key=f"event:{event.id}:{index}", project=self.project)
        return receipt.id


def hmac_sha256(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison."""
    a = a.encode() if isinstance(a, str) else a
    b = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a, b)


def body_digest(body: bytes) -> str:
    """A delivery key for senders that don't send one: the same body is the same delivery."""
    return "sha256:" + hashlib.sha256(body).hexdigest()
