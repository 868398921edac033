"""Slack, receiving: ``POST /hooks/{name}`` for the app's slash command, its interactivity (the
Acknowledge button) and its Events API subscription, on the same ``kind: slack`` integration
that sends.

Every request is verified first, over the exact bytes: ``X-Slack-Signature`` is ``v0=`` + hex
HMAC-SHA256(signing_secret, ``v0:{X-Slack-Request-Timestamp}:{body}``), compared in constant
time, and a timestamp more than 300 s from now is refused (a replay, or a clock that is off).
Then, by what the body is:

- ``application/json``, ``type: url_verification``: the challenge is answered, nothing stored.
- ``application/json``, ``type: event_callback``: stored as ``event.<event.type>`` with
  ``event_id`` as its delivery key, so Slack's retries (``X-Slack-Retry-Num``, same
  ``event_id``) are answered 200 and processed once. ``app_mention`` runs the text after the
  mention as a command and answers in the thread; other events are ignored or unsupported.
- form with ``command=``: the slash command (``slash_command``, default ``/tidings``). ``help``
  and ``status`` (and ``silences``) only read, so they are answered at once, ephemerally, and not
  stored. ``ack``, ``silence`` and ``unsilence`` change state: the request is checked, stored
  (``command.<name>``, keyed by ``trigger_id``), answered "on it" within Slack's 3 s, and the
  processor does the work from the stored row and posts the result to ``response_url``.
  Anything else is answered with the help.
- form with ``payload=``: interactivity. A ``block_actions`` click of ``tidings_ack`` (the
  button on critical and high alerts, its value the message id) is stored and answered 200; the
  processor records the acknowledgement (once per message: a second click records nothing new),
  then edits the alert in place (``chat.update``: no button, "Acknowledged by @someone").

Silences: see :mod:`tidings.silences` (``silence alertname=DiskFull,instance=web-01 2h``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog
from sqlalchemy import select

from ...audit import Actor
from ...errors import NotFound
from ...message import Message
from ...security.outbound import guarded_session
from ...security.redact import redact
from ...silences import SilenceError, parse_silence, silence_id_for, split_words
from ...store.tables import deliveries, messages
from ...templates import apply_templates
from ..base import Outcome, OutcomeStatus
from ..receiver import (
    REPLAY_WINDOW,
    Inbound,
    InboundEvent,
    InboundRequest,
    Receiver,
    Rejected,
    Reply,
    body_digest,
    hmac_sha256,
    same,
)
from .blocks import ACK_ACTION, LINK_ACTION, acked_attachments, escape, finalize

if TYPE_CHECKING:
    from ...hub import Hub
    from . import SlackSettings

log = structlog.get_logger("tidings.slack")

MAX_BODY = 1024 * 1024
"""Slack's requests are small; an interactivity payload carries the whole message (~40 KB at most)."""
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_MESSAGE_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")
_MENTION = re.compile(r"^\s*(?:<@[A-Z0-9]+(?:\|[^>]*)?>\s*)+")
_SLACK_HOSTS = ("slack.com", "slack-gov.com")
READ_ONLY = frozenset({"help", "status", "silences"})
CHANGES = frozenset({"ack", "silence", "unsilence"})
EMPTY = Reply(200, b"", "text/plain")


def _ephemeral(text: str) -> Reply:
    return Reply(200, orjson.dumps({"response_type": "ephemeral", "text": text}))


def unescape(text: str) -> str:
    """Slack sends ``&``, ``<``, ``>`` in command text as entities."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def who(user_id: str | None, user_name: str | None) -> str:
    """What an ack records as ``by``: ``U123 (name)``."""
    uid = user_id or "unknown"
    return f"{uid} ({user_name})" if user_name else uid


def slack_actor(user_id: str | None, by: str, event: InboundEvent | str) -> Actor:
    """The audit actor of a Slack user's command or click (``by`` as :func:`who` wrote it); the
    request id is the stored event's (or the one given, for a request that is not stored)."""
    return Actor("user", id=f"slack:{user_id}"[:64] if user_id else None, name=by[:320], auth_method="slack",
                 request_id=event if isinstance(event, str) else event.id)


