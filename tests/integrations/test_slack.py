"""The Slack integration against a strict local fake of Slack (tests/fake_slack.py): what it
renders (and that Slack's Block Kit rules hold for every payload), that no user text can inject
Slack markup, how it threads and resolves, how it reads every answer Slack gives, its rate key,
its settings, and that its secrets never leak.

Tests of the notifier alone need no database; tests through a hub or the thread store run on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from fake_slack import HOOK_SECRET, FakeSlack, Scripted, blocks_of, check_payload, special_tokens, texts_of, ulen
from helpers import eventually, json_logs, local_context
from peer import free_port

from tidings import Message
from tidings.config import parse_config
from tidings.errors import ConfigError
from tidings.integrations.base import Attempt, Context, OutcomeStatus, RenderOptions
from tidings.integrations.slack import SlackNotifier, SlackSettings
from tidings.integrations.slack.blocks import (
    COLORS,
    EMOJI,
    RESOLVED_COLOR,
    TRUNCATED,
    html_to_mrkdwn,
    markdown_to_mrkdwn,
    split_mrkdwn,
)
from tidings.message import Field, Format, Link, Priority
from tidings.store.engine import Store
from tidings.threads import Threads

HERE, CHANNEL = RenderOptions(mention="here"), RenderOptions(mention="channel")
CREATED = 1_700_000_000.25


# -- helpers -----------------------------------------------------------------------------------
def bot(slack: FakeSlack, **extra: Any) -> dict[str, Any]:
    """Bot-mode settings against the fake, with quick retries and a breaker out of the way."""
    return {
        "kind": "slack", "token": slack.token, "channel": "#alerts", "api_url": slack.api_url,
        "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 100}, "breaker": {"failures": 1000}, **extra,
    }


def hook(slack: FakeSlack, **extra: Any) -> dict[str, Any]:
    return {"kind": "slack", "webhook_url": slack.webhook_url, **extra}


def settings_of(data: dict[str, Any]) -> SlackSettings:
    settings = parse_config({"integrations": {"chat": data}}).integrations["chat"]
    assert isinstance(settings, SlackSettings)
    return settings


OFFLINE = {"kind": "slack", "token": "xoxb-0-offline", "channel": "#alerts"}
OFFLINE_HOOK = {"kind": "slack", "webhook_url": "https://hooks.slack.com/services/T0/B0/offlineofflineoffline"}


def notifier(data: dict[str, Any] = OFFLINE, context: Context | None = None) -> SlackNotifier:
    return SlackNotifier("chat", settings_of(data), context or local_context())


@pytest.fixture
async def make_notifier(slack: FakeSlack) -> AsyncIterator[Callable[..., SlackNotifier]]:
    made: list[SlackNotifier] = []

    def make(data: dict[str, Any] | None = None, context: Context | None = None, **extra: Any) -> SlackNotifier:
        n = notifier(data or bot(slack, **extra), context)
        made.append(n)
        return n

    yield make
    for n in made:
        await n.close()


def attempt_of(message: Message, message_id: str = "msg-0001") -> Attempt:
    return Attempt("dlv-0001", message_id, 1, CREATED, message)


async def send_once(n: SlackNotifier, message: Message | None = None, options: RenderOptions = RenderOptions(),
                    message_id: str = "msg-0001") -> Any:
    message = message or Message("Disk full", "on web-01")
    return await n.send(n.render(message, options), attempt_of(message, message_id))


def the_blocks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return blocks_of(payload)


def of_type(payload: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for b in blocks_of(payload) if b["type"] == kind]


def header(payload: dict[str, Any]) -> str:
    (h,) = of_type(payload, "header")
    return str(h["text"]["text"])


def sections_text(payload: dict[str, Any]) -> str:
    return "\n".join(b["text"]["text"] for b in of_type(payload, "section") if "text" in b)


def buttons(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in of_type(payload, "actions") for e in b["elements"]]


def good(payload: dict[str, Any]) -> dict[str, Any]:
    problems = check_payload(payload)
    assert not problems, problems
    return payload


def a_message(**extra: Any) -> Message:
    data: dict[str, Any] = {
        "priority": "high",
        "format": "markdown",
        "fields": {"host": "web-01", "free": "0 B"},
        "links": [("Runbook", "https://runbooks.example.com/disk")],
        "labels": {"service": "api", "source": "monitor"},
        **extra,
    }
    return Message("Disk full", "on **web-01**", **data)


# -- rendering ---------------------------------------------------------------------------------
@pytest.mark.parametrize("priority", list(Priority))
def test_priority_colour_emoji_and_shape(priority: Priority) -> None:
    n = notifier()
    m = a_message(priority=priority)
    payload = good(n.render(m))
    assert n.render(m) == payload, "render is pure"
    assert n.preview(payload) == payload and json.loads(json.dumps(payload)) == payload
    assert payload["channel"] == "#alerts"
    (attachment,) = payload["attachments"]
    assert attachment["color"] == COLORS[priority]
    assert header(payload) == f"{EMOJI[priority]} Disk full"
    assert payload["text"] == f"{EMOJI[priority]} Disk full: on *web-01*"
    assert "blocks" not in payload, "the blocks live in the coloured attachment"
    kinds = [b["type"] for b in attachment["blocks"]]
    assert kinds == ["header", "section", "section", "actions", "divider", "context"]
    fields = of_type(payload, "section")[1]["fields"]
    assert [f["text"] for f in fields] == ["*host*\nweb-01", "*free*\n0 B"]
    (context,) = of_type(payload, "context")
    assert context["elements"][0]["text"] == f"{EMOJI[priority]} *{priority.value}* · source: monitor"
    assert payload["unfurl_links"] is False and payload["unfurl_media"] is False
    assert special_tokens(payload) == []


def test_colours_are_the_documented_ones() -> None:
    assert {p.value: c for p, c in COLORS.items()} == {
        "critical": "#d00000", "high": "#ff6600", "medium": "#ffcc00", "low": "#0099ff", "info": "#999999",
    }


def test_a_resolving_message_is_green_with_a_check_mark() -> None:
    payload = good(notifier().render(a_message(priority="critical", resolves=True), HERE))
    assert payload["attachments"][0]["color"] == RESOLVED_COLOR
    assert header(payload) == "✅ Disk full"
    assert not buttons(payload)[0]["action_id"] == "tidings_ack"
    assert "<!here>" not in payload["text"], "a resolution pages nobody"


def test_fields_go_ten_to_a_section() -> None:
    m = Message("many", fields=[(f"f{i}", f"v{i}") for i in range(25)])
    payload = good(notifier().render(m))
    groups = [b["fields"] for b in of_type(payload, "section") if "fields" in b]
    assert [len(g) for g in groups] == [10, 10, 5]
    assert [f["text"] for g in groups for f in g] == [f"*f{i}*\nv{i}" for i in range(25)]


def test_links_are_url_buttons_and_the_ack_button_only_for_urgent_bot_messages() -> None:
    links = [(f"Link {i}", f"https://example.com/{i}?a=1&b=2") for i in range(19)] + [("Mail", "mailto:ops@example.com")]
    for priority, ack in [("critical", True), ("high", True), ("medium", False), ("low", False), ("info", False)]:
        payload = good(notifier().render(Message("x", priority=priority, links=links)))
        elements = buttons(payload)
        urls = [e for e in elements if "url" in e]
        assert [e["url"] for e in urls] == [f"https://example.com/{i}?a=1&b=2" for i in range(19)]
        assert [e["text"]["text"] for e in urls] == [f"Link {i}" for i in range(19)]
        assert len({e["action_id"] for e in elements}) == len(elements)
        acks = [e for e in elements if e.get("action_id") == "tidings_ack"]
        assert len(acks) == int(ack), priority
        if ack:
            assert acks[0]["value"] == "{message_id}" and acks[0]["text"]["text"] == "Acknowledge"
            assert elements[0] is acks[0], "Acknowledge comes first"
        assert "<mailto:ops@example.com|Mail>" in sections_text(payload), "mailto is a link in text, not a button"
    hook_payload = good(notifier(OFFLINE_HOOK).render(Message("x", priority="critical", links=links[:1])))
    assert [e.get("action_id") for e in buttons(hook_payload)] == ["tidings_link_0"], "no ack in webhook mode"
    assert "channel" not in hook_payload


def test_more_than_25_buttons_take_more_actions_blocks() -> None:
    m = Message.model_construct(**{**Message("x", priority="critical").model_dump(),
                                   "links": tuple(Link(f"L{i}", f"https://e.com/{i}") for i in range(30))})
    payload = good(notifier().render(m))
    assert [len(b["elements"]) for b in of_type(payload, "actions")] == [25, 6]


def test_long_button_labels_are_cut() -> None:
    payload = good(notifier().render(Message("x", links=[("L" * 200, "https://e.com")])))
    label = buttons(payload)[0]["text"]["text"]
    assert ulen(label) <= 75 and label.endswith(TRUNCATED)


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold** and __also__", "*bold* and *also*"),
        ("*it* and _it_", "_it_ and _it_"),
        ("~~gone~~", "~gone~"),
        ("[the docs](https://docs.example.com/a?b=1&c=2)", "<https://docs.example.com/a?b=1&amp;c=2|the docs>"),
        ("![graph](https://img.example.com/g.png)", "<https://img.example.com/g.png|graph>"),
        ("<https://auto.example.com>", "<https://auto.example.com>"),
        ("# Title\n## Sub **x**", "*Title*\n\n*Sub x*"),
        ("- one\n- two\n  + three", "• one\n• two\n  • three"),
        ("- one\n* two", "• one\n\n• two"),  # CommonMark: another bullet character starts another list
        ("> quoted", "&gt; quoted"),
        ("`a <b> & **c**`", "`a &lt;b&gt; &amp; **c**`"),
        ("```python\nif a < b and c:\n    **x**\n```", "```\nif a &lt; b and c:\n    **x**\n```"),
        ("```\nnever closed", "```\nnever closed\n```"),
        ("a ---\n\n---\nb", "a ---\n\n──────────\n\nb"),
        ("3 < 4 & 5 > 2", "3 &lt; 4 &amp; 5 &gt; 2"),
        ("snake_case_name and 2*3*4", "snake_case_name and 2*3*4"),
        ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),  # not a link to CommonMark: text
    ],
)
def test_markdown_to_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert markdown_to_mrkdwn(markdown) == mrkdwn


def test_html_to_mrkdwn() -> None:
    source = (
        "<h2>Deploy &amp; rollback</h2><p>Hello <b>team</b>, see <a href='https://ci.example.com/1?a=1&amp;b=2'>"
        "the run</a>.</p><script>alert('<!channel>')</script><ul><li>one</li><li><i>two</i></li></ul>"
        "<pre>x < y</pre><a href='javascript:alert(1)'>bad</a><style>p{}</style>"
    )
    assert html_to_mrkdwn(source) == (
        "*Deploy &amp; rollback*\n\nHello *team*, see <https://ci.example.com/1?a=1&amp;b=2|the run>.\n\n"
        "• one\n• _two_\n\n```\nx &lt; y\n```\n\nbad"
    )
    assert html_to_mrkdwn("<p>a</p><p>b<br>c</p>") == "a\n\nb\nc"
    payload = good(notifier().render(Message("h", source, format="html")))
    assert "!channel" not in json.dumps(payload), "the script was dropped with its content"


def test_plain_bodies_are_escaped_not_converted() -> None:
    payload = good(notifier().render(Message("p", "a < b & [x](https://e.com) **kept**", format="plain")))
    assert sections_text(payload) == "a &lt; b &amp; [x](https://e.com) **kept**"


def test_a_100k_body_is_split_and_truncated_within_slack_limits() -> None:
    paragraph = "word " * 199 + "end.\n\n"
    body = (paragraph * 200)[:100_000]
    payload = good(notifier().render(Message("big", body, priority="critical")))
    sections = [b["text"]["text"] for b in of_type(payload, "section")]
    assert len(sections) >= 3, "a long body takes several sections"
    assert all(ulen(s) <= 3000 for s in sections)
    assert sections[-1].endswith(TRUNCATED), "the cut is visible"
    assert sum(ulen(t) for _, t in texts_of(payload)) <= 12_000
    assert len(json.dumps(payload)) < 20_000
    assert all("wor" not in s[-3:] for s in sections[:-1]), "sections end at word boundaries"


def test_a_huge_code_block_stays_balanced_across_sections() -> None:
    body = "intro\n```\n" + "\n".join(f"line {i} <tag> & more" for i in range(3000)) + "\n```\nafter"
    payload = good(notifier().render(Message("code", body, format="markdown")))
    sections = [b["text"]["text"] for b in of_type(payload, "section")]
    assert len(sections) >= 3
    for s in sections:
        assert s.count("```") % 2 == 0, s[-60:]
    assert sections[-1].endswith(TRUNCATED)


def test_split_mrkdwn_never_cuts_entities_or_links() -> None:
    text = ("&amp;" * 700 + " <https://e.com/x|label> ") * 5
    for limit in (100, 777, 3000):
        chunks = split_mrkdwn(text, limit)
        assert all(0 < ulen(c) <= limit for c in chunks)
        for c in chunks:
            assert c.count("<") == c.count(">"), "a link token is never split"
            assert not c.rstrip().endswith(("&", "&a", "&am", "&amp")) or c.rstrip().endswith("&amp;")
        assert "".join(chunks).replace(" ", "").replace("\n", "") == text.replace(" ", "")


def test_a_body_of_huge_links_and_words_still_fits() -> None:
    long_url = "https://e.com/" + "p" * 5000
    body = "[ok](https://ok.example.com) " + f"[huge]({long_url}) " * 5 + "x" * 9000
    payload = good(notifier().render(Message("links", body, format="markdown")))
    assert set(special_tokens(payload)) == {"<https://ok.example.com|ok>"}
    assert all(ulen(b["text"]["text"]) <= 3000 for b in of_type(payload, "section"))


def test_50_long_fields_and_60_fields_fit() -> None:
    many = Message("fields", "body " * 3000, fields=[(f"name {i} " + "n" * 150, "v&" * 1999) for i in range(50)])
    payload = good(notifier().render(many))
    groups = [b["fields"] for b in of_type(payload, "section") if "fields" in b]
    assert [len(g) for g in groups] == [10] * 5
    assert all(f["text"].endswith(TRUNCATED) for g in groups for f in g)
    assert sum(ulen(t) for _, t in texts_of(payload)) <= 12_000
    assert sections_text(payload).endswith(TRUNCATED), "the body shares the budget"

    # More than Message allows can still arrive (a stored message, a template): it must fit too.
    sixty = Message.model_construct(**{**Message("sixty").model_dump(),
                                       "fields": tuple(Field(f"f{i}", f"value {i}") for i in range(60))})
    payload = good(notifier().render(sixty))
    groups = [b["fields"] for b in of_type(payload, "section") if "fields" in b]
    assert [len(g) for g in groups] == [10] * 6
    assert groups[-1][-1]["text"] == "*f59*\nvalue 59"
    thousand = Message.model_construct(**{**Message("lots").model_dump(),
                                          "fields": tuple(Field(f"f{i}", "x" * 50) for i in range(1000))})
    payload = good(notifier().render(thousand))
    assert len(blocks_of(payload)) <= 50
    assert "901 more fields not shown" in json.dumps(payload)


def test_long_titles_fit_the_header_even_with_emoji_and_entities() -> None:
    for title in ("T" * 500, "&" * 500, "🔥" * 400, "a&b<c>" * 80):
        payload = good(notifier().render(Message(title, priority="critical")))
        h = header(payload)
        assert ulen(h) <= 150 and h.endswith(TRUNCATED), h
        assert "&am" not in h[-20:].replace("&amp;", ""), "no half entity before the marker"


# -- escaping and injection --------------------------------------------------------------------
HOSTILE = [
    "<!channel>", "<!here|here>", "<!everyone>", "<@U123ABC>", "<#C0ALERTS|alerts>", "<!subteam^S123|@oncall>",
    "<https://evil.example|Click me>", "<!date^0^{date}|x>", "&lt;!channel&gt;", "a & b < c > d", "x\x02<!channel>\x03",
]


@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize("evil", HOSTILE)
def test_no_user_text_becomes_slack_markup(evil: str, fmt: Format) -> None:
    m = Message(
        f"title {evil}",
        f"body {evil}\n\n[{evil}](https://ok.example.com/a) [ok]({evil})",
        format=fmt,
        priority="critical",
        fields={f"name {evil}": f"value {evil}", "plain": evil},
        links=[(f"label {evil}", "https://ok.example.com/b")],
        labels={"source": f"src {evil}", "channel": "ops"},
    )
    for n in (notifier(), notifier(OFFLINE_HOOK)):
        payload = good(n.render(m))
        # Links are only what the markdown says (a link, an autolink): their URL percent-encoded,
        # their label escaped; nothing else in user text becomes a token.
        for t in special_tokens(payload):
            url, _, label = t[1:-1].partition("|")
            assert url.startswith(("https://", "mailto:")) and not set(url) & set("<>| "), t
            assert not set(label) & set("<>|"), t
        everything = json.dumps(payload)
        for bad in ("<!channel", "<!here", "<!everyone", "<@U", "<#C", "<!subteam", "<https://evil.example|", "<!date"):
            assert bad not in everything, bad
    if "&lt;" in evil:
        assert "&amp;lt;!channel&amp;gt;" in header(notifier().render(m)), "entities in user text are shown as typed"


def test_mentions_only_for_critical_and_only_from_the_route() -> None:
    n = notifier()
    for priority in Priority:
        for options, token in [(HERE, "<!here>"), (CHANNEL, "<!channel>"), (RenderOptions(), None)]:
            payload = good(n.render(Message("x <!channel>", priority=priority), options))
            expected = [token] if token and priority is Priority.CRITICAL else []
            assert special_tokens(payload) == expected, (priority, options)
            if expected:
                assert payload["text"].startswith(f"{token} 🔴 x &lt;!channel&gt;")
                assert token not in payload["attachments"][0]["fallback"]


# -- sending -----------------------------------------------------------------------------------
async def test_posts_json_with_the_bearer_token_and_fills_in_ack_and_time(slack: FakeSlack, make_notifier: Any) -> None:
    n = make_notifier(username="tidings", icon_emoji=":rotating_light:")
    outcome = await send_once(n, a_message(priority="critical"), HERE, message_id="msg-42")
    assert outcome.ok, outcome
    (call,) = slack.calls_of("chat.postMessage")
    assert call.headers["Authorization"] == f"Bearer {slack.token}"
    assert call.headers["Content-Type"] == "application/json; charset=utf-8"
    assert call.headers["User-Agent"].startswith("tidings/")
    body = call.json()
    assert body["channel"] == "#alerts" and body["username"] == "tidings" and body["icon_emoji"] == ":rotating_light:"
    assert "thread_ts" not in body
    (ack,) = [e for e in buttons(body) if e.get("action_id") == "tidings_ack"]
    assert ack["value"] == "msg-42"
    (context,) = of_type(body, "context")
    assert context["elements"][-1]["text"] == (
        f"<!date^{int(CREATED)}^{{date_short_pretty}} at {{time}}|2023-11-14 22:13 UTC>"
    )
    ts = next(iter(slack.messages))[1]
    assert outcome.remote_id == f"C0ALERTS:{ts}", "the channel id Slack answered, and the ts"
    assert body["text"].startswith("<!here> ")


async def test_the_channel_label_overrides_the_default_and_is_the_rate_key(slack: FakeSlack, make_notifier: Any) -> None:
    n = make_notifier()
    to_ops = n.render(Message("deploy", labels={"channel": "#deploys"}))
    default = n.render(Message("deploy"))
    assert (to_ops["channel"], default["channel"]) == ("#deploys", "#alerts")
    assert n.rate_key(to_ops) != n.rate_key(default)
    assert n.rate_key(to_ops) == n.rate_key(n.render(Message("other", labels={"channel": "#deploys"})))
    assert n.rate_key(n.render(Message("x", labels={"channel": "C0OPS"}))).endswith("C0OPS")
    assert (n.effective_rate_limit, n.effective_burst) == ("1/second", 3)
    hook_n = notifier(OFFLINE_HOOK)
    assert hook_n.rate_key(hook_n.render(Message("x", labels={"channel": "ops"}))) == "chat"
    outcome = await n.send(to_ops, attempt_of(Message("deploy", labels={"channel": "#deploys"})))
    assert outcome.ok and outcome.remote_id is not None and outcome.remote_id.startswith("C0DEPLOYS:")


PERMANENT_CODES = [
    "channel_not_found", "is_archived", "msg_too_long", "no_text", "invalid_blocks", "not_in_channel",
    "restricted_action", "some_code_slack_adds_next_year",
]
AUTH_CODES = ["invalid_auth", "not_authed", "account_inactive", "token_revoked"]


@pytest.mark.parametrize("code", PERMANENT_CODES + AUTH_CODES)
async def test_ok_false_codes_are_permanent_with_their_reason(slack: FakeSlack, make_notifier: Any, code: str) -> None:
    slack.script("chat.postMessage", Scripted(error=code, headers={"Retry-After": "5"}))
    outcome = await send_once(make_notifier())
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error is not None and outcome.error.startswith(code)
    assert outcome.disable is (code in AUTH_CODES), "a bad token stops the integration, not each message"
    assert len(slack.calls) == 1


@pytest.mark.parametrize(
    ("label", "token", "code"),
    [
        ("#nowhere", None, "channel_not_found"),
        ("#old", None, "is_archived"),
        ("secret-room", None, "not_in_channel"),
        (None, "xoxb-9999-wrong-token", "invalid_auth"),
    ],
)
async def test_slack_s_own_refusals(slack: FakeSlack, make_notifier: Any, label: str | None, token: str | None,
                                    code: str) -> None:
    n = make_notifier(**({"token": token} if token else {}))
    outcome = await send_once(n, Message("x", labels={"channel": label} if label else {}))
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error is not None and outcome.error.startswith(code)
    if label:
        assert repr(label) in outcome.error, "the error names the channel"


async def test_invalid_blocks_and_missing_scope_say_why(slack: FakeSlack, make_notifier: Any) -> None:
    slack.script(
        "chat.postMessage",
        Scripted(error="invalid_blocks", extra={"response_metadata": {"messages": ["[ERROR] too long [json-pointer:/x]"]}}),
        Scripted(error="missing_scope", extra={"needed": "chat:write.public", "provided": "chat:write"}),
    )
    first = await send_once(make_notifier())
    assert first.error == "invalid_blocks: Slack refused the blocks: [ERROR] too long [json-pointer:/x]"
    second = await send_once(make_notifier())
    assert second.error == "missing_scope: the token lacks the scope chat:write.public"


@pytest.mark.parametrize(
    ("reply", "after", "says"),
    [
        (Scripted(status=429, error="ratelimited", headers={"Retry-After": "7"}), 7.0, "HTTP 429"),
        (Scripted(status=429, body="slow down", headers={"Retry-After": "12"}), 12.0, "HTTP 429"),
        (Scripted(error="ratelimited", headers={"Retry-After": "3"}), 3.0, "ratelimited"),
        (Scripted(error="ratelimited"), None, "ratelimited"),
        (Scripted(error="internal_error"), None, "internal_error"),
        (Scripted(error="service_unavailable"), None, "service_unavailable"),
        (Scripted(status=500, body="<html>oops</html>"), None, "HTTP 500"),
        (Scripted(status=503, body="maintenance", headers={"Retry-After": "30"}), 30.0, "HTTP 503"),
        (Scripted(status=502, error="fatal_error"), None, "HTTP 502"),
        (Scripted(status=200, body="<html>a proxy page</html>"), None, "not a Slack API answer"),
    ],
)
async def test_transient_answers_are_retryable(slack: FakeSlack, make_notifier: Any, reply: Scripted,
                                               after: float | None, says: str) -> None:
    slack.script("chat.postMessage", reply)
    outcome = await send_once(make_notifier())
    assert outcome.status is OutcomeStatus.RETRY, outcome
    assert outcome.retry_after == after
    assert outcome.error is not None and says in outcome.error
    assert not outcome.disable


async def test_a_long_answer_is_read_whole(slack: FakeSlack, make_notifier: Any) -> None:
    echo = {"ok": True, "channel": "C0ALERTS", "ts": "1700000001.000001", "message": {"text": "x" * 600_000}}
    slack.script("chat.postMessage", Scripted(body=json.dumps(echo), headers={"Content-Type": "application/json"}))
    outcome = await send_once(make_notifier())
    assert outcome.ok and outcome.remote_id == "C0ALERTS:1700000001.000001"


async def test_timeouts_resets_and_a_peer_that_is_down_are_retryable(slack: FakeSlack, make_notifier: Any) -> None:
    slack.script("chat.postMessage", Scripted(delay=30))
    slow = await send_once(make_notifier(timeout=0.3))
    assert slow.status is OutcomeStatus.RETRY and slow.error is not None and "timed out" in slow.error
    slack.script("chat.postMessage", Scripted(action="reset"))
    reset = await send_once(make_notifier())
    assert reset.status is OutcomeStatus.RETRY and reset.error
    down = await send_once(make_notifier(api_url=f"http://127.0.0.1:{free_port()}/api"))
    assert down.status is OutcomeStatus.RETRY and down.error is not None and "connect" in down.error.lower()


async def test_redirects_and_other_statuses_follow_http_rules(slack: FakeSlack, make_notifier: Any) -> None:
    slack.script("chat.postMessage", Scripted(status=302, headers={"Location": "https://elsewhere.example"}),
                 Scripted(status=404, body="Not Found"), Scripted(status=410, body="gone"))
    moved = await send_once(make_notifier())
    assert moved.status is OutcomeStatus.PERMANENT and moved.error is not None and "redirects are not followed" in moved.error
    missing = await send_once(make_notifier())
    assert missing.status is OutcomeStatus.PERMANENT and missing.error == "HTTP 404: Not Found"
    gone = await send_once(make_notifier())
    assert gone.status is OutcomeStatus.PERMANENT and gone.disable


async def test_auth_test(slack: FakeSlack, make_notifier: Any) -> None:
    ok = await make_notifier().test()
    assert ok.ok and ok.remote_id == "Acme/tidings"
    (call,) = slack.calls_of("auth.test")
    assert call.headers["Authorization"] == f"Bearer {slack.token}"
    bad = await make_notifier(token="xoxb-0000-revoked").test()
    assert bad.status is OutcomeStatus.PERMANENT and bad.error is not None and bad.error.startswith("invalid_auth")
    slack.script("auth.test", Scripted(status=429, error="ratelimited", headers={"Retry-After": "2"}))
    later = await make_notifier().test()
    assert later.status is OutcomeStatus.RETRY and later.retry_after == 2.0
    assert not slack.calls_of("chat.postMessage"), "testing a bot token posts nothing"


# -- incoming webhooks -------------------------------------------------------------------------
async def test_webhook_mode_posts_the_blocks_without_channel_threads_or_ack(slack: FakeSlack,
                                                                            make_notifier: Any) -> None:
    n = make_notifier(hook(slack))  # no thread store at all: webhook mode must not need one
    m = a_message(priority="critical", thread_key="disk:web-01", resolves=False, labels={"channel": "ops"})
    outcome = await send_once(n, m, HERE)
    assert outcome.status is OutcomeStatus.DELIVERED and outcome.remote_id is None
    (call,) = slack.calls_of("webhook")
    assert "Authorization" not in call.headers
    body = call.json()
    assert "channel" not in body and "thread_ts" not in body
    assert not [e for e in buttons(body) if e.get("action_id") == "tidings_ack"]
    assert body["text"].startswith("<!here> 🔴 Disk full")
    assert slack.hook_messages == [body]
    test = await n.test()
    assert test.ok and len(slack.hook_messages) == 2
    assert header(slack.hook_messages[1]) == "⚪ tidings test for chat"
    resolving = await send_once(n, a_message(thread_key="disk:web-01", resolves=True))
    assert resolving.ok and slack.hook_messages[2]["attachments"][0]["color"] == RESOLVED_COLOR
    assert [c.method for c in slack.calls] == ["webhook"] * 3, "no chat.update, no thread"


@pytest.mark.parametrize(
    ("status", "text", "expect", "disable"),
    [
        (400, "invalid_payload", OutcomeStatus.PERMANENT, False),
        (400, "user_not_found", OutcomeStatus.PERMANENT, False),
        (403, "action_prohibited", OutcomeStatus.PERMANENT, False),
        (403, "posting_to_general_channel_denied", OutcomeStatus.PERMANENT, False),
        (404, "channel_not_found", OutcomeStatus.PERMANENT, True),
        (404, "no_service", OutcomeStatus.PERMANENT, True),
        (410, "channel_is_archived", OutcomeStatus.PERMANENT, True),
        (429, "rate_limited", OutcomeStatus.RETRY, False),
        (500, "rollup_error", OutcomeStatus.RETRY, False),
    ],
)
async def test_webhook_answers(slack: FakeSlack, make_notifier: Any, status: int, text: str,
                               expect: OutcomeStatus, disable: bool) -> None:
    slack.script("webhook", Scripted(status=status, body=text, headers={"Retry-After": "4"}))
    outcome = await send_once(make_notifier(hook(slack)))
    assert outcome.status is expect
    assert outcome.error is not None and text in outcome.error and f"HTTP {status}" in outcome.error
    assert outcome.disable is disable
    if expect is OutcomeStatus.RETRY:
        assert outcome.retry_after == 4.0


async def test_a_wrong_webhook_url_is_no_service(slack: FakeSlack, make_notifier: Any) -> None:
    outcome = await send_once(make_notifier(hook(slack, webhook_url=slack.webhook_url.replace(HOOK_SECRET, "x" * 24))))
    assert outcome.status is OutcomeStatus.PERMANENT and outcome.disable
    assert outcome.error is not None and "no_service" in outcome.error


# -- threads, with the thread store on each database -------------------------------------------------
async def test_resolving_when_the_original_is_gone_still_replies(slack: FakeSlack, make_notifier: Any,
                                                                 store: Store) -> None:
    threads = Threads(store)
    n = make_notifier(context=local_context(store, threads))
    first = await send_once(n, a_message(thread_key="k1"), message_id="m1")
    assert first.ok
    thread = await threads.get("chat", "k1")
    assert thread is not None and thread.message_id == "m1"
    assert thread.ref["channel"] == "C0ALERTS" and f"C0ALERTS:{thread.ref['ts']}" == first.remote_id

    # A rate-limited update retries the whole resolution, and nothing was replied yet.
    slack.script("chat.update", Scripted(status=429, error="ratelimited", headers={"Retry-After": "1"}))
    resolving = a_message(thread_key="k1", resolves=True, priority="info")
    later = await send_once(n, resolving, message_id="m2")
    assert later.status is OutcomeStatus.RETRY and later.retry_after == 1.0
    assert len(slack.calls_of("chat.postMessage")) == 1
    assert (await threads.get("chat", "k1")).resolved_at is None  # type: ignore[union-attr]

    # The original was deleted: the update fails for good, the reply still goes out.
    slack.script("chat.update", Scripted(error="message_not_found"))
    done = await send_once(n, resolving, message_id="m2")
    assert done.ok
    reply = slack.posts()[-1]
    assert reply["thread_ts"] == thread.ref["ts"] and reply["channel"] == "C0ALERTS"
    assert (await threads.get("chat", "k1")).resolved_at is not None  # type: ignore[union-attr]


async def test_concurrent_first_sends_of_a_key_start_one_thread(slack: FakeSlack, make_notifier: Any,
                                                                store: Store) -> None:
    threads = Threads(store)
    n = make_notifier(context=local_context(store, threads))
    messages = [a_message(thread_key="race") for _ in range(5)]
    outcomes = await asyncio.gather(*(n.send(n.render(m), attempt_of(m, f"m{i}")) for i, m in enumerate(messages)))
    assert all(o.ok for o in outcomes)
    posts = slack.posts()
    tops = [p for p in posts if "thread_ts" not in p]
    assert len(tops) == 1, [p.get("thread_ts") for p in posts]
    thread = await threads.get("chat", "race")
    assert thread is not None
    assert {p.get("thread_ts") for p in posts if p is not tops[0]} == {thread.ref["ts"]}
    assert not n._locks, "locks of finished keys are dropped"


# -- through a hub, on SQLite and PostgreSQL ---------------------------------------------------------
def routed(chat: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"integrations": {"chat": chat}, "default": {"to": ["chat"]}, **extra}


async def the_delivery(hub: Any, message_id: str) -> dict[str, Any]:
    return (await hub.message(message_id))["deliveries"][0]


async def wait_status(hub: Any, message_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
    async def done() -> bool:
        return (await the_delivery(hub, message_id))["status"] == status

    await eventually(done, timeout=timeout)
    return await the_delivery(hub, message_id)


async def test_a_thread_through_the_hub(make_hub: Any, slack: FakeSlack) -> None:
    hub = await make_hub(routed(bot(slack, rate_limit="50/second")))
    assert (await hub.test("chat")).remote_id == "Acme/tidings"

    opened = await hub.notify(a_message(priority="critical", thread_key="disk:web-01"))
    d1 = await wait_status(hub, opened.id, "delivered")
    (post,) = slack.posts()
    assert "thread_ts" not in post
    channel, ts = d1["remote_id"].split(":")
    thread = await hub.notifiers["chat"].context.threads.get("chat", "disk:web-01")
    assert thread.ref["channel"] == channel == "C0ALERTS" and thread.ref["ts"] == ts
    assert thread.message_id == opened.id
    original = slack.messages[(channel, ts)]
    assert [e["value"] for e in buttons(original["attachments"][0]) if e.get("action_id") == "tidings_ack"] == [opened.id]

    update = await hub.notify(a_message(priority="high", title="Disk still full", thread_key="disk:web-01"))
    d2 = await wait_status(hub, update.id, "delivered")
    reply = slack.posts()[1]
    assert (reply["channel"], reply["thread_ts"]) == ("C0ALERTS", ts)
    assert "reply_broadcast" not in reply
    assert d2["remote_id"] != d1["remote_id"] and d2["remote_id"].startswith("C0ALERTS:")

    resolved = await hub.notify(Message("Disk has space again", priority="info", thread_key="disk:web-01",
                                        resolves=True))
    await wait_status(hub, resolved.id, "delivered")
    (upd,) = slack.calls_of("chat.update")
    body = upd.json()
    assert (body["channel"], body["ts"]) == ("C0ALERTS", ts)
    assert body["attachments"][0]["color"] == RESOLVED_COLOR
    assert header(body) == "✅ Resolved: Disk full"
    assert body["text"] == "✅ Resolved: Disk full"
    assert not [e for e in buttons(body) if e.get("action_id") == "tidings_ack"], "nothing left to acknowledge"
    assert [e["url"] for e in buttons(body)] == ["https://runbooks.example.com/disk"], "the links stay"
    assert "Resolved" in of_type(body, "context")[0]["elements"][-1]["text"]
    assert sections_text(body) == sections_text(post), "the original's body stays"
    assert slack.messages[(channel, ts)]["attachments"] == body["attachments"], "Slack shows the update"
    final = slack.posts()[2]
    assert final["thread_ts"] == ts and header(final) == "✅ Disk has space again"
    thread = await hub.notifiers["chat"].context.threads.get("chat", "disk:web-01")
    assert thread.resolved_at is not None

    again = await hub.notify(a_message(priority="critical", thread_key="disk:web-01"))
    await wait_status(hub, again.id, "delivered")
    fired = slack.posts()[3]
    assert fired["thread_ts"] == ts and fired["reply_broadcast"] is True, "a resolved thread firing again shows in the channel"
    assert len(slack.calls_of("chat.update")) == 1


async def test_mentions_come_from_routes_and_page_only_for_critical(make_hub: Any, slack: FakeSlack) -> None:
    config = parse_config({"integrations": {"chat": bot(slack)}})  # the route options are validated too
    assert config.integrations["chat"].kind == "slack"
    hub = await make_hub(routed(
        bot(slack, rate_limit="50/second"),
        routes=[
            {"name": "db-pager", "match": {"priority": "critical", "labels": {"team": "db"}}, "to": ["chat"],
             "mention": "channel"},
            {"name": "urgent", "match": {"priority": ">=high"}, "to": ["chat"], "mention": "here"},
        ],
    ))
    sent = {
        "db": Message("db down <!everyone>", priority="critical", labels={"team": "db"}),
        "crit": Message("api down", priority="critical"),
        "high": Message("api slow", priority="high"),
        "low": Message("fyi <!here>", priority="low"),
    }
    preview = hub.preview(sent["crit"])
    assert preview[0]["payload"]["text"].startswith("<!here> 🔴 api down")
    for m in sent.values():
        r = await hub.notify(m)
        await wait_status(hub, r.id, "delivered")
    by_title = {p["attachments"][0]["blocks"][0]["text"]["text"]: p for p in slack.posts()}
    mentions = {title: [t for t in special_tokens(p) if not t.startswith("<!date")] for title, p in by_title.items()}
    assert mentions == {
        "🔴 db down &lt;!everyone&gt;": ["<!channel>"],
        "🔴 api down": ["<!here>"],
        "🟠 api slow": [],
        "🔵 fyi &lt;!here&gt;": [],
    }


async def test_delivered_after_transient_failures_and_dead_after_a_permanent_one(make_hub: Any,
                                                                                 slack: FakeSlack) -> None:
    slack.script(
        "chat.postMessage",
        Scripted(status=429, error="ratelimited", headers={"Retry-After": "0"}),
        Scripted(status=500, body="oops"),
        Scripted(action="reset"),
        Scripted(error="ratelimited"),
        Scripted(error="internal_error"),
    )
    hub = await make_hub(routed(bot(slack, rate_limit="100/second")))
    r = await hub.notify(a_message())
    d = await wait_status(hub, r.id, "delivered")
    assert d["attempts"] == 6 and d["last_error"] is None
    assert len(slack.messages) == 1, "delivered once"
    assert d["remote_id"] == "C0ALERTS:" + next(iter(slack.messages))[1]

    dead = await hub.notify(Message("nowhere", labels={"channel": "#nowhere"}))
    d = (await hub.wait(dead.id))["deliveries"][0]
    assert d["status"] == "dead" and d["attempts"] == 1
    assert d["last_error"].startswith("channel_not_found") and "'#nowhere'" in d["last_error"]


async def test_a_revoked_token_disables_the_integration_and_loses_nothing(make_hub: Any, slack: FakeSlack) -> None:
    slack.script("chat.postMessage", Scripted(error="token_revoked"))
    hub = await make_hub(routed(bot(slack)))
    first = await hub.notify(Message("first"))
    d = (await hub.wait(first.id))["deliveries"][0]
    assert d["status"] == "dead" and d["last_error"].startswith("token_revoked")

    async def disabled() -> bool:
        return {i["name"]: i for i in await hub.integrations()}["chat"]["health"] == "disabled"

    await eventually(disabled)
    waiting = await hub.notify(Message("second"))
    held = await the_delivery(hub, waiting.id)
    assert held["status"] == "held" and held["last_error"].startswith("held: integration disabled by its peer (")
    await hub.set_enabled("chat", True)
    assert (await wait_status(hub, waiting.id, "delivered"))["attempts"] == 1


async def test_channels_do_not_throttle_each_other(make_hub: Any, slack: FakeSlack) -> None:
    hub = await make_hub(routed(bot(slack, rate_limit="2/second", burst=2)))
    alerts = [Message(f"a{i}") for i in range(3)]
    deploys = [Message(f"d{i}", labels={"channel": "#deploys"}) for i in range(2)]
    receipts = await hub.notify_many(alerts + deploys)
    for r in receipts:
        await wait_status(hub, r.id, "delivered")
    at = {c.json()["attachments"][0]["blocks"][0]["text"]["text"][2:]: c.at for c in slack.calls_of("chat.postMessage")}
    start = min(at.values())
    assert max(at["d0"], at["d1"]) - start < 0.6, "#deploys is not held up by #alerts"
    assert sorted(at[f"a{i}"] for i in range(3))[2] - start >= 0.8, "#alerts keeps to 2 per second"


# -- secrets -----------------------------------------------------------------------------------
@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """tidings' own logging setup (JSON, every known secret masked), written to a buffer."""
    import tidings.integrations.slack

    yield from json_logs(monkeypatch, (tidings.integrations.slack, "tidings.slack"))


