"""``create_communication_integration``: the Slack / Teams / email messaging API our users
already call, running on tidings' channels.

    async with create_communication_integration("slack", {"token": "xoxb-...",
                                                          "default_channel": "#alerts"}) as chat:
        first = await chat.send_message(Message("Deploy started", "v1.4.2"))
        await chat.send_message(Message("Deploy finished", "all green", thread_id=first.message_id))

Every message is rendered and sent by the channel's own notifier (Block Kit for Slack, an
Adaptive Card for Teams, multipart text + HTML for email), so it gets the same escaping, size
limits and error classification as messages sent through a hub. Sending is **direct**: a
retryable failure (429 with its Retry-After, 5xx, a timeout, a reset) is retried a few times
inside ``send_message``; a permanent one (a bad token, an unknown channel) comes back at once as
``success=False`` with the reason. Nothing raises for a peer's failure. Nothing is stored either:
a process that dies mid-send loses that message. For durable delivery (an outbox, retries across
restarts, history) send through :class:`tidings.Hub` instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import structlog

from ..errors import MessageError
from ..integrations.base import Notifier, Outcome, OutcomeStatus, RetryPolicy
from ..integrations.email import LABEL_TO, EmailNotifier, EmailPayload
from ..integrations.slack import SlackNotifier
from ..integrations.teams import CARD_CONTENT_TYPE, TeamsNotifier
from ..message import BODY_MAX, FIELD_NAME_MAX, FIELD_VALUE_MAX, FIELDS_MAX, TITLE_MAX, Format, Priority
from ..message import Message as TidingsMessage
from ..security.redact import redact
from ._channels import build, deliver, email_settings, split_addresses, teams_settings
from .model import (
    CommunicationPlatform,
    HealthReport,
    Message,
    MessageFormat,
    MessagePriority,
    MessageResponse,
    enum_value,
)

log = structlog.get_logger("tidings.compat")

DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_BACKOFF = 1.0
DEFAULT_MAX_RETRY_DELAY = 30.0
UNHEALTHY_AFTER = 3
"""Consecutive failed messages after which ``health_check()`` says unhealthy."""


class _Refused(Exception):
    """A message this platform can't send as given: fails the message, not the caller."""


