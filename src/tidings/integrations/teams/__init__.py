"""Microsoft Teams: an Adaptive Card posted to a Power Automate **Workflows** webhook, or to a
legacy Office 365 **connector** (retired by Microsoft; they take the same envelope).

What is sent, in both modes::

    {"type": "message",
     "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                      "contentUrl": null,
                      "content": {<AdaptiveCard 1.5 or 1.4>}}]}

The card holds one Container styled by priority: the title, the body, the fields as a FactSet,
a context line (priority, source, time) and the links as ``Action.OpenUrl`` buttons. The whole
request stays under ``max_bytes`` (20 KB by default; Teams refuses 28 KB and fails from ~18 KB):
fields and body are cut first, with a visible ``…(truncated)`` marker.

How answers read: 2xx delivered (Workflows answers 202); a connector may answer 200 with a text
saying it was throttled ("Microsoft Teams endpoint returned HTTP error 429") or failed: that is
read as the status it names. 408, 425, 429 (with ``Retry-After``), 5xx, timeouts and resets are
retryable; 404 (a deleted workflow or connector), 400, 413 and other 4xx are permanent; 410
disables the integration. The webhook URL is a credential: it never appears in an error.

A person (a route's ``@handle``) who has a workflow URL of their own (``recipients.teams_url``, a
vault reference) gets the card there instead: :meth:`TeamsNotifier.address` marks the message with
their id (:data:`PERSON_LABEL`, never the URL) and :meth:`TeamsNotifier.send` reads the URL from the
vault (``Context.person_url``), checks it as the ``webhook_url`` setting is checked and posts through
the same guarded session; its answers read the same, except that a 410 there ends that delivery
without disabling the integration (one person's deleted workflow is not the channel's).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import orjson
import structlog
from pydantic import Field, SecretStr, field_validator, model_validator

from ...message import Format, Message, Priority
from ...security.redact import mask, register
from ...units import Size
from ..base import (
    ACK_PRIORITIES,
    DISABLED,
    NO_OPTIONS,
    TRUNCATED,
    Addressable,
    Attempt,
    HttpNotifier,
    IntegrationSettings,
    Outcome,
    RenderOptions,
    is_vault_ref,
)
from ..http import check_http_url, classify_status, connection_error, read_snippet
from ..markup import Writer, html_tree, markdown_tree, safe_href

if TYPE_CHECKING:
    from ...recipients.model import Person

log = structlog.get_logger("tidings.teams")

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
TEAMS_LIMIT = 28_000
"""Bytes Teams accepts at most in one request (28 KB); ``max_bytes`` can't go above it."""
DEFAULT_MAX_BYTES = 20_000
CONTEXT_ID = "tidings-context"
ACK_ID = "tidings-ack"
TIME_RESERVE = 120
"""Bytes kept free for the delivery time the context line gets when the card is sent."""
ACK_RESERVE = 600
"""Bytes kept free on a critical or high card for its Acknowledge button (a signed link)."""
MAX_ACTIONS = 6
"""Teams shows at most six actions on a card; more links are listed as text instead."""
PERSON_LABEL = "tidings:teams_person"
"""Set by :meth:`TeamsNotifier.address` to the recipient's id: the card goes to that person's own
workflow URL. No sender can set it: a label name can't hold ``:`` (``message.py``)."""

STYLES: dict[Priority, str] = {
    Priority.CRITICAL: "attention",
    Priority.HIGH: "warning",
    Priority.MEDIUM: "good",
    Priority.LOW: "accent",
    Priority.INFO: "default",
}

Mode = Literal["workflows", "connector"]
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_SECRET_PART = 16  # path segments at least this long are credentials too (connector ids, workflow ids)


def detect_mode(url: str) -> Mode | None:
    """``workflows`` for Power Automate URLs, ``connector`` for Office 365 connector URLs, else None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = parts.path.lower()
    if (
        host.endswith(".logic.azure.com")
        or host.endswith(".powerplatform.com")
        or "powerautomate" in host
        or "/powerautomate/" in path
        or "/workflows/" in path
    ):
        return "workflows"
    if (
        host.endswith(".webhook.office.com")
        or (host in ("outlook.office.com", "outlook.office365.com") and path.startswith("/webhook"))
        or "/webhookb2/" in path
    ):
        return "connector"
    return None


def url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL (never quoting it: it is the credential), or None: an
    absolute http(s) URL, https unless on loopback."""
    try:
        check_http_url(url)
    except ValueError as exc:
        return str(exc)
    parts = urlsplit(url)
    if parts.scheme != "https" and (parts.hostname or "") not in _LOOPBACK:
        return "must be https:// (it carries its own credential)"
    return None


