"""Slack: Block Kit messages through the Web API (a bot token, ``chat.postMessage``) or an
incoming webhook.

Bot mode can do everything: per-message channels (the ``channel`` label), threads
(``thread_key`` → ``thread_ts``), resolving in place (``chat.update`` of the thread's first
message) and an Acknowledge button on critical and high alerts. An incoming webhook posts to the
one channel it was created for and can do none of these: it cannot reply in a thread, update a
message, or answer with the ``ts`` a thread would need.

https://docs.slack.dev/reference/methods/chat.postMessage,
https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import structlog

from ...message import Message, Priority
from ..base import (
    NO_OPTIONS,
    Addressable,
    Attempt,
    HttpNotifier,
    IntegrationSettings,
    Outcome,
    OutcomeStatus,
    RenderOptions,
    not_connected_outcome,
)
from ..http import (
    classify_status,
    connection_error,
    parse_retry_after,
    read_snippet,
    snippet,
)
from .blocks import build, finalize, resolved_attachments
from .settings import SlackSettings
from .task_blocks import add_task_buttons, is_task_message
from .tasks import SlackTaskReceiver

if TYPE_CHECKING:
    from ...recipients.model import Person

log = structlog.get_logger("tidings.slack")

_SLACK_ERROR = re.compile(r"^[a-z0-9_]{2,64}$")
_ANSWER_MAX = 1024 * 1024

RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
     "team_added_to_org"}
)
"""``ok: false`` codes Slack documents as transient; any other code is permanent."""
AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})
"""Codes that fail every message alike: the integration is disabled (its deliveries wait) until
the token is fixed and it is enabled again."""
EXPIRED_RETRY = 10.0
"""With an OAuth connection, ``token_expired`` is retried after this long: the refresher replaces
the token (and the vault watch hands it over within a second), nobody has to fix anything."""
_HINTS = {
    "invalid_auth": "the token is not valid",
    "not_authed": "no token was sent",
    "account_inactive": "the app or its workspace was deactivated",
    "token_revoked": "the token was revoked (reinstall the app)",
    "token_expired": "the token expired (rotate it)",
    "channel_not_found": "no channel {channel} the app can see (for a private channel, invite the app)",
    "not_in_channel": "the app is not in {channel}: invite it (/invite @app) or grant chat:write.public",
    "is_archived": "the channel {channel} is archived",
    "msg_too_long": "the message text is too long",
    "no_text": "the message has no text",
    "invalid_blocks": "Slack refused the blocks",
    "missing_scope": "the token lacks a scope",
    "restricted_action": "the workspace does not let the app post in {channel}",
    "message_not_found": "the thread's first message is gone",
    "cant_update_message": "the app cannot edit that message",
    "edit_window_closed": "the message can no longer be edited",
}
_WEBHOOK_DISABLING = {(404, "no_service"), (404, "channel_not_found"), (410, "channel_is_archived")}
"""Incoming-webhook answers that mean the URL will never work again: disable the integration."""


class SlackNotifier(HttpNotifier, SlackTaskReceiver, Addressable):
    """Sends (bot token or incoming webhook) and, with ``signing_secret``, receives (slash
    command, Acknowledge button, Events API; see :mod:`.inbound`; task commands and buttons:
    :mod:`.tasks`)."""

    kind = "slack"
    Settings = SlackSettings
    rate_limit = "1/second"
    burst = 3
    concurrency = 4
    timeout = 10.0
    settings: SlackSettings

    live_state = ("_locks",)  # sends in progress hold them: new settings must not reset them

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def session_headers(self) -> dict[str, str]:
        headers = super().session_headers()
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        return headers

    async def close(self) -> None:
        await super().close()
        await self.close_receiver()

    @classmethod
    def can_send(cls, settings: IntegrationSettings) -> bool:
        return isinstance(settings, SlackSettings) and (settings.bot or settings.webhook_url is not None)

    # -- addressing a person -----------------------------------------------------------------
    def reaches(self, person: Person) -> bool:
        """Bot mode only: ``chat.postMessage`` to a user id is a DM from the bot (a webhook posts
        to its one channel and can't)."""
        return self.settings.bot and bool(person.slack_user)

    def address(self, message: Message, person: Person) -> Message | None:
        """A DM: the ``channel`` label is the person's user id. A thread is the person's own (the
        same ``thread_key`` sent to two people must not reply into the other's DM)."""
        if not self.reaches(person):
            return None
        update: dict[str, Any] = {"labels": {**message.labels, "channel": str(person.slack_user)}}
        if message.thread_key:
            update["thread_key"] = f"{message.thread_key}\x1f{person.id}"
        return message.model_copy(update=update)

    # -- rendering -------------------------------------------------------------------------
    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> dict[str, Any]:
        """The JSON to post. In bot mode critical and high alerts carry an Acknowledge button whose
        value, the message id, is filled in when sent (``{message_id}`` until then). A task's
        message carries the task buttons instead, when this integration receives their clicks
        (``signing_secret``)."""
        s = self.settings
        task = s.signing_secret is not None and is_task_message(message)
        ack = s.bot and message.priority in (Priority.CRITICAL, Priority.HIGH) and not message.resolves and not task
        text, attachment = build(message, ack=ack, mention=options.mention)
        if task:
            add_task_buttons(attachment, message, project=self.project, task_url=s.task_url)
        payload: dict[str, Any] = {}
        if s.bot:
            payload["channel"] = channel_of(message, s.channel)
        payload["text"] = text
        payload["attachments"] = [attachment]
        if not s.unfurl:
            payload["unfurl_links"] = False
            payload["unfurl_media"] = False
        if s.username:
            payload["username"] = s.username
        if s.icon_emoji:
            payload["icon_emoji"] = s.icon_emoji
        if s.icon_url:
            payload["icon_url"] = s.icon_url
        return payload

    def preview(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The JSON that would be posted (the Acknowledge value and the time are filled in when sent)."""
        return payload

    def rate_key(self, payload: Any) -> str:
        """Slack allows about one message per second per channel: count each channel alone."""
        channel = payload.get("channel") if isinstance(payload, Mapping) else None
        return f"{self.name}:{channel}" if channel else self.name

    # -- sending ---------------------------------------------------------------------------
    async def send(self, payload: dict[str, Any], attempt: Attempt) -> Outcome:
        deadline = time.monotonic() + self.effective_timeout + 3.0
        body: dict[str, Any] = orjson.loads(orjson.dumps(payload))  # never change the caller's payload
        finalize(body, attempt.message_id, attempt.created_at)
        if not self.settings.bot:
            return await self._post_webhook(body, deadline)
        message = attempt.message
        key = message.thread_key
        if not key:
            outcome, _ = await self._call("chat.postMessage", body, deadline)
            return outcome
        threads = self.context.threads
        thread = await threads.get(self.name, key)
        if thread is None:
            async with self._serialized(key):
                # Another send of this key may have started the thread while we waited.
                thread = await threads.get(self.name, key)
                if thread is None:
                    return await self._start_thread(body, attempt, key, deadline)
        if not thread.ref.get("channel") or not thread.ref.get("ts"):
            outcome, _ = await self._call("chat.postMessage", body, deadline)  # a ref we can't use
            return outcome
        return await self._reply(body, attempt, thread.ref, thread.resolved_at is not None, deadline)

    async def _start_thread(self, body: dict[str, Any], attempt: Attempt, key: str, deadline: float) -> Outcome:
        outcome, answer = await self._call("chat.postMessage", body, deadline)
        if not outcome.ok or answer is None:
            return outcome
        ref = {"channel": answer.get("channel"), "ts": answer.get("ts"), "attachments": body["attachments"]}
        try:
            started = await self.context.threads.start(self.name, key, ref, attempt.message_id)
            if attempt.message.resolves:
                await self.context.threads.resolve(self.name, key)
        except Exception as exc:  # the message is out; a retry would post it twice
            log.warning("slack.thread_not_stored", integration=self.name, error=f"{type(exc).__name__}: {exc}")
        else:
            if started.ref.get("ts") != ref["ts"]:
                log.info("slack.thread_raced", integration=self.name, kept=started.message_id)
        return outcome

    async def _reply(
        self, body: dict[str, Any], attempt: Attempt, ref: dict[str, Any], reopened: bool, deadline: float
    ) -> Outcome:
        message = attempt.message
        reply = {**body, "channel": ref["channel"], "thread_ts": ref["ts"]}
        if reopened and not message.resolves:
            reply["reply_broadcast"] = True  # the thread was resolved: show that it fires again
        if message.resolves:
            # The update first: it is idempotent, the reply is not. A retryable failure retries both.
            updated = await self._update_original(ref, attempt, deadline)
            if updated.status is OutcomeStatus.RETRY:
                return updated
            if not updated.ok:
                log.warning("slack.resolve_update_failed", integration=self.name, error=updated.error)
        outcome, _ = await self._call("chat.postMessage", reply, deadline)
        if outcome.ok and message.resolves and message.thread_key:
            try:
                await self.context.threads.resolve(self.name, message.thread_key)
            except Exception as exc:
                log.warning("slack.thread_not_resolved", integration=self.name, error=f"{type(exc).__name__}: {exc}")
        return outcome

    async def _update_original(self, ref: dict[str, Any], attempt: Attempt, deadline: float) -> Outcome:
        original = ref.get("attachments") or [{"blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "⚪ Alert", "emoji": True}},
            {"type": "context", "elements": []},
        ]}]
        title, attachments = resolved_attachments(original, attempt.created_at or time.time())
        update = {"channel": ref["channel"], "ts": ref["ts"], "text": title, "attachments": attachments}
        outcome, _ = await self._call("chat.update", update, deadline)
        return outcome

    @contextlib.asynccontextmanager
    async def _serialized(self, key: str) -> AsyncIterator[None]:
        """One first send per thread key at a time in this process (across processes the first
        stored thread wins; see Threads.start)."""
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                self._locks.pop(key, None)

    # -- talking to Slack --------------------------------------------------------------------
    def _timeout(self, deadline: float) -> aiohttp.ClientTimeout:
        left = max(0.5, min(self.effective_timeout, deadline - time.monotonic()))
        return aiohttp.ClientTimeout(total=left, connect=min(left, 10.0))

    async def _call(self, method: str, body: dict[str, Any], deadline: float) -> tuple[Outcome, dict[str, Any] | None]:
        """POST a Web API method; the Outcome and, when Slack said ok, its answer. With ``oauth:
        true`` and no connection yet: :meth:`Outcome.held` (this delivery and the next wait, held,
        for the connection)."""
        if not self.settings.connected:
            return not_connected_outcome(self.name), None
        session = await self.session()
        url = f"{self.settings.api_url}/{method}"
        headers = {"Content-Type": "application/json; charset=utf-8"}
        try:
            async with session.post(
                url, data=orjson.dumps(body), headers=headers, allow_redirects=False, timeout=self._timeout(deadline)
            ) as resp:
                raw = await _read_capped(resp, _ANSWER_MAX)
                status, resp_headers = resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return connection_error(exc), None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if status == 429 or status >= 500 or not 200 <= status < 300 and not isinstance(data, dict):
            text = snippet(raw, complete=len(raw) < _ANSWER_MAX)
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                text = snippet(data["error"].encode())
            return classify_status(status, resp_headers, text), None
        if not isinstance(data, dict) or "ok" not in data:
            text = snippet(raw, 200, complete=len(raw) < _ANSWER_MAX)
            return Outcome.retry(f"HTTP {status}: not a Slack API answer: {text!r}"), None
        if data.get("ok") is True:
            if method == "chat.postMessage":
                return Outcome.delivered(f"{data.get('channel')}:{data.get('ts')}"), data
            return Outcome.delivered(), data
        return classify_error(data, resp_headers, body.get("channel"), connection=self.settings.oauth), None

    async def _post_webhook(self, body: dict[str, Any], deadline: float) -> Outcome:
        assert self.settings.webhook_url is not None
        session = await self.session()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        try:
            async with session.post(
                self.settings.webhook_url.get_secret_value(),
                data=orjson.dumps(body),
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout(deadline),
            ) as resp:
                if 200 <= resp.status < 300:
                    return Outcome.delivered()
                text = await read_snippet(resp)
                return classify_webhook(resp.status, resp.headers, text)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return connection_error(exc)

    async def test(self) -> Outcome:
        """Bot mode: ``auth.test`` (is the token good, and for which workspace and bot user).
        Webhook mode: a test message."""
        if not self.settings.bot:
            return await super().test()
        outcome, data = await self._call("auth.test", {}, time.monotonic() + self.effective_timeout)
        if not outcome.ok or data is None:
            return Outcome(outcome.status, error=outcome.error, retry_after=outcome.retry_after, disable=outcome.disable,
                           http_status=outcome.http_status)
        return Outcome.delivered(f"{data.get('team')}/{data.get('user')}")


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The whole answer (Slack's echo of a long message spans many chunks), up to ``cap``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= cap:
            break
    return b"".join(chunks)


def channel_of(message: Message, default: str | None) -> str:
    """Where a bot-mode message goes: its ``channel`` label, else the integration's channel."""
    label = (message.labels.get("channel") or "").strip()
    return label or (default or "")


def classify_error(
    data: Mapping[str, Any], headers: Mapping[str, str], channel: Any = None, *, connection: bool = False
) -> Outcome:
    """Slack's ``ok: false``: a code from the table, and a hint of what to do about it.
    ``connection``: the token comes from an OAuth connection, whose refresher replaces an expired
    one: ``token_expired`` is then retried shortly instead of disabling the integration."""
    code = data.get("error")
    code = code if isinstance(code, str) and code else "unknown_error"
    hint = _HINTS.get(code, "")
    if hint:
        hint = hint.format(channel=repr(channel) if channel else "the channel")
    if code == "missing_scope" and data.get("needed"):
        hint = f"the token lacks the scope {data.get('needed')}"
    details = (data.get("response_metadata") or {}).get("messages") if isinstance(data.get("response_metadata"), dict) else None
    if details:
        hint = (hint + ": " if hint else "") + "; ".join(str(d) for d in details[:3])
    error = code + (f": {hint}" if hint else "")
    if code in RETRYABLE_ERRORS:
        return Outcome.retry(error, parse_retry_after(headers.get("retry-after")))
    if code == "token_expired" and connection:
        return Outcome.retry("token_expired: the connection's token expired; retried once it is refreshed",
                             EXPIRED_RETRY)
    if code in AUTH_ERRORS:
        if connection:  # a person connects again: this message waits with the others, nothing lost
            return Outcome.held(f"{error} (connect it again)")
        return Outcome.permanent(f"{error} (fix the token, then enable the integration)", disable=True)
    return Outcome.permanent(error)


def classify_webhook(status: int, headers: Mapping[str, str], text: str) -> Outcome:
    """An incoming webhook answers in plain text: ``ok``, or an error code with a 4xx/5xx status."""
    code = text if _SLACK_ERROR.match(text) else ""
    if (status, code) in _WEBHOOK_DISABLING or status == 410:
        what = code or "gone"
        return Outcome.permanent(
            f"HTTP {status}: {what} (the webhook will not work again: replace webhook_url, then enable the integration)",
            disable=True,
        )
    return classify_status(status, headers, text)


SlackIntegration = SlackNotifier

__all__ = ["SlackIntegration", "SlackNotifier", "SlackSettings", "classify_error", "classify_webhook"]
