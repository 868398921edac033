"""Task due dates pushed to Google Calendar through the outbox, against the v3 stand-in: a real
dispatching hub, routes, retries. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from calendars.push_support import TOKEN, Tasks, calendar_config
from peers.google_calendar import GoogleCalendarAPI
from sync.service_fakes import until

from tidings.calendars.reconcile import ReconcileError, reconcile
from tidings.integrations.google.calendar import event_id


@pytest.fixture
def start(make_hub: Any, gcal: GoogleCalendarAPI) -> Any:
    async def go(**settings: Any) -> Tasks:
        hub = await make_hub(calendar_config("google_calendar", gcal.url, **settings), migrate=False)
        return Tasks(hub)

    return go


def test_the_event_id_is_base32hex_of_the_task_id() -> None:
    eid = event_id("0193a7c2-5b1e-7f00-8a9b-0123456789ab")
    assert len(eid) == 26 and set(eid) <= set("0123456789abcdefghijklmnopqrstuv")
    assert eid == event_id("0193a7c2-5b1e-7f00-8a9b-0123456789ab")


async def test_created_changed_closed_reopened(start: Any, gcal: GoogleCalendarAPI) -> None:
    tasks = await start(reminders=[30, 1440])
    task = await tasks.create(title="Rotate the keys", due="2026-12-10", description="Before the audit.")
    await tasks.settled()
    eid = event_id(task["id"])
    [event] = gcal.live().values()
    assert event["id"] == eid
    assert event["summary"] == f"T-{task['number']} Rotate the keys"
    assert event["start"] == {"date": "2026-12-10"} and event["end"] == {"date": "2026-12-11"}
    assert "Before the audit." in event["description"]
    assert event["extendedProperties"]["private"] == {"tidings_task": task["id"], "tidings_project": "default"}
    assert event["reminders"] == {"useDefault": False, "overrides": [{"method": "popup", "minutes": 30},
                                                                     {"method": "popup", "minutes": 1440}]}
    first_etag = event["etag"]
    row = await tasks.row(task["id"])
    assert row is not None and row["state"] == "present" and row["etag"] == first_etag

    await tasks.update(task["key"], due="2026-12-12", title="Rotate all keys")
    await tasks.settled()
    [event] = gcal.live().values()
    assert event["id"] == eid and event["etag"] != first_etag
    assert event["start"] == {"date": "2026-12-12"} and event["summary"].endswith("Rotate all keys")
    assert gcal.calls["POST /calendars/{cal}/events"] == 1  # updated in place

    await tasks.update(task["key"], status="done")
    await tasks.settled()
    assert gcal.live() == {} and gcal.cal("primary").events[eid]["status"] == "cancelled"
    assert (await tasks.row(task["id"]))["state"] == "deleted"  # type: ignore[index]

    await tasks.update(task["key"], status="todo")  # reopened: the same id comes back
    await tasks.settled()
    assert list(gcal.live()) == [eid]


async def test_due_removed_or_task_deleted_removes_the_event(start: Any, gcal: GoogleCalendarAPI) -> None:
    tasks = await start()
    a = await tasks.create(title="a", due="2026-12-10")
    b = await tasks.create(title="b", due="2026-12-11")
    none = await tasks.create(title="no date")
    await tasks.settled()
    assert set(gcal.live()) == {event_id(a["id"]), event_id(b["id"])}
    assert await tasks.row(none["id"]) is None
    assert gcal.live()[event_id(a["id"])]["reminders"] == {"useDefault": True}
    await tasks.update(a["key"], due=None)
    await tasks.delete(b["key"])
    await tasks.settled()
    assert gcal.live() == {}


async def test_an_unchanged_event_is_not_written_again(start: Any, gcal: GoogleCalendarAPI) -> None:
    tasks = await start()
    task = await tasks.create(title="a", due="2026-12-10")
    await tasks.settled()
    writes = gcal.writes()
    await tasks.update(task["key"], priority="high")  # not on the event
    await tasks.settled()
    assert gcal.writes() == writes


async def test_assigned_and_labels_filters(start: Any, gcal: GoogleCalendarAPI) -> None:
    tasks = await start(tasks="assigned", assignee="github:ann", labels=["release"])
    mine = await tasks.create(title="mine", due="2026-12-10", assignee="github:ann", labels=["release"])
    await tasks.create(title="not labelled", due="2026-12-10", assignee="github:ann")
    await tasks.create(title="someone else's", due="2026-12-10", assignee="github:bob", labels=["release"])
    await tasks.settled()
    assert list(gcal.live()) == [event_id(mine["id"])]
    await tasks.update(mine["key"], assignee="github:bob")  # no longer matches: its event goes
    await tasks.settled()
    assert gcal.live() == {}


@pytest.mark.parametrize("fault", ["500", "429", "403-rate", "timeout"])
async def test_calendar_down_is_retried_and_nothing_is_lost(start: Any, gcal: GoogleCalendarAPI, fault: str) -> None:
    tasks = await start()
    if fault == "500":
        gcal.fail(500, times=3)
    elif fault == "429":
        gcal.fail(429, retry_after=0.3)
    elif fault == "403-rate":
        gcal.fail(403, reason="userRateLimitExceeded")
    else:
        gcal.stall_next(3.0)  # the integration waits 1 s
    task = await tasks.create(title="a", due="2026-12-10")
    await tasks.update(task["key"], due="2026-12-20")
    rows = await tasks.settled()
    assert {r["status"] for r in rows} == {"delivered"}
    assert max(r["attempts"] for r in rows) >= 2
    [event] = gcal.live().values()
    assert event["start"] == {"date": "2026-12-20"}  # the final state, whatever order the retries took


async def test_a_lost_answer_on_create_makes_no_duplicate(start: Any, gcal: GoogleCalendarAPI) -> None:
    tasks = await start()
    gcal.drop_next("POST")
    task = await tasks.create(title="a", due="2026-12-10")
    rows = await tasks.settled()
    assert rows[0]["status"] == "delivered" and rows[0]["attempts"] == 2
    assert list(gcal.live()) == [event_id(task["id"])]
    assert gcal.calls["POST /calendars/{cal}/events"] == 1  # the retry found it (PUT) instead


async def test_an_event_changed_in_the_calendar_is_updated_on_its_new_etag(start: Any, gcal: GoogleCalendarAPI) -> None:
    tasks = await start()
    task = await tasks.create(title="a", due="2026-12-10")
    await tasks.settled()
    eid = event_id(task["id"])
    gcal.cal("primary").events[eid]["etag"] = '"someone-else"'  # edited by a person in Google Calendar
    await tasks.update(task["key"], title="b")
    await tasks.settled()
    assert gcal.live()[eid]["summary"].endswith(" b")
    assert gcal.calls["GET /calendars/{cal}/events/{id}"] == 1  # 412, read again, written


async def test_a_refused_token_disables_the_integration(start: Any, gcal: GoogleCalendarAPI) -> None:
    gcal.tokens = {"another"}
    tasks = await start()
    await tasks.create(title="a", due="2026-12-10")

    async def refused() -> Any:
        rows = await tasks.settled()
        return rows if rows[0]["last_error"] else None

    rows = await until(refused, what="the 401 recorded")
    assert "the token was refused" in rows[0]["last_error"] and TOKEN not in rows[0]["last_error"]
    assert rows[0]["attempts"] == 1
    with pytest.raises(ReconcileError, match="cal is disabled .*the token was refused"):
        await reconcile(tasks.hub, "cal")


async def test_a_refusal_that_is_no_rate_limit_is_permanent(start: Any, gcal: GoogleCalendarAPI) -> None:
    tasks = await start()
    gcal.fail(403, reason="forbidden")
    await tasks.create(title="a", due="2026-12-10")
    [row] = await tasks.settled()
    assert row["status"] == "dead" and row["attempts"] == 1
    assert "updating the event: HTTP 403" in row["last_error"] and "forbidden" in row["last_error"]


async def test_stand_in_rules(gcal: GoogleCalendarAPI) -> None:
    """The stand-in refuses what Google refuses (so the tests above can fail)."""
    import aiohttp

    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{gcal.url}/calendars/primary/events"
    body = {"start": {"date": "2026-12-10"}, "end": {"date": "2026-12-11"}}
    async with aiohttp.ClientSession(headers=auth) as s:
        assert (await s.post(url, json={**body, "id": "UPPER-case"})).status == 400
        assert (await s.post(url, json={**body, "id": "abc"})).status == 400  # too short
        assert (await s.post(url, json={**body, "id": "abcde12345"})).status == 200
        r = await s.post(url, json={**body, "id": "abcde12345"})
        assert r.status == 409 and (await r.json())["error"]["errors"][0]["reason"] == "duplicate"
        assert (await s.put(f"{url}/abcde12345", json=body, headers={"If-Match": '"nope"'})).status == 412
        assert (await s.delete(f"{url}/abcde12345")).status == 204
        assert (await s.delete(f"{url}/abcde12345")).status == 410
        assert (await s.get(f"{url}/unknown1")).status == 404
        for i in range(5):
            await s.post(url, json={**body, "extendedProperties": {"private": {"tidings_task": str(i)}}})
        gcal.add(summary="foreign", date="2026-12-10")
        page = await (await s.get(url, params={"privateExtendedProperty": "tidings_task=3"})).json()
        assert [e["extendedProperties"]["private"]["tidings_task"] for e in page["items"]] == ["3"]
        first = await (await s.get(url, params={"maxResults": "4"})).json()
        assert len(first["items"]) == 4 and "nextPageToken" in first
        rest = await (await s.get(url, params={"maxResults": "4", "pageToken": first["nextPageToken"]})).json()
        assert len(rest["items"]) == 2 and "nextSyncToken" in rest
        sync = rest["nextSyncToken"]
        assert (await s.get(url, params={"syncToken": sync, "privateExtendedProperty": "a=b"})).status == 400
        assert (await (await s.get(url, params={"syncToken": sync})).json())["items"] == []
        gcal.expire_sync_tokens()
        r = await s.get(url, params={"syncToken": sync})
        assert r.status == 410 and (await r.json())["error"]["errors"][0]["reason"] == "fullSyncRequired"
        assert (await s.get(url, headers={"Authorization": "Bearer wrong"})).status == 401