def url_secrets(url: str) -> list[str]:
    """The URL and its parts a peer or a proxy might echo alone: the query (``sig=``) and the long
    path segments (connector and workflow ids)."""
    parts = urlsplit(url)
    found = [url, *(p for p in (parts.query, parts.path) if len(p) >= _SECRET_PART)]
    found += [value for _, value in parse_qsl(parts.query) if value]
    found += [seg for seg in parts.path.split("/") if len(seg) >= _SECRET_PART]
    return found


class TeamsSettings(IntegrationSettings):
    outbound = ("webhook_url",)
    kind: Literal["teams"]
    webhook_url: SecretStr = Field(
        description="the Workflows (or connector) webhook URL; a credential, masked everywhere"
    )
    mode: Literal["auto", "workflows", "connector"] = Field(
        "auto", description="auto: read it from the URL (logic.azure.com / powerautomate: workflows; webhook.office.com: connector)"
    )
    card_version: Literal["1.5", "1.4"] = "1.5"
    max_bytes: Size = Field(DEFAULT_MAX_BYTES, ge=4_096, le=TEAMS_LIMIT, description="largest request sent (bytes)")

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        if is_vault_ref(raw):
            return v
        if problem := url_problem(raw):  # never echo the URL: it is the credential
            raise ValueError(f"the webhook URL {problem}")
        return v

    @model_validator(mode="after")
    def _mode(self) -> TeamsSettings:
        raw = self.webhook_url.get_secret_value()
        if self.mode == "auto" and not is_vault_ref(raw) and detect_mode(raw) is None:
            raise ValueError(
                "mode: can't tell from the webhook URL whether it is a Power Automate workflow or an "
                "Office 365 connector; set mode: workflows or mode: connector"
            )
        return self

    @property
    def resolved_mode(self) -> Mode:
        if self.mode != "auto":
            return self.mode
        return detect_mode(self.webhook_url.get_secret_value()) or "workflows"

    def secret_values(self) -> list[str]:
        """The URL, and its parts a peer or a proxy might echo alone: the query (``sig=``) and
        the long path segments (connector and workflow ids)."""
        found = super().secret_values()
        raw = self.webhook_url.get_secret_value()
        if is_vault_ref(raw):
            return found
        return found + url_secrets(raw)[1:]


@dataclass(frozen=True, slots=True)
class _Level:
    """How hard to cut a message that doesn't fit."""

    facts: int | None  # how many fields to keep (None: all)
    fact_value: int | None  # longest field value kept
    links: int | None
    title: int | None
    body_floor: int  # accept this level only if the body keeps at least this many characters


_LEVELS = (
    _Level(None, None, None, None, 2_000),
    _Level(None, 500, None, None, 2_000),
    _Level(20, 200, None, None, 1_000),
    _Level(10, 100, 10, None, 500),
    _Level(5, 100, 5, 200, 200),
    _Level(0, 100, 3, 200, 0),
    _Level(0, 100, 0, 150, 0),
)


@dataclass(frozen=True, slots=True)
class _Parts:
    title: str
    body: str
    facts: list[tuple[str, str]]
    links: list[tuple[str, str]]
    context: str


