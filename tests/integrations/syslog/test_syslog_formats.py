"""The syslog kind without a receiver: settings, the severity table, every format's escaping read
back by an independent parser (tests/integrations/syslog/syslog_parse.py), length bounds that keep
the message valid, the preview, and the outbound guard."""

from __future__ import annotations

import time
from typing import Any

import pytest
from helpers import local_context
from syslog_parse import leef_header_shown, leef_shown, parse_5424, parse_cef, parse_leef

from tidings import Message
from tidings.config import parse_config
from tidings.errors import ConfigError
from tidings.integrations.base import TRUNCATED, Attempt, Context, OutcomeStatus
from tidings.integrations.registry import integration_class
from tidings.integrations.syslog import SyslogNotifier, SyslogSettings
from tidings.integrations.syslog.formats import SEVERITY, sd_value
from tidings.message import Priority

NASTY = 'pipe | equals = backslash \\ quote " bracket ] caret ^ newline\nsecond line\r\nthird — ü 東京 😀'


ONE_BREAK = NASTY.replace("\r\n", "\n")
"""CEF escapes a line break as ``\\n`` (a CR LF is one break)."""
HOSTILE = "pipe | back \\ eq = caret ^ tilde ~ bar \u00a6 tab\tnl\ncrlf\r\ncr\rbel\x07esc\x1bdel\x7f ü 東京 😀"
"""Every character a CEF or LEEF record could trip on (a message refuses NUL itself)."""


def notifier(**settings: Any) -> SyslogNotifier:
    base = {"kind": "syslog", "host": "127.0.0.1", "transport": "tcp", "hostname": "web-01", "procid": "42"}
    return SyslogNotifier("siem", SyslogSettings(**(base | settings)), local_context())


def attempt(message: Message, delivery: str = "dlv_1", when: float = 1_796_551_819.123) -> Attempt:
    return Attempt(delivery, "msg_1", 1, when, message)


def nasty(**extra: Any) -> Message:
    return Message(title=f"Title {NASTY}", body=f"Body {NASTY}", priority=Priority.HIGH,
                   labels={"service": f"db {NASTY}", "event_type": "disk.full", "k" * 40: "v"},
                   thread_key=f"thread {NASTY}", dedup_key="dedup\\]\"", fields={"host": "web-01"}, **extra)


def sent(n: SyslogNotifier, message: Message, **kw: Any) -> str:
    return n.frame(n.render(message), attempt(message, **kw)).decode()


def test_registered() -> None:
    assert integration_class("syslog") is SyslogNotifier


@pytest.mark.parametrize(("priority", "severity"), [
    (Priority.CRITICAL, 2), (Priority.HIGH, 3), (Priority.MEDIUM, 4), (Priority.LOW, 5), (Priority.INFO, 6),
])
def test_severity_from_priority_and_facility_from_settings(priority: Priority, severity: int) -> None:
    assert SEVERITY[priority] == severity
    rec = parse_5424(sent(notifier(facility="local4"), Message(title="x", priority=priority)))
    assert (rec.facility, rec.severity) == (20, severity)
    assert parse_5424(sent(notifier(facility="auth"), Message(title="x", priority=priority))).facility == 4


def test_rfc5424_fields_and_structured_data_read_back() -> None:
    rec = parse_5424(sent(notifier(app_name="my app"), nasty()))
    assert (rec.hostname, rec.app_name, rec.procid, rec.msgid) == ("web-01", "my_app", "42", "disk.full")
    assert rec.timestamp == "2026-12-06T10:10:19.123000Z"
    sd = rec.sd["tidings@32473"]
    assert sd == {"id": "msg_1", "delivery": "dlv_1", "project": "default", "priority": "high",
                  "thread": f"thread {NASTY}", "dedup": 'dedup\\]"'}
    assert rec.sd["labels@32473"] == {"event_type": "disk.full", "service": f"db {NASTY}", "k" * 32: "v"}
    assert rec.bom and rec.msg.startswith(f"Title {NASTY}\n\nBody {NASTY}")
    assert rec.msg.endswith("host: web-01")