def mention_of(by: str) -> str:
    """Slack markup for a recorded ``by``: a mention when it starts with a user id, else text."""
    first = by.split(" ", 1)[0]
    return f"<@{first}>" if _USER_ID.match(first) else escape(by)


def parse_command(text: str) -> tuple[str, list[str]]:
    """(command, its words) from a slash command's text; ``help`` for empty text. Raises
    SilenceError when the text can't be split (an open quote)."""
    words = split_words(unescape(text))
    if not words:
        return "help", []
    name = words[0].lower()
    if name == "silence" and len(words) == 2 and words[1].lower() == "list":
        return "silences", []
    return name, words[1:]


class SlackReceiver(Receiver):
    """The receiving half of the Slack integration (mixed into :class:`SlackNotifier`)."""

    max_body = MAX_BODY
    content_types = ("application/x-www-form-urlencoded", "application/json")
    kept_headers = ("x-slack-request-timestamp", "x-slack-retry-num", "x-slack-retry-reason", "user-agent")
    handlers = {
        "command.ack": "_command_ack",
        "command.silence": "_command_silence",
        "command.unsilence": "_command_unsilence",
        f"block_actions.{ACK_ACTION}": "_ack_button",
        "event.app_mention": "_app_mention",
    }
    ignored = frozenset({
        "block_actions.tidings_link",  # a link button: Slack opens the URL, nothing to do
        "event.message",
        "app_rate_limited",
    })

    if TYPE_CHECKING:
        settings: SlackSettings

        def render(self, message: Message, options: Any = ...) -> dict[str, Any]: ...
        async def _call(self, method: str, body: dict[str, Any], deadline: float) -> tuple[Outcome, dict[str, Any] | None]: ...

    _plain: aiohttp.ClientSession | None = None

    @classmethod
    def can_receive(cls, settings: Any) -> bool:
        return getattr(settings, "signing_secret", None) is not None

    # -- the request -----------------------------------------------------------------------
    def verify(self, request: InboundRequest) -> None:
        secret = self.settings.signing_secret
        if secret is None:
            raise Rejected(401, "this integration has no signing_secret")
        signature = request.headers.get("x-slack-signature", "")
        stamp = request.headers.get("x-slack-request-timestamp", "")
        if not signature:
            raise Rejected(401, "missing X-Slack-Signature")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            raise Rejected(401, "missing or malformed X-Slack-Request-Timestamp")
        expected = "v0=" + hmac_sha256(
            secret.get_secret_value().encode(), b"v0:" + stamp.encode() + b":" + request.body
        ).hex()
        if not same(expected, signature.strip().lower()):
            raise Rejected(401, "signature mismatch (X-Slack-Signature is not v0=HMAC-SHA256 of v0:timestamp:body)")
        skew = (request.received_at or time.time()) - int(stamp)
        if abs(skew) > REPLAY_WINDOW:
            raise Rejected(401, f"X-Slack-Request-Timestamp is {abs(skew):.0f}s from now, outside the "
                                f"{REPLAY_WINDOW:.0f}s window (a replayed request, or a clock that is off)")

    def identify(self, request: InboundRequest) -> Inbound:
        if request.content_type == "application/json":
            return self._identify_event(request)
        form = request.form()
        if "payload" in form:
            return self._identify_interaction(request, form["payload"])
        if form.get("ssl_check") == "1":
            return Inbound("ssl_check", "", EMPTY, store=False)
        if "command" in form:
            return self._identify_command(request, form)
        raise Rejected(400, "a form without payload= (interactivity) or command= (slash command)")

    def _identify_event(self, request: InboundRequest) -> Inbound:
        payload = request.json()
        if not isinstance(payload, dict):
            raise Rejected(400, "an Events API request is a JSON object")
        kind = payload.get("type")
        if kind == "url_verification":
            challenge = payload.get("challenge")
            if not isinstance(challenge, str) or not challenge or len(challenge) > 500:
                raise Rejected(400, "url_verification without a challenge")
            return Inbound("url_verification", "", Reply(200, orjson.dumps({"challenge": challenge})), store=False)
        if kind == "event_callback":
            event = payload.get("event")
            event_id = payload.get("event_id")
            if not isinstance(event, dict) or not isinstance(event_id, str) or not event_id:
                raise Rejected(400, "event_callback without event or event_id")
            return Inbound(f"event.{str(event.get('type') or 'unknown')[:100]}", f"event:{event_id}")
        return Inbound(str(kind or "unknown")[:100], body_digest(request.body))

    def _identify_interaction(self, request: InboundRequest, raw: str) -> Inbound:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Rejected(400, f"malformed JSON in payload=: {exc}") from None
        if not isinstance(payload, dict):
            raise Rejected(400, "payload= is not a JSON object")
        kind = str(payload.get("type") or "unknown")[:60]
        trigger = payload.get("trigger_id")
        key = f"interaction:{trigger}" if isinstance(trigger, str) and trigger else body_digest(request.body)
        if kind != "block_actions":
            return Inbound(kind, key, EMPTY)
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
            raise Rejected(400, "block_actions without actions")
        action_id = str(actions[0].get("action_id") or "")
        if action_id == ACK_ACTION:
            if not isinstance(actions[0].get("value"), str) or not actions[0]["value"]:
                raise Rejected(400, "the Acknowledge action carries no message id")
            return Inbound(f"block_actions.{ACK_ACTION}", key, EMPTY)
        if action_id.startswith(LINK_ACTION.format("")):
            return Inbound("block_actions.tidings_link", key, EMPTY)
        return Inbound(f"block_actions.{action_id[:100] or 'unknown'}", key, EMPTY)

    def _identify_command(self, request: InboundRequest, form: dict[str, str]) -> Inbound:
        command = form.get("command", "")
        if command.lower() != self.settings.slash_command:
            text = f"This URL answers {escape(self.settings.slash_command)}, not {escape(command)}.\n" + self._help()
            return Inbound("command.other", "", _ephemeral(text), store=False)
        try:
            name, words = parse_command(form.get("text", ""))
        except SilenceError as exc:
            return Inbound("command.help", "", _ephemeral(escape(str(exc)) + "\n" + self._help()), store=False)
        user = form.get("user_id", "")
        if name in READ_ONLY or name not in CHANGES:
            prefix = "" if name in READ_ONLY else f"Unknown command `{escape(name)}`.\n"
            if name == "help" or name not in CHANGES | READ_ONLY:
                return Inbound("command.help", "", _ephemeral(prefix + self._help()), store=False)
            slow = _ephemeral("That took too long to look up; try again in a moment.")
            return Inbound(f"command.{name}", "", slow, store=False, answer=self._read_only(name))
        try:
            immediate = self._check(name, words)
        except SilenceError as exc:
            return Inbound(f"command.{name}", "", _ephemeral(escape(str(exc)) + "\n" + self._usage(name)), store=False)
        if not form.get("response_url"):
            raise Rejected(400, "a slash command without response_url")
        trigger = form.get("trigger_id")
        key = f"command:{trigger}" if trigger else body_digest(request.body)
        log.info("slack.command", integration=self.name, command=name, user=user)
        return Inbound(f"command.{name}", key, _ephemeral(immediate))

    def _check(self, name: str, words: list[str]) -> str:
        """Check a changing command's arguments now (a mistake is answered at once, not stored);
        the "on it" text."""
        if name == "ack":
            if len(words) != 1 or not _MESSAGE_ID.match(words[0]):
                raise SilenceError("ack takes one message id")
            return f"Acknowledging `{escape(words[0])}`…"
        if name == "unsilence":
            if len(words) != 1 or not _MESSAGE_ID.match(words[0]):
                raise SilenceError("unsilence takes one silence id")
            return f"Ending silence `{escape(words[0])}`…"
        matchers, seconds, _ = parse_silence(words)
        shown = ",".join(f"{k}={v}" for k, v in matchers.items())
        return f"Silencing `{escape(shown)}` for {_duration(seconds)}…"

    def _read_only(self, name: str) -> Callable[[Hub], Awaitable[Reply]]:
        async def answer(hub: Hub) -> Reply:
            return _ephemeral(await self._status(hub) if name == "status" else await self._silences(hub))

        return answer

    # -- texts -------------------------------------------------------------------------------
    def _help(self) -> str:
        c = escape(self.settings.slash_command)
        return "\n".join([
            f"*{c}* commands:",
            f"• `{c} status`: the integrations and their health",
            f"• `{c} ack &lt;message-id&gt;`: acknowledge an alert (or click its Acknowledge button)",
            f"• `{c} silence &lt;label=value[,label=value…] | source&gt; &lt;duration&gt; [reason]`: suppress "
            f"matching messages for a while, e.g. `{c} silence alertname=DiskFull,instance=web-01 2h`",
            f"• `{c} silences`: the active silences",
            f"• `{c} unsilence &lt;silence-id&gt;`: end a silence now",
            f"• `{c} help`: this list",
        ])

    def _usage(self, name: str) -> str:
        c = escape(self.settings.slash_command)
        return {
            "ack": f"Usage: `{c} ack &lt;message-id&gt;`",
            "unsilence": f"Usage: `{c} unsilence &lt;silence-id&gt;` (see `{c} silences`)",
        }.get(name, f"Usage: `{c} silence &lt;label=value[,label=value…] | source&gt; &lt;duration&gt; [reason]`, "
                    f"e.g. `{c} silence alertname=DiskFull,instance=web-01 2h`")

    async def _status(self, hub: Hub) -> str:
        lines = ["*tidings status*"]
        for item in await hub.integrations(project=self.project):
            health = str(item.get("health", "unknown"))
            mark = {"ok": "🟢", "degraded": "🟡", "failing": "🔴", "disabled": "⚪"}.get(health, "⚪")
            line = f"{mark} `{escape(item['name'])}` ({escape(item['kind'])}): {escape(health)}"
            stats = item.get("stats")
            if stats:
                line += f" · {stats.get('sent', 0)} sent, {stats.get('failed', 0)} failed, {stats.get('pending', 0)} pending"
            if item.get("disabled_reason"):
                line += f" · {escape(str(item['disabled_reason']))[:200]}"
            lines.append(line)
        active = hub.silences.active_in(self.project) if hub.silences is not None else []
        lines.append(f"🔕 {len(active)} active silence{'s' if len(active) != 1 else ''}")
        return "\n".join(lines)

    async def _silences(self, hub: Hub) -> str:
        active = await hub.active_silences(project=self.project)
        if not active:
            return "No active silences."
        lines = ["*Active silences*"]
        for s in active[:30]:
            left = _duration(max(0.0, s.until - time.time()))
            reason = f" · {escape(s.reason)}" if s.reason else ""
            lines.append(f"• `{escape(s.describe())}` for {left} more · by {mention_of(s.created_by)} · id `{s.id}`{reason}")
        return "\n".join(lines)

    # -- processing ------------------------------------------------------------------------------
    async def _command_ack(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        form = event.form()
        _, words = parse_command(form.get("text", ""))
        by = who(form.get("user_id"), form.get("user_name"))
        text, result = await self._ack(hub, words[0], by, actor=slack_actor(form.get("user_id"), by, event))
        await self._respond(form["response_url"], text)
        return result

    async def _command_silence(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        form = event.form()
        _, words = parse_command(form.get("text", ""))
        by = who(form.get("user_id"), form.get("user_name"))
        text, result = await self._silence(hub, words, by, event.id, slack_actor(form.get("user_id"), by, event))
        await self._respond(form["response_url"], text)
        return result

    async def _command_unsilence(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        form = event.form()
        _, words = parse_command(form.get("text", ""))
        actor = slack_actor(form.get("user_id"), who(form.get("user_id"), form.get("user_name")), event)
        text, result = await self._unsilence(hub, words[0], actor)
        await self._respond(form["response_url"], text)
        return result

    async def _ack_button(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        payload = orjson.loads(event.form()["payload"])
        action = payload["actions"][0]
        user = payload.get("user") or {}
        by = who(user.get("id"), user.get("username") or user.get("name"))
        container = payload.get("container") or {}
        channel = container.get("channel_id") or (payload.get("channel") or {}).get("id")
        ts = container.get("message_ts") or (payload.get("message") or {}).get("ts")
        shown = (payload.get("message") or {}).get("attachments")
        where = [(channel, ts, shown if isinstance(shown, list) and shown else None)] if channel and ts else None
        _, result = await self._ack(hub, action["value"], by, where, actor=slack_actor(user.get("id"), by, event))
        return result

    async def _app_mention(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        """``@tidings <command>`` in a channel: run it and answer in the thread."""
        ev = event.json()["event"]
        if not self.settings.connected:
            return {"status": "ignored", "reason": "answering a mention needs a bot token (or a connection made)"}
        try:
            name, words = parse_command(_MENTION.sub("", str(ev.get("text") or "")))
            if name in CHANGES:
                self._check(name, words)
        except SilenceError as exc:
            text, result = escape(str(exc)), {"status": "processed", "outcome": "refused"}
        else:
            by = who(ev.get("user"), None)
            actor = slack_actor(ev.get("user"), by, event)
            result = {"status": "processed", "command": name}
            if name == "status":
                text = await self._status(hub)
            elif name == "silences":
                text = await self._silences(hub)
            elif name == "ack":
                text, result = await self._ack(hub, words[0], by, actor=actor)
            elif name == "silence":
                text, result = await self._silence(hub, words, by, event.id, actor)
            elif name == "unsilence":
                text, result = await self._unsilence(hub, words[0], actor)
            else:
                text = ("" if name == "help" else f"Unknown command `{escape(name)}`.\n") + self._help()
        reply = {"channel": ev.get("channel"), "thread_ts": ev.get("thread_ts") or ev.get("ts"), "text": text}
        outcome, _ = await self._call("chat.postMessage", reply, time.monotonic() + self.effective_timeout)
        if outcome.status is OutcomeStatus.RETRY:
            raise RuntimeError(f"answering in the thread: {outcome.error}")
        return {**result, "answered": outcome.ok, **({"error": outcome.error} if not outcome.ok else {})}

    # -- the work --------------------------------------------------------------------------------
    async def _ack(
        self, hub: Hub, message_id: str, by: str,
        where: list[tuple[str, str, list[dict[str, Any]] | None]] | None = None, *, actor: Actor,
    ) -> tuple[str, dict[str, Any]]:
        """Record the ack (once per message, audited) and show it on the alert in Slack; (text, result)."""
        try:
            ack, created = await hub.ack(message_id, by=by, via="slack", integration=self.name, project=self.project,
                                         actor=actor)
        except NotFound:
            return f"No message `{escape(message_id)}`.", {"status": "processed", "outcome": "not_found",
                                                            "message": message_id}
        updated = await self._show_ack(hub, message_id, ack, where)
        if created:
            text = f"✔️ Acknowledged `{escape(message_id)}`."
        else:
            text = f"`{escape(message_id)}` was already acknowledged by {mention_of(ack['by'])}."
        result = {"status": "processed", "outcome": "acknowledged" if created else "already_acknowledged",
                  "message": message_id, "by": ack["by"], "updated": updated}
        return text, result

    async def _show_ack(
        self, hub: Hub, message_id: str, ack: dict[str, Any],
        where: list[tuple[str, str, list[dict[str, Any]] | None]] | None,
    ) -> list[str]:
        """Edit the alert in place wherever this integration posted it: no button, who acked."""
        if not self.settings.connected:
            return []
        async with hub.require_store().read() as conn:
            row = (await conn.execute(select(messages).where(messages.c.id == message_id))).first()
            sent = (await conn.execute(
                select(deliveries.c.route, deliveries.c.remote_id).where(
                    deliveries.c.message_id == message_id, deliveries.c.integration == self.name,
                    deliveries.c.remote_id.is_not(None),
                )
            )).all()
        if row is None:
            return []
        message = Message.from_stored(row.data)
        targets = list(where or [])
        routes = {}
        for d in sent:
            channel, _, ts = str(d.remote_id).partition(":")
            routes[(channel, ts)] = d.route
            if ts and not any(c == channel and t == ts for c, t, _ in targets):
                targets.append((channel, ts, None))
        updated = []
        deadline = time.monotonic() + self.effective_timeout
        for channel, ts, shown in targets:
            if shown is None:
                route = hub.router.options_for(routes.get((channel, ts)))
                payload = self.render(apply_templates(message, route.template, self.settings.template), route.render)
                finalize(payload, message_id, row.created_at)
                shown = payload["attachments"]
            title, attachments = acked_attachments(shown, mention_of(ack["by"]), ack["at"])
            body = {"channel": channel, "ts": ts, "text": title or escape(message.title), "attachments": attachments}
            outcome, _ = await self._call("chat.update", body, deadline)
            if outcome.status is OutcomeStatus.RETRY:
                raise RuntimeError(f"chat.update: {outcome.error}")  # the event is retried; the ack holds
            if outcome.ok:
                updated.append(f"{channel}:{ts}")
                await self._keep_thread_ref(message, message_id, channel, ts, attachments)
            else:
                log.warning("slack.ack_update_failed", integration=self.name, error=outcome.error)
        return updated

    async def _keep_thread_ref(
        self, message: Message, message_id: str, channel: str, ts: str, attachments: list[dict[str, Any]]
    ) -> None:
        """If the acked alert starts a thread, keep its new content for a later resolve."""
        key = message.thread_key
        if not key:
            return
        threads = self.context.threads
        thread = await threads.get(self.name, key)
        if thread is not None and thread.ref.get("channel") == channel and thread.ref.get("ts") == ts:
            await threads.update_ref(self.name, key, {**thread.ref, "attachments": attachments})

    async def _silence(self, hub: Hub, words: list[str], by: str, seed: str, actor: Actor) -> tuple[str, dict[str, Any]]:
        matchers, seconds, reason = parse_silence(words)
        silence, created = await hub.silence(matchers, seconds, by=by, reason=reason, silence_id=silence_id_for(seed),
                                             project=self.project, actor=actor)
        text = (f"🔕 Silenced `{escape(silence.describe())}` for {_duration(seconds)} "
                f"(until <!date^{int(silence.until)}^{{date_short_pretty}} at {{time}}|{_utc(silence.until)}>). "
                f"id `{silence.id}`")
        return text, {"status": "processed", "silence": silence.id, "created": created}

    async def _unsilence(self, hub: Hub, silence_id: str, actor: Actor) -> tuple[str, dict[str, Any]]:
        ended = await hub.unsilence(silence_id, project=self.project, actor=actor)
        if ended is None:
            return (f"No active silence `{escape(silence_id)}`.",
                    {"status": "processed", "outcome": "not_found", "silence": silence_id})
        return (f"🔔 Ended silence `{escape(ended.describe())}` (`{ended.id}`).",
                {"status": "processed", "outcome": "ended", "silence": ended.id})

    # -- response_url ---------------------------------------------------------------------------
    def _allowed_response_url(self, url: str) -> bool:
        """Only Slack's own hosts (and the host of ``api_url``, for a proxy or a local fake):
        a signed request is Slack's, but nothing is posted anywhere else all the same."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme == "https" and any(host == h or host.endswith("." + h) for h in _SLACK_HOSTS):
            return True
        api = urlsplit(self.settings.api_url)
        return parts.scheme == api.scheme and host == (api.hostname or "").lower() and parts.port == api.port

    async def _respond(self, url: str, text: str) -> None:
        """Post the result of a slash command to its ``response_url`` (ephemeral). Failures that
        may pass raise, so the event is retried (the work itself is idempotent)."""
        await self._post_response(url, {"response_type": "ephemeral", "replace_original": False, "text": text})

    async def _post_response(self, url: str, body: dict[str, Any]) -> None:
        """Post ``body`` to a ``response_url`` (Slack's own hosts only); see :meth:`_respond`."""
        if not self._allowed_response_url(url):
            log.warning("slack.response_url_refused", integration=self.name, host=urlsplit(url).hostname)
            return
        if self._plain is None:
            self._plain = guarded_session(
                self.destinations, concurrency=2, timeout=self.effective_timeout, headers={"User-Agent": "tidings"}
            )
        try:
            async with self._plain.post(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"},
                                        allow_redirects=False) as resp:
                if resp.status == 429 or resp.status >= 500:
                    raise RuntimeError(f"response_url answered HTTP {resp.status}")
                if resp.status >= 300:
                    log.warning("slack.response_url_refused_by_slack", integration=self.name, status=resp.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RuntimeError(redact(f"response_url: {type(exc).__name__}: {exc}")) from None

    async def close_receiver(self) -> None:
        if self._plain is not None:
            await self._plain.close()
            self._plain = None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _utc(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
