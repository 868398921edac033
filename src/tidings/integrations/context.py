"""What a send is given: the route's render options, the attempt it is, and the hub's context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..message import Message, Priority
from ..security.outbound import Destinations

if TYPE_CHECKING:
    from ..store.engine import Store
    from ..threads import Threads


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