def test_sd_escaping_is_rfc5424_6_3_3() -> None:
    assert sd_value('a"b\\c]d') == 'a\\"b\\\\c\\]d'


def test_cef_reads_back() -> None:
    header, ext = parse_cef(parse_5424(sent(notifier(format="cef", vendor="ACME|x", product_version="1.2"), nasty())).msg)
    assert header == ["ACME|x", "tidings", "1.2", "disk.full", f"Title {NASTY}".replace("\r\n", " ").replace("\n", " "), "8"]
    assert ext["msg"].startswith(f"Title {ONE_BREAK}\n\nBody {ONE_BREAK}")
    assert ext["rt"] == "1796551819123" and ext["externalId"] == "msg_1" and ext["cs5"] == "dlv_1"
    assert ext["cs2Label"] == "threadKey" and ext["cs2"] == f"thread {ONE_BREAK}"
    assert ext["cs3"] == 'dedup\\]"' and ext["cs1"] == "default" and ext["dvchost"] == "web-01"
    assert f"service=db {ONE_BREAK}" in ext["cs4"]


@pytest.mark.parametrize("delimiter", ["^", "\t", "~", "\u00a6"])
def test_leef_reads_back(delimiter: str) -> None:
    raw = sent(notifier(format="leef", leef_delimiter=delimiter), nasty())
    rec = parse_5424(raw)
    assert not rec.bom and rec.sd == {}
    header, declared, attrs = parse_leef(rec.msg)
    assert declared == delimiter
    assert header[3] == "disk.full"
    assert attrs["devTime"] == "2026-12-06T10:10:19.123+0000"
    assert attrs["devTimeFormat"] == "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
    assert attrs["sev"] == "8" and attrs["cat"] == "high"
    assert attrs["title"] == leef_shown(f"Title {NASTY}", delimiter)
    assert attrs["msg"].startswith(leef_shown(f"Title {NASTY}\n\nBody {NASTY}", delimiter))
    assert attrs["threadKey"] == leef_shown(f"thread {NASTY}", delimiter)
    assert attrs["label.service"] == leef_shown(f"db {NASTY}", delimiter)
    assert attrs["dedupKey"] == 'dedup\\]"', "a backslash is an ordinary character in LEEF"
    assert attrs["messageId"] == "msg_1" and attrs["deliveryId"] == "dlv_1"
    # The sender, but not as an identity property (QRadar's asset profiler would take it for an asset's).
    assert attrs["tidingsHost"] == rec.hostname and not any(k.startswith("ident") for k in attrs)


@pytest.mark.parametrize("delimiter", ["^", "\t", "~", "\u00a6"])
def test_leef_hostile_values_parse_as_qradar_reads_them(delimiter: str) -> None:
    """No escapes exist in LEEF: what can't be carried becomes a space, everything else arrives as it
    was (backslashes, '=' and '|' in values, non-ASCII), and every attribute stays its own."""
    m = Message(title=f"T {HOSTILE}", body=f"B {HOSTILE}", labels={"event_type": f"ev|{HOSTILE}", "svc": HOSTILE},
                thread_key=HOSTILE, dedup_key=HOSTILE)
    n = notifier(format="leef", leef_delimiter=delimiter, vendor=f"V|{HOSTILE}", product="P\\x",
                 product_version="1|2")
    header, declared, attrs = parse_leef(parse_5424(sent(n, m)).msg)
    assert declared == delimiter
    assert header == [leef_header_shown(f"V|{HOSTILE}"), "P\\x", "1 2", leef_header_shown(f"ev|{HOSTILE}")]
    assert attrs["title"] == leef_shown(f"T {HOSTILE}", delimiter)
    for key in ("threadKey", "dedupKey", "label.svc"):
        assert attrs[key] == leef_shown(HOSTILE, delimiter)
    assert "\\ eq = " in attrs["title"] and "pipe | " in attrs["title"] and "ü 東京 😀" in attrs["title"]
    assert delimiter not in attrs["title"] and "\x07" not in attrs["title"]
    assert attrs["sev"] == "5" and attrs["resolves"] == "false" and attrs["messageId"] == "msg_1"
    assert attrs["msg"] == leef_shown(f"T {HOSTILE}\n\nB {HOSTILE}", delimiter)


