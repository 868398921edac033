"""The splunk notifier against the HEC stand-in (tests/peers/splunk_hec.py): the event it makes,
batches of concatenated events, indexer acknowledgement, and every answer HEC documents read into
the right outcome per event."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from helpers import local_context
from peer import free_port
from peers.splunk_hec import SplunkHec
from pydantic import ValidationError

from tidings import Message
from tidings.integrations.base import Attempt, OutcomeStatus
from tidings.integrations.registry import integration_class
from tidings.integrations.splunk import SplunkNotifier, SplunkSettings
from tidings.message import Field, Link, Priority

TOKEN = "00000000-1111-2222-3333-444444444444"
D, R, P = OutcomeStatus.DELIVERED, OutcomeStatus.RETRY, OutcomeStatus.PERMANENT


def settings(url: str, **extra: Any) -> SplunkSettings:
    return SplunkSettings(kind="splunk", url=url, token=TOKEN, **{"index": "security", **extra})


def attempt(m: Message, n: int = 0) -> Attempt:
    return Attempt(f"dlv-{n}", f"msg-{n}", 1, 1_700_000_000.25 + n, m)


def a_message(n: int = 0, **kw: Any) -> Message:
    return Message(
        title=f"disk full {n}", body="/var is at 99%", priority=Priority.HIGH,
        labels={"source": "alertmanager", "env": "prod"}, fields=[Field("host", "web-01")],
        links=[Link("runbook", "https://runbooks.example.com/disk")], thread_key="disk:web-01",
        dedup_key=f"disk-{n}", **kw,
    )


@pytest.fixture
async def hec() -> AsyncIterator[SplunkHec]:
    h = SplunkHec()
    await h.start()
    yield h
    await h.stop()


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., SplunkNotifier]]:
    made: list[SplunkNotifier] = []

    def build(url: str, **extra: Any) -> SplunkNotifier:
        n = SplunkNotifier("siem", settings(url, allow_destinations=["127.0.0.1"], **extra), local_context())
        made.append(n)
        return n

    yield build
    for n in made:
        await n.close()


async def send(n: SplunkNotifier, count: int) -> list[Any]:
    messages = [a_message(i) for i in range(count)]
    return await n.send_batch([n.render(m) for m in messages], [attempt(m, i) for i, m in enumerate(messages)])


# -- settings and the event ----------------------------------------------------------------------
def test_registered_and_settings_checked() -> None:
    assert integration_class("splunk") is SplunkNotifier
    s = settings("https://splunk.example.com:8088/services/collector/event/")
    assert s.url == "https://splunk.example.com:8088"
    assert TOKEN not in repr(s) and s.secret_values() == [TOKEN]
    with pytest.raises(ValidationError, match="GUID"):
        settings("https://splunk.example.com:8088", channel="not-a-guid")
    with pytest.raises(ValidationError):
        settings("ftp://splunk.example.com")


def test_channel_is_stable_per_integration_unless_given() -> None:
    s = settings("https://splunk.example.com:8088", ack=True)
    one, again = (SplunkNotifier("siem", s, local_context()) for _ in range(2))
    other = SplunkNotifier("other", s, local_context())
    assert one.channel == again.channel != other.channel
    given = "0e8a8b2c-6f1d-4c5e-9a7b-3d2f1e0c9b8a"
    assert SplunkNotifier("siem", settings(s.url, channel=given), local_context()).channel == given


def test_event_mapping() -> None:
    n = SplunkNotifier("siem", settings("https://splunk.example.com:8088", host="tidings-1"), local_context())
    m = a_message(7)
    payload = n.render(m)
    assert n.render(m) == payload, "render is pure"
    assert payload["index"] == "security" and payload["sourcetype"] == "tidings:message"
    assert payload["source"] == "tidings" and payload["host"] == "tidings-1"
    ev = payload["event"]
    assert ev["title"] == "disk full 7" and ev["priority"] == "high" and ev["severity"] == "high"
    assert ev["fields"] == {"host": "web-01"} and ev["labels"]["env"] == "prod"
    assert ev["links"] == [{"label": "runbook", "url": "https://runbooks.example.com/disk"}]
    assert ev["thread_key"] == "disk:web-01" and ev["dedup_key"] == "disk-7"
    assert ev["project"] == "default" and ev["source"] == "alertmanager"
    assert payload["fields"] == {"priority": "high", "severity": "high", "project": "default",
                                 "thread_key": "disk:web-01", "dedup_key": "disk-7"}
    sent = orjson.loads(n.event(payload, attempt(m, 3)))
    assert sent["time"] == 1_700_000_003.25
    assert sent["event"]["id"] == "msg-3" and sent["event"]["delivery_id"] == "dlv-3"
    fyi = Message("fyi", priority="info")
    info = n.render(fyi)
    assert info["event"]["severity"] == "informational"
    assert "thread_key" not in info["fields"], "indexed fields hold strings only"
    assert "index" not in SplunkNotifier("x", SplunkSettings(kind="splunk", url="https://s:8088", token=TOKEN),
                                         local_context()).render(fyi)


def test_batch_cut_keeps_a_request_under_the_byte_bound() -> None:
    n = SplunkNotifier("siem", settings("https://splunk.example.com:8088", batch_max_bytes=4096), local_context())
    payloads = [n.render(Message(f"m{i}", body="x" * 1000)) for i in range(10)]
    cut = n.batch_cut(payloads)
    assert 1 < cut < 10
    events = b"".join(n.event(p, attempt(Message("m"), i)) for i, p in enumerate(payloads[:cut]))
    assert len(events) <= 4096
    big = [n.render(Message("big", body="x" * 10_000))]
    assert n.batch_cut(big) == 1, "an event larger than the bound still goes, alone"


# -- sending -------------------------------------------------------------------------------------
async def test_a_batch_is_one_request_of_concatenated_events(hec: SplunkHec, make: Callable[..., Any]) -> None:
    n = make(hec.url)
    outcomes = await send(n, 5)
    assert [o.status for o in outcomes] == [D] * 5
    assert hec.requests == [5]
    assert [e["event"]["delivery_id"] for e in hec.events()] == [f"dlv-{i}" for i in range(5)]


async def test_the_stand_in_refuses_a_json_array(hec: SplunkHec, make: Callable[..., Any]) -> None:
    n = make(hec.url)
    session = await n.session()
    async with session.post(hec.url + "/services/collector/event", data=b'[{"event": "a"}]') as resp:
        assert resp.status == 400
        assert await resp.json() == {"text": "Invalid data format", "code": 6, "invalid-event-number": 0}


async def test_ack_delivered_only_once_acknowledged(hec: SplunkHec, make: Callable[..., Any]) -> None:
    hec.ack, hec.ack_delay = True, 0.3
    n = make(hec.url, ack=True)
    started = time.monotonic()
    outcomes = await send(n, 3)
    assert [o.status for o in outcomes] == [D] * 3
    assert time.monotonic() - started >= 0.3
    assert hec.ack_polls >= 2
    assert outcomes[0].remote_id == f"{n.channel}/0"
    assert {i.channel for i in hec.indexed} == {n.channel}


async def test_ack_that_never_comes_is_retried(hec: SplunkHec, make: Callable[..., Any]) -> None:
    hec.ack, hec.ack_delay = True, None
    n = make(hec.url, ack=True, ack_timeout=0.3)
    outcomes = await send(n, 2)
    assert [o.status for o in outcomes] == [R, R]
    assert "not acknowledged" in (outcomes[0].error or "") and "at least once" in (outcomes[0].error or "")
    assert n.effective_timeout == pytest.approx(10.3)


async def test_ack_on_here_but_off_for_the_token(hec: SplunkHec, make: Callable[..., Any]) -> None:
    outcomes = await send(make(hec.url, ack=True), 1)
    assert outcomes[0].status is R and "ackId" in (outcomes[0].error or "")
    result = await make(hec.url, ack=True).test()
    assert result.status is P and "ACK is disabled (code 14)" in (result.error or "")


@pytest.mark.parametrize(("tokens", "disabled", "code"), [(set(), set(), 4), ({TOKEN}, {TOKEN}, 1)])
async def test_a_bad_token_disables(hec: SplunkHec, make: Callable[..., Any], tokens: set[str], disabled: set[str],
                                    code: int) -> None:
    hec.tokens, hec.disabled_tokens = tokens, disabled
    outcomes = await send(make(hec.url), 3)
    assert all(o.status is P and o.disable for o in outcomes)
    assert f"(code {code})" in (outcomes[0].error or "") and TOKEN not in (outcomes[0].error or "")
    assert hec.indexed == []


async def test_invalid_event_number_splits_the_batch(hec: SplunkHec, make: Callable[..., Any]) -> None:
    hec.fail("invalid_at", index=2)
    outcomes = await send(make(hec.url), 5)
    assert [o.status for o in outcomes] == [D, D, P, R, R]
    assert "Invalid data format (code 6)" in (outcomes[2].error or "")
    assert "event 2" in (outcomes[0].error or ""), "delivered, with a warning"
    assert [e["event"]["delivery_id"] for e in hec.events()] == ["dlv-0", "dlv-1"]


async def test_incorrect_index_is_permanent_with_splunks_reason(hec: SplunkHec, make: Callable[..., Any]) -> None:
    outcomes = await send(make(hec.url, index="forbidden"), 2)
    assert [o.status for o in outcomes] == [P, R]
    assert "Incorrect index (code 7)" in (outcomes[0].error or "")


@pytest.mark.parametrize(("fault", "kw", "after"), [
    ("busy", {"retry_after": 7}, 7.0), ("error", {}, None), ("throttled", {"retry_after": 3}, 3.0),
    ("reset", {}, None),
])
async def test_transient_failures_are_retried(hec: SplunkHec, make: Callable[..., Any], fault: str,
                                              kw: dict[str, Any], after: float | None) -> None:
    hec.fail(fault, **kw)
    outcomes = await send(make(hec.url), 3)
    assert [o.status for o in outcomes] == [R] * 3
    assert outcomes[0].retry_after == after
    assert hec.indexed == []


async def test_a_late_answer_times_out_as_a_retry(hec: SplunkHec, make: Callable[..., Any]) -> None:
    hec.fail("delay", seconds=5)
    outcomes = await send(make(hec.url, timeout=0.3), 2)
    assert [o.status for o in outcomes] == [R, R]


async def test_down_is_retried() -> None:
    n = SplunkNotifier("siem", settings(f"http://127.0.0.1:{free_port()}", allow_destinations=["127.0.0.1"]),
                       local_context())
    try:
        (outcome,) = await n.send_batch([n.render(a_message())], [attempt(a_message())])
    finally:
        await n.close()
    assert outcome.status is R


# -- the connection test -------------------------------------------------------------------------
async def test_test_checks_health_and_token_without_an_event(hec: SplunkHec, make: Callable[..., Any]) -> None:
    result = await make(hec.url).test()
    assert result.status is D and "token accepted" in (result.remote_id or "")
    hec.ack = True
    result = await make(hec.url, ack=True).test()
    assert result.status is D and "acknowledgement on" in (result.remote_id or "")
    assert hec.indexed == [] and hec.requests == [], "no event was sent"
    hec.tokens = set()
    bad = (await make(hec.url).test()).as_test()
    assert bad.status is P and "Invalid token" in (bad.error or "") and "would disable" in (bad.error or "")
    hec.unhealthy = True
    sick = await make(hec.url).test()
    assert sick.status is R and "unhealthy" in (sick.error or "")
