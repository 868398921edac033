"""Jira text as plain text: Atlassian Document Format (ADF) trees, or wiki markup left as it is.

Jira Cloud webhooks carry descriptions and comment bodies as wiki-markup strings (the REST v2
shape) or, from some senders and for some fields, as ADF JSON (``{"type": "doc", "content":
[...]}``). Both are read leniently: an ADF node this module doesn't know is walked for the text
inside it, and anything that isn't text or a document becomes "".
"""

from __future__ import annotations

import re
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


# -- Markdown <-> ADF ---------------------------------------------------------------------------
# Lossless for what both express: paragraphs, headings, bold, italic, code, strike, links, bullet
# and ordered lists, code blocks, block quotes, rules and line breaks. A line break inside a
# paragraph is a hardBreak in ADF (GitHub shows it as one too) and a plain newline in Markdown, so
# both directions give back what they were given. Markdown is parsed with markdown-it (CommonMark,
# no raw HTML: ``<b>`` stays text); ADF nodes Markdown can't express are written as their text.

_MARK_ORDER = {"link": 0, "strike": 1, "strong": 2, "em": 3, "code": 4}
_OPEN = {"strong": "**", "em": "*", "strike": "~~"}
_INLINE_MARK = {"strong_open": "strong", "em_open": "em", "s_open": "strike"}
_CLOSE_MARK = {"strong_close": "strong", "em_close": "em", "s_close": "strike", "link_close": "link"}