def test_cef_hostile_values_parse_as_arcsight_reads_them() -> None:
    """ArcSight's rules: '\\' and '|' escaped in the header, '\\' and '=' in extension values,
    line breaks in values as \\n / \\r; tidings turns other control characters (BEL, ESC) into spaces."""
    m = Message(title=f"T {HOSTILE}", body=HOSTILE, labels={"event_type": f"ev|{HOSTILE}"}, thread_key=HOSTILE)
    header, ext = parse_cef(parse_5424(sent(notifier(format="cef", vendor=f"V|{HOSTILE}"), m)).msg)
    controls = str.maketrans({"\x07": " ", "\x1b": " ", "\x7f": " "})

    def in_header(value: str) -> str:
        return value.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").translate(controls)

    assert header[0] == in_header(f"V|{HOSTILE}") and header[3] == in_header(f"ev|{HOSTILE}")
    assert header[4] == in_header(f"T {HOSTILE}") and header[5] == "5"
    assert ext["cs2"] == HOSTILE.replace("\r\n", "\n").translate(controls)
    assert ext["msg"].startswith(f"T {HOSTILE}".replace("\r\n", "\n").translate(controls))


@pytest.mark.parametrize("fmt", ["rfc5424", "cef", "leef"])
@pytest.mark.parametrize("limit", [480, 700, 1024])
def test_a_long_message_is_cut_and_stays_valid(fmt: str, limit: int) -> None:
    body = ("\\" * 7 + "=|^é😀" + "x" * 13) * 2000
    raw = notifier(format=fmt, max_length=limit).frame(notifier(format=fmt).render(Message(title="t", body=body)),
                                                        attempt(Message(title="t")))
    assert len(raw) <= limit
    text = raw.decode("utf-8")  # never half a character
    assert text.endswith(TRUNCATED)
    rec = parse_5424(text)
    if fmt == "cef":
        assert parse_cef(rec.msg)[1]["msg"].endswith(TRUNCATED)
    elif fmt == "leef":
        assert parse_leef(rec.msg)[2]["msg"].endswith(TRUNCATED)
    else:
        assert rec.sd["tidings@32473"]["id"] == "msg_1"


def test_huge_labels_leave_the_structured_data_but_the_ids_stay() -> None:
    message = Message(title="t", labels={f"k{i}": "v" * 400 for i in range(20)})
    raw = notifier(max_length=2048).frame(notifier(max_length=2048).render(message), attempt(message))
    assert len(raw) <= 2048
    rec = parse_5424(raw.decode())
    assert "labels@32473" not in rec.sd and rec.sd["tidings@32473"]["delivery"] == "dlv_1"


def test_lf_framing_keeps_one_line_and_octet_counting_keeps_newlines() -> None:
    m = Message(title="a", body="b\nc", thread_key="t\n1", labels={"k": "v\r\nw"})
    lf = notifier(framing="lf")
    raw = lf.frame(lf.render(m), attempt(m))
    assert b"\n" not in raw and lf.connection.framed(raw) == raw + b"\n"
    octet = notifier()
    raw = octet.frame(octet.render(m), attempt(m))
    assert b"\n" in raw and octet.connection.framed(raw) == str(len(raw)).encode() + b" " + raw
    assert notifier(transport="udp").connection.framed(raw) == raw


def test_render_is_pure_and_a_retry_sends_the_same_bytes() -> None:
    n = notifier(format="leef")
    m = nasty()
    assert n.render(m) == n.render(m)
    assert n.frame(n.render(m), attempt(m)) == n.frame(n.render(m), attempt(m))


def test_preview_shows_what_the_delivery_fills_in() -> None:
    n = notifier(format="cef")
    shown = n.preview(n.render(Message(title="Disk full")))
    assert shown["format"] == "cef" and shown["transport"] == "tcp"
    assert "(time of sending)" in shown["message"] and "externalId=(message id)" in shown["message"]
    assert "\u2060" not in shown["message"]


