"""ICS feeds end to end: made through the API, read by a calendar client over HTTP and parsed back with
``icalendar``; every RFC 5545 rule the feed promises, conditional GET, revocation, who may do what,
the audit trail, bad tokens. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from icalendar import Calendar
from people import cast
from sqlalchemy import select

from tidings.accounts.projects import create_project
from tidings.audit import SYSTEM, Actor
from tidings.calendars.feeds import mask_path
from tidings.store.tables import audit_log, calendar_feeds, task_links
from tidings.sync.tasks import create_task, delete_task, get_task, input_values, update_task

ALICE = Actor("user", name="owner@example.com", auth_method="token")
BASE = "/api/v1/projects/alpha/calendars"


class World:
    def __init__(self, api: Any, tokens: dict[str, str]) -> None:
        self.api, self.tokens = api, tokens

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def task(self, project: str = "alpha", **values: Any) -> dict[str, Any]:
        async with self.api.hub.store.write() as conn:
            return (await create_task(conn, project, input_values({"title": "a task", **values}), actor=ALICE)).task

    async def change(self, key: str, **values: Any) -> dict[str, Any]:
        async with self.api.hub.store.write() as conn:
            task = await get_task(conn, "alpha", key)
            assert task is not None
            change = await update_task(conn, task, values, actor=ALICE)
            assert change is not None
            return change.task

    async def feed(self, who: str = "owner", *, mine: bool = False, name: str = "Alpha") -> dict[str, Any]:
        r = await self.api.post(BASE, auth=False, headers=self.auth(who), json={"name": name, "mine": mine})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def read(self, url: str, **headers: str) -> Any:
        path = url.removeprefix(self.api.url)
        return await self.api.get(path, auth=False, headers=headers)

    async def calendar(self, url: str) -> Calendar:
        r = await self.read(url)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/calendar")
        return Calendar.from_ical(r.content)


def events(cal: Calendar) -> dict[str, Any]:
    """SUMMARY -> VEVENT."""
    return {str(e["SUMMARY"]): e for e in cal.walk("VEVENT")}


@pytest.fixture
async def world(make_hub: Any, serve: Any) -> World:
    hub = await make_hub(dispatch=False)
    api = await serve(hub, token=False)
    async with hub.store.write() as conn:
        for slug in ("alpha", "beta"):
            await create_project(conn, SYSTEM, slug)
    return World(api, await cast(hub.store, ["alpha"], "beta"))


async def test_a_project_feed_follows_every_rule(world: World) -> None:
    t1 = await world.task(title="Rotate keys", due="2030-06-30", description="See **runbook**.",
                          labels=["ops", "security"], assignee="viewer@example.com")
    await world.task(title="No date")
    await world.task(title="Dropped", due="2030-07-01", status="Won't do", category="done")
    await world.task("beta", title="Beta's", due="2030-06-30")
    feed = await world.feed()
    assert feed["url"].startswith(world.api.url + "/calendars/") and feed["url"].endswith(".ics")
    assert feed["user"] is None and feed["created_by"] == "owner@example.com"

    cal = await world.calendar(feed["url"])
    assert str(cal["VERSION"]) == "2.0" and "tidings" in str(cal["PRODID"])
    assert str(cal["X-WR-CALNAME"]) == "Alpha"
    assert not cal.walk("VTIMEZONE")  # dates only
    found = events(cal)
    assert set(found) == {"T-1 Rotate keys", "T-3 Dropped"}  # no due date, another project: not there
    ev = found["T-1 Rotate keys"]
    assert str(ev["UID"]) == f"{t1['id']}@tidings"
    assert ev.decoded("DTSTAMP").tzinfo is not None
    assert int(ev["SEQUENCE"]) == 1
    start, end = ev.decoded("DTSTART"), ev.decoded("DTEND")
    assert type(start) is dt.date and start == dt.date(2030, 6, 30)
    assert type(end) is dt.date and end == dt.date(2030, 7, 1)  # exclusive
    assert ev["DTSTART"].params.get("VALUE") == "DATE"
    assert "DTSTART;VALUE=DATE:20300630" in (await world.read(feed["url"])).text
    assert str(ev["DESCRIPTION"]) == "See **runbook**."
    assert [str(c) for c in ev["CATEGORIES"].cats] == ["ops", "security"]
    assert str(ev["STATUS"]) == "CONFIRMED"
    assert "URL" not in ev  # no tracker item: no URL
    assert str(found["T-3 Dropped"]["STATUS"]) == "CANCELLED"

    # A change: same UID, SEQUENCE up, new date; a tracker item's URL appears.
    await world.change("T-1", due="2030-07-15", title="Rotate all keys")
    async with world.api.hub.store.write() as conn:
        await conn.execute(task_links.insert().values(
            id="link-1", task_id=t1["id"], project="alpha", integration="gh", state="linked", remote_id="12",
            remote_key="o/r#12", remote_url="https://github.com/o/r/issues/12", created_at=0.0))
    ev = events(await world.calendar(feed["url"]))["T-1 Rotate all keys"]
    assert str(ev["UID"]) == f"{t1['id']}@tidings"
    assert int(ev["SEQUENCE"]) == 2
    assert ev.decoded("DTSTART") == dt.date(2030, 7, 15) and ev.decoded("DTEND") == dt.date(2030, 7, 16)
    assert str(ev["URL"]) == "https://github.com/o/r/issues/12"


async def test_conditional_get(world: World) -> None:
    await world.task(due="2030-01-02")
    feed = await world.feed()
    first = await world.read(feed["url"])
    tag = first.headers["etag"]
    assert tag.startswith('"') and not tag.startswith("W/")
    assert first.headers["last-modified"].endswith("GMT")
    assert (await world.read(feed["url"])).content == first.content  # the same tasks, the same bytes
    again = await world.read(feed["url"], **{"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    await world.change("T-1", title="renamed")
    changed = await world.read(feed["url"], **{"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag


async def test_a_personal_feed_holds_only_my_tasks_of_this_project(world: World) -> None:
    await world.task(title="Mine", due="2030-01-01", assignee="viewer@example.com")
    await world.task(title="Theirs", due="2030-01-01", assignee="member@example.com")
    await world.task(title="Nobody's", due="2030-01-01")
    await world.task("beta", title="Elsewhere", due="2030-01-01")
    feed = await world.feed("viewer", mine=True, name="Mine")
    assert feed["user"] == "viewer@example.com"
    assert set(events(await world.calendar(feed["url"]))) == {"T-1 Mine"}


async def test_viewers_make_personal_feeds_and_see_only_their_own(world: World) -> None:
    api = world.api
    r = await api.post(BASE, auth=False, headers=world.auth("viewer"), json={"name": "all", "mine": False})
    assert r.status_code == 403 and "task:write" in r.json()["detail"]
    mine = await world.feed("viewer", mine=True, name="viewer's")
    theirs = await world.feed("member", mine=True, name="member's")
    everything = await world.feed("owner", name="project")
    listed = (await api.get(BASE, auth=False, headers=world.auth("viewer"))).json()
    assert [f["id"] for f in listed] == [mine["id"]]
    assert all("url" not in f and "token" not in str(f) for f in listed)
    owner_sees = (await api.get(BASE, auth=False, headers=world.auth("owner"))).json()
    assert {f["id"] for f in owner_sees} == {mine["id"], theirs["id"], everything["id"]}
    # Another's feed is not found for a viewer; its creator or an owner revokes it.
    r = await api.request("DELETE", f"{BASE}/{theirs['id']}", auth=False, headers=world.auth("viewer"))
    assert r.status_code == 404
    r = await api.request("DELETE", f"{BASE}/{mine['id']}", auth=False, headers=world.auth("viewer"))
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    r = await api.request("DELETE", f"{BASE}/{theirs['id']}", auth=False, headers=world.auth("owner"))
    assert r.status_code == 200
    # Another project's owner sees nothing here.
    r = await api.get(BASE, auth=False, headers=world.auth("other owner"))
    assert r.status_code == 403


async def test_revoked_unknown_and_malformed_tokens_are_not_found(world: World, caplog: Any) -> None:
    feed = await world.feed()
    token = feed["url"].rsplit("/", 1)[1].removesuffix(".ics")
    assert (await world.read(feed["url"])).status_code == 200
    r = await world.api.request("DELETE", f"{BASE}/{feed['id']}", auth=False, headers=world.auth("owner"))
    assert r.status_code == 200
    assert (await world.read(feed["url"])).status_code == 404
    wrong = "A" * 43
    for path in (f"/calendars/{wrong}.ics", f"/calendars/{token[:-1]}.ics", f"/calendars/{'x' * 5000}.ics",
                 "/calendars/%00.ics", f"/calendars/{token[:10]}%00{token[11:]}.ics", "/calendars/.ics",
                 f"/calendars/{token}"):
        r = await world.api.get(path, auth=False)
        assert r.status_code in (400, 404), (path, r.status_code)  # the request guard refuses a NUL: 400
        assert r.status_code != 401
    # The token is stored only as its hash, and a log line never shows it.
    async with world.api.hub.store.read() as conn:
        stored = [tuple(r) for r in (await conn.execute(select(calendar_feeds))).all()]
    assert token not in repr(stored)
    assert mask_path(f"/calendars/{token}.ics") == "/calendars/***.ics"
    assert token not in caplog.text


async def test_a_personal_feed_stops_when_its_user_leaves_the_project(world: World) -> None:
    from tidings.accounts.projects import remove_member

    await world.task(title="Mine", due="2030-01-01", assignee="member@example.com")
    feed = await world.feed("member", mine=True)
    assert (await world.read(feed["url"])).status_code == 200
    async with world.api.hub.store.write() as conn:
        await remove_member(conn, SYSTEM, "alpha", "member@example.com")
    assert (await world.read(feed["url"])).status_code == 404


async def test_create_and_revoke_are_audited(world: World) -> None:
    feed = await world.feed("viewer", mine=True, name="audited")
    await world.api.request("DELETE", f"{BASE}/{feed['id']}", auth=False, headers=world.auth("viewer"))
    async with world.api.hub.store.read() as conn:
        rows = (await conn.execute(select(audit_log).where(audit_log.c.action.like("calendar.%"))
                                   .order_by(audit_log.c.seq))).all()
    assert [(r.action, r.actor_name, r.target, r.project) for r in rows] == [
        ("calendar.create", "viewer@example.com", f"calendar/{feed['id']}", "alpha"),
        ("calendar.revoke", "viewer@example.com", f"calendar/{feed['id']}", "alpha")]
    assert rows[0].after == {"name": "audited", "user": "viewer@example.com"}
    assert feed["url"].rsplit("/", 1)[1] not in repr([tuple(r) for r in rows])


async def test_bad_bodies(world: World) -> None:
    for body in ({"name": ""}, {"name": "x" * 101}, {"name": "a\x00b"}, {"name": "ok", "extra": 1}, {}):
        r = await world.api.post(BASE, auth=False, headers=world.auth("owner"), json=body)
        assert r.status_code == 422, (body, r.text)
    r = await world.api.post(BASE, auth=False, headers=world.auth("owner"), content=b"not json")
    assert r.status_code == 415


def test_mask_path_leaves_other_paths() -> None:
    assert mask_path("/api/v1/tasks") == "/api/v1/tasks"
    assert mask_path("/calendars/abc.ics") == "/calendars/***.ics"


async def test_if_modified_since(world: World) -> None:
    """Without If-None-Match, If-Modified-Since answers 304 until the feed's tasks change, whatever
    the change: an edit, a task leaving a personal feed by reassignment, a deletion."""
    import asyncio
    import email.utils
    import time

    await world.task(due="2030-01-02", assignee="viewer@example.com")
    await world.task(due="2030-01-03", assignee="viewer@example.com")
    feed = await world.feed("viewer", mine=True, name="mine")

    async def last_modified() -> str:
        """A Last-Modified that covers the last change: one read after the end of its second
        (a read within that second answers a date the feed never counts as unmodified since)."""
        while True:
            asked = time.time()
            answer = (await world.read(feed["url"])).headers["last-modified"]
            if asked >= email.utils.parsedate_to_datetime(answer).timestamp() + 1:
                return answer  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)

    async def status(since: str, **more: str) -> int:
        return (await world.read(feed["url"], **{"If-Modified-Since": since, **more})).status_code  # type: ignore[no-any-return]

    since = await last_modified()
    assert await status(since) == 304
    assert await status("not a date") == 200
    assert await status(since, **{"If-None-Match": '"other"'}) == 200  # If-None-Match wins
    assert await status(email.utils.formatdate(0, usegmt=True)) == 200

    await world.change("T-1", assignee="member@example.com")  # leaves the viewer's feed
    assert await status(since) == 200
    since = await last_modified()
    assert await status(since) == 304
    async with world.api.hub.store.write() as conn:
        task = await get_task(conn, "alpha", "T-2")
        assert task is not None
        await delete_task(conn, task, actor=ALICE)
    assert await status(since) == 200
