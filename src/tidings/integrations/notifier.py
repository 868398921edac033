"""What a sending integration is: :class:`Notifier` (render, then send, answering an
:class:`~tidings.integrations.outcome.Outcome`), :class:`BatchNotifier` (several deliveries in one
request) and :class:`Addressable` (reaches a person at their own address)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from ..message import Message, Priority
from .context import NO_OPTIONS, Attempt, RenderOptions
from .integration import Integration
from .outcome import Outcome
from .settings import IntegrationSettings

if TYPE_CHECKING:
    from ..recipients.model import Person


TRUNCATED = "…(truncated)"


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