class CommunicationIntegration:
    """One platform connection. Use it as an async context manager (``connect`` /
    ``disconnect``), or call ``disconnect()`` yourself when done."""

    platform: str = ""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self.messages_sent = 0
        self.messages_failed = 0
        self.retries = 0
        self.last_error: str | None = None
        self.consecutive_failures = 0
        self.connected = False
        self.max_retries = max(0, int(self.config.get("max_retries", DEFAULT_MAX_RETRIES)))
        self.retry_backoff = float(self.config.get("retry_backoff", DEFAULT_RETRY_BACKOFF))
        self.max_retry_delay = float(self.config.get("max_retry_delay", DEFAULT_MAX_RETRY_DELAY))
        self.batch_concurrency = max(1, int(self.config.get("batch_concurrency", 1)))
        self._policy = RetryPolicy(
            base=max(self.retry_backoff, 0.001), cap=max(self.max_retry_delay, 0.001), max_attempts=self.max_retries + 1
        )
        self.notifier: Notifier = self._make_notifier()

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> CommunicationIntegration:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def connect(self) -> None:
        """Open the channel's pooled HTTP session (sends open it too when needed)."""
        await self.notifier.open()
        self.connected = True

    async def disconnect(self) -> None:
        await self.notifier.close()
        self.connected = False

    # -- sending ---------------------------------------------------------------------------
    async def send_message(self, message: Message) -> MessageResponse:
        """Send one message; never raises for the platform's failure (see the module doc)."""
        channel = self._response_channel(message)
        try:
            tm = self._to_tidings(message)
            payload = self._payload(message, tm)
        except (_Refused, MessageError) as exc:
            return self._failed(str(exc), channel, attempts=0)
        except Exception as exc:  # rendering must never take the caller down
            log.warning("compat.render_failed", platform=self.platform, error_type=type(exc).__name__)
            return self._failed(f"could not render the message: {type(exc).__name__}: {redact(str(exc))}", channel, 0)

        def retrying(number: int, outcome: Outcome, delay: float) -> None:
            self.retries += 1
            log.info("compat.send_retry", platform=self.platform, attempt=number, error=outcome.error,
                     delay=round(delay, 3))

        outcome, attempts = await deliver(
            self.notifier, payload, tm, policy=self._policy, max_delay=self.max_retry_delay, on_retry=retrying
        )
        if outcome.status is OutcomeStatus.DELIVERED:
            self.messages_sent += 1
            self.consecutive_failures = 0
            message_id, where = self._identify(outcome, channel)
            return MessageResponse(True, message_id=message_id, channel=where, platform=self.platform)
        return self._failed(outcome.error or outcome.status.value, channel, attempts)

    async def send_batch(self, messages: Sequence[Message], *, concurrency: int | None = None) -> list[MessageResponse]:
        """Send each message; the responses in the same order. One at a time by default (so they
        arrive in order); ``concurrency`` (or the ``batch_concurrency`` setting) sends several at once."""
        limit = max(1, concurrency or self.batch_concurrency)
        if limit == 1:
            return [await self.send_message(m) for m in messages]
        gate = asyncio.Semaphore(limit)

        async def one(m: Message) -> MessageResponse:
            async with gate:
                return await self.send_message(m)

        return list(await asyncio.gather(*(one(m) for m in messages)))

    # -- reporting -------------------------------------------------------------------------
    def get_statistics(self) -> dict[str, Any]:
        total = self.messages_sent + self.messages_failed
        return {
            "platform": self.platform,
            "messages_sent": self.messages_sent,
            "messages_failed": self.messages_failed,
            "success_rate": round(self.messages_sent / total * 100, 2) if total else 0.0,
            "retries": self.retries,
            "last_error": self.last_error,
        }

    def health_check(self) -> HealthReport:
        """See :class:`HealthReport`: a dict now, and a live check when awaited."""
        return HealthReport(self._passive_health(), self._live_health)

    def _passive_health(self) -> dict[str, Any]:
        if self.consecutive_failures >= UNHEALTHY_AFTER:
            status = "unhealthy"
        elif self.consecutive_failures:
            status = "degraded"
        else:
            status = "healthy"
        return {
            "platform": self.platform,
            "status": status,
            "connected": self.connected,
            "checked": "record",
            "messages_sent": self.messages_sent,
            "messages_failed": self.messages_failed,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
        }

    async def _live_health(self) -> dict[str, Any]:
        report = self._passive_health()
        if not self._can_probe():
            report["probe"] = "not available: this channel can only be checked by posting a message"
            return report
        try:
            async with asyncio.timeout(self.notifier.effective_timeout + 5.0):
                outcome = await self.notifier.test()
        except Exception as exc:
            outcome = Outcome.retry(f"{type(exc).__name__}: {redact(str(exc))}")
        report["checked"] = "live"
        if outcome.ok:
            report["probe"] = outcome.remote_id or "ok"
            if report["status"] == "unhealthy":
                report["status"] = "degraded"  # the platform answers; recent messages still failed
        else:
            report["status"] = "unhealthy"
            report["probe"] = outcome.error
        return report

    # -- per platform ----------------------------------------------------------------------
    def _make_notifier(self) -> Notifier:
        raise NotImplementedError

    def _can_probe(self) -> bool:
        return False

    def _payload(self, message: Message, tm: TidingsMessage) -> Any:
        return self.notifier.render(tm)

    def _labels(self, message: Message) -> dict[str, str]:
        return {}

    def _response_channel(self, message: Message) -> str | None:
        return message.channel

    def _identify(self, outcome: Outcome, channel: str | None) -> tuple[str | None, str | None]:
        return outcome.remote_id, channel

    # -- shared ----------------------------------------------------------------------------
    def _failed(self, error: str, channel: str | None, attempts: int) -> MessageResponse:
        self.messages_failed += 1
        self.consecutive_failures += 1
        self.last_error = error
        log.warning("compat.send_failed", platform=self.platform, error=error, attempts=attempts)
        return MessageResponse(False, channel=channel, error_message=error, platform=self.platform)

    def _to_tidings(self, message: Message) -> TidingsMessage:
        fmt = _format_of(message.format)
        if fmt is MessageFormat.ADAPTIVE_CARD and self.platform != "teams":
            raise _Refused(
                f"format ADAPTIVE_CARD is a Teams card; {self.platform} can't show it: "
                "send it with format PLAIN, MARKDOWN or HTML"
            )
        body = str(message.body or "")
        title = " ".join(str(message.title or "").split()) or _first_line(body) or "(no title)"
        if len(title) > TITLE_MAX:
            title = title[: TITLE_MAX - 1].rstrip() + "…"
        if fmt is MessageFormat.ADAPTIVE_CARD:
            tidings_format, body = Format.PLAIN, ""  # the card is the payload; the message names it
        else:
            tidings_format = Format(fmt.value)
        if len(body) > BODY_MAX:
            body = body[: BODY_MAX - 20].rstrip() + "\n…(truncated)"
        return TidingsMessage(
            title=title,
            body=body,
            priority=Priority(enum_value(message.priority)),
            format=tidings_format,
            fields=_fields(message.metadata),
            labels=self._labels(message),
        )


