"""Email: a real SMTP server (aiosmtpd) on 127.0.0.1 with STARTTLS, implicit TLS or none, a
self-signed certificate made by the test, and AUTH. What it receives is parsed with the standard
library and checked: structure, headers, threads, escaping, header injection, recipients, and how
every kind of trouble (certificates, passwords, 4xx, 5xx, partial refusals, a server that is down
or too slow) reads as an outcome.

Tests of the notifier alone need no database; tests through a hub run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from fake_smtp import PASSWORD, USER, Certificate, SmtpServer
from helpers import eventually, local_context
from peer import free_port

from tidings import Message
from tidings.config import parse_config
from tidings.errors import ConfigError
from tidings.integrations.base import Attempt, Outcome, OutcomeStatus
from tidings.integrations.email import EmailNotifier, EmailPayload, split_address, subject_of, thread_root
from tidings.integrations.email.render import COLOURS
from tidings.message import Priority

FROM = "alerts@example.com"
OPS = "Ops Team <ops@example.com>"


# -- fixtures ------------------------------------------------------------------------------------
def email_config(server: SmtpServer | None, certs: Certificate, security: str = "starttls", **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "kind": "email",
        "host": "127.0.0.1",
        "port": server.port if server else free_port(),
        "security": security,
        "from_address": FROM,
        "from_name": "Tidings",
        "to": [OPS],
        "ca_file": str(certs.cert),
        "timeout": 5,
    }
    if security != "none":
        config.update(username=USER, password=PASSWORD)
    else:
        config["allow_insecure"] = True
    config.update(extra)
    return {k: v for k, v in config.items() if v is not None}


def settings_of(config: dict[str, Any]) -> Any:
    return parse_config({"integrations": {"mail": config}}).integrations["mail"]


def notifier_of(config: dict[str, Any]) -> EmailNotifier:
    return EmailNotifier("mail", settings_of(config), local_context())


@pytest.fixture
def make_notifier(certs: Certificate) -> Callable[..., EmailNotifier]:
    def make(server: SmtpServer | None = None, security: str = "starttls", **extra: Any) -> EmailNotifier:
        return notifier_of(email_config(server, certs, security, **extra))

    return make


def offline(**extra: Any) -> EmailNotifier:
    """A notifier for rendering only (nothing listens on its port)."""
    config = {"kind": "email", "host": "smtp.example.com", "from_address": FROM, "from_name": "Tidings",
              "to": [OPS], "username": USER, "password": PASSWORD, **extra}
    return notifier_of(config)


def attempt_of(message: Message, delivery_id: str = "0190f4c2-7d1e-7a00-8000-000000000001", number: int = 1) -> Attempt:
    return Attempt(delivery_id, "msg-0001", number, 1_700_000_000.0, message)


def a_message(**extra: Any) -> Message:
    data: dict[str, Any] = {
        "title": "Disk full",
        "body": "92% on /var\nsecond line",
        "priority": "high",
        "fields": {"host": "web-01", "free": "1.2 GB"},
        "links": [("Runbook", "https://runbooks.example.com/disk")],
        "labels": {"source": "monitor"},
        **extra,
    }
    return Message(**data)


async def send_once(n: EmailNotifier, message: Message | None = None, **kw: Any) -> Outcome:
    message = message or a_message()
    return await n.send(n.render(message), attempt_of(message, **kw))


def parts_of(msg: EmailMessage) -> tuple[str, str]:
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    rich = msg.get_body(("html",))
    assert plain is not None and rich is not None
    # Parsed from the wire, lines end in CRLF.
    return plain.get_content().replace("\r\n", "\n"), rich.get_content().replace("\r\n", "\n")


# -- delivered, and what arrives -------------------------------------------------------------------
async def test_starttls_auth_delivers_a_multipart_email(smtp: Any, make_notifier: Any) -> None:
    server = smtp()
    n = make_notifier(server, cc=["audit@example.com"], bcc=["archive@example.com"], subject_prefix="[prod]")
    m = a_message(thread_key="disk:web-01")
    outcome = await send_once(n, m, delivery_id="0190f4c2-7d1e-7a00-8000-00000000abcd")
    assert outcome.status is OutcomeStatus.DELIVERED, outcome
    assert outcome.remote_id == "<0190f4c2-7d1e-7a00-8000-00000000abcd@example.com>"

    (mail,) = server.mails
    assert mail.tls and mail.authenticated, "STARTTLS before AUTH before MAIL"
    assert server.logins == [(USER, True)]
    assert mail.mail_from == FROM
    assert mail.rcpt_tos == ["ops@example.com", "audit@example.com", "archive@example.com"]
    msg = mail.message
    assert msg["From"] == "Tidings <alerts@example.com>"
    assert msg["To"] == OPS
    assert msg["Cc"] == "audit@example.com"
    assert msg["Bcc"] is None, "Bcc recipients are in the envelope only"
    assert msg["Subject"] == "[prod] Disk full"
    assert msg["Message-ID"] == "<0190f4c2-7d1e-7a00-8000-00000000abcd@example.com>"
    assert parsedate_to_datetime(msg["Date"]).timestamp() == 1_700_000_000.0
    assert msg["X-Priority"] == "2 (High)"
    assert msg["Importance"] == "high"
    assert msg["Auto-Submitted"] == "auto-generated"
    root = "<thread-" + hashlib.sha256(b"disk:web-01").hexdigest()[:32] + "@example.com>"
    assert msg["In-Reply-To"] == root
    assert msg["References"] == root

    text, rich = parts_of(msg)
    assert text.startswith("[HIGH] Disk full\n\n92% on /var\nsecond line\n")
    assert "host: web-01\nfree: 1.2 GB\n" in text
    assert "Runbook: https://runbooks.example.com/disk" in text
    assert "Sent by tidings for monitor · 2023-11-14 22:13 UTC" in text
    assert "<h1" in rich and "Disk full</h1>" in rich
    assert COLOURS[Priority.HIGH] in rich
    assert "92% on /var<br>" in rich
    assert re.search(r"<th[^>]*>host</th><td[^>]*>web-01</td>", rich)
    assert 'href="https://runbooks.example.com/disk"' in rich
    assert "Sent by tidings for monitor &middot; 2023-11-14 22:13 UTC" in rich


async def test_implicit_tls_delivers(smtp: Any, make_notifier: Any) -> None:
    server = smtp("tls")
    outcome = await send_once(make_notifier(server, "tls"))
    assert outcome.ok, outcome
    (mail,) = server.mails
    assert mail.tls and mail.authenticated


async def test_plain_smtp_when_allowed(smtp: Any, make_notifier: Any) -> None:
    server = smtp("none")
    n = make_notifier(server, "none")
    assert n.port == server.port
    outcome = await send_once(n)
    assert outcome.ok, outcome
    (mail,) = server.mails
    assert not mail.tls and not mail.authenticated


@pytest.mark.parametrize(
    ("priority", "x_priority", "importance"),
    [
        ("critical", "1 (Highest)", "high"),
        ("high", "2 (High)", "high"),
        ("medium", "3 (Normal)", "normal"),
        ("low", "5 (Lowest)", "low"),
        ("info", "5 (Lowest)", "low"),
    ],
)
def test_priority_headers_and_colour(priority: str, x_priority: str, importance: str) -> None:
    n = offline()
    m = a_message(priority=priority)
    msg = n.build(n.render(m), attempt_of(m))
    assert msg["X-Priority"] == x_priority
    assert msg["Importance"] == importance
    _, rich = parts_of(msg)
    assert f"background-color:{COLOURS[Priority(priority)]}" in rich
    assert priority.upper() in rich


def test_the_documented_colours() -> None:
    assert {p.value: c for p, c in COLOURS.items()} == {
        "critical": "#d00000", "high": "#ff6600", "medium": "#ffcc00", "low": "#0099ff", "info": "#999999",
    }


def test_message_id_is_stable_per_delivery_and_on_the_domain() -> None:
    n = offline(domain="mail.example.org")
    m = a_message()
    first = n.build(n.render(m), attempt_of(m, delivery_id="d-1", number=1))
    again = n.build(n.render(m), attempt_of(m, delivery_id="d-1", number=5))
    other = n.build(n.render(m), attempt_of(m, delivery_id="d-2"))
    assert first["Message-ID"] == again["Message-ID"] == "<d-1@mail.example.org>"
    assert other["Message-ID"] == "<d-2@mail.example.org>"
    assert first.as_bytes() == again.as_bytes(), "a retry sends the same bytes"
    assert offline().build(n.render(m), attempt_of(m, delivery_id="d-1"))["Message-ID"] == "<d-1@example.com>"


def test_threads_need_no_state() -> None:
    n = offline()
    one = n.render(a_message(thread_key="deploy:api", title="Deploy started"))
    two = n.render(a_message(thread_key="deploy:api", title="Deploy finished"))
    other = n.render(a_message(thread_key="deploy:web"))
    alone = n.render(a_message())
    root = dict(one.headers)["In-Reply-To"]
    assert root == thread_root("deploy:api", "example.com")
    assert re.fullmatch(r"<thread-[0-9a-f]{32}@example\.com>", root)
    assert dict(two.headers)["In-Reply-To"] == dict(two.headers)["References"] == root
    assert dict(other.headers)["In-Reply-To"] != root
    assert "In-Reply-To" not in dict(alone.headers) and "References" not in dict(alone.headers)


def test_preview_shows_what_would_be_sent() -> None:
    n = offline(cc=["audit@example.com"])
    preview = n.preview(n.render(a_message(thread_key="t")))
    assert {"subject", "from", "to", "headers", "text", "html"} <= set(preview)
    assert preview["subject"] == "Disk full"
    assert preview["from"] == "Tidings <alerts@example.com>"
    assert preview["to"] == [OPS]
    assert preview["headers"]["X-Priority"] == "2 (High)"
    assert preview["headers"]["In-Reply-To"].startswith("<thread-")
    assert "(time of sending)" in preview["text"] and "(time of sending)" in preview["html"]
    import json

    json.dumps(preview)


def test_subject_is_one_line_prefixed_and_cut() -> None:
    assert subject_of("[prod]", "Disk full") == "[prod] Disk full"
    assert subject_of("", "a\r\nb\tc\x00d\u2028e") == "a b c d e"
    long = subject_of("[x]", "y" * 500)
    assert len(long) == 200 and long.endswith("…")


def test_templates_ship_with_the_package() -> None:
    folder = importlib.resources.files("tidings.integrations.email") / "templates"
    assert (folder / "message.txt.j2").is_file()
    assert (folder / "message.html.j2").is_file()
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"**/*.j2"' in pyproject, "package-data ships the templates in wheels"


# -- escaping: no sender's HTML reaches the HTML part -------------------------------------------------
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.mark.parametrize("fmt", ["plain", "markdown", "html"])
def test_hostile_text_is_escaped_everywhere(fmt: str) -> None:
    n = offline()
    m = Message(
        title=f"Title {HOSTILE}",
        body=f"Body {HOSTILE} [link](javascript:alert(1)) <a href=\"javascript:alert(2)\">x</a> <iframe src=//evil>",
        format=fmt,
        fields={f"name {HOSTILE}": 'value "><script>alert(3)</script>'},
        links=[(f"label {HOSTILE}", 'https://example.com/?q="><script>alert(4)</script>')],
        labels={"source": f"src {HOSTILE}"},
    )
    msg = n.build(n.render(m), attempt_of(m))
    _, rich = parts_of(msg)
    lowered = rich.lower()
    assert "<script" not in lowered
    assert "<img" not in lowered
    assert "<iframe" not in lowered
    tags = re.findall(r"<[^>]*>", lowered)
    bad = [t for t in tags if "javascript:" in t or re.search(r"\son\w+\s*=", t) or re.match(r"</?\s*script", t)]
    assert not bad, "hostile markup only ever appears as escaped text"
    assert "&lt;script&gt;" in rich, "the title and fields are shown, escaped"
    assert 'href="https://example.com/?q=&#34;&gt;&lt;script&gt;' in rich or \
        'href="https://example.com/?q=&quot;&gt;&lt;script&gt;' in rich


def test_html_bodies_keep_safe_formatting_only() -> None:
    n = offline()
    body = ('<p style="color:red" onclick="x()">Hello <b>team</b></p><ul><li>one</li></ul>'
            '<a href="https://example.com/r" onmouseover="x()">report</a><style>p{}</style>')
    m = Message("t", body, format="html")
    text, rich = parts_of(n.build(n.render(m), attempt_of(m)))
    assert "<p>Hello <b>team</b></p><ul><li>one</li></ul>" in rich
    assert '<a href="https://example.com/r">report</a>' in rich
    assert "onclick" not in rich and "onmouseover" not in rich and "p{}" not in rich
    assert "Hello team" in text and "report (https://example.com/r)" in text
    assert "<" not in text.split("--")[0]


def test_markdown_bodies_render_to_html() -> None:
    n = offline()
    m = Message("t", "**bold** and [docs](https://docs.example.com)\n\n- a\n- b", format="markdown")
    text, rich = parts_of(n.build(n.render(m), attempt_of(m)))
    assert "<strong>bold</strong>" in rich and '<a href="https://docs.example.com">docs</a>' in rich
    assert "<li>a</li>" in rich
    assert "**bold**" in text


# -- header injection ---------------------------------------------------------------------------------
async def test_a_title_cannot_add_headers_or_recipients(smtp: Any, make_notifier: Any) -> None:
    server = smtp()
    m = a_message(title="Alert\r\nBcc: evil@example.com\r\nX-Evil: 1\nSubject: other")
    outcome = await send_once(make_notifier(server), m)
    assert outcome.ok, outcome
    (mail,) = server.mails
    assert mail.rcpt_tos == ["ops@example.com"]
    msg = mail.message
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert msg.get_all("Subject") == ["Alert Bcc: evil@example.com X-Evil: 1 Subject: other"]
    assert b"\r\nBcc:" not in mail.raw.split(b"\r\n\r\n")[0]


@pytest.mark.parametrize(
    "label",
    [
        "ops@example.com\r\nBcc: evil@example.com",
        "ops@example.com\nX-Evil: 1",
        "not an address",
        "ops@example.com, @example.com",
        "Evil <evil@example.com",
        "a@b@example.com",
    ],
)
async def test_an_invalid_email_to_label_is_permanent_and_nothing_is_sent(smtp: Any, make_notifier: Any, label: str) -> None:
    server = smtp()
    outcome = await send_once(make_notifier(server), a_message(labels={"email_to": label}))
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error and outcome.error.startswith("label email_to:")
    assert server.mails == [] and server.logins == [], "refused before connecting"


# -- recipients -----------------------------------------------------------------------------------------
async def test_recipients_per_integration_and_per_message(smtp: Any, make_notifier: Any) -> None:
    server = smtp()
    n = make_notifier(server, to=[OPS, "oncall@example.com"], cc=["lead@example.com"], bcc=["archive@example.com"])
    assert (await send_once(n)).ok
    override = a_message(labels={"email_to": "Jane Doe <jane@example.com>, bob@example.org, ops@example.com"})
    assert (await send_once(n, override)).ok
    first, second = server.mails
    assert first.rcpt_tos == ["ops@example.com", "oncall@example.com", "lead@example.com", "archive@example.com"]
    assert first.message["To"] == "Ops Team <ops@example.com>, oncall@example.com"
    # email_to replaces `to`; cc and bcc still apply; each address once in the envelope.
    assert second.rcpt_tos == ["jane@example.com", "bob@example.org", "ops@example.com", "lead@example.com",
                               "archive@example.com"]
    assert second.message["To"] == "Jane Doe <jane@example.com>, bob@example.org, ops@example.com"
    assert second.message["Cc"] == "lead@example.com"
    assert second.message["Bcc"] is None


async def test_allowed_domains_limit_per_message_recipients(smtp: Any, make_notifier: Any) -> None:
    server = smtp()
    n = make_notifier(server, allowed_domains=["example.com"])
    assert (await send_once(n, a_message(labels={"email_to": "jane@EXAMPLE.com"}))).ok
    outcome = await send_once(n, a_message(labels={"email_to": "jane@example.com, eve@evil.example.net"}))
    assert outcome.status is OutcomeStatus.PERMANENT and "allowed_domains" in (outcome.error or "")
    assert len(server.mails) == 1


# -- certificates ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_an_untrusted_certificate_is_permanent(smtp: Any, make_notifier: Any, security: str) -> None:
    server = smtp(security)
    n = make_notifier(server, security, ca_file=None)
    assert n.settings.verify_tls and n.settings.ca_file is None
    outcome = await send_once(n)
    assert outcome.status is OutcomeStatus.PERMANENT, outcome
    assert outcome.error and "certificate verification failed" in outcome.error and "ca_file" in outcome.error
    assert server.mails == []
    tested = await n.test()
    assert tested.status is OutcomeStatus.PERMANENT and "certificate" in (tested.error or "")


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_a_trusted_ca_file_or_verify_off_works(smtp: Any, make_notifier: Any, security: str) -> None:
    server = smtp(security)
    assert (await send_once(make_notifier(server, security))).ok
    assert (await send_once(make_notifier(server, security, ca_file=None, verify_tls=False))).ok
    assert len(server.mails) == 2 and all(m.tls for m in server.mails)


async def test_tls_against_a_starttls_port_is_a_clear_permanent_error(smtp: Any, make_notifier: Any) -> None:
    server = smtp()
    outcome = await send_once(make_notifier(server, "tls"))
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error and "does not speak TLS" in outcome.error


async def test_starttls_required_but_not_offered_is_permanent(smtp: Any, make_notifier: Any) -> None:
    server = smtp("none")
    outcome = await send_once(make_notifier(server, "starttls", username=None, password=None))
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error and "STARTTLS" in outcome.error
    assert server.mails == []


# -- the server's answers ----------------------------------------------------------------------------------
async def test_a_wrong_password_is_permanent_535(smtp: Any, make_notifier: Any) -> None:
    server = smtp()
    outcome = await send_once(make_notifier(server, password="wrong password"))
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error and "authentication failed: 535" in outcome.error
    assert server.mails == []


async def test_451_is_retryable_then_delivered_with_the_same_message_id(smtp: Any, make_notifier: Any) -> None:
    server = smtp()
    server.data_replies.append("451 4.3.0 try later")
    n = make_notifier(server)
    first = await send_once(n)
    assert first.status is OutcomeStatus.RETRY
    assert first.error and "451" in first.error and "try later" in first.error
    second = await send_once(n)
    assert second.ok and second.remote_id == first_id(n)
    assert len(server.seen) == 2 and server.seen[0] == server.seen[1], "a retry offers the same bytes"
    (mail,) = server.mails
    assert mail.message["Message-ID"] == second.remote_id


def first_id(n: EmailNotifier) -> str:
    return n.message_id(attempt_of(a_message()))


async def test_554_on_data_is_permanent_with_the_reply(smtp: Any, make_notifier: Any) -> None:
    server = smtp()
    server.data_replies.append("554 5.7.1 message content rejected")
    outcome = await send_once(make_notifier(server))
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error == "message refused: 554 5.7.1 message content rejected"


async def test_one_refused_recipient_of_two_is_delivered_and_reported(smtp: Any, make_notifier: Any) -> None:
    server = smtp()
    server.refuse["nobody@example.com"] = "550 5.1.1 no such user"
    n = make_notifier(server, to=[OPS, "nobody@example.com"])
    outcome = await send_once(n)
    assert outcome.status is OutcomeStatus.DELIVERED
    assert outcome.remote_id == first_id(n)
    assert outcome.error == "refused 1 of 2: nobody@example.com: 550 5.1.1 no such user"
    (mail,) = server.mails
    assert mail.rcpt_tos == ["ops@example.com"]


@pytest.mark.parametrize(("reply", "status"), [("550 5.1.1 no such user", OutcomeStatus.PERMANENT),
                                                ("450 4.2.1 mailbox busy", OutcomeStatus.RETRY)])
async def test_every_recipient_refused(smtp: Any, make_notifier: Any, reply: str, status: OutcomeStatus) -> None:
    server = smtp()
    server.refuse.update({"ops@example.com": reply, "oncall@example.com": reply})
    outcome = await send_once(make_notifier(server, to=[OPS, "oncall@example.com"]))
    assert outcome.status is status
    assert outcome.error and outcome.error.startswith("every recipient was refused")
    assert "ops@example.com" in outcome.error and "oncall@example.com" in outcome.error and reply[:3] in outcome.error


async def test_a_server_that_is_down_is_retryable(make_notifier: Any) -> None:
    n = make_notifier(None)
    outcome = await send_once(n)
    assert outcome.status is OutcomeStatus.RETRY
    assert outcome.error and "could not talk to 127.0.0.1" in outcome.error
    assert (await n.test()).status is OutcomeStatus.RETRY


async def test_a_server_slower_than_the_timeout_is_retryable(smtp: Any, make_notifier: Any) -> None:
    server = smtp()
    server.delay = 3.0
    started = time.monotonic()
    outcome = await send_once(make_notifier(server, timeout=0.3))
    assert time.monotonic() - started < 2.0
    assert outcome.status is OutcomeStatus.RETRY
    assert outcome.error and "timed out" in outcome.error


async def test_the_password_is_masked_in_errors(smtp: Any, make_notifier: Any) -> None:
    server = smtp()
    server.data_replies.append(f"554 5.7.1 rejected: password {PASSWORD} is known")
    outcome = await send_once(make_notifier(server))
    assert outcome.error and PASSWORD not in outcome.error and "…aple" in outcome.error


# -- test(): connect, TLS, AUTH, QUIT -----------------------------------------------------------------
async def test_the_connection_test_sends_nothing(smtp: Any, make_notifier: Any) -> None:
    server = smtp()
    outcome = await make_notifier(server).test()
    assert outcome.ok, outcome
    assert outcome.remote_id == f"127.0.0.1:{server.port} (STARTTLS, authenticated as {USER})"
    assert server.logins == [(USER, True)]
    assert server.mails == []
    bad = await make_notifier(server, password="nope nope").test()
    assert bad.status is OutcomeStatus.PERMANENT and "535" in (bad.error or "")


# -- settings -----------------------------------------------------------------------------------------------
def problems_of(**extra: Any) -> list[str]:
    config = {"kind": "email", "host": "smtp.example.com", "from_address": FROM, "to": [OPS], **extra}
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"mail": {k: v for k, v in config.items() if v is not None}}})
    return info.value.problems


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"security": "none"}, "allow_insecure"),
        ({"security": "ssl"}, "security"),
        ({"to": []}, "to"),
        ({"to": ["not-an-address"]}, "not a valid email address"),
        ({"to": ["a@b@example.com"]}, "email address"),
        ({"to": ["a@example.com, b@example.com"]}, "one email address"),
        ({"to": ["ops@example.com\r\nBcc: evil@example.com"]}, "line breaks"),
        ({"to": ["Ops <ops@example.com>\nX-Evil: 1"]}, "line breaks"),
        ({"cc": ["ops@"]}, "email address"),
        ({"bcc": ["@example.com"]}, "email address"),
        ({"from_address": "Alerts <alerts@example.com>"}, "from_name"),
        ({"from_address": "alerts"}, "email address"),
        ({"from_name": "Tidings\r\nBcc: evil@example.com"}, "line breaks"),
        ({"subject_prefix": "[x]\nBcc: evil@example.com"}, "line breaks"),
        ({"username": "me"}, "username and password go together"),
        ({"password": "secret-pass"}, "username and password go together"),
        ({"username": "me\r\nRCPT TO:<x@y>", "password": "p"}, "line breaks"),
        ({"host": "smtp://smtp.example.com"}, "host name"),
        ({"host": "smtp.example.com:587"}, "host name"),
        ({"port": 0}, "port"),
        ({"ca_file": "/nonexistent/ca.pem"}, "no such file"),
        ({"domain": "not a domain"}, "domain"),
        ({"allowed_domains": ["exa mple.com"]}, "domain"),
        ({"verify": False}, "verify"),
    ],
)
def test_bad_settings_are_clear_errors(extra: dict[str, Any], says: str) -> None:
    problems = problems_of(**extra)
    assert any(p.startswith("integrations.mail") and says in p for p in problems), problems


def test_password_errors_do_not_echo_it() -> None:
    problems = problems_of(password="hunter2-secret\r\n")
    assert problems and not any("hunter2-secret" in p for p in problems), problems


def test_defaults() -> None:
    s = settings_of({"kind": "email", "host": "smtp.example.com", "from_address": FROM, "to": [OPS]})
    assert s.security == "starttls" and s.effective_port == 587
    assert s.verify_tls is True and s.ca_file is None
    assert s.effective_domain == "example.com"
    assert settings_of({"kind": "email", "host": "h", "security": "tls", "from_address": FROM, "to": [OPS]}).effective_port == 465
    none = settings_of({"kind": "email", "host": "localhost", "security": "none", "allow_insecure": True,
                        "from_address": FROM, "to": [OPS]})
    assert none.effective_port == 25
    assert settings_of({"kind": "email", "host": "h", "port": 2525, "from_address": FROM, "to": [OPS]}).effective_port == 2525
    n = offline()
    assert n.effective_concurrency == 4 and n.effective_timeout == 30.0
    vault = settings_of({"kind": "email", "host": "h", "from_address": FROM, "to": [OPS], "username": "u",
                         "password": "${vault:smtp_password}"})
    assert vault.vault_refs() == {"password": "smtp_password"}
    assert PASSWORD in offline().settings.secret_values()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ops@example.com", ("", "ops@example.com")),
        (" Ops Team <ops@example.com> ", ("Ops Team", "ops@example.com")),
        ('"Ops, Team" <ops@example.com>', ("Ops, Team", "ops@example.com")),
        ("root@localhost", ("", "root@localhost")),
        ("first.last+tag@sub.example.co.uk", ("", "first.last+tag@sub.example.co.uk")),
    ],
)
def test_addresses_that_pass(value: str, expected: tuple[str, str]) -> None:
    assert split_address(value) == expected


# -- through a hub --------------------------------------------------------------------------------------------
def routed(config: dict[str, Any]) -> dict[str, Any]:
    quick = {"retry": {"base": 0.05, "cap": 0.2, "max_attempts": 20}, "breaker": {"failures": 1000}}
    return {"integrations": {"mail": {**config, **quick}}, "default": {"to": ["mail"]}}


async def test_delivered_through_a_hub_after_transient_failures(make_hub: Any, smtp: Any, certs: Certificate) -> None:
    server = smtp()
    server.data_replies.extend(["451 4.3.0 try later", "421 4.7.0 too busy"])
    server.refuse["gone@example.com"] = "550 5.1.1 no such user"
    hub = await make_hub(routed(email_config(server, certs, to=[OPS, "gone@example.com"])))
    r = await hub.notify(a_message(thread_key="disk:web-01"))

    async def delivered() -> bool:
        return (await hub.message(r.id))["deliveries"][0]["status"] == "delivered"

    await eventually(delivered)
    d = (await hub.message(r.id))["deliveries"][0]
    assert d["attempts"] == 3
    message_id = f"<{d['id']}@example.com>"
    assert d["remote_id"] == message_id
    assert d["last_error"] == "refused 1 of 2: gone@example.com: 550 5.1.1 no such user", "shown with the delivery"
    assert len(server.seen) == 3 and len(set(server.seen)) == 1, "every attempt offers the same bytes"
    (mail,) = server.mails
    assert mail.message["Message-ID"] == message_id
    assert mail.message["In-Reply-To"] == thread_root("disk:web-01", "example.com")
    assert mail.rcpt_tos == ["ops@example.com"]


async def test_a_hub_preview_and_a_dead_delivery(make_hub: Any, smtp: Any, certs: Certificate) -> None:
    server = smtp()
    hub = await make_hub(routed(email_config(server, certs, password="wrong password")))
    (target,) = hub.preview(a_message())
    assert target["kind"] == "email" and target["payload"]["subject"] == "Disk full"
    r = await hub.notify(a_message())
    d = (await hub.wait(r.id))["deliveries"][0]
    assert d["status"] == "dead" and d["attempts"] == 1
    assert "authentication failed: 535" in d["last_error"]
    assert "wrong password" not in d["last_error"]


def test_payload_is_frozen() -> None:
    payload = offline().render(a_message())
    assert isinstance(payload, EmailPayload)
    with pytest.raises(AttributeError):
        payload.subject = "x"  # type: ignore[misc]
