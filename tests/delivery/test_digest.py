"""Grouping and digests: Alertmanager's group_wait / group_interval / repeat_interval."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from helpers import eventually

from tidings import Message


def grouped_config(**route: Any) -> dict[str, Any]:
    return {
        "routes": [
            {
                "name": "alerts",
                "match": {"labels": {"source": "alertmanager"}},
                "to": ["inbox"],
                "group_by": ["alertname", "host"],
                "group_wait": 0.3,
                "group_interval": 1.0,
                "repeat_interval": 3600,
                **route,
            }
        ]
    }


def alert(title: str, host: str = "web-01", **extra: Any) -> Message:
    return Message(title, labels={"source": "alertmanager", "alertname": "DiskFull", "host": host}, **extra)


async def inbox_titles(hub: Any) -> list[str]:
    return [i["message"]["title"] for i in reversed((await hub.inbox(limit=500))["items"])]


async def test_a_storm_reaches_the_channel_as_one_digest_then_at_most_one_update_per_interval(make_hub: Any) -> None:
    hub = await make_hub(grouped_config())
    storm = [alert("disk_full on web-01") for _ in range(990)] + [alert(f"inode pressure {i % 2}") for i in range(10)]
    started = time.monotonic()
    receipts = await hub.notify_many(storm)
    assert {d.status for r in receipts for d in r.deliveries} == {"grouped"}

    async def one_digest() -> bool:
        return len(await inbox_titles(hub)) == 1

    await eventually(one_digest, timeout=10)
    assert time.monotonic() - started >= 0.3
    (title,) = await inbox_titles(hub)
    assert title == "1,000 messages: 990 × disk_full on web-01, 5 × inode pressure 0, …"
    # Nothing is sent before group_wait, by the stored times (an inbox read right after storing
    # the storm raced the flush: storing 1,000 messages on a loaded machine can take 0.3 s).
    digest_id = (await hub.inbox())["items"][0]["message_id"]
    stored_at, digest_at = [(await hub.message(i))["created_at"] for i in (receipts[0].id, digest_id)]
    assert digest_at - stored_at >= 0.3, "nothing is sent before group_wait"
    item = (await hub.inbox())["items"][0]["message"]
    assert dict(item["fields"]) == {"Group": "alertname=DiskFull, host=web-01", "New": "1,000", "In all": "1,000",
                                    "Since": dict(item["fields"])["Since"]}
    assert item["thread_key"].startswith("digest:alerts:")
    await hub.notify_many([alert("disk_full on web-01") for _ in range(5)])

    async def two_digests() -> bool:
        return len(await inbox_titles(hub)) == 2

    await eventually(two_digests, timeout=10)
    newest, oldest = (await hub.inbox())["items"][:2]
    flushed = [(await hub.message(i["message_id"]))["created_at"] for i in (oldest, newest)]
    assert flushed[1] - flushed[0] >= 0.99, "digests of one group are group_interval apart"
    second = newest["message"]
    assert second["title"] == "disk_full on web-01" or second["title"].startswith("5 messages: 5 × disk_full")
    assert dict(second["fields"]).get("In all", "1,005") == "1,005"
    await asyncio.sleep(1.2)
    assert len(await inbox_titles(hub)) == 2, "no new messages: no more digests (repeat is an hour away)"


async def test_groups_are_kept_apart_by_their_labels(make_hub: Any) -> None:
    hub = await make_hub(grouped_config())
    await hub.notify_many([alert("full", host="web-01"), alert("full", host="web-01"), alert("full", host="web-02")])

    async def two() -> bool:
        return len(await inbox_titles(hub)) == 2

    await eventually(two)
    assert sorted(await inbox_titles(hub)) == ["2 messages: 2 × full", "full"]


async def test_a_single_message_is_sent_as_itself_in_the_group_thread(make_hub: Any) -> None:
    hub = await make_hub(grouped_config())
    await hub.notify(alert("Disk full", body="92% on /", fields={"usage": "92%"}))

    async def one() -> bool:
        return len(await inbox_titles(hub)) == 1

    await eventually(one)
    m = (await hub.inbox())["items"][0]["message"]
    assert (m["title"], m["body"], m["fields"]) == ("Disk full", "92% on /", [["usage", "92%"]])
    assert m["thread_key"].startswith("digest:alerts:") and m["labels"]["event_type"] == "digest"


async def test_a_restart_mid_window_loses_nothing(make_hub: Any) -> None:
    config = grouped_config(group_wait=1.0)
    first = await make_hub(config)
    await first.notify_many([alert("disk_full") for _ in range(3)])
    await first.stop()
    second = await make_hub(config)

    async def one() -> bool:
        return len(await inbox_titles(second)) == 1

    await eventually(one, timeout=10)
    assert await inbox_titles(second) == ["3 messages: 3 × disk_full"]


async def test_a_resolved_group_says_so_and_is_not_repeated(make_hub: Any) -> None:
    hub = await make_hub(grouped_config(repeat_interval=0.5))
    await hub.notify(alert("disk_full"))
    await hub.notify(alert("disk_full resolved", resolves=True))

    async def one() -> bool:
        return len(await inbox_titles(hub)) == 1

    await eventually(one)
    m = (await hub.inbox())["items"][0]["message"]
    assert m["resolves"] is True
    await asyncio.sleep(1.0)
    assert len(await inbox_titles(hub)) == 1


async def test_a_still_firing_group_is_recalled_every_repeat_interval(make_hub: Any) -> None:
    hub = await make_hub(grouped_config(repeat_interval=0.5))
    await hub.notify(alert("disk_full"))

    async def reminded() -> bool:
        return any(t.startswith("Still firing:") for t in await inbox_titles(hub))

    await eventually(reminded, timeout=10)
    assert (await inbox_titles(hub))[0] == "disk_full"


async def test_explicit_targets_are_never_grouped(make_hub: Any) -> None:
    hub = await make_hub(grouped_config())
    r = await hub.notify(alert("direct"), to=["inbox"])
    assert [d.status for d in r.deliveries] in (["pending"], ["sending"])
    await hub.wait(r.id)
    assert await inbox_titles(hub) == ["direct"]


async def test_two_workers_flush_a_group_once(make_hub: Any) -> None:
    config = grouped_config(group_wait=0.5)
    a = await make_hub(config)
    b = await make_hub(config)
    await a.notify_many([alert("disk_full") for _ in range(20)])

    async def one() -> bool:
        return len(await inbox_titles(a)) >= 1

    await eventually(one)
    await asyncio.sleep(0.5)
    assert await inbox_titles(b) == ["20 messages: 20 × disk_full"]


async def test_a_digest_belongs_to_the_project_of_its_route(make_hub: Any) -> None:
    config = grouped_config(project="ops", to=["ops-inbox"])
    hub = await make_hub({**config, "integrations": {"ops-inbox": {"kind": "inbox", "project": "ops"}}})
    receipts = await hub.notify_many([alert("full"), alert("full")], project="ops")
    assert {d.status for r in receipts for d in r.deliveries} == {"grouped"}

    async def digest() -> bool:
        return len((await hub.inbox(project="ops"))["items"]) == 1

    await eventually(digest, timeout=10)
    item = (await hub.inbox(project="ops"))["items"][0]
    assert (await hub.message(item["message_id"], project="ops"))["project"] == "ops"
    assert (await hub.inbox(project="default"))["items"] == []
