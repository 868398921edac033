"""A local fake of the Slack Web API and of incoming webhooks, strict about what it accepts.

It answers ``chat.postMessage``, ``chat.update`` and ``auth.test`` the way Slack documents them
(HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error": "<code>"}``), keeps the messages
it was sent (with their threads), and refuses what Slack would refuse: a missing or wrong bearer
token, an unknown or archived channel, a channel the app is not in, an unknown ``thread_ts``,
and any payload breaking Block Kit's rules (checked with slack_sdk's own models plus the limits
below). Every payload it receives is also checked for user text that was not escaped; whatever
it finds lands in ``violations``, which tests assert empty.

    slack = FakeSlack(); await slack.start()
    settings = {"kind": "slack", "token": slack.token, "channel": "#alerts", "api_url": slack.api_url}
    slack.script("chat.postMessage", Scripted(error="ratelimited", headers={"Retry-After": "3"}))
    slack.script("chat.postMessage", Scripted(status=429, headers={"Retry-After": "7"}))
    slack.script("chat.postMessage", Scripted(action="reset"))   # drop the connection
    slack.script("webhook", Scripted(status=404, body="no_service"))
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

TOKEN = "xoxb-1111-2222-fakeslacktokenvalue"
HOOK_SECRET = "hooksecretXXXXXXXXXXXXXXXX1234"
CHANNELS = {
    "alerts": "C0ALERTS",
    "ops": "C0OPS",
    "deploys": "C0DEPLOYS",
    "old": "C0ARCHIVED",
    "secret-room": "G0PRIVATE",
}
ARCHIVED = {"C0ARCHIVED"}
USERS = {"U0ADA": "D0ADA", "U0GRACE": "D0GRACE", "U0LINUS": "D0LINUS"}
"""Members of the workspace -> the DM channel the bot has with them (a post to a user id lands there)."""
NOT_A_MEMBER = {"G0PRIVATE"}
HOOK_CHANNEL = "C0ALERTS"

# Slack's limits (https://docs.slack.dev/reference/block-kit/blocks), and ours for the whole text.
MAX_BLOCKS = 50
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELDS_MAX = 10
FIELD_TEXT_MAX = 2000
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
BUTTON_TEXT_MAX = 75
BUTTON_URL_MAX = 3000
BUTTON_VALUE_MAX = 2000
TEXT_MAX = 40_000
VISIBLE_TEXT_MAX = 12_000

_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt);)")
_TOKEN = re.compile(r"<([^<>]*)>")
_ALLOWED_TOKEN = re.compile(
    r"^(?:!here|!channel|!date\^\d+\^[^|^]*\|[^|]*|(?:https?://|mailto:)[^\s|<>]+(?:\|[^|]*)?|@[UW][A-Z0-9]{2,30})$"
)
"""Markup tidings itself writes: mentions from routes, dates, links, and a user mention (who
acknowledged an alert: an id taken from Slack's own signed request, never from user text)."""
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass
class Scripted:
    """One scripted answer: ``error`` makes an HTTP-200 ``ok:false``; ``body`` a raw body."""

    status: int = 200
    error: str | None = None
    body: str | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    action: str | None = None  # "reset": drop the connection
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Call:
    method: str
    headers: dict[str, str]
    raw: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.raw)