async def test_the_token_and_the_webhook_url_never_leak(make_hub: Any, slack: FakeSlack, log_output: io.StringIO) -> None:
    path = f"/services/T0ACME/B0HOOK/{HOOK_SECRET}"
    hub = await make_hub({
        "integrations": {"chat": bot(slack), "hook": hook(slack, retry={"max_attempts": 1})},
        "default": {"to": ["chat", "hook"]},
    })
    # Peers and proxies echo what they were sent, whole or in part.
    slack.script("chat.postMessage", Scripted(status=400, body=f"bad header 'Authorization: Bearer {slack.token}'"))
    slack.script("webhook", Scripted(status=400, body=f"invalid_payload for {slack.webhook_url}"),
                 Scripted(status=500, body=f"upstream failed for {path}"))
    r1 = await hub.notify(Message("one"))
    r2 = await hub.notify(Message("two"), to=["hook"])
    errors = [d["last_error"] for d in (await hub.wait(r1.id))["deliveries"]]
    errors += [d["last_error"] for d in (await hub.wait(r2.id))["deliveries"]]
    assert len(errors) == 3 and all(errors), errors
    preview = json.dumps(hub.preview(Message("p")))
    listed = json.dumps(await hub.integrations())
    from tidings.integrations.slack import log

    log.warning("test.leak_check", token=slack.token, url=slack.webhook_url, path=path)
    await hub.stop()
    logged = log_output.getvalue()
    assert "test.leak_check" in logged
    for text in [*errors, preview, listed, logged]:
        assert slack.token not in text, text
        assert HOOK_SECRET not in text, text
    assert any(f"…{slack.token[-4:]}" in e for e in errors), errors
    assert sum("…" in e for e in errors) == 3, errors