class SlackIntegration(CommunicationIntegration):
    """Slack through a bot token (``chat.postMessage``): config ``token``, ``default_channel``
    (default ``#general``), ``username``, ``icon_emoji``, ``api_url`` (tests); or an incoming
    ``webhook_url`` (one channel, no threads)."""

    platform = "slack"
    notifier: SlackNotifier

    def _make_notifier(self) -> Notifier:
        c = self.config
        data: dict[str, Any] = {"kind": "slack"}
        if c.get("token"):
            data["token"] = c["token"]
            data["channel"] = c.get("default_channel") or c.get("channel") or "#general"
        elif c.get("webhook_url"):
            data["webhook_url"] = c["webhook_url"]
        else:
            raise ValueError("slack: set token (a bot token xoxb-...) or webhook_url")
        for key in ("api_url", "username", "icon_emoji", "icon_url", "timeout"):
            if c.get(key) is not None:
                data[key] = c[key]
        return build(SlackNotifier, "slack", data)

    @property
    def _bot(self) -> bool:
        return bool(self.notifier.settings.token)

    def _can_probe(self) -> bool:
        return self._bot  # auth.test; a webhook could only be checked by posting

    def _labels(self, message: Message) -> dict[str, str]:
        channel = (message.channel or "").strip()
        return {"channel": channel} if channel and self._bot else {}

    def _response_channel(self, message: Message) -> str | None:
        if not self._bot:
            return None
        if message.thread_id and ":" in message.thread_id:
            return message.thread_id.strip().rpartition(":")[0]  # a reply goes to its thread's channel
        return (message.channel or "").strip() or self.notifier.settings.channel

    def _payload(self, message: Message, tm: TidingsMessage) -> Any:
        payload = self.notifier.render(tm)
        if message.thread_id and self._bot:
            channel, ts = _slack_thread(message.thread_id, payload.get("channel"))
            # A reply: Slack wants the parent's channel and ts (channel:ts is what we answered).
            payload["channel"] = channel
            payload["thread_ts"] = ts
        return payload

    def _identify(self, outcome: Outcome, channel: str | None) -> tuple[str | None, str | None]:
        return outcome.remote_id, channel


class TeamsIntegration(CommunicationIntegration):
    """Microsoft Teams through a Power Automate Workflows (or legacy connector) webhook: config
    ``webhook_url`` (and ``mode``, ``card_version``, ``timeout`` if needed)."""

    platform = "teams"
    notifier: TeamsNotifier

    def _make_notifier(self) -> Notifier:
        c = self.config
        if not c.get("webhook_url"):
            raise ValueError("teams: webhook_url is required")
        extra = {k: c[k] for k in ("card_version", "max_bytes") if c.get(k) is not None}
        data = teams_settings(c["webhook_url"], mode=c.get("mode"), timeout=c.get("timeout"), **extra)
        return build(TeamsNotifier, "teams", data)

    def _response_channel(self, message: Message) -> str | None:
        return None  # a webhook posts where it was created

    def _payload(self, message: Message, tm: TidingsMessage) -> Any:
        if _format_of(message.format) is MessageFormat.ADAPTIVE_CARD:
            return _card_payload(message.body)
        return self.notifier.render(tm)

    def _identify(self, outcome: Outcome, channel: str | None) -> tuple[str | None, str | None]:
        # A connector answers "1" and no id; the old API made one up from the time, and so do we.
        return outcome.remote_id or f"teams-{dt.datetime.now(dt.UTC).timestamp():.6f}", None


class EmailIntegration(CommunicationIntegration):
    """Email over SMTP: config ``smtp_host``, ``smtp_port`` (587), ``username``, ``password``,
    ``from_address``, ``from_name``, ``use_tls`` (STARTTLS, default true), ``use_ssl`` (implicit
    TLS), ``to_addresses`` (default recipients; a message's ``channel`` replaces them), and
    ``cc``, ``bcc``, ``ca_file``, ``verify_tls``, ``subject_prefix``, ``timeout``."""

    platform = "email"
    notifier: EmailNotifier

    def _make_notifier(self) -> Notifier:
        c = self.config
        if not (c.get("smtp_host") or c.get("host")):
            raise ValueError("email: smtp_host is required")
        if not (c.get("from_address") or c.get("from")):
            raise ValueError("email: from_address is required")
        self._default_to = split_addresses(c.get("to_addresses", c.get("recipients", c.get("to"))))
        # Without default recipients every message names its own (channel=); the settings still
        # need a `to`, which is then never used.
        sender = str(c.get("from_address") or c.get("from"))
        data = email_settings(c, default_to=[sender])
        return build(EmailNotifier, "email", data)

    def _can_probe(self) -> bool:
        return True  # connect, TLS, login, QUIT: no mail sent

    def _labels(self, message: Message) -> dict[str, str]:
        to = split_addresses(message.channel)
        if to:
            return {LABEL_TO: ", ".join(to)}
        if not self._default_to:
            raise _Refused("no recipient: set to_addresses in the config or channel= on the message")
        return {}

    def _response_channel(self, message: Message) -> str | None:
        to = split_addresses(message.channel) or self._default_to
        return ", ".join(to) if to else None

    def _payload(self, message: Message, tm: TidingsMessage) -> Any:
        payload: EmailPayload = self.notifier.render(tm)
        if message.thread_id:
            ref = _message_id_ref(message.thread_id)
            payload = dataclasses.replace(payload, headers=(*payload.headers, ("In-Reply-To", ref), ("References", ref)))
        return payload


