"""Message bodies written as Markdown or HTML, parsed by libraries and rendered per target.

- Markdown is parsed by markdown-it-py (CommonMark with tables and strikethrough; raw HTML in it
  is text), HTML is cleaned by nh3 (an allow-list: tags without attributes, except ``href`` on
  links with an http(s) or mailto target; ``<script>``, ``<style>`` and the like dropped with
  their content) and then read into the same tree shape as markdown-it's, so that one
  :class:`Writer` per target (Slack mrkdwn, Teams text, plain text) renders both.
- :func:`sanitize_html` is the HTML that email sends; :func:`markdown_to_html` renders Markdown to
  it (an image becomes a link to it: remote images track readers).

Nothing the sender wrote as markup passes through: text is escaped by each writer, unknown tags
vanish, comments are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from html.parser import HTMLParser
from typing import Any

_ALLOWED = frozenset(
    "a b strong i em u s del strike code pre blockquote p div span ul ol li h1 h2 h3 h4 h5 h6 hr br "
    "table thead tbody tfoot tr th td".split()
)
_DROP_CONTENT = frozenset(
    "script style head title iframe object embed template noscript svg math textarea select "
    "option button form frameset frame applet noembed noframes".split()
)
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


def _keep_attribute(tag: str, name: str, value: str) -> str | None:
    return safe_href(value) if tag == "a" and name == "href" else None


@cache
def _cleaner() -> Any:
    import nh3

    return nh3.Cleaner(
        tags=set(_ALLOWED),
        clean_content_tags=set(_DROP_CONTENT),
        attributes={"a": {"href"}},
        attribute_filter=_keep_attribute,
        url_schemes={"http", "https", "mailto"},
        strip_comments=True,
        link_rel=None,
    )


def sanitize_html(source: str) -> str:
    """HTML rebuilt from the allow-list: safe to place inside our own HTML."""
    if source.count("<") > HTML_DEPTH_MAX:
        source = _DepthGuard.flatten(source)
    return _cleaner().clean(source)


HTML_DEPTH_MAX = 200
"""Elements nested deeper than this are unwrapped (their text kept) before nh3 sees them: the
HTML5 parser under nh3 takes time quadratic in nesting depth (100 kB of ``<div>`` took seconds)."""
_SIBLINGS = frozenset("li p td th tr dt dd option".split())  # <li>a<li>b: the second closes the first
_EMPTY = frozenset("area base br col embed hr img input link meta source track wbr".split())


class _DepthGuard(HTMLParser):
    """The HTML as it came, without start and end tags deeper than :data:`HTML_DEPTH_MAX`. Not a
    sanitiser (nh3 runs after it): it only bounds the nesting."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []
        self.open: list[str] = []
        self.dropped: dict[str, int] = {}

    @classmethod
    def flatten(cls, source: str) -> str:
        guard = cls()
        guard.feed(source)
        guard.close()
        return "".join(guard.out)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _EMPTY:
            if self.open and self.open[-1] == tag and tag in _SIBLINGS:
                self.open.pop()
            # A <script> (or <svg>...) is kept wherever it is, so that nh3 drops it with its content;
            # within one, nothing needs keeping.
            if len(self.open) >= HTML_DEPTH_MAX and (tag not in _DROP_CONTENT or _DROP_CONTENT & set(self.open)):
                self.dropped[tag] = self.dropped.get(tag, 0) + 1
                return
            self.open.append(tag)
        self.out.append(self.get_starttag_text() or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        if self.dropped.get(tag):
            self.dropped[tag] -= 1
            return
        if tag in self.open:
            while self.open.pop() != tag:
                pass
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.out.append(f"&#{name};")


@cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    # An image is shown as a link to it, labelled with its alt text: never loaded.
    md.add_render_rule("image", _image_as_link)
    return md


def _image_as_link(self: Any, tokens: Sequence[Any], idx: int, options: Any, env: Any) -> str:
    from markdown_it.common.utils import escapeHtml

    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env) or src
    return f'<a href="{escapeHtml(src)}">{escapeHtml(alt)}</a>'


def markdown_to_html(source: str) -> str:
    """Markdown as sanitised HTML (email's HTML part)."""
    return sanitize_html(_markdown().render(source))


# -- one tree for Markdown and HTML ------------------------------------------------------------------
MAX_DEPTH = 40
"""Nesting kept in a tree (lists in lists, marks in marks...); what is deeper joins the deepest
kept node, so that a hostile body can't exhaust the stack."""


@dataclass(slots=True)
class Node:
    """One node of a body, named as markdown-it names its tokens (``paragraph``, ``strong``,
    ``link``...), whether it was read from Markdown or from HTML."""

    type: str
    children: list[Node] = field(default_factory=list)
    content: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    markup: str = ""


def markdown_tree(source: str) -> Node:
    """Markdown parsed by markdown-it-py, as a :class:`Node` tree."""
    root = Node("root")
    _grow(root, _markdown().parse(source))
    return root


