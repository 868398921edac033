"""HTML bodies: rebuilt from an allow-list (email's HTML part) or turned into text (Teams, email's
text part). Nothing the sender wrote as markup passes through."""

from __future__ import annotations

import pytest

from tidings.integrations.markup import html_to_text, safe_href, sanitize_html


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<p>Hi <b>there</b></p>", "<p>Hi <b>there</b></p>"),
        ('<p style="color:red" class="x" onclick="evil()">x</p>', "<p>x</p>"),
        ('<a href="https://example.com/a?b=1&amp;c=2" target="_blank">go</a>', '<a href="https://example.com/a?b=1&amp;c=2">go</a>'),
        ('<a href="mailto:ops@example.com">mail</a>', '<a href="mailto:ops@example.com">mail</a>'),
        ('<a href="javascript:alert(1)">x</a>', "<a>x</a>"),
        ('<a href="JaVaScRiPt:alert(1)">x</a>', "<a>x</a>"),
        ('<a href="&#106;avascript:alert(1)">x</a>', "<a>x</a>"),
        ('<a href="java\tscript:alert(1)">x</a>', "<a>x</a>"),
        ('<a href=" javascript:alert(1)">x</a>', "<a>x</a>"),
        ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', "<a>x</a>"),
        ('<a href="/relative">x</a>', "<a>x</a>"),
        ("<script>alert(1)</script>after", "after"),
        ("<style>p{color:red}</style><p>x</p>", "<p>x</p>"),
        ("<svg><script>alert(1)</script><text>t</text></svg>ok", "ok"),
        ('<img src="https://t.example.com/p.gif" onerror="x()">text', "text"),
        ("<iframe src='https://evil.example.com'></iframe>ok", "ok"),
        ("<!-- <script>x</script> -->ok", "ok"),
        ("<p>unclosed <b>bold", "<p>unclosed <b>bold</b></p>"),
        ("stray</b></p> end", "stray<p></p> end"),  # HTML's own parsing rules (html5ever): </p> opens one
        ("a &lt;script&gt; &amp; b < c", "a &lt;script&gt; &amp; b &lt; c"),
        ("line<br/>next<hr>", "line<br>next<hr>"),
        ("<ul><li>one<li>two</ul>", "<ul><li>one</li><li>two</li></ul>"),
        ('<table><tr><td colspan="2">x</td></tr></table>', "<table><tbody><tr><td>x</td></tr></tbody></table>"),
    ],
)
def test_sanitize_html(source: str, expected: str) -> None:
    assert sanitize_html(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<p>Hello <b>team</b></p><p>Second</p>", "Hello team\n\nSecond"),
        ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
        ('<a href="https://example.com/r">report</a>', "report (https://example.com/r)"),
        ('<a href="https://example.com/r">https://example.com/r</a>', "https://example.com/r"),
        ('<a href="javascript:alert(1)">bad</a>', "bad"),
        ("<script>alert(1)</script><style>x{}</style>visible", "visible"),
        ("a &amp; b &lt;c&gt;", "a & b <c>"),
        ("line<br>next", "line\nnext"),
    ],
)
def test_html_to_text(source: str, expected: str) -> None:
    assert html_to_text(source) == expected


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://example.com", True),
        ("http://example.com/x", True),
        ("mailto:a@example.com", True),
        ("javascript:alert(1)", False),
        ("vbscript:x", False),
        ("//example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_safe_href(url: str | None, safe: bool) -> None:
    assert (safe_href(url) is not None) is safe
