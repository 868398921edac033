"""HTML bodies: rebuilt from an allow-list (email's HTML part) or turned into text (Teams, email's
text part). Nothing the sender wrote as markup passes through."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.integrations.markup import html_to_text, safe_href, sanitize_html
from tidings.message import Message


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


# -- one parse, three targets: Slack mrkdwn, Teams card text, email HTML ------------------------------------
def slack(source: str, fmt: str = "markdown") -> str:
    from tidings.integrations.slack.blocks import body_mrkdwn

    return body_mrkdwn(Message("t", source, format=fmt))


def teams(source: str, fmt: str = "markdown") -> str:
    from tidings.integrations.teams.text import body_text

    return body_text(Message("t", source, format=fmt))


def email(source: str, fmt: str = "markdown") -> str:
    from tidings.integrations.email.render import _body_html

    return _body_html(Message("t", source, format=fmt))


WIKI = "https://en.wikipedia.org/wiki/Foo_(bar)"
TARGETS = [
    # (markdown, Slack mrkdwn, Teams text, what email's HTML contains)
    pytest.param(f"[wiki]({WIKI}) after", f"<{WIKI}|wiki> after", "[wiki](https://en.wikipedia.org/wiki/Foo_%28bar%29) after",
                 f'<a href="{WIKI}">wiki</a> after', id="parentheses-in-url"),
    pytest.param(f"<{WIKI}>", f"<{WIKI}>", "[https://en.wikipedia.org/wiki/Foo\\_(bar)](https://en.wikipedia.org/wiki/Foo_%28bar%29)",
                 f'<a href="{WIKI}">{WIKI}</a>', id="parentheses-in-autolink"),
    pytest.param("**bold _and italic_** then ***both***", "*bold _and italic_* then _*both*_",
                 "**bold _and italic_** then _**both**_", "<strong>bold <em>and italic</em></strong> then <em><strong>both",
                 id="nested-emphasis"),
    pytest.param("`a*b*c_d_` and `x <y> & z`", "`a*b*c_d_` and `x &lt;y&gt; &amp; z`",
                 "a\\*b\\*c\\_d\\_ and x <y> & z", "<code>a*b*c_d_</code> and <code>x &lt;y&gt; &amp; z</code>",
                 id="code-spans-keep-marks"),
    pytest.param("[a|b > c](https://e.com/x?y=1&z=2)", "<https://e.com/x?y=1&amp;z=2|a｜b &gt; c>",
                 "[a|b > c](https://e.com/x?y=1&z=2)", '<a href="https://e.com/x?y=1&amp;z=2">a|b &gt; c</a>',
                 id="pipe-and-gt-in-label"),
    pytest.param("see ![chart *q*](https://img.example.com/c.png)", "see <https://img.example.com/c.png|chart q>",
                 "see [chart q](https://img.example.com/c.png)", 'see <a href="https://img.example.com/c.png">chart q</a>',
                 id="image-is-a-link"),
    pytest.param("| host | state |\n|---|---|\n| web-1 | **down** |\n| db | up |",
                 "*host* | *state*\nweb-1 | *down*\ndb | up", "host | state\n\nweb-1 | **down**\n\ndb | up",
                 "<td>web-1</td>", id="table"),
    pytest.param("<!channel> & <@U123> [x](https://e.com)", "&lt;!channel&gt; &amp; &lt;@U123&gt; <https://e.com|x>",
                 "<!channel> & <@U123> [x](https://e.com)", "&lt;!channel&gt; &amp; &lt;@U123&gt;", id="no-slack-injection"),
    pytest.param("2*3*4 and snake_case_name", "2*3*4 and snake_case_name", "2\\*3\\*4 and snake\\_case\\_name",
                 "2<em>3</em>4 and snake_case_name", id="intraword-marks"),
    pytest.param("- one\n  - nested\n- two\n\n1. first\n2. second", "• one\n  • nested\n• two\n\n1. first\n2. second",
                 "- one\n  - nested\n- two\n\n1. first\n2. second", "<li>nested</li>", id="lists"),
]


@pytest.mark.parametrize(("markdown", "mrkdwn", "card", "html"), TARGETS)
def test_markdown_on_every_target(markdown: str, mrkdwn: str, card: str, html: str) -> None:
    assert slack(markdown) == mrkdwn
    assert teams(markdown) == card
    assert html in email(markdown)


def test_a_markdown_image_leaves_no_stray_bang_in_email() -> None:
    out = email("Look: ![graph](https://img.example.com/g.png)!").strip()
    assert out == '<p>Look: <a href="https://img.example.com/g.png">graph</a>!</p>'
    assert "<img" not in email("![x](https://img.example.com/x.png)"), "remote images are never loaded"


HOSTILE_HTML = (
    '<p onclick="steal()" style="x">Hi <b onmouseover="steal()">all</b></p>'
    "<script>steal('<!channel>')</script><SCRIPT>steal()</SCRIPT><style>p{}</style>"
    '<img src="https://t.example.com/p.gif" onerror="steal()"><svg onload="steal()"><script>steal()</script></svg>'
    '<a href="javascript:steal()">bad</a><a href="java&#x09;script:steal()">bad2</a>'
    '<a href="https://ok.example.com/r" onclick="steal()">ok</a><iframe src="https://evil.example.com"></iframe>'
    "<noscript><p>steal()</p></noscript><!-- steal() --><form><button>steal()</button></form>"
)


def test_hostile_html_is_stripped_on_every_target() -> None:
    html = email(HOSTILE_HTML, "html")
    assert html == '<p>Hi <b>all</b></p><a>bad</a><a>bad2</a><a href="https://ok.example.com/r">ok</a>'
    assert slack(HOSTILE_HTML, "html") == "Hi *all*\n\nbadbad2<https://ok.example.com/r|ok>"
    assert teams(HOSTILE_HTML, "html") == "Hi **all**\n\nbadbad2[ok](https://ok.example.com/r)"
    assert "steal" not in html_to_text(HOSTILE_HTML)


HTML_TABLE = ("<table><thead><tr><th>Host</th><th>State</th></tr></thead><tbody><tr><td>web-1</td><td><b>down</b></td>"
              "</tr><tr><td>db &amp; cache</td><td>up</td></tr></tbody></table><p>after</p>")


@pytest.mark.parametrize(
    ("render", "expected"),
    [
        pytest.param(slack, "*Host* | *State*\nweb-1 | *down*\ndb &amp; cache | up\n\nafter", id="slack"),
        pytest.param(teams, "Host | State\n\nweb-1 | **down**\n\ndb & cache | up\n\nafter", id="teams"),
        pytest.param(lambda s, f: html_to_text(s), "Host | State\nweb-1 | down\ndb & cache | up\n\nafter", id="text"),
    ],
)
def test_html_tables_keep_their_cells_apart(render: Any, expected: str) -> None:
    assert render(HTML_TABLE, "html") == expected


DEEP = [
    "<div>" * 19999 + "x", "<b>" * 5000 + "x", "<ul><li>" * 12000 + "x", "<blockquote>" * 3000 + "x",
    "*" * 10000 + "x" + "*" * 10000, "[" * 5000 + "x" + "]" * 5000, "- " * 3000 + "x", "> " * 5000 + "x",
    "".join("  " * i + "- x\n" for i in range(300)),
]


@pytest.mark.parametrize("source", DEEP, ids=lambda s: s[:12])
def test_deep_nesting_never_exhausts_the_stack(source: str) -> None:
    fmt = "html" if source.startswith("<") else "markdown"
    for render in (slack, teams, email):
        assert isinstance(render(source, fmt), str)
    assert isinstance(html_to_text(source), str)


def test_random_markup_never_raises_nor_makes_slack_tokens() -> None:
    import random
    import re

    rng = random.Random(11)
    pieces = ["*", "**", "_", "~~", "`", "```\n", "[", "](", ")", "(", "!", "<", ">", "|", "&", "#", "- ", "1. ",
              "\n", "\n\n", "> ", "https://e.com/a_(b)", "<!channel>", "<b>", "</b>", "<td>", "<tr>", "<table>",
              "<a href='https://e.com'>", "</a>", "<script>", "word", " ", "\\", "&amp;", "<@U1>", "|---|\n"]
    for _ in range(300):
        source = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        for fmt in ("markdown", "html"):
            out = slack(source, fmt)
            tokens = re.findall(r"<[^<>]*>", out)
            assert all(t.startswith(("<https://", "<http://", "<mailto:")) for t in tokens), (source, out)
            teams(source, fmt)
            email(source, fmt)


def test_nesting_deeper_than_the_guard_keeps_its_text_and_stays_sanitised() -> None:
    source = ("<div>" * 300 + '<b onclick="x()">deep</b><script>steal()</script><style>p{steal:1}</style>'
              "<svg><svg><text>steal</text></svg></svg>" + "</div>" * 300 + "<p>after</p>")
    out = sanitize_html(source)
    assert "deep" in out and "after" in out and "steal" not in out and "onclick" not in out
    assert out.count("<div>") <= 200


def test_a_table_in_a_cell_stays_in_its_cell() -> None:
    source = "<table><tr><td>a</td><td><table><tr><td>x</td><td>y</td></tr></table></td></tr><tr><td>b</td></tr></table>"
    assert slack(source, "html") == "a | x | y\nb"
