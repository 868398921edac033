"""What an integration is: settings, the Notifier protocol, and the Outcome of a send.

A notifier turns a :class:`~tidings.Message` into a platform payload with :meth:`Notifier.render`
(pure, so it can be previewed) and delivers it with :meth:`Notifier.send`, which never raises for
a peer's failure: it classifies it as an :class:`Outcome`.

This module is where callers import these names from; each lives in a module of its own:

- ``settings.py``: :class:`IntegrationSettings`, the retry and breaker policies, vault references;
- ``outcome.py``: :class:`Outcome`, the result of one send;
- ``context.py``: what a send is given (:class:`Attempt`, :class:`RenderOptions`, :class:`Context`);
- ``integration.py``: :class:`Integration`, what every integration is;
- ``notifier.py``: :class:`Notifier`, :class:`BatchNotifier`, :class:`Addressable`;
- ``http.py``: :class:`HttpClient`, :class:`HttpNotifier` (one guarded session);
- ``tracker.py`` and ``calendar.py``: the sync and calendar capabilities.
"""

from __future__ import annotations

from .calendar import Calendar, CalendarEvent, CalendarFailure, EventRef
from .context import ACK_PRIORITIES, NO_OPTIONS, Attempt, Context, RenderOptions
from .http import RETIRE_GRACE, HttpClient, HttpNotifier
from .integration import Integration
from .notifier import TRUNCATED, Addressable, BatchNotifier, Notifier, test_message, truncate
from .outcome import DISABLED, WOULD_DISABLE, Outcome, OutcomeStatus, not_connected, not_connected_outcome
from .settings import (
    DEFAULT_PROJECT,
    PROJECT_SLUG,
    VAULT_REF,
    AllowEntry,
    BreakerPolicy,
    ConnectableSettings,
    IntegrationSettings,
    RetryPolicy,
    is_vault_ref,
    secret_refs,
)
from .tracker import Tracker

__all__ = [
    "ACK_PRIORITIES",
    "DEFAULT_PROJECT",
    "DISABLED",
    "NO_OPTIONS",
    "PROJECT_SLUG",
    "RETIRE_GRACE",
    "TRUNCATED",
    "VAULT_REF",
    "WOULD_DISABLE",
    "Addressable",
    "AllowEntry",
    "Attempt",
    "BatchNotifier",
    "BreakerPolicy",
    "Calendar",
    "CalendarEvent",
    "CalendarFailure",
    "ConnectableSettings",
    "Context",
    "EventRef",
    "HttpClient",
    "HttpNotifier",
    "Integration",
    "IntegrationSettings",
    "Notifier",
    "Outcome",
    "OutcomeStatus",
    "RenderOptions",
    "RetryPolicy",
    "Tracker",
    "is_vault_ref",
    "not_connected",
    "not_connected_outcome",
    "secret_refs",
    "test_message",
    "truncate",
]
