"""A message as Slack Block Kit, inside a coloured attachment, within Slack's limits.

Everything here is pure: the same message gives the same payload. All user text is escaped
(``&``, ``<``, ``>`` become entities) so that nobody can write ``<!channel>``, ``<@U123>`` or a
disguised link; the only Slack markup in a payload is what this module writes itself: links from
the message's Markdown/HTML (read by markdown-it-py and nh3, see :mod:`..markup`), the route's ``<!here>``/``<!channel>`` and ``<!date^...>``.

Blocks are built with slack_sdk's models, whose ``to_dict()`` refuses what Slack would refuse;
the fitting below makes sure it never has to: long text is cut at a safe place with a visible
``…(truncated)``, long bodies become several sections, and the whole message keeps to a text
budget well under Slack's ~12k characters. Lengths are counted in UTF-16 code units, as Slack's
JavaScript does, so an emoji counts twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from ...message import Format, Message, Priority
from ..base import TRUNCATED
from ..markup import Writer, html_tree, markdown_tree

COLORS: dict[Priority, str] = {
    Priority.CRITICAL: "#d00000",
    Priority.HIGH: "#ff6600",
    Priority.MEDIUM: "#ffcc00",
    Priority.LOW: "#0099ff",
    Priority.INFO: "#999999",
}
RESOLVED_COLOR = "#2eb67d"
EMOJI: dict[Priority, str] = {
    Priority.CRITICAL: "🔴",
    Priority.HIGH: "🟠",
    Priority.MEDIUM: "🟡",
    Priority.LOW: "🔵",
    Priority.INFO: "⚪",
}
RESOLVED_EMOJI = "✅"

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_PER_SECTION = 10
FIELD_NAME_MAX = 150
BUTTON_TEXT_MAX = 75
BUTTON_URL_MAX = 3000
ACTIONS_MAX = 25
CONTEXT_MAX = 10
BLOCKS_MAX = 50
TEXT_BUDGET = 11_000
"""Visible text in one message (header, sections, fields, context, buttons, fallback): Slack
keeps messages readable up to about 12k characters; stay under it with room to spare."""
FALLBACK_BODY_MAX = 150
MAX_FIELD_SECTIONS = 10

ACK_ACTION = "tidings_ack"
ACK_SLOT = "{message_id}"
"""The Acknowledge button's value in a rendered payload; :func:`finalize` puts the message id
there when it is known (at send time)."""
LINK_ACTION = "tidings_link_{}"
LINK_URL_MAX = 2000
"""A longer URL in a body stays text: a link token must fit whole in one section."""

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ESCAPE = re.compile(r"[&<>]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ATOMIC = re.compile(r"&(?:amp|lt|gt);|<[^<>\n]*>|```")
"""What a cut must not split: an entity, a link or mention token, a code fence."""


# -- text ----------------------------------------------------------------------------------------
def escape(text: str) -> str:
    """User text made inert for Slack: control characters dropped, ``& < >`` as entities."""
    return _esc(_clean(text))


def _clean(text: str) -> str:
    return _CONTROL.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def _esc(text: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], text)


def ulen(text: str) -> int:
    """Length as Slack counts it: UTF-16 code units."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def fit(raw: str, limit: int) -> str:
    """``raw`` escaped, cut (with the marker) so that the escaped text is at most ``limit``."""
    out = escape(raw)
    if ulen(out) <= limit:
        return out
    return fit_mrkdwn(out, limit)


