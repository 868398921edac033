"""Reading a message body written as HTML without ever passing the sender's HTML through.

``sanitize_html`` rebuilds HTML from an allow-list (tags without attributes, except ``href`` on
links with an http(s) or mailto target); ``html_to_text`` keeps the words and the links. Both
drop ``<script>``, ``<style>`` and similar elements together with their content. Neither trusts
the input: text is escaped, unknown tags vanish, comments and declarations are dropped.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_ALLOWED = frozenset(
    "a b strong i em u s del code pre blockquote p div span ul ol li h1 h2 h3 h4 h5 h6 hr br "
    "table thead tbody tr th td".split()
)
_VOID = frozenset({"br", "hr"})
_DROP_CONTENT = frozenset(
    "script style head title iframe object embed template noscript svg math textarea select "
    "option button form frameset frame applet".split()
)
_BLOCK = frozenset("p div ul ol li h1 h2 h3 h4 h5 h6 hr br pre blockquote table tr".split())
_SAFE_SCHEMES = ("http://", "https://", "mailto:")
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")


def safe_href(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) or mailto URL, else None (javascript:, data:...)."""
    if not url:
        return None
    cleaned = _CONTROL.sub("", url)  # "java\tscript:" and " javascript:" are still javascript:
    if cleaned.lower().startswith(_SAFE_SCHEMES) and cleaned == url.strip():
        return cleaned
    return None


class _Sanitizer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []
        self.skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skipping or tag in _DROP_CONTENT:
            if tag in _DROP_CONTENT:
                self.skipping.append(tag)
            return
        if tag not in _ALLOWED:
            return
        if tag in _VOID:
            self.out.append(f"<{tag}>")
            return
        if tag == "a":
            href = safe_href(dict(attrs).get("href"))
            self.out.append(f'<a href="{html.escape(href, quote=True)}">' if href else "<a>")
        else:
            self.out.append(f"<{tag}>")
        self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT:  # <script/> has no content to skip
            return
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and self.open and self.open[-1] == tag:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag == self.skipping[-1]:
                self.skipping.pop()
            return
        if tag not in self.open:
            return
        while self.open:
            top = self.open.pop()
            self.out.append(f"</{top}>")
            if top == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(html.escape(data, quote=False))

    def result(self) -> str:
        self.close()
        return "".join(self.out) + "".join(f"</{t}>" for t in reversed(self.open))


def sanitize_html(source: str) -> str:
    """HTML rebuilt from the allow-list: safe to place inside our own HTML."""
    parser = _Sanitizer()
    parser.feed(source)
    return parser.result()


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping: list[str] = []
        self.links: list[tuple[int, str]] = []  # where each <a> started, and its target

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skipping or tag in _DROP_CONTENT:
            if tag in _DROP_CONTENT:
                self.skipping.append(tag)
            return
        if tag in _BLOCK:
            self.out.append("\n")
        if tag == "li":
            self.out.append("- ")
        if tag == "a":
            self.links.append((len(self.out), safe_href(dict(attrs).get("href")) or ""))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _DROP_CONTENT:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag == self.skipping[-1]:
                self.skipping.pop()
            return
        if tag == "a" and self.links:
            start, href = self.links.pop()
            label = "".join(self.out[start:]).strip()
            if href and href != label and href.removeprefix("mailto:") != label:
                self.out.append(f" ({href})")
        if tag in _BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(source: str) -> str:
    """The words of an HTML body, one block per line, links as ``label (url)``."""
    parser = _Text()
    parser.feed(source)
    parser.close()
    text = "".join(parser.out)
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
