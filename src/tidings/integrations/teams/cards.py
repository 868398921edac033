"""The Adaptive Card a message becomes: one Container styled by priority holding the title, the
body, the fields as a FactSet, a context line (priority, source, time) and the links as
``Action.OpenUrl`` buttons; cut to fit a byte budget (:func:`fit`), fields and body first, with a
visible marker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ...message import Message, Priority
from ..base import TRUNCATED
from .text import body_text, cut, escape, md_url

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CONTEXT_ID = "tidings-context"
ACK_ID = "tidings-ack"
TIME_RESERVE = 120
"""Bytes kept free for the delivery time the context line gets when the card is sent."""
ACK_RESERVE = 600
"""Bytes kept free on a critical or high card for its Acknowledge button (a signed link)."""
MAX_ACTIONS = 6
"""Teams shows at most six actions on a card; more links are listed as text instead."""

STYLES: dict[Priority, str] = {
    Priority.CRITICAL: "attention",
    Priority.HIGH: "warning",
    Priority.MEDIUM: "good",
    Priority.LOW: "accent",
    Priority.INFO: "default",
}


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


def fit(message: Message, budget: int, version: str) -> dict[str, Any]:
    """The request body for ``message`` (a card of ``version``), at most ``budget`` bytes."""
    title = escape(" ".join(message.title.split()))  # a title is one line
    body = body_text(message)
    # Renderers show both sides of a fact as TextBlocks, markdown included: escape both.
    facts = [(escape(name), escape(value)) for name, value in message.fields]
    links = [(link.label, link.url) for link in message.links]
    context = _context(message)
    for level in _LEVELS:
        parts = _shorten(level, title, facts, links, context)

        def at(n: int, parts: _Parts = parts) -> dict[str, Any]:
            return _envelope(message, _Parts(parts.title, cut(body, n), parts.facts, parts.links, parts.context), version)

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
    return _envelope(message, _Parts(cut(title, 100), TRUNCATED, [], [], cut(context, 100)), version)


def _shorten(level: _Level, title: str, facts: list[tuple[str, str]], links: list[tuple[str, str]],
             context: str) -> _Parts:
    """The parts but the body, cut as hard as ``level`` says."""
    kept = facts if level.facts is None else facts[: level.facts]
    if level.fact_value is not None:
        kept = [(cut(name, 100), cut(value, level.fact_value)) for name, value in kept]
    if len(kept) < len(facts):
        kept = [*kept, ("…", f"{TRUNCATED}: {len(facts) - len(kept)} more fields")]
    shown = links if level.links is None else links[: level.links]
    if len(shown) < len(links):
        context += f" · {TRUNCATED}: {len(links) - len(shown)} more links"
    if level.title is not None:
        title = cut(title, level.title)
        context = cut(context, 300)
    return _Parts(title, "", kept, shown, context)


def _envelope(message: Message, p: _Parts, version: str) -> dict[str, Any]:
    heading: dict[str, Any] = {
        "type": "TextBlock",
        "text": p.title,
        "size": "Large" if message.priority in (Priority.CRITICAL, Priority.HIGH) else "Medium",
        "weight": "Bolder",
        "wrap": True,
    }
    if version == "1.5":
        heading["style"] = "heading"  # read as a heading by screen readers (1.5+)
    items: list[dict[str, Any]] = [heading]
    if p.body:
        items.append({"type": "TextBlock", "text": p.body, "wrap": True})
    if p.facts:
        items.append({"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in p.facts]})
    buttons, extra = p.links[:MAX_ACTIONS], p.links[MAX_ACTIONS:]
    if extra:
        listed = "\n\n".join(f"[{escape(label)}]({md_url(url)})" for label, url in extra)
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
        "version": version,
        "msteams": {"width": "Full"},
        "fallbackText": cut(" ".join(message.title.split()), 200),
        "body": [{"type": "Container", "style": STYLES[message.priority], "bleed": True, "items": items}],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def _context(message: Message) -> str:
    parts = [message.priority.value.capitalize()]
    if message.source:
        parts.append(escape(message.source))
    if message.resolves:
        parts.append("resolved")
    return " · ".join(parts)


def _size(payload: dict[str, Any]) -> int:
    return len(orjson.dumps(payload))
