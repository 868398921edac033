"""The syslog kind against a real rsyslog (Debian's ``rsyslogd``, started by tests/rsyslog.py on
loopback ports: imudp, imtcp, imtcp with gtls): every transport and format arrives and reads back,
octet-counting carries line breaks, a wrong CA fails clearly with nothing delivered, a restarted or
stopped receiver gets every message once it is back (at least once), and `integrations test`
connects without sending anything.

Skipped when rsyslogd is not installed, unless TIDINGS_REQUIRE_SERVICES=1 (then they fail)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually, local_context, services_required
from rsyslog import Rsyslog, available, gtls_available
from syslog_parse import leef_shown, parse_5424, parse_cef, parse_leef

from tidings import Message
from tidings.integrations.base import Attempt, OutcomeStatus
from tidings.integrations.syslog import SyslogNotifier, SyslogSettings
from tidings.message import Priority

NASTY = 'pipe | equals = backslash \\ quote " bracket ] caret ^ tab\tü 東京 😀'


def _need_rsyslog() -> None:
    if available() and gtls_available():
        return
    why = "rsyslogd (Debian packages rsyslog and rsyslog-gnutls) is not installed"
    if services_required():
        pytest.fail(f"rsyslog is required (TIDINGS_REQUIRE_SERVICES=1) but {why}")
    pytest.skip(f"{why}; set TIDINGS_REQUIRE_SERVICES=1 to fail instead")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rsyslog]:
    """One receiver for the tests that only read what arrived (each looks for its own marker)."""
    _need_rsyslog()
    with Rsyslog(tmp_path_factory.mktemp("rsyslog")) as server:
        yield server


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Rsyslog]:
    """A receiver of the test's own, to stop and restart."""
    _need_rsyslog()
    server = Rsyslog(tmp_path / "rsyslog")
    server.start()
    yield server
    server.stop()


def settings(server: Rsyslog, transport: str = "tls", **extra: Any) -> dict[str, Any]:
    port = {"udp": server.udp, "tcp": server.tcp, "tls": server.tls}[transport]
    out: dict[str, Any] = {"kind": "syslog", "host": "127.0.0.1", "port": port, "transport": transport,
                           "hostname": "web-01", "timeout": 5}
    if transport == "tls":
        out |= {"tls_ca_file": str(server.pki.ca), "tls_server_name": "localhost"}
    return out | extra


def notifier(server: Rsyslog, transport: str = "tls", **extra: Any) -> SyslogNotifier:
    return SyslogNotifier("siem", SyslogSettings(**settings(server, transport, **extra)), local_context())


def attempt(message: Message) -> Attempt:
    return Attempt(f"dlv_{uuid.uuid4().hex[:8]}", f"msg_{uuid.uuid4().hex[:8]}", 1, time.time(), message)


async def send(n: SyslogNotifier, message: Message) -> Attempt:
    a = attempt(message)
    out = await n.send(n.render(message), a)
    assert out.ok, out.error
    return a