def markdown_to_adf(text: str) -> dict[str, Any]:
    """A Markdown description as an ADF document (what ``POST /rest/api/3/issue`` wants)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark", {"html": False}).enable("strikethrough").parse(text or "")
    root: dict[str, Any] = {"type": "doc", "version": 1, "content": []}
    stack = [root]
    for token in tokens:
        parent = stack[-1]
        kind = token.type
        if kind.endswith("_close"):
            stack.pop()
            continue
        node: dict[str, Any] | None = None
        if kind == "paragraph_open":
            node = {"type": "paragraph", "content": []}
        elif kind == "heading_open":
            node = {"type": "heading", "attrs": {"level": int(token.tag[1])}, "content": []}
            if parent["type"] in ("listItem", "blockquote"):  # ADF allows no heading there
                node = {"type": "paragraph", "content": []}
        elif kind == "bullet_list_open":
            node = {"type": "bulletList", "content": []}
        elif kind == "ordered_list_open":
            start = int(str(token.attrGet("start") or 1))
            node = {"type": "orderedList", "content": []}
            if start != 1:
                node["attrs"] = {"order": start}
        elif kind == "list_item_open":
            node = {"type": "listItem", "content": []}
        elif kind == "blockquote_open":
            node = {"type": "blockquote", "content": []}
            if parent["type"] == "blockquote":  # no quote in a quote: its blocks join the outer one
                node = parent
        elif kind in ("fence", "code_block"):
            code: dict[str, Any] = {"type": "codeBlock", "content": []}
            language = (token.info or "").strip().split(" ")[0] if kind == "fence" else ""
            if language:
                code["attrs"] = {"language": language}
            body = token.content[:-1] if token.content.endswith("\n") else token.content
            if body:
                code["content"].append({"type": "text", "text": body})
            parent["content"].append(code)
        elif kind == "hr":
            parent["content"].append({"type": "rule"})
        elif kind == "inline":
            parent["content"].extend(_md_inline(token.children or []))
        if node is not None:
            if node is not parent:
                parent["content"].append(node)
            stack.append(node)
    _fill_items(root)
    return root


def _md_inline(children: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    marks: list[dict[str, Any]] = []

    def text(value: str, extra: list[dict[str, Any]] | None = None) -> None:
        if not value:
            return
        node_marks = [dict(m) for m in marks + (extra or [])]
        if any(m["type"] == "code" for m in node_marks):  # ADF: code combines with links only
            node_marks = [m for m in node_marks if m["type"] in ("code", "link")]
        node: dict[str, Any] = {"type": "text", "text": value}
        if node_marks:
            node["marks"] = sorted(node_marks, key=lambda m: _MARK_ORDER[m["type"]])
        previous = out[-1] if out else None
        if previous and previous["type"] == "text" and previous.get("marks") == node.get("marks"):
            previous["text"] += value
        else:
            out.append(node)

    for child in children:
        kind = child.type
        if kind in _INLINE_MARK:
            marks.append({"type": _INLINE_MARK[kind]})
        elif kind == "link_open":
            attrs: dict[str, Any] = {"href": str(child.attrGet("href") or "")}
            if child.attrGet("title"):
                attrs["title"] = str(child.attrGet("title"))
            marks.append({"type": "link", "attrs": attrs})
        elif kind in _CLOSE_MARK:
            for i in range(len(marks) - 1, -1, -1):
                if marks[i]["type"] == _CLOSE_MARK[kind]:
                    del marks[i]
                    break
        elif kind == "code_inline":
            text(child.content, [{"type": "code"}])
        elif kind in ("softbreak", "hardbreak"):
            out.append({"type": "hardBreak"})
        elif kind == "image":
            text(child.content or str(child.attrGet("src") or ""),
                 [{"type": "link", "attrs": {"href": str(child.attrGet("src") or "")}}])
        else:  # text, html_inline (raw HTML is text here), entities already decoded
            text(child.content)
    return out


def _fill_items(node: dict[str, Any]) -> None:
    """ADF wants a paragraph first in every list item (``- `` alone is an empty item)."""
    for child in node.get("content", []):
        if isinstance(child, dict):
            _fill_items(child)
    if node["type"] == "listItem" and (not node["content"] or node["content"][0]["type"] not in ("paragraph", "codeBlock")):
        node["content"].insert(0, {"type": "paragraph", "content": []})


def canonical_markdown(text: str) -> str:
    """``text`` as it reads back from Jira (``* item`` becomes ``- item``, ``__b__`` ``**b**``):
    compare this, not what a person typed, with what a Jira issue holds."""
    return adf_to_markdown(markdown_to_adf(text))


def adf_to_markdown(doc: Any) -> str:
    """An ADF document as Markdown; ``markdown_to_adf`` of the result is the same document for
    the nodes both express. Anything else is walked for its text (see :func:`adf_to_text`)."""
    if not isinstance(doc, dict):
        return ""
    return "\n\n".join(_md_blocks(doc.get("content"), 0)).strip("\n")


def _md_blocks(nodes: Any, depth: int) -> list[str]:
    out: list[str] = []
    if not isinstance(nodes, list) or depth > _MAX_DEPTH:
        return out
    for node in nodes:
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        attrs = node.get("attrs") if isinstance(node.get("attrs"), dict) else {}
        content = node.get("content")
        if kind == "paragraph":
            out.append(_md_inline_text(content, depth))
        elif kind == "heading":
            level = attrs.get("level") if isinstance(attrs.get("level"), int) else 1
            out.append("#" * min(max(level, 1), 6) + " " + _md_inline_text(content, depth).replace("\n", " "))
        elif kind == "codeBlock":
            body = "".join(str(c.get("text") or "") for c in content or [] if isinstance(c, dict))
            fence = "`" * max(3, _longest_run(body, "`") + 1)
            out.append(f"{fence}{attrs.get('language') or ''}\n{body}\n{fence}" if body else f"{fence}{attrs.get('language') or ''}\n{fence}")
        elif kind == "blockquote":
            inner = "\n\n".join(_md_blocks(content, depth + 1))
            out.append("\n".join(f"> {line}" if line else ">" for line in inner.split("\n")))
        elif kind in ("bulletList", "orderedList"):
            number = attrs.get("order") if isinstance(attrs.get("order"), int) else 1
            items: list[str] = []
            for item in content if isinstance(content, list) else []:
                if not isinstance(item, dict):
                    continue
                marker = f"{number}. " if kind == "orderedList" else "- "
                number += 1
                inner = ""
                for child in item.get("content") if isinstance(item.get("content"), list) else []:
                    block = "\n\n".join(_md_blocks([child], depth + 1))
                    tight = isinstance(child, dict) and child.get("type") in ("bulletList", "orderedList")
                    inner += ("\n" if tight else "\n\n") + block if inner else block
                lines = inner.split("\n")
                items.append("\n".join([marker + lines[0]] + [(" " * len(marker) + line) if line else "" for line in lines[1:]]))
            out.append("\n".join(items))
        elif kind == "rule":
            out.append("---")
        else:
            text = adf_to_text({"type": "doc", "content": [node]})
            if text:
                out.append(_escape_text(text, line_start=True))
    return out


def _longest_run(text: str, char: str) -> int:
    longest = run = 0
    for c in text:
        run = run + 1 if c == char else 0
        longest = max(longest, run)
    return longest


def _md_inline_text(nodes: Any, depth: int) -> str:
    """Inline nodes as Markdown: marks opened and closed like a stack (``**a *b***``), spaces at
    a mark's edge moved outside it (``** a**`` would not be bold)."""
    segments: list[tuple[str, tuple[str, ...], dict[str, Any]]] = []  # text, mark keys, link attrs
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, dict):
            continue
        if node.get("type") == "hardBreak":
            value, keys, link = "\n", (), {}
        elif node.get("type") == "text":
            value = node.get("text") if isinstance(node.get("text"), str) else ""
            keys, link = _mark_keys(node.get("marks"))
        else:
            value, keys, link = _inline([node], depth + 1), (), {}
        if segments and segments[-1][1:] == (keys, link):
            segments[-1] = (segments[-1][0] + value, keys, link)
        elif value:
            segments.append((value, keys, link))
    out: list[str] = []
    stack: list[str] = []
    link_open: dict[str, Any] = {}

    def close_to(keys: tuple[str, ...]) -> None:
        keep = 0
        while keep < len(stack) and stack[keep] in keys:
            keep += 1
        for key in reversed(stack[keep:]):
            out.append(_close(key, link_open))
        del stack[keep:]

    at_line_start = True
    for i, (value, keys, link) in enumerate(segments):
        core = value.strip(" ") if keys and value.strip(" ") and "code" not in keys else value
        lead = value[: value.index(core)] if core is not value else ""
        trail = value[len(lead) + len(core):] if core is not value else ""
        if "link" in stack and link != link_open:
            close_to(())
        if keys == ("link",) and core == link.get("href") and not link.get("title") and _AUTOLINK.fullmatch(core):
            close_to(())
            out.append(f"{lead}<{core}>{trail}")
            at_line_start = False
            continue
        close_to(keys)
        out.append(lead)
        for key in keys:
            if key not in stack and key != "code":
                link_open = link if key == "link" else link_open
                out.append(_OPEN.get(key, "["))
                stack.append(key)
        if "code" in keys:
            fence = "`" * (_longest_run(core, "`") + 1)
            out.append(fence + _code(core) + fence)
        else:
            near = {k for j in (i - 1, i, i + 1) if 0 <= j < len(segments) for k in segments[j][1]}
            out.append(_escape_text(core, line_start=at_line_start, in_link="link" in keys, strike="strike" in near))
        at_line_start = core.endswith("\n")
        if trail:
            close_to(segments[i + 1][1] if i + 1 < len(segments) else ())
            out.append(trail)
    close_to(())
    return "".join(out)