class TeamsNotifier(HttpNotifier, Addressable):
    kind = "teams"
    Settings = TeamsSettings
    rate_limit = "4/second"  # Teams throttles a connector at 4 requests per second
    burst = 1
    concurrency = 4
    timeout = 15.0
    settings: TeamsSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode: Mode = self.settings.resolved_mode
        self._secrets = sorted(set(self.settings.secret_values()), key=len, reverse=True)

    # -- addressing a person -----------------------------------------------------------------
    def reaches(self, person: Person) -> bool:
        """A person with a workflow URL of their own (in the vault: resolved when sent)."""
        return bool(person.teams_url)

    def address(self, message: Message, person: Person) -> Message | None:
        """Marked for the person (their id, never their URL): :meth:`send` posts to their URL."""
        if not self.reaches(person):
            return None
        return message.model_copy(update={"labels": {**message.labels, PERSON_LABEL: person.id}})

    # -- the card ----------------------------------------------------------------------------
    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> dict[str, Any]:
        """The request body (without the delivery time, which :meth:`body` adds), cut to fit."""
        reserve = TIME_RESERVE + (ACK_RESERVE if message.priority in ACK_PRIORITIES else 0)
        return self._fit(message, self.settings.max_bytes - reserve)

    def card(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The Adaptive Card inside ``payload``."""
        content: dict[str, Any] = payload["attachments"][0]["content"]
        return content

    def body(self, payload: dict[str, Any], attempt: Attempt) -> bytes:
        """The exact bytes sent: the payload with the delivery's time on its context line (shown
        in each reader's time zone by Teams' ``DATE``/``TIME`` functions)."""
        created = attempt.created_at if attempt.created_at > 0 else time.time()
        stamp = dt.datetime.fromtimestamp(int(created), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        when = f"{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}"
        try:
            card = self.card(payload)
            container = card["body"][0]
            container["items"]
        except (KeyError, IndexError, TypeError):  # not a card render made: send it as it is
            return orjson.dumps(payload)
        items = [
            {**item, "text": f"{item['text']} · {when}"} if item.get("id") == CONTEXT_ID else item
            for item in container["items"]
        ]
        link = self._ack_link(attempt)
        if link is not None:
            items.append({"type": "ActionSet", "id": ACK_ID,
                          "actions": [{"type": "Action.OpenUrl", "title": "Acknowledge", "url": link}]})
        attachment = {**payload["attachments"][0], "content": {**card, "body": [{**container, "items": items}]}}
        return orjson.dumps({**payload, "attachments": [attachment]})

    def _ack_link(self, attempt: Attempt) -> str | None:
        """A critical or high message's signed acknowledge link (issued when the delivery was made,
        so a retry sends the same card), or None."""
        make = self.context.ack_link
        if make is None or attempt.message.priority not in ACK_PRIORITIES:
            return None
        link = make(attempt.message_id, attempt.created_at if attempt.created_at > 0 else time.time(), "teams")
        return link if link is not None and len(link) <= ACK_RESERVE - 100 else None

    def _fit(self, message: Message, budget: int) -> dict[str, Any]:
        title = _escape(" ".join(message.title.split()))  # a title is one line
        body = _body_text(message)
        # Renderers show both sides of a fact as TextBlocks, markdown included: escape both.
        facts = [(_escape(name), _escape(value)) for name, value in message.fields]
        links = [(link.label, link.url) for link in message.links]
        context = _context(message)
        for level in _LEVELS:
            parts = self._cut(level, title, facts, links, context)

            def at(n: int, parts: _Parts = parts) -> dict[str, Any]:
                return self._envelope(message, _Parts(parts.title, _cut(body, n), parts.facts, parts.links, parts.context))

            if _size(full := at(len(body))) <= budget:
                return full
            low = min(len(body), level.body_floor)
            if _size(at(low)) > budget:
                continue
            high = len(body)  # at(low) fits, at(high) does not
            while high - low > 1:
                mid = (low + high) // 2
                if _size(at(mid)) <= budget:
                    low = mid
                else:
                    high = mid
            return at(low)
        # Unreachable with the message limits (title <= 500 characters); kept so that no card
        # ever goes out too big whatever a template produces.
        return self._envelope(message, _Parts(_cut(title, 100), TRUNCATED, [], [], _cut(context, 100)))

    def _cut(
        self, level: _Level, title: str, facts: list[tuple[str, str]], links: list[tuple[str, str]], context: str
    ) -> _Parts:
        kept = facts if level.facts is None else facts[: level.facts]
        if level.fact_value is not None:
            kept = [(_cut(name, 100), _cut(value, level.fact_value)) for name, value in kept]
        if len(kept) < len(facts):
            kept = [*kept, ("…", f"{TRUNCATED}: {len(facts) - len(kept)} more fields")]
        shown = links if level.links is None else links[: level.links]
        if len(shown) < len(links):
            context += f" · {TRUNCATED}: {len(links) - len(shown)} more links"
        if level.title is not None:
            title = _cut(title, level.title)
            context = _cut(context, 300)
        return _Parts(title, "", kept, shown, context)

    def _envelope(self, message: Message, p: _Parts) -> dict[str, Any]:
        heading: dict[str, Any] = {
            "type": "TextBlock",
            "text": p.title,
            "size": "Large" if message.priority in (Priority.CRITICAL, Priority.HIGH) else "Medium",
            "weight": "Bolder",
            "wrap": True,
        }
        if self.settings.card_version == "1.5":
            heading["style"] = "heading"  # read as a heading by screen readers (1.5+)
        items: list[dict[str, Any]] = [heading]
        if p.body:
            items.append({"type": "TextBlock", "text": p.body, "wrap": True})
        if p.facts:
            items.append({"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in p.facts]})
        buttons, extra = p.links[:MAX_ACTIONS], p.links[MAX_ACTIONS:]
        if extra:
            listed = "\n\n".join(f"[{_escape(label)}]({_md_url(url)})" for label, url in extra)
            items.append({"type": "TextBlock", "text": listed, "wrap": True})
        items.append(
            {"type": "TextBlock", "id": CONTEXT_ID, "text": p.context, "isSubtle": True, "size": "Small",
             "wrap": True, "spacing": "Medium"}
        )
        if buttons:
            items.append(
                {"type": "ActionSet",
                 "actions": [{"type": "Action.OpenUrl", "title": label, "url": url} for label, url in buttons]}
            )
        card = {
            "$schema": CARD_SCHEMA,
            "type": "AdaptiveCard",
            "version": self.settings.card_version,
            "msteams": {"width": "Full"},
            "fallbackText": _cut(" ".join(message.title.split()), 200),
            "body": [{"type": "Container", "style": STYLES[message.priority], "bleed": True, "items": items}],
        }
        return {
            "type": "message",
            "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
        }

    # -- sending -----------------------------------------------------------------------------
    async def send(self, payload: dict[str, Any], attempt: Attempt) -> Outcome:
        body = self.body(payload, attempt)
        if len(body) > TEAMS_LIMIT:  # render keeps below max_bytes; this guards a payload built elsewhere
            return Outcome.permanent(f"the card is {len(body)} bytes; Teams accepts at most {TEAMS_LIMIT}")
        person = attempt.message.labels.get(PERSON_LABEL)
        if person is not None:
            return await self._send_to_person(person, body)
        return self._scrub(await self._post(self.settings.webhook_url.get_secret_value(), self.mode, body),
                           self._secrets)

    async def _send_to_person(self, recipient_id: str, body: bytes) -> Outcome:
        """``body`` posted to the person's own workflow URL, read now (a rotated URL applies)."""
        resolve = self.context.person_url
        if resolve is None:
            return Outcome.permanent(f"{self.name} can't read a person's workflow URL here: nothing sent")
        try:
            name, url = await resolve(recipient_id, self.project)
        except LookupError as exc:  # deleted, or no URL any more
            return Outcome.permanent(str(exc))
        except Exception as exc:  # the vault's database: try again later
            log.warning("teams.person_url_unread", integration=self.name, recipient=recipient_id,
                        error=type(exc).__name__)
            return Outcome.retry(f"reading the person's Teams workflow URL failed: {type(exc).__name__}")
        secrets = url_secrets(url)
        register(secrets)  # logs and stored errors mask it too, whatever echoes it
        mode = detect_mode(url)
        if (problem := url_problem(url)) is not None or mode is None:
            why = problem or "is not a Power Automate workflow (or Teams connector) URL"
            return Outcome.permanent(f"{name}'s Teams workflow URL {why}: nothing sent")
        outcome = await self._post(url, mode, body)
        if outcome.disable:  # one person's deleted workflow is not the integration's
            outcome = Outcome.permanent(f"{(outcome.error or '').removesuffix(DISABLED)} ({name}'s workflow)")
        return self._scrub(outcome, sorted({*secrets, *self._secrets}, key=len, reverse=True))

    async def _post(self, url: str, mode: Mode, body: bytes) -> Outcome:
        """POST ``body`` to ``url`` through the guarded session; the answer read as ``mode`` answers."""
        session = self._session or await self.session()
        try:
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    text = await read_snippet(resp) if mode == "connector" else ""
                    outcome = _connector_answer(text) if text else None
                    if outcome is None:
                        rid = resp.headers.get("x-ms-workflow-run-id") or resp.headers.get("x-ms-request-id")
                        outcome = Outcome.delivered(rid or resp.headers.get("request-id"))
                else:
                    outcome = _answer(resp.status, resp.headers, await read_snippet(resp))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            outcome = connection_error(exc)
        return outcome

    @staticmethod
    def _scrub(outcome: Outcome, secrets: list[str]) -> Outcome:
        """The outcome with the webhook URL (and its parts, ``secrets``: longest first) masked in its
        error, whatever echoed it."""
        if not outcome.error:
            return outcome
        text = outcome.error
        for secret in secrets:
            text = text.replace(secret, mask(secret))
        return Outcome(outcome.status, outcome.remote_id, outcome.retry_after, text, outcome.disable, outcome.http_status)