async def arrived(server: Rsyslog, transport: str, markers: list[str], timeout: float = 10.0) -> list[str]:
    """The raw messages carrying ``markers``, in that order, once all are there."""
    found: dict[str, str] = {}

    async def check() -> bool:
        for raw in server.received(transport):
            for m in markers:
                if m in raw:
                    found[m] = raw
        return len(found) == len(markers)

    await eventually(check, timeout=timeout)
    return [found[m] for m in markers]


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
@pytest.mark.parametrize("fmt", ["rfc5424", "cef", "leef"])
async def test_each_transport_and_format_arrives_and_reads_back(shared: Rsyslog, transport: str, fmt: str) -> None:
    marker = uuid.uuid4().hex
    n = notifier(shared, transport, format=fmt, facility="local3")
    message = Message(title=f"Disk full {marker} {NASTY}", body=f"first line\nsecond {NASTY}",
                      priority=Priority.CRITICAL, labels={"service": f"db {NASTY}", "event_type": "disk.full"},
                      thread_key=f"disk:{NASTY}", dedup_key="dedup-1")
    a = await send(n, message)
    await n.close()
    (raw,) = await arrived(shared, transport, [marker])
    rec = parse_5424(raw)
    assert (rec.facility, rec.severity) == (19, 2)
    assert (rec.hostname, rec.app_name, rec.msgid) == ("web-01", "tidings", "disk.full")
    if fmt == "rfc5424":
        assert rec.bom
        assert rec.sd["tidings@32473"] == {"id": a.message_id, "delivery": a.delivery_id, "project": "default",
                                           "priority": "critical", "thread": f"disk:{NASTY}", "dedup": "dedup-1"}
        assert rec.sd["labels@32473"] == {"event_type": "disk.full", "service": f"db {NASTY}"}
        assert rec.msg == f"Disk full {marker} {NASTY}\n\nfirst line\nsecond {NASTY}"
    elif fmt == "cef":
        header, ext = parse_cef(rec.msg)
        assert header == ["tidings", "tidings", header[2], "disk.full", f"Disk full {marker} {NASTY}", "10"]
        assert ext["msg"] == f"Disk full {marker} {NASTY}\n\nfirst line\nsecond {NASTY}"
        assert ext["externalId"] == a.message_id and ext["cs5"] == a.delivery_id
        assert ext["cs2"] == f"disk:{NASTY}" and ext["cs3"] == "dedup-1"
    else:
        header, delimiter, attrs = parse_leef(rec.msg)
        assert header[3] == "disk.full" and delimiter == "^"
        assert attrs["sev"] == "10" and attrs["title"] == leef_shown(f"Disk full {marker} {NASTY}", "^")
        assert attrs["msg"] == leef_shown(f"Disk full {marker} {NASTY}\n\nfirst line\nsecond {NASTY}", "^")
        assert attrs["label.service"] == leef_shown(f"db {NASTY}", "^") and attrs["messageId"] == a.message_id
        assert attrs["devTimeFormat"] == "yyyy-MM-dd'T'HH:mm:ss.SSSZ"


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_octet_counting_carries_line_breaks_and_lf_framing_keeps_records_apart(shared: Rsyslog, transport: str) -> None:
    n = notifier(shared, transport)
    markers = [uuid.uuid4().hex for _ in range(5)]
    for m in markers:
        await send(n, Message(title=m, body="one\ntwo\n\nthree\n"))
    raws = await arrived(shared, transport, markers)
    assert [parse_5424(r).msg for r in raws] == [f"{m}\n\none\ntwo\n\nthree" for m in markers]
    assert n.connection.connects == 1, "one persistent connection"
    await n.close()
    if transport == "tcp":
        lf = notifier(shared, "tcp", framing="lf")
        markers = [uuid.uuid4().hex for _ in range(3)]
        for m in markers:
            await send(lf, Message(title=m, body="one\ntwo"))
        raws = await arrived(shared, "tcp", markers)
        assert [parse_5424(r).msg for r in raws] == [f"{m}  one two" for m in markers]
        await lf.close()


async def test_a_long_message_is_cut_and_arrives_whole(shared: Rsyslog) -> None:
    marker = uuid.uuid4().hex
    n = notifier(shared, "tls", format="cef", max_length=1000)
    await send(n, Message(title=marker, body="x=\\|😀" * 1000))
    (raw,) = await arrived(shared, "tls", [marker])
    assert len(raw.encode()) <= 1000
    assert parse_cef(parse_5424(raw).msg)[1]["msg"].endswith("…(truncated)")
    await n.close()


async def test_a_wrong_ca_fails_clearly_and_sends_nothing(shared: Rsyslog) -> None:
    n = notifier(shared, "tls", tls_ca_file=str(shared.pki.other_ca))
    before = len(shared.received("tls"))
    out = await n.send(n.render(Message(title="never")), attempt(Message(title="never")))
    assert out.status is OutcomeStatus.PERMANENT
    assert "TLS certificate verification failed for 127.0.0.1:" in (out.error or "")
    assert "tls_ca_file" in (out.error or "")
    checked = await n.test()
    assert checked.status is OutcomeStatus.PERMANENT and "certificate verification failed" in (checked.error or "")
    wrong_name = notifier(shared, "tls", tls_server_name="siem.example.com")
    out = await wrong_name.send(wrong_name.render(Message(title="never")), attempt(Message(title="never")))
    assert out.status is OutcomeStatus.PERMANENT and "siem.example.com" in (out.error or "")
    assert len(shared.received("tls")) == before
    await n.close()
    await wrong_name.close()


async def test_integrations_test_connects_and_sends_nothing(shared: Rsyslog) -> None:
    for transport in ("tls", "tcp", "udp"):
        before = len(shared.received(transport))
        out = await notifier(shared, transport).test()
        assert out.ok, out.error
        assert out.remote_id and {"tls": "TLS", "tcp": "TCP", "udp": "UDP"}[transport] in out.remote_id
        if transport == "tls":
            assert "certificate verified" in out.remote_id
        assert len(shared.received(transport)) == before


