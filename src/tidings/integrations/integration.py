"""The base of every integration: its name, settings and context, its limits, its life cycle (open,
reconfigure, close) and its end-to-end test."""

from __future__ import annotations

from typing import ClassVar

from ..security.outbound import Destinations
from .context import Context
from .outcome import Outcome
from .settings import IntegrationSettings


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
