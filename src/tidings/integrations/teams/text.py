"""Text for Adaptive Cards' markdown subset (bold, italic, lists, links): a message's body written so
that Teams shows it as meant, and plain text escaped so that nobody can make a disguised link or bold
text out of it."""

from __future__ import annotations

import re

from ...message import Format, Message
from ..base import TRUNCATED
from ..markup import Writer, html_tree, markdown_tree, safe_href

_SPECIAL = re.compile(r"([\\*_\[\]`~])")
_LINE_START = re.compile(r"^([ \t]*)(\d*)([-+>#.)])(?=\s|$)", re.MULTILINE)


def escape(text: str) -> str:
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
    return "\n\n".join(escape(line.rstrip()) for line in text.splitlines() if line.strip())


class _CardText(Writer):
    """Markdown or HTML as what Adaptive Cards show (bold, italic, lists, links): headings become
    bold lines, images links, code and tables escaped text (a row per paragraph); links keep
    only http(s) and mailto targets; all text escaped."""

    hardbreak = "\n\n"
    marks_in_headings = False
    intraword_marks = False

    def text(self, text: str) -> str:
        return escape(text)

    def strong(self, inner: str) -> str:
        return f"**{inner}**"

    def em(self, inner: str) -> str:
        return f"_{inner}_"

    def link(self, url: str, label: str) -> str:
        if not safe_href(url):
            return escape(label)
        return f"[{escape(label or url)}]({md_url(url)})"

    def heading(self, inline: str) -> str:
        return f"**{inline}**"

    def code_block(self, text: str) -> str:
        return "\n\n".join(escape(line.rstrip()) for line in text.splitlines() if line.strip())

    def table(self, rows: list[list[str]], header: bool) -> str:
        return "\n\n".join(" | ".join(row) for row in rows)


def md_url(url: str) -> str:
    return url.replace("(", "%28").replace(")", "%29")


def body_text(message: Message) -> str:
    if not message.body.strip():
        return ""
    if message.format is Format.MARKDOWN:
        return _CardText().render(markdown_tree(message.body))
    if message.format is Format.HTML:
        return _CardText().render(html_tree(message.body))
    return _plain(message.body)



def cut(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters, ending with the marker when it was cut."""
    if len(text) <= limit:
        return text
    if limit <= len(TRUNCATED):
        return TRUNCATED
    cut = text[: limit - len(TRUNCATED)].rstrip()
    if (len(cut) - len(cut.rstrip("\\"))) % 2:  # don't leave half an escape
        cut = cut[:-1]
    return cut + TRUNCATED