def _prefix(text: str, room: int) -> int:
    """The longest prefix of ``text`` (in code points) whose UTF-16 length is at most ``room``."""
    p = min(len(text), max(room, 0))
    while p > 0 and (over := ulen(text[:p]) - room) > 0:
        p -= max(1, over // 2)
    return max(p, 0)


def _safe(text: str, p: int) -> int:
    """``p`` moved back so that it does not fall inside an entity, a ``<...>`` token or a fence."""
    lo = max(0, p - SECTION_MAX - 200)
    for m in _ATOMIC.finditer(text, lo, min(len(text), p + SECTION_MAX + 200)):
        if m.start() < p < m.end():
            return m.start()
        if m.start() >= p:
            break
    return p


def _open_fence(text: str) -> bool:
    return text.count("```") % 2 == 1


def fit_mrkdwn(text: str, limit: int) -> str:
    """Escaped mrkdwn cut to ``limit`` with a visible marker; never inside a token, and an open
    code block is closed before the marker."""
    if ulen(text) <= limit:
        return text
    room = limit - ulen(TRUNCATED) - 5
    if room <= 0:
        return TRUNCATED[:limit]
    p = _safe(text, _prefix(text, room))
    piece = text[:p].rstrip()
    if _open_fence(piece):
        return piece + "\n```\n" + TRUNCATED
    return piece + TRUNCATED


def split_mrkdwn(text: str, limit: int = SECTION_MAX) -> list[str]:
    """Escaped mrkdwn in pieces of at most ``limit``: cut at a blank line, else a line end, else a
    space; a code block cut in two is closed and reopened."""
    chunks: list[str] = []
    fence = False
    rest = text
    while rest.strip():
        head = "```\n" if fence else ""
        avail = limit - ulen(head)
        last = head + rest
        if _open_fence(last):
            last += "\n```"
        if ulen(last) <= limit:
            chunks.append(last)
            break
        p = _prefix(rest, avail - 4)
        cut = _break_at(rest, p)
        piece = rest[:cut]
        now_open = fence != _open_fence(piece)
        chunk = head + piece.rstrip() + ("\n```" if now_open else "")
        if chunk.strip() and chunk.strip() != "```\n```":
            chunks.append(chunk)
        rest = rest[cut:].lstrip("\n")
        fence = now_open
    return chunks


def _break_at(text: str, p: int) -> int:
    window = text[:p]
    for sep in ("\n\n", "\n", " "):
        i = window.rfind(sep)
        if i > p // 2:
            return _safe(text, i + len(sep)) or p
    return _safe(text, p) or p


def link(url: str, label: str | None = None) -> str:
    """A Slack link token for an http(s) or mailto URL (anything else stays text)."""
    if not re.match(r"^(https?://|mailto:)", url, re.IGNORECASE) or len(url) > LINK_URL_MAX:
        text = escape(label or url)
        return f"{text} ({escape(url)})" if label and label != url else text
    safe_url = (
        _CONTROL.sub("", url)
        .replace("&", "&amp;")
        .replace("<", "%3C")
        .replace(">", "%3E")
        .replace("|", "%7C")
        .replace(" ", "%20")
        .replace("\n", "")
    )
    if label is None or label == url:
        return f"<{safe_url}>"
    # Within a link the label runs from the first "|" to ">": keep it one line, with no "|".
    label = escape(label).replace("\n", " ").replace("|", "\N{FULLWIDTH VERTICAL LINE}")
    return f"<{safe_url}|{label}>"


# -- Markdown and HTML to mrkdwn --------------------------------------------------------------------
class _Mrkdwn(Writer):
    """Slack's mrkdwn: ``*bold*``, ``_italic_``, ``~strike~``, code, ``<url|label>`` links, • bullets,
    headings as bold lines, table rows on lines with their cells separated; all text escaped."""

    bullet = "•"
    marks_in_headings = False
    intraword_marks = False

    def text(self, text: str) -> str:
        return escape(text)

    def strong(self, inner: str) -> str:
        return f"*{inner}*"

    def em(self, inner: str) -> str:
        return f"_{inner}_"

    def strike(self, inner: str) -> str:
        return f"~{inner}~"

    def code(self, text: str) -> str:
        return "`" + escape(text.replace("`", "\N{MODIFIER LETTER GRAVE ACCENT}")) + "`"

    def link(self, url: str, label: str) -> str:
        return link(url, label or url) if url else escape(label)

    def heading(self, inline: str) -> str:
        return f"*{inline}*"

    def code_block(self, text: str) -> str:
        return "```\n" + escape(text.rstrip("\n").replace("```", "`\N{ZERO WIDTH SPACE}``")) + "\n```"

    def quote(self, inner: str) -> str:
        return "\n".join("&gt; " + line for line in inner.split("\n"))

    def rule(self) -> str:
        return "──────────"

    def table(self, rows: list[list[str]], header: bool) -> str:
        lines = []
        for i, row in enumerate(rows):
            cells = [f"*{c}*" if header and i == 0 and c else c for c in row]
            lines.append(" | ".join(cells))
        return "\n".join(lines)


def markdown_to_mrkdwn(markdown: str) -> str:
    """Markdown (parsed by markdown-it-py) as Slack mrkdwn."""
    return _Mrkdwn().render(markdown_tree(_clean(markdown)))


def html_to_mrkdwn(source: str) -> str:
    """HTML (sanitised by nh3) as Slack mrkdwn."""
    return _Mrkdwn().render(html_tree(_clean(source)))


def body_mrkdwn(message: Message) -> str:
    if message.format is Format.MARKDOWN:
        return markdown_to_mrkdwn(message.body)
    if message.format is Format.HTML:
        return html_to_mrkdwn(message.body)
    return escape(message.body).strip("\n")


# -- the message ---------------------------------------------------------------------------------
def _share(needs: list[int], total: int) -> list[int]:
    """Split ``total`` fairly: small needs are met in full, the rest share what is left equally."""
    caps = [0] * len(needs)
    left = max(total, 0)
    order = sorted(range(len(needs)), key=lambda i: needs[i])
    for k, i in enumerate(order):
        share = left // (len(needs) - k)
        caps[i] = min(needs[i], share)
        left -= caps[i]
    return caps


def _field_text(name: str, value: str, cap: int) -> str:
    """``*name*`` and the value below it, in at most ``cap`` (and Slack's 2000)."""
    cap = min(cap, FIELD_MAX)
    whole = "*" + escape(name) + "*" + ("\n" + escape(value) if value else "")
    if ulen(whole) <= cap and ulen(escape(name)) <= FIELD_NAME_MAX:
        return whole
    name_part = "*" + fit(name, min(FIELD_NAME_MAX, max(cap - 2, 1))) + "*"
    if not value:
        return name_part
    room = cap - ulen(name_part) - 1
    if room < 20:
        return name_part + "\n" + TRUNCATED
    return name_part + "\n" + fit(value, room)


def mention_token(mention: str | None) -> str | None:
    return {"here": "<!here>", "channel": "<!channel>"}.get(mention or "")


def build(
    message: Message,
    *,
    ack: bool,
    mention: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The top-level ``text`` (fallback for notifications) and the attachment holding the blocks.

    ``ack`` adds the Acknowledge button (its value is :data:`ACK_SLOT` until sent); ``mention``
    ("here" or "channel") prefixes the text, for critical messages only."""
    priority = message.priority
    resolved = message.resolves
    emoji = RESOLVED_EMOJI if resolved else EMOJI[priority]
    color = RESOLVED_COLOR if resolved else COLORS[priority]

    header = emoji + " " + fit(message.title, HEADER_MAX - ulen(emoji) - 1)
    body = body_mrkdwn(message)

    token = mention_token(mention) if priority is Priority.CRITICAL and not resolved else None
    first = next((ln for ln in body.split("\n") if ln.strip() and ln.strip() != "```"), "")
    text = header + (": " + fit_mrkdwn(first.strip(), FALLBACK_BODY_MAX) if first else "")
    if token:
        text = token + " " + text

    # Buttons: Acknowledge first, then the links (http(s) only: mailto links go in a line of text).
    buttons: list[ButtonElement] = []
    if ack:
        buttons.append(
            ButtonElement(
                text=PlainTextObject(text="Acknowledge", emoji=True),
                action_id=ACK_ACTION,
                value=ACK_SLOT,
                style="primary",
            )
        )
    other_links: list[str] = []
    for i, lk in enumerate(message.links):
        if re.match(r"^https?://", lk.url, re.IGNORECASE) and len(lk.url) <= BUTTON_URL_MAX:
            buttons.append(
                ButtonElement(
                    text=PlainTextObject(text=fit(lk.label, BUTTON_TEXT_MAX), emoji=True),
                    url=lk.url,
                    action_id=LINK_ACTION.format(i),
                )
            )
        else:
            other_links.append(link(lk.url, lk.label))

    meta = f"{emoji} *{priority.value}*" + (" · resolved" if resolved else "")
    if message.source:
        meta += " · source: " + fit(message.source, 200)

    fixed = ulen(header) + 2 * ulen(text) + ulen(meta) + 120 + sum(ulen(b.text.text) for b in buttons)
    links_line = " · ".join(other_links)
    if links_line:
        links_line = fit_mrkdwn("*Links:* " + links_line, SECTION_MAX)
        fixed += ulen(links_line)
    remaining = TEXT_BUDGET - fixed

    fields = list(message.fields)
    shown = fields[: MAX_FIELD_SECTIONS * FIELDS_PER_SECTION]
    hidden = len(fields) - len(shown)
    if hidden:
        shown = shown[:-1]
        hidden += 1
    field_needs = [min(FIELD_MAX, ulen(escape(f.name)) + ulen(escape(f.value)) + 3) for f in shown]
    body_need = ulen(body) + 8 * (ulen(body) // SECTION_MAX + 1)
    if body_need + sum(field_needs) <= remaining:
        body_cap, field_caps = body_need, field_needs
    else:
        body_cap = min(body_need, max(remaining // 2, remaining - sum(field_needs)))
        field_caps = _share(field_needs, remaining - body_cap)

    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=header, emoji=True))]
    if body:
        for chunk in split_mrkdwn(fit_mrkdwn(body, max(body_cap, 40))):
            blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk)))
    field_texts = [_field_text(f.name, f.value, max(cap, 24)) for f, cap in zip(shown, field_caps, strict=True)]
    if hidden:
        field_texts.append(f"_{hidden} more fields not shown_ {TRUNCATED}")
    for i in range(0, len(field_texts), FIELDS_PER_SECTION):
        group = field_texts[i : i + FIELDS_PER_SECTION]
        blocks.append(SectionBlock(fields=[MarkdownTextObject(text=t) for t in group]))
    if links_line:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=links_line)))
    for i in range(0, len(buttons), ACTIONS_MAX):
        blocks.append(ActionsBlock(elements=buttons[i : i + ACTIONS_MAX]))
    blocks.append(DividerBlock())
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=meta)]))
    if len(blocks) > BLOCKS_MAX:  # cannot happen within the budget; keep the head and the end
        blocks = blocks[: BLOCKS_MAX - 3] + blocks[-3:]

    fallback = text.removeprefix(token + " ") if token else text
    attachment = {"color": color, "fallback": fallback, "blocks": [b.to_dict() for b in blocks]}
    return text, attachment


# -- filling in at send time, and resolving -------------------------------------------------------
def date_token(ts: float, template: str = "{date_short_pretty} at {time}") -> str:
    import datetime as dt

    when = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(ts)}^{template}|{when}>"


def _blocks_of(payload: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for attachment in payload.get("attachments") or []:
        yield from attachment.get("blocks") or []


def finalize(payload: dict[str, Any], message_id: str, created_at: float | None) -> None:
    """Fill in, in place, what only the send knows: the message id on the Acknowledge button and
    the message's time in the context line."""
    context: dict[str, Any] | None = None
    for block in _blocks_of(payload):
        if block.get("type") == "actions":
            for element in block.get("elements", []):
                if element.get("action_id") == ACK_ACTION:
                    element["value"] = message_id
        elif block.get("type") == "context":
            context = block
    if context is not None and created_at and len(context["elements"]) < CONTEXT_MAX:
        context["elements"].append({"type": "mrkdwn", "text": date_token(created_at)})


def resolved_attachments(original: list[dict[str, Any]], resolved_at: float) -> tuple[str, list[dict[str, Any]]]:
    """The thread's first message as resolved: green, ``✅ Resolved:`` in its header, no
    Acknowledge button, and when it was resolved in its context line."""
    import copy

    attachments = copy.deepcopy(original)
    title = "Resolved"
    for attachment in attachments:
        attachment["color"] = RESOLVED_COLOR
        blocks = []
        context_done = False
        for block in attachment.get("blocks") or []:
            kind = block.get("type")
            if kind == "header":
                text = block["text"]["text"]
                first, _, rest = text.partition(" ")
                original_title = rest if first in EMOJI.values() or first == RESOLVED_EMOJI else text
                original_title = original_title.removeprefix("Resolved: ")
                header = f"{RESOLVED_EMOJI} Resolved: " + original_title
                if ulen(header) > HEADER_MAX:
                    header = fit_mrkdwn(header, HEADER_MAX)
                block["text"]["text"] = header
                title = header
            elif kind == "actions":
                block["elements"] = [e for e in block.get("elements", []) if e.get("action_id") != ACK_ACTION]
                if not block["elements"]:
                    continue
            elif kind == "context" and not context_done:
                elements = [e for e in block.get("elements", []) if "Resolved" not in e.get("text", "")]
                elements = elements[: CONTEXT_MAX - 1]
                elements.append({"type": "mrkdwn", "text": RESOLVED_EMOJI + " " + date_token(
                    resolved_at, "Resolved {date_short_pretty} at {time}")})
                block["elements"] = elements
                context_done = True
            blocks.append(block)
        attachment["blocks"] = blocks
        attachment["fallback"] = title
    return title, attachments


def acked_attachments(
    original: list[dict[str, Any]], by: str, at: float
) -> tuple[str | None, list[dict[str, Any]]]:
    """The message as acknowledged: no Acknowledge button, and ``✔️ Acknowledged by <@U…>``
    with the time in its context line. ``by`` is Slack markup made by the caller (a user mention
    from a verified request, or escaped text). Returns the header text (for the top-level
    ``text``) and the attachments; only the keys Slack takes back in ``chat.update`` are kept."""
    line = f"✔️ Acknowledged by {by} " + date_token(at, "{date_short_pretty} at {time}")
    return edited_attachments(original, line, "Acknowledged by", lambda e: e.get("action_id") == ACK_ACTION)


def edited_attachments(
    original: list[dict[str, Any]], line: str, marker: str, drop: Callable[[dict[str, Any]], bool],
) -> tuple[str | None, list[dict[str, Any]]]:
    """A message shown in Slack, edited after a click: the buttons ``drop`` selects go, and ``line``
    (mrkdwn made by the caller) joins its context line in place of an earlier one containing
    ``marker``. Returns the header text and the attachments, with only the keys Slack takes back
    in ``chat.update``."""
    import copy

    attachments = []
    title: str | None = None
    element = {"type": "mrkdwn", "text": line}
    for source in original:
        attachment: dict[str, Any] = {}
        color = source.get("color")
        if isinstance(color, str) and color:
            # Slack hands a message back with its colour as bare hex ("d00000").
            attachment["color"] = color if color.startswith("#") or not re.fullmatch(r"[0-9a-fA-F]{6}", color) else "#" + color
        if isinstance(source.get("fallback"), str):
            attachment["fallback"] = source["fallback"]
        blocks = []
        context_done = False
        for block in copy.deepcopy(source.get("blocks") or []):
            kind = block.get("type")
            if kind == "header" and title is None:
                title = block.get("text", {}).get("text")
            elif kind == "actions":
                block["elements"] = [e for e in block.get("elements", []) if not drop(e)]
                if not block["elements"]:
                    continue
            elif kind == "context" and not context_done:
                elements = [e for e in block.get("elements", []) if marker not in e.get("text", "")]
                block["elements"] = [*elements[: CONTEXT_MAX - 1], element]
                context_done = True
            blocks.append(block)
        if not context_done:
            blocks.append({"type": "context", "elements": [element]})
        attachment["blocks"] = blocks
        attachments.append(attachment)
    return title, attachments