_PLATFORMS: dict[str, type[CommunicationIntegration]] = {
    "slack": SlackIntegration,
    "teams": TeamsIntegration,
    "email": EmailIntegration,
}


def create_communication_integration(
    platform: str | CommunicationPlatform, config: Mapping[str, Any]
) -> CommunicationIntegration:
    """A Slack, Teams or email integration (``platform`` in any case). ValueError for another
    platform, or for a configuration the channel refuses (one line per problem; secrets are
    never repeated)."""
    name = platform.value if isinstance(platform, CommunicationPlatform) else str(platform)
    cls = _PLATFORMS.get(name.strip().lower())
    if cls is None:
        raise ValueError(f"Unsupported communication platform: {name!r}; use slack, teams or email")
    return cls(config or {})


# -- helpers -------------------------------------------------------------------------------------
def _format_of(value: Any) -> MessageFormat:
    try:
        return MessageFormat(enum_value(value))
    except ValueError:
        raise _Refused(f"unknown format {value!r}; use one of {', '.join(f.name for f in MessageFormat)}") from None


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return " ".join(line.split())[:200]
    return ""


def _fields(metadata: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``metadata`` as message fields: text as it is, numbers and booleans as text, anything
    else as JSON; each cut to the field limits, at most FIELDS_MAX of them."""
    if not metadata:
        return []
    out: list[tuple[str, str]] = []
    items = list(metadata.items())
    for key, value in items:
        if len(out) == FIELDS_MAX - 1 and len(items) > FIELDS_MAX:
            out.append(("…", f"{len(items) - len(out)} more fields not shown"))
            break
        name = (str(key).strip() or "(blank)")[:FIELD_NAME_MAX]
        if isinstance(value, str):
            text = value
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = ""
        elif isinstance(value, (int, float)):
            text = str(value)
        else:
            try:
                text = orjson.dumps(value, default=str).decode()
            except TypeError:
                text = str(value)
        text = text.replace("\x00", "")
        if len(text) > FIELD_VALUE_MAX:
            text = text[: FIELD_VALUE_MAX - 1] + "…"
        out.append((name.replace("\x00", "") or "(blank)", text))
    return out


_SLACK_TS = re.compile(r"^\d{1,12}\.\d{1,9}$")


def _slack_thread(thread_id: str, default_channel: Any) -> tuple[str, str]:
    """``"C0123:1700000000.000100"`` (what send_message answered) or a bare ``ts`` (the old API's
    message_id, in the message's channel)."""
    raw = thread_id.strip()
    channel, sep, ts = raw.rpartition(":")
    if not sep:
        channel, ts = str(default_channel or ""), raw
    if not channel or not _SLACK_TS.match(ts):
        raise _Refused(f"thread_id {thread_id!r} is not a Slack message id (channel:ts, as send_message answers)")
    return channel, ts


_MESSAGE_ID = re.compile(r"^<?([^<>\s@]+@[^<>\s@]+)>?$")


def _message_id_ref(thread_id: str) -> str:
    m = _MESSAGE_ID.match(thread_id.strip())
    if not m:
        raise _Refused(f"thread_id {thread_id!r} is not an email Message-ID (<id@domain>, as send_message answers)")
    return f"<{m.group(1)}>"


def _card_payload(body: str) -> dict[str, Any]:
    """The Teams request for an ADAPTIVE_CARD message: its body parsed as JSON, an AdaptiveCard
    (wrapped in the message envelope) or a whole envelope, sent as it is."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _Refused(f"format ADAPTIVE_CARD: the body is not JSON ({exc})") from None
    if isinstance(data, dict) and data.get("type") == "AdaptiveCard":
        return {"type": "message",
                "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": data}]}
    if isinstance(data, dict) and data.get("type") == "message" and isinstance(data.get("attachments"), list):
        return data
    raise _Refused('format ADAPTIVE_CARD: the body must be an AdaptiveCard ({"type": "AdaptiveCard", ...}) '
                   'or a Teams message ({"type": "message", "attachments": [...]})')


__all__ = [
    "CommunicationIntegration",
    "CommunicationPlatform",
    "EmailIntegration",
    "HealthReport",
    "Message",
    "MessageFormat",
    "MessagePriority",
    "MessageResponse",
    "SlackIntegration",
    "TeamsIntegration",
    "create_communication_integration",
]
