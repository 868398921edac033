"""Jira text as plain text: Atlassian Document Format (ADF) trees, or wiki markup left as it is.

Jira Cloud webhooks carry descriptions and comment bodies as wiki-markup strings (the REST v2
shape) or, from some senders and for some fields, as ADF JSON (``{"type": "doc", "content":
[...]}``). Both are read leniently: an ADF node this module doesn't know is walked for the text
inside it, and anything that isn't text or a document becomes "".
"""

from __future__ import annotations

from typing import Any

import orjson

_BLOCKS = frozenset(
    {"paragraph", "heading", "blockquote", "codeBlock", "panel", "rule", "bulletList", "orderedList", "table",
     "mediaSingle", "mediaGroup", "expand", "nestedExpand", "decisionList", "taskList", "layoutSection"}
)
_MAX_DEPTH = 64


def jira_text(value: Any) -> str:
    """A description or comment body as plain text."""
    if value is None:
        return ""
    if isinstance(value, str):
        stripped = value.lstrip()
        if stripped.startswith("{") and '"type"' in stripped[:200]:
            try:
                parsed = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                return value
            if isinstance(parsed, dict) and parsed.get("type") == "doc":
                return adf_to_text(parsed)
        return value
    if isinstance(value, dict):
        return adf_to_text(value)
    if isinstance(value, list):
        return adf_to_text({"type": "doc", "content": value})
    return str(value)


def adf_to_text(doc: Any) -> str:
    """Walk an ADF tree: blocks become lines (lists with ``- `` / ``1. ``, quotes with ``> ``),
    mentions, emoji, dates, status lozenges and cards their visible text."""
    lines = _blocks(doc.get("content") if isinstance(doc, dict) else doc, 0)
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


def _blocks(nodes: Any, depth: int) -> list[str]:
    """Block-level content as lines; paragraphs are separated by a blank line."""
    out: list[str] = []
    if not isinstance(nodes, list) or depth > _MAX_DEPTH:
        return out
    inline: list[str] = []

    def flush() -> None:
        if inline:
            out.extend("".join(inline).split("\n"))
            out.append("")
            inline.clear()

    for node in nodes:
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        content = node.get("content")
        if kind in ("paragraph", "heading"):
            flush()
            out.extend(_inline(content, depth + 1).split("\n"))
            out.append("")
        elif kind == "codeBlock":
            flush()
            out.extend(_inline(content, depth + 1).split("\n"))
            out.append("")
        elif kind == "blockquote":
            flush()
            out.extend(f"> {line}" if line else ">" for line in _trim(_blocks(content, depth + 1)))
            out.append("")
        elif kind in ("bulletList", "orderedList", "taskList", "decisionList"):
            flush()
            start = node.get("attrs", {}).get("order", 1) if isinstance(node.get("attrs"), dict) else 1
            number = start if isinstance(start, int) else 1
            for item in content if isinstance(content, list) else []:
                if not isinstance(item, dict):
                    continue
                if kind == "orderedList":
                    marker = f"{number}. "
                    number += 1
                elif kind == "taskList":
                    done = isinstance(item.get("attrs"), dict) and item["attrs"].get("state") == "DONE"
                    marker = "[x] " if done else "[ ] "
                else:
                    marker = "- "
                inner = item.get("content")
                # taskItem/decisionItem hold inline content; listItem holds blocks.
                if item.get("type") in ("taskItem", "decisionItem"):
                    item_lines = _inline(inner, depth + 1).split("\n")
                else:
                    item_lines = [line for line in _blocks(inner, depth + 1) if line.strip()]
                for i, line in enumerate(item_lines or [""]):
                    out.append((marker if i == 0 else " " * len(marker)) + line)
            out.append("")
        elif kind == "table":
            flush()
            for row in content if isinstance(content, list) else []:
                cells = row.get("content") if isinstance(row, dict) else None
                texts = [" ".join(_trim(_blocks(c.get("content"), depth + 1))) for c in cells or [] if isinstance(c, dict)]
                out.append(" | ".join(texts))
            out.append("")
        elif kind == "rule":
            flush()
            out.extend(["---", ""])
        elif kind in ("mediaSingle", "mediaGroup", "media"):
            flush()
            out.extend(["[attachment]", ""])
        elif kind in _BLOCKS or (isinstance(content, list) and any(
            isinstance(c, dict) and c.get("type") in _BLOCKS | {"listItem"} for c in content
        )):
            flush()
            out.extend(_trim(_blocks(content, depth + 1)))
            out.append("")
        else:
            inline.append(_inline([node], depth + 1))
    flush()
    return out


def _inline(nodes: Any, depth: int) -> str:
    if not isinstance(nodes, list) or depth > _MAX_DEPTH:
        return ""
    parts: list[str] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        attrs = node.get("attrs") if isinstance(node.get("attrs"), dict) else {}
        if kind == "text":
            text = node.get("text")
            parts.append(text if isinstance(text, str) else "")
        elif kind == "hardBreak":
            parts.append("\n")
        elif kind == "mention":
            text = str(attrs.get("text") or "")
            parts.append(text if text.startswith("@") or not text else "@" + text)
        elif kind == "emoji":
            parts.append(str(attrs.get("text") or attrs.get("shortName") or ""))
        elif kind in ("inlineCard", "blockCard", "embedCard"):
            parts.append(str(attrs.get("url") or ""))
        elif kind == "status":
            parts.append(f"[{attrs.get('text') or ''}]")
        elif kind == "date":
            parts.append(str(attrs.get("timestamp") or ""))
        elif kind in ("media", "mediaInline"):
            parts.append("[attachment]")
        else:
            content = node.get("content")
            if isinstance(content, list):
                parts.append(_inline(content, depth + 1))
    return "".join(parts)


def _trim(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]
