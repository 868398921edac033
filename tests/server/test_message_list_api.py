"""``GET .../messages`` (messages newest first, their deliveries counted, filtered by delivery status,
integration, priority and age) and ``GET .../deliveries/summary`` (a dashboard's figures), each
seeing its own project only. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from sink import Reply, Sink
from sqlalchemy import update

from tidings.store.tables import deliveries

ALPHA = "/api/v1/projects/alpha"
CONFIG: dict[str, Any] = {
    "integrations": {
        "inbox": {"kind": "inbox"},
        "alpha-inbox": {"kind": "inbox", "project": "alpha"},
    },
}


async def test_messages_list_newest_first_with_their_deliveries_counted_and_filtered(make_api: Any, sink: Sink) -> None:
    sink.default = Reply(500)
    api = await make_api({**CONFIG, "integrations": {**CONFIG["integrations"], "hook": {
        "kind": "webhook", "url": sink.url + "/h", "retry": {"max_attempts": 1}}}}, dispatch=False)
    ids = []
    for i, (to, priority) in enumerate([(["inbox"], "low"), (["inbox", "hook"], "critical"), (["hook"], "low")]):
        r = await api.post("/api/v1/messages", json={"title": f"m{i}", "to": to, "priority": priority,
                                                     "labels": {"n": str(i)}})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    alpha = await api.post(f"{ALPHA}/messages", json={"title": "alpha's", "to": ["alpha-inbox"]})
    scheduled = (await api.post("/api/v1/messages", json={"title": "later", "to": ["inbox"], "delay": "1h"})).json()
    async with api.hub.store.write() as conn:  # the hook's delivery of m2 died
        await conn.execute(update(deliveries).where(deliveries.c.message_id == ids[2]).values(status="dead"))

    page = (await api.get("/api/v1/messages")).json()
    assert [m["id"] for m in page["items"]] == [scheduled["id"], *reversed(ids)] and page["next"] is None
    later, m2, m1, m0 = page["items"]
    assert later["status"] == "scheduled" and later["send_at"] > time.time() and later["deliveries"] == {}
    assert m1 == {**m1, "title": "m1", "priority": "critical", "labels": {"n": "1"}, "status": "routed",
                  "deliveries": {"pending": 2}, "integrations": ["hook", "inbox"], "send_at": None}
    assert m2["deliveries"] == {"dead": 1} and m0["integrations"] == ["inbox"]

    async def titles(base: str = "/api/v1", **params: Any) -> list[str]:
        r = await api.get(f"{base}/messages", params=params)
        assert r.status_code == 200, r.text
        return [m["title"] for m in r.json()["items"]]

    assert await titles(status="dead") == ["m2"]
    assert await titles(integration="hook") == ["m2", "m1"]
    assert await titles(integration="hook", status="pending") == ["m1"]
    assert await titles(priority="low") == ["m2", "m0"]
    assert await titles(since="1h") == ["later", "m2", "m1", "m0"]
    assert await titles(integration="alpha-inbox") == []  # another project's
    assert await titles(ALPHA) == ["alpha's"] and alpha.status_code == 202
    first = (await api.get("/api/v1/messages", params={"limit": 2})).json()
    rest = (await api.get("/api/v1/messages", params={"limit": 2, "before": first["next"]})).json()
    assert [m["title"] for m in first["items"] + rest["items"]] == ["later", "m2", "m1", "m0"]
    for bad in ({"status": "lost"}, {"priority": "urgent"}, {"since": "yesterday"}, {"limit": 0}, {"statsu": "dead"}):
        assert (await api.get("/api/v1/messages", params=bad)).status_code == 422, bad


async def test_the_delivery_summary_counts_per_minute_what_waits_and_what_is_dead(make_api: Any) -> None:
    api = await make_api(CONFIG, dispatch=False)
    for i in range(3):
        assert (await api.post("/api/v1/messages", json={"title": f"s{i}", "to": ["inbox"]})).status_code == 202
    assert (await api.post(f"{ALPHA}/messages", json={"title": "a", "to": ["alpha-inbox"]})).status_code == 202
    async with api.hub.store.write() as conn:
        first = (await conn.execute(deliveries.select().order_by(deliveries.c.id).limit(1))).first()
        await conn.execute(update(deliveries).where(deliveries.c.id == first.id).values(status="dead"))

    r = await api.get("/api/v1/deliveries/summary", params={"minutes": 5})
    assert r.status_code == 200, r.text
    summary = r.json()
    assert len(summary["minutes"]) == 5 and summary["minutes"][-1]["at"] <= time.time() < summary["minutes"][-1]["at"] + 60
    totals: dict[str, int] = {}
    for minute in summary["minutes"]:
        for status, n in minute["counts"].items():
            totals[status] = totals.get(status, 0) + n
    assert totals == {"dead": 1, "pending": 2}
    assert summary["waiting"] == 2 and summary["dead"] == 1 and summary["oldest_waiting_at"] <= time.time()
    alpha = (await api.get(f"{ALPHA}/deliveries/summary")).json()
    assert len(alpha["minutes"]) == 60 and alpha["waiting"] == 1 and alpha["dead"] == 0
    assert (await api.get("/api/v1/deliveries/summary", params={"minutes": 0})).status_code == 422