async def test_client_certificates_with_x509_certvalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With TLS 1.3 the refusal of a client without a certificate comes after the client's
    handshake: a new connection listens for it (0.3 s in production; longer here, so that a loaded
    test machine can't make rsyslog's answer late)."""
    _need_rsyslog()
    monkeypatch.setattr("tidings.integrations.syslog.transport.TLS13_SETTLE", 3.0)
    with Rsyslog(tmp_path / "x509", auth="x509") as server:
        pki = server.pki
        n = notifier(server, "tls", tls_cert_file=str(pki.client_cert), tls_key_file=str(pki.client_key))
        marker = uuid.uuid4().hex
        await send(n, Message(title=marker))
        await arrived(server, "tls", [marker])
        await n.close()
        anonymous = notifier(server, "tls")
        checked = await anonymous.test()
        assert not checked.ok and "client certificate" in (checked.error or "")
        out = await anonymous.send(anonymous.render(Message(title="never")), attempt(Message(title="never")))
        assert not out.ok and "client certificate" in (out.error or ""), "refused, not silently lost"
        await anonymous.close()
        assert not [r for r in server.received("tls") if "never" in r]


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_restarted_receiver_gets_everything_after_a_reconnect(own: Rsyslog, transport: str) -> None:
    n = notifier(own, transport)
    first = [uuid.uuid4().hex for _ in range(5)]
    for m in first:
        await send(n, Message(title=m))
    await arrived(own, transport, first)
    own.restart()  # same ports; the old connection is closed by the receiver
    second = [uuid.uuid4().hex for _ in range(5)]
    for m in second:
        await send(n, Message(title=m))
    await arrived(own, transport, first + second)
    assert n.connection.connects == 2
    await n.close()


def _routed(server: Rsyslog, **extra: Any) -> dict[str, Any]:
    quick = {"retry": {"base": 0.05, "cap": 0.3, "max_attempts": 50}, "breaker": {"min_calls": 1000}}
    return {"integrations": {"siem": {**settings(server, "tls", **extra), **quick}}, "default": {"to": ["siem"]}}


async def test_through_a_hub_retried_while_down_then_delivered(make_hub: Any, own: Rsyslog) -> None:
    hub = await make_hub(_routed(own, format="leef"))
    markers = [uuid.uuid4().hex for _ in range(3)]
    r0 = await hub.notify(Message(title=markers[0]))
    assert (await hub.wait(r0.id))["deliveries"][0]["status"] == "delivered"
    await arrived(own, "tls", markers[:1])
    own.stop()
    ids = [(await hub.notify(Message(title=m))).id for m in markers[1:]]

    async def retrying() -> bool:
        d = (await hub.message(ids[0]))["deliveries"][0]
        return d["attempts"] >= 2 and d["status"] == "retrying"

    await eventually(retrying)
    d = (await hub.message(ids[0]))["deliveries"][0]
    assert "refused the connection" in d["last_error"]
    own.start()

    async def delivered() -> bool:
        states = [(await hub.message(i))["deliveries"][0]["status"] for i in ids]
        return states == ["delivered"] * len(ids)

    await eventually(delivered, timeout=20)
    raws = await arrived(own, "tls", markers)
    assert [parse_leef(parse_5424(r).msg)[2]["title"] for r in raws] == markers
    (target,) = hub.preview(Message(title="preview"))
    assert target["kind"] == "syslog" and "LEEF:2.0|" in target["payload"]["message"]


async def test_through_a_hub_a_wrong_ca_is_dead_not_delivered(make_hub: Any, shared: Rsyslog) -> None:
    hub = await make_hub(_routed(shared, tls_ca_file=str(shared.pki.other_ca)))
    r = await hub.notify(Message(title="never delivered"))
    d = (await hub.wait(r.id))["deliveries"][0]
    assert d["status"] == "dead" and d["attempts"] == 1
    assert "TLS certificate verification failed" in d["last_error"]


async def test_a_write_that_fails_is_made_again_whole_on_a_new_connection(shared: Rsyslog) -> None:
    n = notifier(shared, "tcp")
    first = uuid.uuid4().hex
    await send(n, Message(title=first))
    stream = n.connection._stream
    assert stream is not None
    real_drain = stream.writer.drain

    async def failing_drain() -> None:
        stream.writer.drain = real_drain  # type: ignore[method-assign]
        raise ConnectionResetError("reset while writing")

    stream.writer.drain = failing_drain  # type: ignore[method-assign]
    second = uuid.uuid4().hex
    a = await send(n, Message(title=second, body="line\n" * 50))
    raws = await arrived(shared, "tcp", [first, second])
    rec = parse_5424(raws[1])
    assert rec.sd["tidings@32473"]["delivery"] == a.delivery_id and rec.msg.endswith("line\n" * 49 + "line")
    assert n.connection.connects == 2
    copies = [r for r in shared.received("tcp") if second in r]
    assert 1 <= len(copies) <= 2 and len(set(copies)) == 1, "at least once, each copy whole"
    await n.close()


async def test_new_settings_take_a_new_connection(shared: Rsyslog) -> None:
    n = notifier(shared, "tcp")
    await send(n, Message(title=uuid.uuid4().hex))
    old = n.connection
    n.reconfigure(SyslogSettings(**settings(shared, "tls", format="cef")))
    assert n.connection is not old and n.connection.transport == "tls"
    marker = uuid.uuid4().hex
    await send(n, Message(title=marker))
    (raw,) = await arrived(shared, "tls", [marker])
    assert parse_5424(raw).msg.startswith("CEF:0|")
    await n.close()
    await old.close()


async def test_the_cli_test_connects_and_names_a_wrong_ca(tmp_path: Path, shared: Rsyslog) -> None:
    import yaml
    from cli_support import tidings_async

    good = settings(shared, "tls") | {"allow_destinations": ["127.0.0.1"]}
    bad = good | {"tls_ca_file": str(shared.pki.other_ca)}
    path = tmp_path / "tidings.yaml"
    path.write_text(yaml.safe_dump({"server": {"database": f"sqlite:///{tmp_path / 'tidings.db'}"},
                                    "integrations": {"siem": good, "wrong": bad}}))
    before = len(shared.received("tls"))
    ran = await tidings_async(tmp_path, "integrations", "test", "siem", "-c", str(path), "--json")
    assert ran.code == 0 and "TLS connection to 127.0.0.1" in ran.out and "certificate verified" in ran.out, (ran.out, ran.err)
    ran = await tidings_async(tmp_path, "integrations", "test", "wrong", "-c", str(path))
    assert ran.code == 1 and "TLS certificate verification failed" in ran.out, (ran.out, ran.err)
    assert len(shared.received("tls")) == before, "a test sends nothing"


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_a_batch_arrives_whole_and_in_order_each_message_its_own_record(shared: Rsyslog, transport: str) -> None:
    n = notifier(shared, transport)
    markers = [uuid.uuid4().hex for _ in range(40)]
    messages = [Message(title=m, body="two\nlines" if i % 2 else "one") for i, m in enumerate(markers)]
    attempts = [attempt(m) for m in messages]
    writes = 0
    real = n.connection._write

    async def counting(stream: Any, data: bytes) -> None:
        nonlocal writes
        writes += 1
        await real(stream, data)

    n.connection._write = counting  # type: ignore[method-assign]
    outcomes = await n.send_batch([n.render(m) for m in messages], attempts)
    assert [o.status for o in outcomes] == [OutcomeStatus.DELIVERED] * len(markers)
    raws = await arrived(shared, transport, markers)
    recs = [parse_5424(r) for r in raws]
    assert [r.sd["tidings@32473"]["delivery"] for r in recs] == [a.delivery_id for a in attempts]
    if transport != "udp":
        assert writes == 1, "one write for the whole batch"
        assert recs[1].msg.endswith("\ntwo\nlines"), "octet counting keeps a frame's line break inside its record"
        got = [r for r in shared.received(transport) if any(m in r for m in markers)]
        assert [next(m for m in markers if m in r) for r in got] == markers, "in order, each once"
    assert n.connection.connects == 1
    await n.close()


async def test_a_failed_batch_is_every_delivery_retried_and_sent_again_whole(own: Rsyslog) -> None:
    n = notifier(own, "tls")
    own.stop()
    messages = [Message(title=uuid.uuid4().hex) for _ in range(3)]
    outcomes = await n.send_batch([n.render(m) for m in messages], [attempt(m) for m in messages])
    assert [o.status for o in outcomes] == [OutcomeStatus.RETRY] * 3
    assert all("refused the connection" in (o.error or "") for o in outcomes)
    own.start()
    outcomes = await n.send_batch([n.render(m) for m in messages], [attempt(m) for m in messages])
    assert all(o.ok for o in outcomes)
    await arrived(own, "tls", [m.title for m in messages])
    await n.close()


def test_with_a_rate_limit_messages_go_one_at_a_time(shared: Rsyslog) -> None:
    assert notifier(shared, "tls").effective_max_batch == 100
    assert notifier(shared, "tls", rate_limit="50/second").effective_max_batch == 1, "the limit counts messages"


async def test_through_a_hub_many_messages_arrive_each_once_on_one_connection(make_hub: Any, shared: Rsyslog) -> None:
    hub = await make_hub(_routed(shared, concurrency=1))
    markers = [uuid.uuid4().hex for _ in range(300)]
    receipts = await hub.notify_many([Message(title=m) for m in markers])

    async def delivered() -> bool:
        found = await hub.deliveries(status="delivered", limit=500)
        return len(found["items"]) >= len(markers)

    await eventually(delivered, timeout=20)
    await arrived(shared, "tls", markers)
    got = [r for r in shared.received("tls") if any(m in r for m in markers)]
    assert sorted(next(m for m in markers if m in r) for r in got) == sorted(markers), "each once"
    assert hub.notifiers["siem"].connection.connects == 1  # type: ignore[attr-defined]
    assert len({r.id for r in receipts}) == len(markers)
