"""What every GitHub handler shares: the delivery as handlers see it, lenient readers of payload
fields, and the one way a handler builds its message."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...message import Link, Message

URL = re.compile(r"^https?://[^\s/?#]+\S*$", re.IGNORECASE)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>])")

BODY_MAX = 3000
"""Characters of an issue, PR, comment, release or advisory text quoted in a message."""


@dataclass(frozen=True, slots=True)
class Skip:
    """A handled event that is not news this time (a successful run, a push without commits):
    recorded as ignored, with the reason."""

    reason: str


@dataclass(frozen=True, slots=True)
class Event:
    """What every handler needs from a delivery."""

    event_type: str
    name: str
    action: str
    payload: dict[str, Any]
    repository: str
    sender: str

    def labels(self, **extra: str) -> dict[str, str]:
        out = {
            "source": "github",
            "event_type": self.event_type,
            "event": self.name,
            "action": self.action,
            "repository": self.repository,
            "sender": self.sender,
            **extra,
        }
        return {k: cut(v, 500) for k, v in out.items() if v}

    def thread(self, number: str) -> str | None:
        return f"github:{self.repository}#{number}" if self.repository and number else None


def dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def obj_at(obj: Any, *keys: str) -> dict[str, Any]:
    found = dig(obj, *keys)
    return found if isinstance(found, dict) else {}


def text_at(obj: Any, *keys: str) -> str:
    """A string found at ``keys`` (numbers as text), else ""; never a NUL."""
    found = dig(obj, *keys)
    if isinstance(found, bool) or found is None:
        return ""
    if isinstance(found, (str, int, float)):
        return str(found).replace("\x00", "")
    return ""


def number_of(v: Any) -> str:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else "?"


def names_of(items: Any, key: str) -> list[str]:
    return [n for n in (text_at(i, key) for i in items) if n] if isinstance(items, list) else []


def repository_of(payload: dict[str, Any]) -> str:
    repo = obj_at(payload, "repository")
    full = text_at(repo, "full_name")
    if full:
        return full
    owner, name = text_at(repo, "owner", "login"), text_at(repo, "name")
    return f"{owner}/{name}" if owner and name else name


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def md_escape(text: str) -> str:
    """User text placed inside markdown we write (a commit line): its markup can't break ours."""
    return _MD_SPECIAL.sub(r"\\\1", text.replace("\r", " ").replace("\n", " "))


def code_span(text: str) -> str:
    return f"`{text.replace('`', '')}`" if text else ""


def quote_text(text: str) -> str:
    """An issue, PR, comment or release text: GitHub markdown already, passed on, cut to BODY_MAX."""
    return cut(text.replace("\r\n", "\n").strip(), BODY_MAX)


def build_message(
    *,
    title: str,
    body: str,
    priority: str,
    fields: dict[str, str],
    links: list[tuple[str, str]],
    labels: dict[str, str],
    thread_key: str | None = None,
    resolves: bool = False,
) -> Message:
    """A message that is valid whatever the payload held: lengths cut, empty values and links
    that aren't http(s) left out."""
    return Message(
        title=cut(" ".join(title.split()), 500),
        body=body,
        priority=priority,
        format="markdown",
        fields={name: cut(value, 1000) for name, value in fields.items() if value},
        links=[Link(label, url) for label, url in links if len(url) <= 2000 and URL.match(url)],
        labels=labels,
        thread_key=thread_key[:500] if thread_key else None,
        resolves=resolves,
    )
