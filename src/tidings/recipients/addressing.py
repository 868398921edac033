"""A delivery planned for a person is addressed when it is sent, not when it is planned: the
person's address as it is now (an email changed meanwhile is used; a person deleted meanwhile
gets nothing). The dispatcher calls :class:`Addresser` before rendering such a delivery."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from ..integrations.base import Addressable, Notifier
from ..message import Message
from ..security.signed import LinkError, Signer
from .links import Unsubscribe, unsubscribe_url
from .plan import topic_of
from .preferences import is_required

if TYPE_CHECKING:
    from ..delivery.outbox import Claimed
    from ..hub import Hub

log = structlog.get_logger("tidings.recipients")

UNSUBSCRIBE_LABEL = "unsubscribe_url"
"""The label an integration with ``unsubscribe = True`` turns into RFC 8058 headers."""


class Addresser:
    """``(notifier, claimed, message) -> message as sent to the person, or why it can't be``
    (a permanent failure: the delivery ends ``dead`` with that reason)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._signer: tuple[tuple[str, ...], Signer | None] | None = None

    def __call__(self, notifier: Notifier, claimed: Claimed, message: Message) -> Message | str:
        recipient = claimed.recipient
        directory = self.hub.directory
        person = directory.person(recipient) if directory is not None and recipient else None
        if person is None:
            return f"recipient {recipient} no longer exists: nothing sent"
        if not isinstance(notifier, Addressable):
            return f"integration {notifier.name} can't address a person"
        try:
            addressed = notifier.address(message, person)
        except Exception as exc:  # a bug in one integration must not stop the dispatcher
            log.exception("recipients.address_failed", integration=notifier.name, delivery=claimed.id)
            return f"addressing {person.name} failed: {type(exc).__name__}: {exc}"
        if addressed is None:
            return f"{person.name} has no address on {notifier.name} any more: nothing sent"
        if notifier.unsubscribe:
            settings = self.hub.config.projects.get(notifier.project)
            topic = topic_of(message, self.hub.router.topic_of.get(claimed.route or ""))
            signer = self._current_signer()
            if topic and not is_required(topic, settings) and signer is not None:
                url = unsubscribe_url(signer, self.hub.config.server.base_url,
                                      Unsubscribe(person.id, topic, notifier.name))
                addressed = addressed.model_copy(update={"labels": {**addressed.labels, UNSUBSCRIBE_LABEL: url}})
        return addressed

    def _current_signer(self) -> Signer | None:
        """The links' signer for the vault's keys now (None without a secret key), made once per key set."""
        vault = self.hub.vault
        keys = tuple(vault.keys) if vault is not None and vault.keys else ()
        if self._signer is None or self._signer[0] != keys:
            try:
                self._signer = (keys, Signer(list(keys)))
            except LinkError:
                self._signer = (keys, None)
        return self._signer[1]