def _grow(root: Node, tokens: Sequence[Any]) -> None:
    """markdown-it's flat token stream (``*_open``/``*_close`` pairs) as children of ``root``."""
    stack = [root]
    for tok in tokens:
        if tok.nesting == -1:
            stack.pop()
            continue
        node = Node(tok.type.removesuffix("_open"), content=tok.content, attrs=dict(tok.attrs), markup=tok.markup)
        if tok.children:  # an inline run, or an image's alt text
            _grow(node, tok.children)
        if tok.nesting == 1 and len(stack) > MAX_DEPTH:
            stack.append(stack[-1])
            continue
        stack[-1].children.append(node)
        if tok.nesting == 1:
            stack.append(node)


_HTML_TYPES = {
    "p": "paragraph", "div": "div", "ul": "bullet_list", "ol": "ordered_list", "li": "list_item",
    "blockquote": "blockquote", "pre": "fence", "hr": "hr", "br": "hardbreak", "table": "table",
    "thead": "thead", "tbody": "tbody", "tfoot": "tbody", "tr": "tr", "th": "th", "td": "td",
    "b": "strong", "strong": "strong", "i": "em", "em": "em", "s": "s", "del": "s", "strike": "s",
    "code": "code_inline", "a": "link", **{f"h{i}": "heading" for i in range(1, 7)},
}
_VOID = frozenset({"br", "hr"})


class _TreeBuilder(HTMLParser):
    """Sanitised HTML (only allow-listed tags, balanced by nh3) as :class:`Node` nodes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root")
        self.stack: list[tuple[str, Node]] = [("", self.root)]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID and len(self.stack) > MAX_DEPTH:
            self.stack.append((tag, self.stack[-1][1]))  # too deep: its content joins the deepest node
            return
        node = Node(_HTML_TYPES.get(tag, "span"))
        if tag == "a" and (href := safe_href(dict(attrs).get("href"))):
            node.attrs["href"] = href
        self.stack[-1][1].children.append(node)
        if tag not in _VOID:
            self.stack.append((tag, node))

    def handle_endtag(self, tag: str) -> None:
        if any(open_tag == tag for open_tag, _ in self.stack[1:]):
            while self.stack.pop()[0] != tag:
                pass

    def handle_data(self, data: str) -> None:
        in_code = any(n.type in ("fence", "code_inline") for _, n in self.stack)
        self.stack[-1][1].children.append(Node("text", content=data if in_code else re.sub(r"\s+", " ", data)))


def html_tree(source: str) -> Node:
    """Any HTML, sanitised, as a tree like markdown-it's (``<pre>`` is a ``fence``, ``<b>`` ``strong``...)."""
    builder = _TreeBuilder()
    builder.feed(sanitize_html(source))
    builder.close()
    for node in _walk(builder.root):
        if node.type in ("fence", "code_inline"):
            node.content = "".join(t.content for t in _walk(node) if t.type == "text")
    return builder.root


