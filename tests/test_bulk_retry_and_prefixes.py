"""The core under the CLI's id prefixes and bulk retry, on SQLite and PostgreSQL: one prefix
lookup for every kind of id, and ``POST /api/v1/deliveries/retry``."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sink import Reply, Sink

from tidings import Message
from tidings.delivery.queries import RetryRefused, retry_deliveries
from tidings.errors import NotFound
from tidings.store.lookup import AmbiguousId, resolve_id

MESSAGES = "/api/v1/messages"


def webhook(sink: Sink) -> dict[str, Any]:
    return {"kind": "webhook", "url": sink.url + "/hook", "retry": {"max_attempts": 1}}


async def test_resolve_id_by_exact_id_or_unique_prefix(make_hub: Any) -> None:
    hub = await make_hub({"default": {"to": ["inbox"]}}, dispatch=False)
    ids = sorted([(await hub.notify(Message(f"m{i}"))).id for i in range(3)])
    async with hub.store.read() as conn:
        for i in ids:
            assert await resolve_id(conn, "message", i) == i
            assert await resolve_id(conn, "message", i[:-4]) == i
        with pytest.raises(AmbiguousId) as ambiguous:
            await resolve_id(conn, "message", ids[0][:8])
        assert ambiguous.value.candidates == ids
        assert all(i in str(ambiguous.value) for i in ids)
        for missing in ("zz", "%", "_", ids[0] + "0", " "):
            with pytest.raises(NotFound):
                await resolve_id(conn, "message", missing)
    assert await hub.resolve_id("message", ids[1]) == ids[1]


@pytest.mark.slow
async def test_bulk_retry_through_the_api(make_api: Any, sink: Sink) -> None:
    sink.default = Reply(400, body="bad field")
    api = await make_api({"integrations": {"ops": webhook(sink)}, "default": {"to": ["ops"]}})
    mids = [(await api.post(MESSAGES, json={"title": f"m{i}"})).json()["id"] for i in range(3)]
    dead = sorted([(await api.hub.wait(m))["deliveries"][0]["id"] for m in mids])
    assert [(await api.hub.delivery(d))["status"] for d in dead] == ["dead"] * 3

    r = await api.post("/api/v1/deliveries/retry", json={"integration": "ops", "status": "dead", "since": "1h"})
    assert r.status_code == 200, r.text
    assert r.json() == {"retried": dead}
    r = await api.post("/api/v1/deliveries/retry", json={"integration": "elsewhere"})
    assert r.json() == {"retried": []}

    for bad in ({"status": "delivered"}, {"since": "soon"}, {"since": -1}, {"since": 0}, {"since": "0s"}, {"integration": ""}, {"other": 1}, []):
        r = await api.post("/api/v1/deliveries/retry", json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert set(r.json()) == {"error", "detail"}
    assert (await api.post("/api/v1/deliveries/retry", auth=False, json={})).status_code == 401


async def test_retry_deliveries_filters(make_hub: Any, sink: Sink) -> None:
    sink.default = Reply(400, body="no")
    hub = await make_hub({"integrations": {"a": webhook(sink), "b": webhook(sink)}})
    got: dict[str, list[str]] = {"a": [], "b": []}
    for name in ("a", "a", "b"):
        receipt = await hub.notify(Message("x"), to=[name])
        got[name].append((await hub.wait(receipt.id))["deliveries"][0]["id"])
    async with hub.store.write() as conn:
        assert await retry_deliveries(conn, integration="b", since=3600) == got["b"]
        assert await retry_deliveries(conn, integration="a", since=3600, now=time.time() + 7200) == []
        with pytest.raises(RetryRefused):
            await retry_deliveries(conn, status="pending")
    assert await hub.retry_many(integration="a") == sorted(got["a"])
