"""Drop-in facades for the APIs our users already call, running on tidings' channels:

- :func:`create_communication_integration` (Slack, Teams, email messaging: ``send_message``,
  ``send_batch``, ``health_check``, ``get_statistics``) and its types;
- :class:`AlertDispatcher` (security alerts to Teams and email, in background threads);
- :class:`AlertingMiddleware` (pure ASGI: alerts on bursts of 429/401/413 responses).

They send directly (with a few retries), not through the outbox; for durable delivery use
:class:`tidings.Hub` (the middleware takes ``hub=``). See README "Drop-in facades".
"""

from ..logs import library_default
from .alerting import AlertDispatcher, AlertDispatcherError, EmailDeliveryError, TeamsWebhookError
from .communication import (
    CommunicationIntegration,
    CommunicationPlatform,
    EmailIntegration,
    HealthReport,
    Message,
    MessageFormat,
    MessagePriority,
    MessageResponse,
    SlackIntegration,
    TeamsIntegration,
    create_communication_integration,
)
from .middleware import AlertingMiddleware

library_default()  # their logs go to stderr unless the application configured structlog

COMMUNICATION_AVAILABLE = True
"""The old module's flag: the integrations are importable."""

__all__ = [
    "COMMUNICATION_AVAILABLE",
    "AlertDispatcher",
    "AlertDispatcherError",
    "AlertingMiddleware",
    "CommunicationIntegration",
    "CommunicationPlatform",
    "EmailDeliveryError",
    "EmailIntegration",
    "HealthReport",
    "Message",
    "MessageFormat",
    "MessagePriority",
    "MessageResponse",
    "SlackIntegration",
    "TeamsIntegration",
    "TeamsWebhookError",
    "create_communication_integration",
]