def _walk(node: Node) -> Iterable[Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def plain(nodes: Iterable[Node]) -> str:
    """The text of inline nodes, without markup (a link's or an image's label)."""
    out = []
    for n in nodes:
        if n.type in ("text", "code_inline"):
            out.append(n.content)
        elif n.type in ("softbreak", "hardbreak"):
            out.append(" ")
        else:
            out.append(plain(n.children))
    return "".join(out)


# -- writers -------------------------------------------------------------------------------------------
_INLINE = frozenset(
    "inline text softbreak hardbreak strong em s code_inline link image span".split()
)


class Writer:
    """A tree as one target's text. Subclasses escape text and say how marks and blocks look;
    the walk (paragraphs, nested lists, tables, quotes, code) is here, once."""

    paragraph_sep = "\n\n"
    bullet = "-"
    softbreak = "\n"
    hardbreak = "\n"
    marks_in_headings = True
    """False where a heading is itself a mark (Slack's ``*heading*`` can't hold ``*bold*``)."""
    intraword_marks = True
    """False where marks inside a word don't show (``2*3*4`` is shown as typed, not ``2_3_4``)."""
    _marks = True
    _open: frozenset[str] = frozenset()

    def render(self, root: Node) -> str:
        return self.blocks(root.children, 0).strip("\n")

    # text and marks
    def text(self, text: str) -> str:
        return text

    def strong(self, inner: str) -> str:
        return inner

    def em(self, inner: str) -> str:
        return inner

    def strike(self, inner: str) -> str:
        return inner

    def code(self, text: str) -> str:
        return self.text(text)

    def link(self, url: str, label: str) -> str:
        """``label`` is plain text (the link's words without their marks)."""
        if not safe_href(url):
            return self.text(label)
        shown = url.removeprefix("mailto:")
        return self.text(label) if label in (url, shown) else f"{self.text(label)} ({self.text(url)})"

    def image(self, url: str, alt: str) -> str:
        return self.link(url, alt or url)

    # blocks
    def heading(self, inline: str) -> str:
        return inline

    def code_block(self, text: str) -> str:
        return "\n".join(self.text(line) for line in text.rstrip("\n").split("\n"))

    def quote(self, inner: str) -> str:
        return inner

    def rule(self) -> str:
        return ""

    def table(self, rows: list[list[str]], header: bool) -> str:
        """Each row on its own line, its cells separated."""
        return "\n".join(" | ".join(row) for row in rows)

    # the walk
    def blocks(self, nodes: Sequence[Node], depth: int, sep: str | None = None) -> str:
        out: list[str] = []
        run: list[Node] = []
        for node in [*nodes, None]:
            if node is not None and node.type in _INLINE:
                run.append(node)
                continue
            if run:
                text = self.inline(run).strip()
                if text:
                    out.append(text)
                run = []
            if node is not None and (piece := self.block(node, depth)):
                out.append(piece)
        return (self.paragraph_sep if sep is None else sep).join(out)

    def block(self, node: Node, depth: int) -> str:
        kind = node.type
        if kind == "paragraph":
            return self.inline(node.children).strip()
        if kind == "heading":
            self._marks = self.marks_in_headings
            try:
                inline = self.inline(node.children).strip()
            finally:
                self._marks = True
            return self.heading(inline) if inline else ""
        if kind in ("bullet_list", "ordered_list"):
            return self.listing(node, depth)
        if kind == "blockquote":
            inner = self.blocks(node.children, depth)
            return self.quote(inner) if inner else ""
        if kind in ("fence", "code_block"):
            return self.code_block(node.content) if node.content.strip() else ""
        if kind == "hr":
            return self.rule()
        if kind == "table":
            return self._table(node)
        return self.blocks(node.children, depth)  # a <div>, an <li> outside a list...

    def listing(self, node: Node, depth: int) -> str:
        start = node.attrs.get("start", 1) if node.type == "ordered_list" else None
        number = int(start) if isinstance(start, (int, str)) and str(start).isdigit() else 1
        items = []
        for item in node.children:
            marker = f"{number}." if start is not None else self.bullet
            number += 1
            body = self.blocks(item.children, depth + 1, sep="\n")
            lines = body.split("\n") if body else [""]
            pad = "  " * depth
            items.append("\n".join([f"{pad}{marker} {lines[0]}", *(ln if ln.startswith(pad + "  ") else
                                                                       f"{pad}  {ln}" for ln in lines[1:])]))
        return "\n".join(items)

    def _table(self, node: Node) -> str:
        rows: list[list[str]] = []
        header = False
        sections = [node, *(n for n in node.children if n.type in ("thead", "tbody"))]
        for part in (row for section in sections for row in section.children):
            if part.type == "tr":
                cells = [self.inline(c.children).strip() for c in part.children if c.type in ("th", "td")]
                if not rows and all(c.type == "th" for c in part.children if c.type in ("th", "td")):
                    header = True
                if any(cells):
                    rows.append(cells)
        return self.table(rows, header) if rows else ""

    def inline(self, nodes: Sequence[Node]) -> str:
        out: list[str] = []
        for i, n in enumerate(nodes):
            kind = n.type
            if kind == "text":
                out.append(self.text(n.content))
            elif kind == "softbreak":
                out.append(self.softbreak)
            elif kind == "hardbreak":
                out.append(self.hardbreak)
            elif kind == "code_inline":
                out.append(self.code(n.content) if n.content else "")
            elif kind in ("strong", "em", "s"):
                after = nodes[i + 1] if i + 1 < len(nodes) else None
                inside = (out and out[-1][-1:].isalnum()) or (
                    after is not None and after.type == "text" and after.content[:1].isalnum())
                if inside and not self.intraword_marks:
                    out.append(self.text(n.markup) + self.inline(n.children) + self.text(n.markup))
                elif kind in self._open:  # bold inside bold: one mark is enough
                    out.append(self.inline(n.children))
                else:
                    self._open = self._open | {kind}
                    try:
                        out.append(self._mark(kind, self.inline(n.children)))
                    finally:
                        self._open = self._open - {kind}
            elif kind == "link":
                out.append(self.link(str(n.attrs.get("href") or ""), plain(n.children).strip()))
            elif kind == "image":
                out.append(self.image(str(n.attrs.get("src") or ""), plain(n.children).strip()))
            elif kind in _INLINE:
                out.append(self.inline(n.children))
            else:  # a block inside inline content (HTML like <b><p>x</p></b>)
                out.append(self.blocks([n], 0))
        return "".join(out)

    def _mark(self, kind: str, inner: str) -> str:
        """A mark around ``inner``, with surrounding spaces kept outside it (``*x*`` must touch x)."""
        core = inner.strip()
        if not core or not self._marks:
            return inner
        lead, trail = inner[: len(inner) - len(inner.lstrip())], inner[len(inner.rstrip()):]
        marked = {"strong": self.strong, "em": self.em, "s": self.strike}[kind](core)
        return lead + marked + trail


class _PlainWriter(Writer):
    pass


def html_to_text(source: str) -> str:
    """The words of an HTML body: one block per paragraph, list items as ``- x``, table rows on
    lines with ``|`` between cells, links as ``label (url)``."""
    return re.sub(r"[ \t]+\n", "\n", _PlainWriter().render(html_tree(source)))
