"""The types of the old messaging API (:mod:`.communication`): platforms, priorities, formats, a
message, a response, a health report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Awaitable, Callable, Mapping
from typing import Any


class CommunicationPlatform(enum.Enum):
    SLACK = "slack"
    TEAMS = "teams"
    EMAIL = "email"


class MessagePriority(enum.Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class MessageFormat(enum.Enum):
    PLAIN = "plain"
    MARKDOWN = "markdown"
    HTML = "html"
    ADAPTIVE_CARD = "adaptive_card"
    """Teams only: ``body`` is an Adaptive Card as JSON (or a whole ``{"type": "message", ...}``
    envelope), sent as it is. Other platforms refuse it (``success=False``) rather than post
    raw JSON."""


@dataclasses.dataclass
class Message:
    """A message as the old API wrote it. ``channel``: a Slack channel (``#name`` or an ID), or
    email recipients (comma-separated); ignored by Teams, whose webhook posts to one channel.
    ``thread_id``: reply to an earlier message, given its ``MessageResponse.message_id``.
    ``metadata`` is shown as a table of fields. ``attachments`` are accepted and not sent (the
    old API didn't send them either)."""

    title: str
    body: str = ""
    priority: MessagePriority = MessagePriority.MEDIUM
    format: MessageFormat = MessageFormat.MARKDOWN
    channel: str | None = None
    thread_id: str | None = None
    attachments: list[str] = dataclasses.field(default_factory=list)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "body": self.body,
            "priority": enum_value(self.priority),
            "format": enum_value(self.format),
            "channel": self.channel,
            "thread_id": self.thread_id,
            "attachments": list(self.attachments),
            "metadata": dict(self.metadata),
        }


@dataclasses.dataclass
class MessageResponse:
    """What ``send_message`` answers. ``message_id``: Slack ``"<channel id>:<ts>"`` (give it back
    as ``thread_id`` to reply in its thread), the email's ``Message-ID`` (same use), Teams' run id
    when the workflow gives one. ``error_message`` says why when ``success`` is false."""

    success: bool
    message_id: str | None = None
    channel: str | None = None
    error_message: str | None = None
    platform: str = ""
    timestamp: dt.datetime = dataclasses.field(default_factory=dt.datetime.now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "platform": self.platform,
            "message_id": self.message_id,
            "channel": self.channel,
            "timestamp": self.timestamp.isoformat(),
            "error_message": self.error_message,
        }


class HealthReport(dict[str, Any]):
    """What ``health_check()`` returns: a dict with ``status`` ("healthy", "degraded" or
    "unhealthy") and details, read from the integration's own record (no I/O), so the old
    synchronous call works as it did. Awaiting it (``await chat.health_check()``) also asks the
    platform, where that is possible without posting anything (Slack ``auth.test``, an SMTP
    connect + login), and returns the updated dict."""

    def __init__(self, data: Mapping[str, Any], probe: Callable[[], Awaitable[dict[str, Any]]] | None = None) -> None:
        super().__init__(data)
        self._probe = probe

    def __await__(self) -> Any:
        probe = self._probe

        async def current() -> dict[str, Any]:
            return dict(self) if probe is None else await probe()

        return current().__await__()


def enum_value(value: Any) -> str:
    """An enum member or its value, as the lower-case text of its value."""
    raw = value.value if isinstance(value, enum.Enum) else value
    return str(raw).strip().lower()
