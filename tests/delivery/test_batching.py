"""The dispatcher's batches (``BatchNotifier``, here the splunk kind against its HEC stand-in), on
SQLite and PostgreSQL: one request is one send for the rate limit and the breaker, a notifier that
breaks mid-batch loses nothing, and two workers sharing PostgreSQL send each delivery once."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import all_status, eventually, first_deliveries, queued
from peers.splunk_hec import SplunkHec

from tidings import Message
from tidings.integrations.splunk import SplunkNotifier

TOKEN = "00000000-1111-2222-3333-444444444444"


@pytest.fixture
async def hec() -> AsyncIterator[SplunkHec]:
    h = SplunkHec()
    await h.start()
    yield h
    await h.stop()


def siem(hec: SplunkHec, **extra: Any) -> dict[str, Any]:
    ops = {"kind": "splunk", "url": hec.url, "token": TOKEN,
           "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 100}, **extra}
    return {"integrations": {"siem": ops}, "default": {"to": ["siem"]}, "dispatcher": {"poll_interval": 0.1}}


async def test_a_request_counts_once_for_the_rate_limit(make_hub: Any, hec: SplunkHec) -> None:
    # 2 requests in any second: the third waits about a second. Counted per delivery, the 20
    # deliveries would take ten seconds.
    config = siem(hec, batch_max_events=5, rate_limit="2/second", burst=1)
    ids = await queued(make_hub, config, [Message(f"m{i}") for i in range(20)])
    hub = await make_hub(config)
    await all_status(hub, ids)
    assert hec.requests == [5, 5, 5, 5]
    assert hec.arrivals[2] - hec.arrivals[0] >= 0.9, "the limit holds the third request back"
    assert hec.arrivals[3] - hec.arrivals[0] < 5, "a request of five counts as one"


async def test_a_failed_request_is_one_failure_for_the_breaker(make_hub: Any, hec: SplunkHec) -> None:
    # Counted per delivery, ten failed events would open a breaker that opens at two failures.
    config = siem(hec, breaker={"min_calls": 2, "failure_rate": 1.0, "cool_off": 30})
    ids = await queued(make_hub, config, [Message(f"m{i}") for i in range(10)])
    hec.fail("busy", retry_after=0)
    hub = await make_hub(config)
    done = await all_status(hub, ids)
    assert hub.dispatcher.breaker_state("siem") == "closed"
    assert {d["attempts"] for d in done} == {2} and sum(hec.requests) == 10
    assert len(hec.arrivals) <= 1 + 10 // 2, "the ten were one request, then batches again"


class Broken(Exception):
    pass


async def test_a_notifier_that_raises_or_miscounts_loses_nothing(make_hub: Any, hec: SplunkHec,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real = SplunkNotifier.send_batch
    calls = 0

    async def flaky(self: SplunkNotifier, payloads: list[Any], attempts: list[Any]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Broken("boom")
        if calls == 2:
            return (await real(self, payloads, attempts))[:-1]  # one outcome short: all retried
        return await real(self, payloads, attempts)

    monkeypatch.setattr(SplunkNotifier, "send_batch", flaky)
    config = siem(hec)
    ids = await queued(make_hub, config, [Message(f"m{i}") for i in range(8)])
    done = await all_status(await make_hub(config), ids)
    assert {d["attempts"] for d in done} == {3}
    assert Counter(e["event"]["delivery_id"] for e in hec.events()) == Counter({d["id"]: 2 for d in done}), \
        "the miscounted request was sent, so it is retried (at least once)"


async def test_shutdown_hands_a_batch_back(make_hub: Any, hec: SplunkHec) -> None:
    config = siem(hec, timeout=30)
    ids = await queued(make_hub, config, [Message(f"m{i}") for i in range(6)])
    hec.fail("delay", seconds=30)
    hub = await make_hub(config)
    await eventually(lambda: _arrived(hec))
    await hub.stop(timeout=0.2)
    rows = await first_deliveries(await make_hub(config, dispatch=False), ids)
    assert {d["status"] for d in rows} == {"pending"} and {d["attempts"] for d in rows} == {0}
    assert all("shutdown" in (d["last_error"] or "") for d in rows)


async def _arrived(hec: SplunkHec) -> bool:
    return bool(hec.arrivals)


@pytest.mark.parametrize("db", ["postgresql"])
async def test_two_workers_send_each_delivery_once(make_hub: Any, hec: SplunkHec) -> None:
    config = siem(hec, batch_max_events=10, concurrency=2)
    writer = await make_hub(config, dispatch=False)
    workers = [await make_hub(config), await make_hub(config)]
    ids = [r.id for r in await writer.notify_many([Message(f"m{i}") for i in range(200)])]
    done = await all_status(workers[0], ids, timeout=30)
    indexed = Counter(e["event"]["delivery_id"] for e in hec.events())
    assert indexed == Counter({d["id"]: 1 for d in done}), "each delivery sent exactly once"
    assert len(hec.requests) < 200 and max(hec.requests) <= 10