def _mark_keys(marks: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    keys: list[str] = []
    link: dict[str, Any] = {}
    for mark in marks if isinstance(marks, list) else []:
        kind = mark.get("type") if isinstance(mark, dict) else None
        if kind in _MARK_ORDER and kind not in keys:
            keys.append(kind)
            if kind == "link" and isinstance(mark.get("attrs"), dict):
                link = mark["attrs"]
    return tuple(sorted(keys, key=_MARK_ORDER.__getitem__)), link


def _close(key: str, link: dict[str, Any]) -> str:
    if key != "link":
        return _OPEN[key]
    href = str(link.get("href") or "")
    if not href or any(c in href for c in " ()<>"):
        href = "<" + href.replace("<", "%3C").replace(">", "%3E") + ">"
    title = link.get("title")
    if title:
        return f"]({href} \"" + str(title).replace("\\", "\\\\").replace('"', '\\"') + '")'
    return f"]({href})"


def _code(text: str) -> str:
    """A code span's content: padded with a space when it starts or ends with a backtick (or
    with a space on both sides, which CommonMark would strip)."""
    if text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" ") and text.strip()):
        return f" {text} "
    return text


_AUTOLINK = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\s<>`]*")
_PUNCTUATION = r"!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~"
_ESCAPES = re.compile(
    r"\\(?=[" + _PUNCTUATION + r"]|$)"  # a backslash that would escape what follows
    r"|`|\[|(?<! )\*|\*(?! )"  # code, links, emphasis (a lone '2 * 3' stays)
    r"|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"  # emphasis (snake_case stays)
    r"|~(?=~)|&(?=#|[A-Za-z0-9]+;)"  # strike, entities
    r"|<(?=[A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\s<>]*>|[^\s<>@]+@[^\s<>]+>)",  # autolinks
    re.M,
)
_LINE_START = re.compile(r"^( {0,3})(#{1,6}(?=[ \t]|$)|>|[-+](?=[ \t]|$)|=+[ \t]*$|-+[ \t]*$)|^( {0,3})(\d{1,9})([.)])(?=[ \t]|$)", re.M)


def _escape_text(text: str, *, line_start: bool = True, in_link: bool = False, strike: bool = False) -> str:
    """Backslashes where Markdown would read text as markup, and no more, so that ``snake_case``,
    ``a - b`` and ``R&D`` stay as they are. ``strike``: a ``~~`` is next to this text, so a tilde
    at its edge would join it."""
    edges = "~" in (text[:1], text[-1:]) and strike
    text = _ESCAPES.sub(lambda m: "\\" + m.group(0), text)
    if edges:
        text = ("\\" + text if text.startswith("~") else text)
        text = text[:-1] + "\\~" if text.endswith("~") and not text.endswith("\\~") else text
    if in_link:
        text = text.replace("]", "\\]")

    def line(m: re.Match[str]) -> str:
        if not line_start and m.start() == 0:
            return m.group(0)
        if m.group(4):
            return f"{m.group(3)}{m.group(4)}\\{m.group(5)}"
        return f"{m.group(1)}\\{m.group(2)}"

    return _LINE_START.sub(line, text)