def ulen(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# -- what Slack would refuse, and what no user text may carry ------------------------------------
def blocks_of(payload: dict[str, Any]) -> list[dict[str, Any]]:
    out = list(payload.get("blocks") or [])
    for attachment in payload.get("attachments") or []:
        out += attachment.get("blocks") or []
    return out


def texts_of(payload: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, text) for every piece of text a person sees."""
    if isinstance(payload.get("text"), str):
        yield "text", payload["text"]
    for i, attachment in enumerate(payload.get("attachments") or []):
        if isinstance(attachment.get("fallback"), str):
            yield f"attachments[{i}].fallback", attachment["fallback"]
    for j, block in enumerate(blocks_of(payload)):
        yield from _block_texts(f"blocks[{j}]", block)


def _block_texts(where: str, block: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if isinstance(block.get("text"), dict):
        yield f"{where}.text", block["text"].get("text", "")
    for k, f in enumerate(block.get("fields") or []):
        yield f"{where}.fields[{k}]", f.get("text", "")
    for k, e in enumerate(block.get("elements") or []):
        if "text" in e and isinstance(e["text"], str):
            yield f"{where}.elements[{k}]", e["text"]
        elif isinstance(e.get("text"), dict):
            yield f"{where}.elements[{k}].text", e["text"].get("text", "")


def special_tokens(payload: dict[str, Any]) -> list[str]:
    """Every ``<...>`` Slack would parse: mentions, dates, links."""
    return [m.group(0) for _, text in texts_of(payload) for m in _TOKEN.finditer(text)]


def check_payload(payload: dict[str, Any]) -> list[str]:
    """Problems Slack (or our own budget) would have with ``payload``; empty when it is good."""
    problems: list[str] = []
    text = payload.get("text")
    blocks = blocks_of(payload)
    if not (isinstance(text, str) and text.strip()) and not blocks:
        problems.append("no_text")
    if isinstance(text, str) and len(text) > TEXT_MAX:
        problems.append("msg_too_long")
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks (at most {MAX_BLOCKS})")
    for i, attachment in enumerate(payload.get("attachments") or []):
        if "color" in attachment and not _COLOR.match(str(attachment["color"])):
            problems.append(f"attachments[{i}].color {attachment['color']!r}")
    action_ids: list[str] = []
    for j, block in enumerate(blocks):
        where = f"blocks[{j}]"
        problems += _check_block(where, block, action_ids)
    if len(action_ids) != len(set(action_ids)):
        problems.append(f"duplicate action_id in {action_ids}")
    visible = 0
    for where, piece in texts_of(payload):
        visible += ulen(piece)
        if _BARE_AMP.search(piece):
            problems.append(f"{where}: unescaped '&' in {piece[:80]!r}")
        stripped = _TOKEN.sub("", piece)
        if "<" in stripped or ">" in stripped:
            problems.append(f"{where}: unescaped '<' or '>' in {piece[:80]!r}")
        for m in _TOKEN.finditer(piece):
            if not _ALLOWED_TOKEN.match(m.group(1)):
                problems.append(f"{where}: unexpected Slack markup {m.group(0)[:80]!r}")
    if visible > VISIBLE_TEXT_MAX:
        problems.append(f"{visible} characters of text (keep under {VISIBLE_TEXT_MAX})")
    return problems


def _check_block(where: str, block: dict[str, Any], action_ids: list[str]) -> list[str]:
    problems: list[str] = []
    try:
        parsed = Block.parse(block)
        if parsed is None:
            return [f"{where}: not a block: {block!r:.80}"]
        parsed.validate_json()
        if parsed.to_dict() != block:
            problems.append(f"{where}: slack_sdk reads it differently (unknown or misspelt keys)")
    except (SlackObjectFormationError, TypeError, KeyError) as exc:
        return [f"{where}: {exc}"]
    kind = block.get("type")
    if kind == "header":
        t = block["text"]
        if t.get("type") != "plain_text" or not 0 < ulen(t["text"]) <= HEADER_MAX:
            problems.append(f"{where}: header text of {ulen(t['text'])} (1..{HEADER_MAX}, plain_text)")
    elif kind == "section":
        if "text" in block and not 0 < ulen(block["text"]["text"]) <= SECTION_TEXT_MAX:
            problems.append(f"{where}: section text of {ulen(block['text']['text'])} (1..{SECTION_TEXT_MAX})")
        fields = block.get("fields") or []
        if len(fields) > FIELDS_MAX:
            problems.append(f"{where}: {len(fields)} fields (at most {FIELDS_MAX})")
        for k, f in enumerate(fields):
            if not 0 < ulen(f["text"]) <= FIELD_TEXT_MAX:
                problems.append(f"{where}.fields[{k}]: {ulen(f['text'])} characters (1..{FIELD_TEXT_MAX})")
    elif kind == "context":
        elements = block.get("elements") or []
        if not 0 < len(elements) <= CONTEXT_ELEMENTS_MAX:
            problems.append(f"{where}: {len(elements)} context elements (1..{CONTEXT_ELEMENTS_MAX})")
    elif kind == "actions":
        elements = block.get("elements") or []
        if not 0 < len(elements) <= ACTIONS_ELEMENTS_MAX:
            problems.append(f"{where}: {len(elements)} actions (1..{ACTIONS_ELEMENTS_MAX})")
        for k, e in enumerate(elements):
            if e.get("type") != "button":
                continue
            if not 0 < ulen(e["text"]["text"]) <= BUTTON_TEXT_MAX:
                problems.append(f"{where}.elements[{k}]: button text of {ulen(e['text']['text'])}")
            if "url" in e and (len(e["url"]) > BUTTON_URL_MAX or not e["url"].startswith(("http://", "https://"))):
                problems.append(f"{where}.elements[{k}]: bad url")
            if "value" in e and not 0 < len(e["value"]) <= BUTTON_VALUE_MAX:
                problems.append(f"{where}.elements[{k}]: value of {len(e['value'])}")
            if "action_id" in e:
                action_ids.append(e["action_id"])
    return problems


# -- the server ----------------------------------------------------------------------------------
class FakeSlack:
    def __init__(self, port: int = 0) -> None:
        self.token = TOKEN
        self.accept: Callable[[str], bool] | None = None
        """Also take the bearer tokens this says are valid (an authorization server's ``valid``)."""
        self.bind_port = port
        self.port = 0
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        """(channel id, ts) -> the message as Slack keeps it (updated in place by chat.update)."""
        self.hook_messages: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        """What was posted to response_url (the result of a slash command)."""
        self._responses = 0
        self.arrived = asyncio.Event()
        self._script: dict[str, deque[Scripted]] = defaultdict(deque)
        self._seq = 0
        self._runner: web.AppRunner | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T0ACME/B0HOOK/{HOOK_SECRET}"

    def response_url(self, kind: str = "commands") -> str:
        """A fresh response_url like Slack's (``/commands/...`` or ``/actions/...``) on this fake."""
        self._responses += 1
        return f"http://127.0.0.1:{self.port}/{kind}/T0ACME/{self._responses}/respsecret{self._responses:04d}"

    def script(self, method: str, *replies: Scripted) -> None:
        """Answers for the next calls of ``method`` ("chat.postMessage", "chat.update",
        "auth.test" or "webhook"), in order; then the fake answers as Slack would."""
        self._script[method].extend(replies)

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def posts(self) -> list[dict[str, Any]]:
        return [c.json() for c in self.calls_of("chat.postMessage")]

    async def start(self) -> None:
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post("/services/{path:.*}", self._hook)
        app.router.add_post("/commands/{path:.*}", self._respond)
        app.router.add_post("/actions/{path:.*}", self._respond)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.bind_port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, method: str, count: int, timeout: float = 10.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while len(self.calls_of(method)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fake Slack got {len(self.calls_of(method))} {method} calls, expected {count}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 0.1)
            except TimeoutError:
                pass
        return self.calls_of(method)

    # -- handlers --------------------------------------------------------------------------
    async def _scripted(self, request: web.Request, method: str) -> web.StreamResponse | None:
        queue = self._script.get(method)
        if not queue:
            return None
        s = queue.popleft()
        if s.action == "reset":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        if s.delay:
            await asyncio.sleep(s.delay)
        if s.error is not None:
            return web.json_response({"ok": False, "error": s.error, **s.extra}, status=s.status, headers=s.headers)
        return web.Response(status=s.status, body=s.body or b"", headers=s.headers)

    def _record(self, method: str, request: web.Request, raw: bytes) -> Any:
        self.calls.append(Call(method, dict(request.headers), raw, time.monotonic()))
        self.arrived.set()
        content_type = request.headers.get("Content-Type", "")
        if not content_type.startswith("application/json"):
            self.violations.append(f"{method}: Content-Type {content_type!r}")
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self.violations.append(f"{method}: the body is not JSON")
            return None
        if method in ("chat.postMessage", "chat.update", "webhook", "response_url"):
            self.violations += [f"{method}: {p}" for p in check_payload(body)]
        return body

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        raw = await request.read()
        body = self._record(method, request, raw)
        scripted = await self._scripted(request, method)
        if scripted is not None:
            return scripted
        auth = request.headers.get("Authorization", "")
        if not auth:
            return self._fail("not_authed")
        if auth != f"Bearer {self.token}" and not (
                self.accept is not None and auth.startswith("Bearer ") and self.accept(auth[7:])):
            return self._fail("invalid_auth")
        if body is None:
            return self._fail("invalid_json")
        if method == "auth.test":
            return web.json_response({
                "ok": True, "url": "https://acme.slack.com/", "team": "Acme", "user": "tidings",
                "team_id": "T0ACME", "user_id": "U0BOT", "bot_id": "B0BOT", "is_enterprise_install": False,
            })
        if method == "chat.postMessage":
            return self._post_message(body)
        if method == "chat.update":
            return self._update(body)
        return self._fail("unknown_method")

    @staticmethod
    def _fail(error: str, **extra: Any) -> web.Response:
        return web.json_response({"ok": False, "error": error, **extra})

    def _channel(self, name: Any) -> str | None:
        if not isinstance(name, str):
            return None
        if name in CHANNELS.values() or name in USERS.values():
            return name
        return USERS.get(name) or CHANNELS.get(name.removeprefix("#"))

    def _post_message(self, body: dict[str, Any]) -> web.Response:
        channel = self._channel(body.get("channel"))
        if channel is None:
            return self._fail("channel_not_found")
        if channel in ARCHIVED:
            return self._fail("is_archived")
        if channel in NOT_A_MEMBER:
            return self._fail("not_in_channel")
        problems = check_payload(body)
        if "no_text" in problems:
            return self._fail("no_text")
        if "msg_too_long" in problems:
            return self._fail("msg_too_long")
        if problems:
            return self._fail("invalid_blocks", response_metadata={"messages": [f"[ERROR] {p}" for p in problems[:5]]})
        thread_ts = body.get("thread_ts")
        if thread_ts is not None and (channel, thread_ts) not in self.messages:
            return self._fail("thread_not_found")
        self._seq += 1
        ts = f"{1_700_000_000 + self._seq}.{self._seq:06d}"
        message = {
            "type": "message", "user": "U0BOT", "bot_id": "B0BOT", "ts": ts,
            "text": body.get("text", ""), "attachments": body.get("attachments", []),
            "blocks": body.get("blocks", []),
        }
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
            parent = self.messages[(channel, thread_ts)]
            parent.setdefault("replies", []).append(ts)
            parent["thread_ts"] = thread_ts
        self.messages[(channel, ts)] = message
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": message})

    def _update(self, body: dict[str, Any]) -> web.Response:
        channel = body.get("channel")
        if channel not in CHANNELS.values() and channel not in USERS.values():  # chat.update wants the channel's ID
            return self._fail("channel_not_found")
        key = (channel, body.get("ts"))
        if key not in self.messages:
            return self._fail("message_not_found")
        problems = check_payload(body)
        if problems:
            return self._fail("invalid_blocks", response_metadata={"messages": [f"[ERROR] {p}" for p in problems[:5]]})
        message = self.messages[key]
        message["text"] = body.get("text", message["text"])
        if "attachments" in body:
            message["attachments"] = body["attachments"]
        if "blocks" in body:
            message["blocks"] = body["blocks"]
        message["edited"] = {"user": "U0BOT", "ts": f"{int(time.time())}.000000"}
        return web.json_response({"ok": True, "channel": channel, "ts": key[1], "text": message["text"],
                                  "message": message})

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = self._record("webhook", request, raw)
        scripted = await self._scripted(request, "webhook")
        if scripted is not None:
            return scripted
        if request.match_info["path"] != f"T0ACME/B0HOOK/{HOOK_SECRET}":
            return web.Response(status=404, text="no_service")
        if body is None or check_payload(body):
            return web.Response(status=400, text="invalid_payload")
        if "thread_ts" in body or "channel" in body:
            self.violations.append("webhook: channel/thread_ts sent to an incoming webhook")
        self.hook_messages.append(body)
        return web.Response(status=200, text="ok")

    async def _respond(self, request: web.Request) -> web.StreamResponse:
        """response_url: Slack takes JSON (``text``, ``response_type``...), no token."""
        raw = await request.read()
        body = self._record("response_url", request, raw)
        scripted = await self._scripted(request, "response_url")
        if scripted is not None:
            return scripted
        if "Authorization" in request.headers:
            self.violations.append("response_url: a token was sent to response_url")
        if body is None:
            return web.Response(status=400, text="invalid_payload")
        if check_payload(body):  # recorded as violations by _record
            return web.Response(status=400, text="invalid_payload")
        self.responses.append({"path": request.path, **body})
        return web.Response(status=200, text="ok")
