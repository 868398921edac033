"""The result of one send: delivered, retry (after) or permanent, as :class:`Outcome`."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..security.redact import mask_in, redact

DISABLED = "; integration disabled"
"""How an error that disabled its integration ends."""
WOULD_DISABLE = "; a send would disable the integration (this test changed nothing)"


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

    def masking(self, secrets: Iterable[str]) -> Outcome:
        """This outcome with each of ``secrets`` (longest first) masked in its error, whatever echoed them."""
        return replace(self, error=mask_in(self.error, secrets)) if self.error else self

    @property
    def ok(self) -> bool:
        return self.status is OutcomeStatus.DELIVERED


_DELIVERED = Outcome(OutcomeStatus.DELIVERED)


def not_connected(name: str) -> str:
    """Why integration ``name`` (``oauth: true``) can't call its provider yet: its send's permanent
    error (``disable=True``: its deliveries are held until it is connected) and its sync run's."""
    return f"not connected: open /oauth/{name}/start or run `tidings connect {name}`"


def not_connected_outcome(name: str) -> Outcome:
    """A send of ``name`` before its connection exists: held, the integration disabled."""
    return Outcome.held(not_connected(name))
