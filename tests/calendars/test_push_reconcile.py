"""Reconcile (orphans of ours deleted, foreign events untouched, missing events pushed again), a
calendar integration's token from its OAuth connection, and the integration test. SQLite and PG."""

from __future__ import annotations

from typing import Any

import pytest
from calendars.push_support import Tasks, calendar_config
from peers.google_calendar import GoogleCalendarAPI
from peers.graph_calendar import GraphCalendarAPI
from sqlalchemy import update
from sync.service_fakes import until

from tidings.calendars.reconcile import EVERY, ReconcileError, Reconciler, reconcile
from tidings.integrations.google.calendar import event_id
from tidings.oauth.connections import TokenSet, store_tokens
from tidings.security.vault import new_key
from tidings.store.tables import tasks as tasks_table


async def close_quietly(hub: Any, task_id: str) -> None:
    """Close a task without the message a change routes (as if that push never happened)."""
    async with hub.store.write() as conn:
        await conn.execute(update(tasks_table).where(tasks_table.c.id == task_id).values(category="done", status="done"))


async def test_google_reconcile_deletes_our_orphans_only_and_restores_missing(
    make_hub: Any, gcal: GoogleCalendarAPI,
) -> None:
    hub = await make_hub(calendar_config("google_calendar", gcal.url), migrate=False)
    tasks = Tasks(hub)
    kept = await tasks.create(title="kept", due="2026-12-10")
    closed = await tasks.create(title="closed", due="2026-12-11")
    lost = await tasks.create(title="lost", due="2026-12-12")
    await tasks.settled()
    await close_quietly(hub, closed["id"])
    gcal.cal("primary").events[event_id(lost["id"])]["status"] = "cancelled"  # deleted by a person
    orphan = gcal.add(summary="T-99 gone", date="2026-12-01",
                      private={"tidings_task": "0193a7c2-0000-7000-8000-000000000000", "tidings_project": "default"})
    foreign = gcal.add(summary="Lunch", date="2026-12-10")
    other_project = gcal.add(summary="theirs", date="2026-12-10",
                             private={"tidings_task": "x", "tidings_project": "beta"})

    counts = await reconcile(hub, "cal")
    assert counts == {"listed": 3, "kept": 1, "deleted": 2, "repushed": 1}
    await tasks.settled()
    live = gcal.live()
    assert set(live) == {event_id(kept["id"]), event_id(lost["id"]), foreign, other_project}
    assert orphan not in live and event_id(closed["id"]) not in live
    assert (await tasks.row(lost["id"]))["state"] == "present"  # type: ignore[index]
    assert (await tasks.row(closed["id"]))["state"] == "deleted"  # type: ignore[index]
    assert await reconcile(hub, "cal") == {"listed": 2, "kept": 2, "deleted": 0, "repushed": 0}