def test_secret_values_cover_the_url_and_its_secret_part() -> None:
    s = settings_of(OFFLINE_HOOK)
    assert set(s.secret_values()) >= {OFFLINE_HOOK["webhook_url"], "offlineofflineoffline"}
    assert settings_of(OFFLINE).secret_values() == ["xoxb-0-offline"]
    vault = settings_of({"kind": "slack", "token": "${vault:SLACK_TOKEN}", "channel": "C0ALERTS"})
    assert vault.vault_refs() == {"token": "SLACK_TOKEN"} and vault.secret_values() == []
    assert settings_of({"kind": "slack", "webhook_url": "${vault:HOOK}"}).vault_refs() == {"webhook_url": "HOOK"}


# -- settings ----------------------------------------------------------------------------------
def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"chat": {"kind": "slack", **data}}})
    return info.value.problems


SECRET_URL = "https://hooks.slack.com/services/T0/B0/verysecretpart0123456789"


@pytest.mark.parametrize(
    ("data", "path", "says"),
    [
        ({}, "integrations.chat: ", "exactly one of token"),
        ({"token": "xoxb-1-a", "webhook_url": SECRET_URL, "channel": "#a"}, "integrations.chat: ", "exactly one"),
        ({"token": "xoxb-1-a"}, "integrations.chat: ", "channel: required"),
        ({"webhook_url": SECRET_URL, "channel": "#a"}, "integrations.chat: ", "leave channel out"),
        ({"token": "xoxp-1-user-token", "channel": "#a"}, "integrations.chat.token: ", "xoxb-"),
        ({"token": "not a token", "channel": "#a"}, "integrations.chat.token: ", "xoxb-"),
        ({"webhook_url": "hooks.slack.com/services/verysecretpart0123456789"}, "integrations.chat.webhook_url: ", "http"),
        ({"webhook_url": "https://hooks.slack.com/services/x y"}, "integrations.chat.webhook_url: ", "spaces"),
        ({"token": "xoxb-1-a", "channel": "#a", "api_url": "ftp://slack.com/api"}, "integrations.chat.api_url: ", "http"),
        ({"token": "xoxb-1-a", "channel": "two words"}, "integrations.chat.channel: ", "#name"),
        ({"token": "xoxb-1-a", "channel": "#a", "icon_emoji": "siren"}, "integrations.chat.icon_emoji: ", "colons"),
        ({"token": "xoxb-1-a", "channel": "#a", "icon_emoji": ":x:", "icon_url": "https://e.com/i.png"},
         "integrations.chat: ", "not both"),
        ({"token": "xoxb-1-a", "channel": "#a", "colour": "red"}, "integrations.chat.colour: ", "Extra"),
    ],
)
def test_bad_settings_are_clear_errors(data: dict[str, Any], path: str, says: str) -> None:
    problems = problems_of(data)
    matching = [p for p in problems if p.startswith(path)]
    assert matching, problems
    assert says in matching[0], matching
    for p in problems:
        assert "verysecretpart" not in p and "xoxp-1-user-token" not in p, p


def test_good_settings() -> None:
    s = settings_of({"kind": "slack", "token": "xoxb-123-456-abc", "channel": "#alerts",
                     "api_url": "https://slack.example.com/api/", "username": "tidings", "icon_url": "https://e.com/i.png",
                     "timeout": "5s"})
    assert s.bot and s.api_url == "https://slack.example.com/api" and s.timeout == 5.0
    assert settings_of({"kind": "slack", "token": "xoxe.xoxb-1-rotating", "channel": "C0ALERTS"}).channel == "C0ALERTS"
    assert not settings_of({"kind": "slack", "webhook_url": SECRET_URL}).bot
    assert "verysecretpart" not in repr(settings_of({"kind": "slack", "webhook_url": SECRET_URL}))
