"""Task due dates pushed to Outlook through Microsoft Graph and the outbox, against the Graph stand-in.
On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from calendars.push_support import TOKEN, Tasks, calendar_config
from peers.graph_calendar import GraphCalendarAPI

from tidings.integrations.microsoft.calendar import EXTENSION


@pytest.fixture
def start(make_hub: Any, graph: GraphCalendarAPI) -> Any:
    async def go(**settings: Any) -> Tasks:
        hub = await make_hub(calendar_config("outlook_calendar", graph.url, **settings), migrate=False)
        return Tasks(hub)

    return go


def extension(graph: GraphCalendarAPI, eid: str) -> dict[str, Any]:
    [ext] = graph.events[eid]["extensions"]
    return ext  # type: ignore[no-any-return]


async def test_created_updated_in_place_then_deleted(start: Any, graph: GraphCalendarAPI) -> None:
    tasks = await start(time_zone="Europe/Berlin", reminders=[60])
    task = await tasks.create(title="Ship it", due="2026-12-10")
    await tasks.settled()
    [(eid, event)] = graph.live().items()
    assert event["subject"] == f"T-{task['number']} Ship it" and event["isAllDay"] is True
    assert event["start"] == {"dateTime": "2026-12-10T00:00:00", "timeZone": "Europe/Berlin"}
    assert event["end"] == {"dateTime": "2026-12-11T00:00:00", "timeZone": "Europe/Berlin"}
    assert event["isReminderOn"] is True and event["reminderMinutesBeforeStart"] == 60
    assert event["transactionId"]
    ext = extension(graph, eid)
    assert ext["extensionName"] == EXTENSION and ext["taskId"] == task["id"] and ext["project"] == "default"
    row = await tasks.row(task["id"])
    assert row is not None and row["remote_id"] == eid and row["etag"] == event["@odata.etag"]

    await tasks.update(task["key"], due="2026-12-15")
    await tasks.settled()
    [(same, event)] = graph.live().items()
    assert same == eid and event["start"]["dateTime"] == "2026-12-15T00:00:00"
    assert graph.calls["POST /me/calendar/events"] == 1 and graph.calls["PATCH /me/events/{id}"] == 1

    await tasks.update(task["key"], status="done")
    await tasks.settled()
    assert graph.live() == {}
    await tasks.update(task["key"], status="todo")  # a new event, with a new transactionId
    await tasks.settled()
    [(again, event)] = graph.live().items()
    assert again != eid and extension(graph, again)["taskId"] == task["id"]


async def test_a_users_other_calendar(start: Any, graph: GraphCalendarAPI) -> None:
    tasks = await start(user="ann@example.com", calendar_id="AAMkAD-tasks")
    await tasks.create(title="a", due="2026-12-10")
    await tasks.settled()
    assert len(graph.live("AAMkAD-tasks")) == 1
    assert graph.calls["POST /users/{user}/calendars/{cal}/events"] == 1


async def test_a_lost_answer_on_create_makes_no_duplicate(start: Any, graph: GraphCalendarAPI) -> None:
    tasks = await start()
    graph.drop_next("POST")
    await tasks.create(title="a", due="2026-12-10")
    rows = await tasks.settled()
    assert rows[0]["status"] == "delivered" and rows[0]["attempts"] == 2
    assert graph.calls["POST /me/calendar/events"] == 2  # the same transactionId: the same event
    assert len(graph.live()) == 1


async def test_412_reads_the_new_etag_and_404_creates_again(start: Any, graph: GraphCalendarAPI) -> None:
    tasks = await start()
    task = await tasks.create(title="a", due="2026-12-10")
    await tasks.settled()
    [eid] = graph.live()
    graph.events[eid]["@odata.etag"] = 'W/"edited-in-outlook"'
    await tasks.update(task["key"], title="b")
    await tasks.settled()
    assert graph.live()[eid]["subject"].endswith(" b") and graph.calls["GET /me/events/{id}"] == 1
    del graph.events[eid]  # deleted by a person in Outlook
    await tasks.update(task["key"], title="c")
    await tasks.settled()
    [(new, event)] = graph.live().items()
    assert new != eid and event["subject"].endswith(" c")


@pytest.mark.parametrize("fault", ["503", "429"])
async def test_graph_down_is_retried(start: Any, graph: GraphCalendarAPI, fault: str) -> None:
    tasks = await start()
    graph.fail(int(fault), times=2, retry_after=0.2 if fault == "429" else None)
    task = await tasks.create(title="a", due="2026-12-10")
    await tasks.update(task["key"], due="2026-12-11")
    rows = await tasks.settled()
    assert {r["status"] for r in rows} == {"delivered"}
    [event] = graph.live().values()
    assert event["start"]["dateTime"] == "2026-12-11T00:00:00"


def test_outlook_takes_one_reminder() -> None:
    from pydantic import ValidationError

    from tidings.integrations.microsoft.calendar import OutlookCalendarSettings

    with pytest.raises(ValidationError, match="at most one reminder"):
        OutlookCalendarSettings(kind="outlook_calendar", token=TOKEN, reminders=[10, 20])
    with pytest.raises(ValidationError, match="tasks: assigned needs assignee"):
        OutlookCalendarSettings(kind="outlook_calendar", token=TOKEN, tasks="assigned")
    with pytest.raises(ValidationError, match="set token"):
        OutlookCalendarSettings(kind="outlook_calendar")


async def test_stand_in_rules(graph: GraphCalendarAPI) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{graph.url}/me/calendar/events"
    day = {"start": {"dateTime": "2026-12-10T00:00:00", "timeZone": "UTC"},
           "end": {"dateTime": "2026-12-11T00:00:00", "timeZone": "UTC"}, "isAllDay": True, "subject": "x"}
    ext = [{"@odata.type": "microsoft.graph.openTypeExtension", "extensionName": EXTENSION, "taskId": "t"}]
    async with aiohttp.ClientSession(headers=auth) as s:
        bad = {**day, "start": {"dateTime": "2026-12-10T09:00:00", "timeZone": "UTC"}}
        assert (await s.post(url, json=bad)).status == 400  # all-day must be midnight to midnight
        first = await (await s.post(url, json={**day, "transactionId": "t-1", "extensions": ext})).json()
        again = await s.post(url, json={**day, "transactionId": "t-1", "extensions": ext})
        assert again.status == 201 and (await again.json())["id"] == first["id"]
        graph.add(subject="foreign", date="2026-12-10")
        for i in range(3):
            await s.post(url, json={**day, "extensions": [{**ext[0], "taskId": str(i)}]})
        params = {"$filter": f"Extensions/any(f:f/id eq '{EXTENSION}')",
                  "$expand": f"Extensions($filter=id eq '{EXTENSION}')", "$top": "3"}
        page = await (await s.get(url, params=params)).json()
        assert len(page["value"]) == 3 and page["@odata.nextLink"]
        assert all(e["extensions"][0]["id"].endswith(EXTENSION) for e in page["value"])
        rest = await (await s.get(page["@odata.nextLink"])).json()
        assert len(rest["value"]) == 1 and "@odata.nextLink" not in rest
        plain = await (await s.get(url)).json()
        assert len(plain["value"]) == 5 and "extensions" not in plain["value"][0]
        item = f"{graph.url}/me/events/{first['id']}"
        assert (await s.patch(item, json={"subject": "y"}, headers={"If-Match": 'W/"old"'})).status == 412
        assert (await s.delete(item)).status == 204
        assert (await s.delete(item)).status == 404
        r = await s.get(url, headers={"Authorization": "Bearer nope"})
        assert r.status == 401 and (await r.json())["error"]["code"] == "InvalidAuthenticationToken"