def test_settings() -> None:
    assert SyslogSettings(kind="syslog", host="h").effective_port == 6514
    assert SyslogSettings(kind="syslog", host="h", transport="udp").effective_max_length == 2048
    bad: list[dict[str, Any]] = [
        {"transport": "tls", "framing": "lf"},
        {"transport": "tcp", "tls_ca_file": "/etc/hostname"},
        {"tls_ca_file": "/no/such/file.pem"},
        {"leef_delimiter": "="},
        {"leef_delimiter": "a"},
        {"leef_delimiter": "\x00"},
        {"leef_delimiter": "\n"},
        {"leef_delimiter": " "},
        {"leef_delimiter": "|"},
        {"leef_delimiter": "\U0001f600"},
        {"facility": "local9"},
        {"host": "https://siem.example.com"},
        {"max_length": 100},
    ]
    for extra in bad:
        with pytest.raises(ValueError):
            SyslogSettings(**({"kind": "syslog", "host": "h"} | extra))
    with pytest.raises(ConfigError):
        parse_config({"integrations": {"s": {"kind": "syslog", "host": "h", "transport": "tls", "framing": "lf"}}})
    vault = SyslogSettings(kind="syslog", host="h", tls_key_password="${vault:syslog_key}")
    assert vault.vault_refs() == {"tls_key_password": "syslog_key"}
    assert "hunter2" in SyslogSettings(kind="syslog", host="h", tls_key_password="hunter2").secret_values()


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_the_outbound_guard_applies(transport: str) -> None:
    s = SyslogSettings(kind="syslog", host="127.0.0.1", port=9, transport=transport)
    n = SyslogNotifier("siem", s, Context(store=None, threads=None))  # type: ignore[arg-type]
    m = Message(title="x")
    out = await n.send(n.render(m), attempt(m))
    assert out.status is OutcomeStatus.PERMANENT and "loopback" in (out.error or "")
    assert "allow_destinations" in (out.error or "")
    assert (await n.test()).status is OutcomeStatus.PERMANENT
    await n.close()


async def test_nothing_listening_is_retryable() -> None:
    from peer import free_port

    n = notifier(port=free_port())
    m = Message(title="x")
    started = time.monotonic()
    out = await n.send(n.render(m), attempt(m))
    assert out.status is OutcomeStatus.RETRY and "refused the connection" in (out.error or "")
    assert time.monotonic() - started < 5
    await n.close()


async def test_udp_reports_a_port_unreachable_on_the_next_send() -> None:
    import socket

    from helpers import eventually

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    n = notifier(transport="udp", port=port)
    m = Message(title="x")
    assert (await n.send(n.render(m), attempt(m))).ok, "UDP can't know yet"

    async def icmp_seen() -> bool:
        udp = n.connection._udp
        return udp is not None and udp[1].error is not None

    await eventually(icmp_seen)
    out = await n.send(n.render(m), attempt(m))
    assert out.status is OutcomeStatus.RETRY and "refused" in (out.error or "")
    await n.close()


async def test_a_wrong_key_password_is_permanent_and_never_shown(tmp_path: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    from peer import free_port
    from rsyslog import make_pki

    pki = make_pki(tmp_path)
    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"the right one")))
    n = notifier(transport="tls", port=free_port(), tls_ca_file=str(pki.ca), tls_cert_file=str(pki.client_cert),
                 tls_key_file=str(encrypted), tls_key_password="hunter2-wrong")
    out = await n.test()
    assert out.status is OutcomeStatus.PERMANENT and "could not load the TLS files" in (out.error or "")
    assert "hunter2" not in repr(out)
    await n.close()


async def test_a_receiver_that_stops_reading_times_out_within_the_timeout() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # connections complete in the backlog; nothing ever reads them
        n = notifier(port=listener.getsockname()[1], timeout=0.5, max_length=65_000)
        m = Message(title="x", body="y" * 60_000)
        for _ in range(2_000):
            started = time.monotonic()
            out = await n.send(n.render(m), attempt(m))
            if not out.ok:
                break
        assert out.status is OutcomeStatus.RETRY and "timed out talking to 127.0.0.1:" in (out.error or "")
        assert time.monotonic() - started < 2.0
        assert n.connection._stream is None, "a connection cut mid-frame is never used again"
        await n.close()
