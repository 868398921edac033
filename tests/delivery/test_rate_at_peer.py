"""Rate limits hold where the peer counts them, at its arrivals: a send holds its slot until its
answer, and gives it back whatever ends it (an exception, the watchdog, a shutdown)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fake_teams import FakeTeams
from helpers import eventually, raise_once
from peer import Peer
from sink import Reply

from tidings import Message
from tidings.integrations.base import Outcome

pytestmark = pytest.mark.parametrize("db", ["sqlite"])  # the limiter is in memory: one store is enough


def hook(peer: Peer, **extra: Any) -> dict[str, Any]:
    return {"kind": "webhook", "url": peer.url + "/hook", "rate_limit": "1/second", "breaker": {"failures": 1000},
            "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 100}, **extra}


def routed(ops: dict[str, Any]) -> dict[str, Any]:
    return {"integrations": {"ops": ops}, "default": {"to": ["ops"]}}


async def delivered(hub: Any, message_id: str) -> dict[str, Any]:
    async def done() -> bool:
        return (await hub.message(message_id))["deliveries"][0]["status"] == "delivered"

    await eventually(done, timeout=15.0)
    delivery: dict[str, Any] = (await hub.message(message_id))["deliveries"][0]
    return delivery


def in_flight(hub: Any, key: str = "ops") -> int:
    limiter = hub.dispatcher.lanes[key].limiter
    window = limiter._windows.get(key)
    return window.in_flight if window is not None else 0


async def test_teams_arrivals_keep_the_rate_when_the_first_arrives_late(make_hub: Any, teams: FakeTeams) -> None:
    """4 requests a second at Teams, counted where they arrive: the first is handled 300 ms late (a
    slow connection set-up), so the 5th... must wait for a second after its answer, not its start."""
    teams.arrive_late(0.3)
    hub = await make_hub({"integrations": {"chat": {"kind": "teams", "webhook_url": teams.connector_url(),
                                                    "breaker": {"failures": 1000}}},
                          "default": {"to": ["chat"]}})
    assert hub.notifiers["chat"].effective_rate_limit == "4/second"
    receipts = await hub.notify_many([Message(f"m{i}") for i in range(9)])
    for r in receipts:
        await delivered(hub, r.id)
    arrivals = sorted(teams.arrivals)
    assert len(arrivals) == 9
    gaps = [arrivals[i + 4] - arrivals[i] for i in range(len(arrivals) - 4)]
    assert min(gaps) >= 1.0, f"at most 4 arrivals in any second at the peer: {[round(g, 4) for g in gaps]}"


async def test_a_send_that_raises_gives_its_slot_back(make_hub: Any, peer: Peer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    hub = await make_hub(routed(hook(peer)))
    raise_once(monkeypatch, hub.notifiers["ops"])
    first = await hub.notify(Message("after a raise"))
    assert (await delivered(hub, first.id))["attempts"] == 2, "the 1/s slot came back: the retry got one"
    second = await hub.notify(Message("and on"))
    await delivered(hub, second.id)
    assert in_flight(hub) == 0


async def test_a_send_the_watchdog_cancels_gives_its_slot_back(make_hub: Any, peer: Peer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from tidings.delivery import sending

    monkeypatch.setattr(sending, "TIMEOUT_GRACE", 0.0)  # the watchdog's deadline, set as the send starts
    hub = await make_hub(routed(hook(peer, timeout=0.1)))
    notifier = hub.notifiers["ops"]
    real = notifier.send
    hung = asyncio.Event()

    async def hangs_once(payload: Any, attempt: Any) -> Outcome:
        if not hung.is_set():
            hung.set()
            await asyncio.Event().wait()  # past its own timeout: only the watchdog ends it
        return await real(payload, attempt)

    monkeypatch.setattr(notifier, "send", hangs_once)
    r = await hub.notify(Message("after a hang"))
    d = await delivered(hub, r.id)
    assert d["attempts"] == 2 and hung.is_set()
    assert in_flight(hub) == 0


async def test_a_send_cut_short_by_shutdown_gives_its_slot_back(make_hub: Any, peer: Peer) -> None:
    peer.script(Reply(delay=60))
    hub = await make_hub(routed(hook(peer, timeout=30)))
    await hub.notify(Message("stuck"))
    await peer.wait_for(1)
    assert in_flight(hub) == 1
    lane = hub.dispatcher.lanes["ops"]
    await hub.stop(timeout=0.2)
    assert lane.limiter._windows["ops"].in_flight == 0