async def test_google_reconcile_pages_through_the_listing(make_hub: Any, gcal: GoogleCalendarAPI,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tidings.integrations.google.calendar.PAGE", 2)
    hub = await make_hub(calendar_config("google_calendar", gcal.url), migrate=False)
    tasks = Tasks(hub)
    for i in range(5):
        await tasks.create(title=f"t{i}", due="2026-12-10")
    await tasks.settled()
    assert await reconcile(hub, "cal") == {"listed": 5, "kept": 5, "deleted": 0, "repushed": 0}
    assert gcal.calls["GET /calendars/{cal}/events"] == 3


async def test_graph_reconcile_deletes_a_duplicate_and_an_orphan(make_hub: Any, graph: GraphCalendarAPI) -> None:
    hub = await make_hub(calendar_config("outlook_calendar", graph.url), migrate=False)
    tasks = Tasks(hub)
    task = await tasks.create(title="a", due="2026-12-10")
    await tasks.settled()
    [eid] = graph.live()
    ext = graph.events[eid]["extensions"]
    twin = graph._store("default", {**{k: v for k, v in graph.events[eid].items()
                                       if k not in ("id", "@odata.etag", "changeKey", "calendar")}, "extensions": ext})
    orphan = graph._store("default", {"subject": "old", "extensions": [{**ext[0], "taskId": "gone"}]})
    foreign = graph.add(subject="Lunch", date="2026-12-10")
    counts = await reconcile(hub, "cal")
    assert counts == {"listed": 3, "kept": 1, "deleted": 2, "repushed": 0}
    assert set(graph.live()) == {eid, foreign}
    assert twin["id"] not in graph.events and orphan["id"] not in graph.events
    assert (await tasks.row(task["id"]))["remote_id"] == eid  # type: ignore[index]
    del graph.events[eid]  # deleted by a person in Outlook: pushed again, as a new event
    assert await reconcile(hub, "cal") == {"listed": 0, "kept": 0, "deleted": 0, "repushed": 1}
    await tasks.settled()
    [(new, event)] = [(k, v) for k, v in graph.live().items() if k != foreign]
    assert new != eid and event["extensions"][0]["taskId"] == task["id"]
    assert (await tasks.row(task["id"]))["remote_id"] == new  # type: ignore[index]


async def test_reconcile_failures_are_clear(make_hub: Any, gcal: GoogleCalendarAPI) -> None:
    hub = await make_hub({**calendar_config("google_calendar", gcal.url),
                          "integrations": {**calendar_config("google_calendar", gcal.url)["integrations"],
                                           "hook": {"kind": "webhook", "url": gcal.url}}}, migrate=False)
    gcal.fail(503)
    with pytest.raises(ReconcileError, match="HTTP 503"):
        await reconcile(hub, "cal")
    with pytest.raises(ReconcileError, match="not a calendar integration"):
        await reconcile(hub, "hook")


async def test_oauth_true_uses_the_connections_token(make_hub: Any, gcal: GoogleCalendarAPI,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_SECRET_KEY", new_key())
    config = calendar_config("google_calendar", gcal.url, oauth=True)
    del config["integrations"]["cal"]["token"]
    hub = await make_hub(config, migrate=False)
    tasks = Tasks(hub)
    cal = hub.notifiers["cal"]
    assert "not connected" in (await cal.test()).error

    gcal.tokens = {"ya29.from-the-connection"}
    async with hub.vault.transaction() as conn:
        await store_tokens(hub.vault, conn, integration="cal", project="default", provider="google",
                           tokens=TokenSet("ya29.from-the-connection", "1//refresh", scopes=["calendar.events"]))
    await until(lambda: cal.settings.token is not None, what="the connection's token reaching the integration")
    assert (await cal.test()).ok
    task = await tasks.create(title="a", due="2026-12-10")
    rows = await tasks.settled()
    assert rows[0]["status"] == "delivered"
    assert list(gcal.live()) == [event_id(task["id"])]

    # The grant revoked at Google: the next push waits, held, for a person to connect again.
    gcal.tokens = {"ya29.after-reconnecting"}
    await tasks.update(task["key"], title="b")
    held = [r for r in await tasks.settled() if r["status"] != "delivered"]
    assert [r["status"] for r in held] == ["held"]
    assert "oauth connection needs re-auth" in held[0]["last_error"] and "ya29" not in held[0]["last_error"]


async def test_not_connected_holds_the_push(make_hub: Any, gcal: GoogleCalendarAPI,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_SECRET_KEY", new_key())
    config = calendar_config("google_calendar", gcal.url, oauth=True)
    del config["integrations"]["cal"]["token"]
    hub = await make_hub(config, migrate=False)
    tasks = Tasks(hub)
    await tasks.create(title="a", due="2026-12-10")

    async def held() -> Any:
        rows = await tasks.settled()
        return rows if rows[0]["last_error"] else None

    rows = await until(held, what="the push refused")
    assert "not connected: open /oauth/cal/start" in rows[0]["last_error"]
    assert rows[0]["status"] == "held"  # waits for the connection: nothing lost
    assert gcal.writes() == 0
    with pytest.raises(ReconcileError, match="not connected"):
        await reconcile(hub, "cal")


async def test_the_hub_reconciles_on_its_own(make_hub: Any, gcal: GoogleCalendarAPI) -> None:
    hub = await make_hub(calendar_config("google_calendar", gcal.url), migrate=False)
    assert isinstance(hub.calendars, Reconciler) and hub.calendars.every == EVERY
    orphan = gcal.add(summary="old", date="2026-12-01",
                      private={"tidings_task": "0193a7c2-0000-7000-8000-000000000000", "tidings_project": "default"})
    quick = Reconciler(hub, every=0.05)
    quick.start()
    try:
        await until(lambda: orphan not in gcal.live(), what="the orphan deleted by the loop")
    finally:
        await quick.stop()


async def test_reconcile_rewrites_events_after_a_settings_change(make_hub: Any, gcal: GoogleCalendarAPI) -> None:
    hub = await make_hub(calendar_config("google_calendar", gcal.url), migrate=False)
    tasks = Tasks(hub)
    task = await tasks.create(title="a", due="2026-12-10")
    await tasks.settled()
    cal = hub.notifiers["cal"]
    cal.reconfigure(cal.settings.model_copy(update={"reminders": [15]}))
    assert await reconcile(hub, "cal") == {"listed": 1, "kept": 1, "deleted": 0, "repushed": 1}
    await tasks.settled()
    assert gcal.live()[event_id(task["id"])]["reminders"]["overrides"] == [{"method": "popup", "minutes": 15}]
    assert await reconcile(hub, "cal") == {"listed": 1, "kept": 1, "deleted": 0, "repushed": 0}
