"""Scheduled messages over the API: `send_at`/`delay` on POST /messages (the fast path and the
per-project route), the status in GET, DELETE to cancel; bad timing is a 422 that says why."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from people import person
from sqlalchemy import select, update
from test_api import assert_error

from tidings.store.recipient_tables import schedules
from tidings.store.tables import audit_log

MESSAGES = "/api/v1/messages"
ALPHA = "/api/v1/projects/alpha"
CONFIG: dict[str, Any] = {
    "integrations": {"alpha-inbox": {"kind": "inbox", "project": "alpha"}, "beta-inbox": {"kind": "inbox", "project": "beta"}},
    "routes": [{"project": "alpha", "to": ["alpha-inbox"]}, {"project": "beta", "to": ["beta-inbox"]}],
}


def auth(token: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {token}"}, "auth": False}


async def test_schedule_show_cancel_over_the_api(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).astimezone(dt.timezone(dt.timedelta(hours=2)))
    r = await api.post(MESSAGES, json={"title": "Release notes", "send_at": at.isoformat()})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["status"] == "scheduled" and accepted["deliveries"] == []
    assert abs(accepted["send_at"] - at.timestamp()) < 0.01
    shown = (await api.get(f"{MESSAGES}/{accepted['id']}")).json()
    assert shown["status"] == "scheduled" and shown["send_at"] == accepted["send_at"] and shown["deliveries"] == []
    async with api.hub.store.read() as conn:
        entry = (await conn.execute(select(audit_log).where(audit_log.c.action == "message.schedule"))).one()
    assert entry.target == f"message/{accepted['id']}" and entry.actor == "token" and entry.request_id

    r = await api.request("DELETE", f"{MESSAGES}/{accepted['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["cancelled_by"]
    assert (await api.get(f"{MESSAGES}/{accepted['id']}")).json()["status"] == "cancelled"
    assert (await api.request("DELETE", f"{MESSAGES}/{accepted['id']}")).json()["status"] == "cancelled"

    immediate = (await api.post(MESSAGES, json={"title": "now"})).json()
    assert "status" not in immediate  # the answer of an unscheduled message is as it always was
    assert (await api.get(f"{MESSAGES}/{immediate['id']}")).json()["status"] == "routed"
    detail = assert_error(await api.request("DELETE", f"{MESSAGES}/{immediate['id']}"), 409, "conflict")
    assert "was not scheduled" in detail
    assert_error(await api.request("DELETE", f"{MESSAGES}/01HZZZZZZZZZZZZZZZZZZZZZZZ"), 404, "not found")


async def test_cancel_after_it_was_routed_is_409(make_api: Any) -> None:
    api = await make_api()
    r = await api.post(MESSAGES, json={"title": "soon", "delay": "10m"})
    message_id = r.json()["id"]
    assert abs(r.json()["send_at"] - (time.time() + 600)) < 5
    async with api.hub.store.write() as conn:
        await conn.execute(update(schedules).values(due_at=time.time() - 1))
    api.hub.scheduler.wake()
    from helpers import eventually

    async def routed() -> bool:
        return (await api.get(f"{MESSAGES}/{message_id}")).json()["status"] == "routed"

    await eventually(routed)
    detail = assert_error(await api.request("DELETE", f"{MESSAGES}/{message_id}"), 409, "conflict")
    assert "was routed already" in detail


async def test_bad_timing_is_422_with_the_reason(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    far = (dt.datetime.now(dt.UTC) + dt.timedelta(days=800)).isoformat()
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    cases = [
        ({"send_at": "2030-01-01T09:00:00"}, "has no time zone offset"),
        ({"send_at": "tomorrow"}, "is not an ISO 8601 time"),
        ({"send_at": far}, "at most 366 days ahead"),
        ({"delay": "soon"}, "invalid duration"),
        ({"delay": -60}, "can't be negative"),
        ({"delay": "10m", "send_at": "2030-01-01T09:00:00Z"}, "give send_at or delay, not both"),
        ({"send_at": soon.replace("+00:00", "\u0000Z")}, "is not an ISO 8601 time"),
        ({"send_at": "2" * 65}, "send_at"),
        ({"send_at": 1893456000}, "send_at"),
        ({"delay": {"minutes": 10}}, "delay"),
    ]
    for path in (MESSAGES, "/api/v1/projects/default/messages"):
        for body, says in cases:
            r = await api.post(path, json={"title": "x", **body})
            assert r.status_code == 422, (path, body, r.text)
            assert says in str(r.json()["detail"]), (path, body, r.text)
    async with api.hub.store.read() as conn:
        assert (await conn.execute(select(schedules))).all() == []


async def test_idempotent_scheduling_over_the_api(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    body = {"title": "weekly report", "delay": "1h"}
    first = await api.post(MESSAGES, json=body, headers={"Idempotency-Key": "w1"})
    again = await api.post(MESSAGES, json=body, headers={"Idempotency-Key": "w1"})
    assert first.status_code == 202 and again.status_code == 200 and again.headers["idempotency-replay"] == "true"
    assert again.json() == first.json()
    other = await api.post(MESSAGES, json={**body, "delay": "2h"}, headers={"Idempotency-Key": "w1"})
    assert_error(other, 422, "idempotency key reused")


async def test_projects_schedule_and_cancel_only_their_own(make_api: Any) -> None:
    api = await make_api(CONFIG, dispatch=False)
    store = api.hub.store
    alpha = await person(store, "a@example.com", {"alpha": "member"})
    beta = await person(store, "b@example.com", {"beta": "member"})
    viewer = await person(store, "v@example.com", {"alpha": "viewer"})
    r = await api.post(f"{ALPHA}/messages", json={"title": "alpha later", "delay": "1h"}, **auth(alpha))
    assert r.status_code == 202 and r.json()["status"] == "scheduled", r.text
    message_id = r.json()["id"]
    # beta's member: 403 on alpha's path, 404 for alpha's id on beta's own path
    assert_error(await api.request("DELETE", f"{ALPHA}/messages/{message_id}", **auth(beta)), 403)
    assert_error(await api.request("DELETE", f"/api/v1/projects/beta/messages/{message_id}", **auth(beta)), 404)
    assert_error(await api.request("DELETE", f"{MESSAGES}/{message_id}"), 404)  # the default project's route
    assert_error(await api.request("DELETE", f"{ALPHA}/messages/{message_id}", **auth(viewer)), 403)
    assert (await api.get(f"{ALPHA}/messages/{message_id}", **auth(viewer))).json()["status"] == "scheduled"
    r = await api.request("DELETE", f"{ALPHA}/messages/{message_id}", **auth(alpha))
    assert r.status_code == 200 and r.json()["cancelled_by"] == "a@example.com", r.text
    async with store.read() as conn:
        entry = (await conn.execute(select(audit_log).where(audit_log.c.action == "message.cancel"))).one()
    assert entry.project == "alpha" and entry.actor_name == "a@example.com"