_ERROR_IN_TEXT = re.compile(r"HTTP error (\d{3})")


def _connector_answer(text: str) -> Outcome | None:
    """A connector's 200 answer: "1" when posted; a text naming the failure otherwise."""
    stripped = text.strip()
    if stripped in ("", "1"):
        return None
    lowered = stripped.lower()
    if m := _ERROR_IN_TEXT.search(stripped):
        return _answer(int(m.group(1)), {}, f"(connector answered 200) {stripped}")
    if "429" in lowered or "throttl" in lowered:
        return Outcome.retry(f"throttled by Teams (connector answered 200): {stripped}")
    if "fail" in lowered or "error" in lowered:
        return Outcome.retry(f"the connector answered 200 but reported a failure: {stripped}")
    return None


def _answer(status: int, headers: Any, snippet: str) -> Outcome:
    if status == 404:
        return Outcome.permanent(
            "HTTP 404: no such workflow or connector (deleted or the URL is wrong)" + (f": {snippet}" if snippet else "")
        )
    if status == 413:
        return Outcome.permanent("HTTP 413: Teams refused the card as too large" + (f": {snippet}" if snippet else ""))
    return classify_status(status, headers, snippet)


# -- text for Adaptive Cards' markdown subset (bold, italic, lists, links) -------------------------
_SPECIAL = re.compile(r"([\\*_\[\]`~])")
_LINE_START = re.compile(r"^([ \t]*)(\d*)([-+>#.)])(?=\s|$)", re.MULTILINE)


def _escape(text: str) -> str:
    """Plain text that Teams shows as written: markdown characters escaped, so that nobody can
    make a disguised link or bold text out of a message."""
    return _LINE_START.sub(_escape_marker, _SPECIAL.sub(r"\\\1", text))


def _escape_marker(m: re.Match[str]) -> str:
    """``- x`` -> ``\\- x``, ``1. x`` -> ``1\\. x`` (CommonMark escapes punctuation, not digits)."""
    indent, digits, mark = m.group(1), m.group(2), m.group(3)
    if not digits and mark in ".)":
        return m.group(0)
    return f"{indent}{digits}\\{mark}"


def _plain(text: str) -> str:
    # One paragraph per line: Teams joins lines separated by a single newline.
    return "\n\n".join(_escape(line.rstrip()) for line in text.splitlines() if line.strip())


class _CardText(Writer):
    """Markdown or HTML as what Adaptive Cards show (bold, italic, lists, links): headings become
    bold lines, images links, code and tables escaped text (a row per paragraph); links keep
    only http(s) and mailto targets; all text escaped."""

    hardbreak = "\n\n"
    marks_in_headings = False
    intraword_marks = False

    def text(self, text: str) -> str:
        return _escape(text)

    def strong(self, inner: str) -> str:
        return f"**{inner}**"

    def em(self, inner: str) -> str:
        return f"_{inner}_"

    def link(self, url: str, label: str) -> str:
        if not safe_href(url):
            return _escape(label)
        return f"[{_escape(label or url)}]({_md_url(url)})"

    def heading(self, inline: str) -> str:
        return f"**{inline}**"

    def code_block(self, text: str) -> str:
        return "\n\n".join(_escape(line.rstrip()) for line in text.splitlines() if line.strip())

    def table(self, rows: list[list[str]], header: bool) -> str:
        return "\n\n".join(" | ".join(row) for row in rows)


def _md_url(url: str) -> str:
    return url.replace("(", "%28").replace(")", "%29")


def _body_text(message: Message) -> str:
    if not message.body.strip():
        return ""
    if message.format is Format.MARKDOWN:
        return _CardText().render(markdown_tree(message.body))
    if message.format is Format.HTML:
        return _CardText().render(html_tree(message.body))
    return _plain(message.body)


def _context(message: Message) -> str:
    parts = [message.priority.value.capitalize()]
    if message.source:
        parts.append(_escape(message.source))
    if message.resolves:
        parts.append("resolved")
    return " · ".join(parts)


def _cut(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters, ending with the marker when it was cut."""
    if len(text) <= limit:
        return text
    if limit <= len(TRUNCATED):
        return TRUNCATED
    cut = text[: limit - len(TRUNCATED)].rstrip()
    if (len(cut) - len(cut.rstrip("\\"))) % 2:  # don't leave half an escape
        cut = cut[:-1]
    return cut + TRUNCATED


def _size(payload: dict[str, Any]) -> int:
    return len(orjson.dumps(payload))
