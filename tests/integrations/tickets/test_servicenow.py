"""kind: servicenow through a real hub and outbox (SQLite and PostgreSQL) against the stand-in."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import eventually, pg_available
from peers.servicenow import ServiceNow
from sqlalchemy import select
from ticket_support import FAST, routed, settle

from tidings import Message
from tidings.integrations.servicenow import ServiceNowSettings
from tidings.integrations.tickets import ledger_row
from tidings.store.tables import integration_state


def sn(instance: ServiceNow, **extra: Any) -> dict[str, Any]:
    return {"kind": "servicenow", "instance_url": instance.url, "user": instance.user, "password": instance.password,
            "assignment_group": "Network", "category": "network", **FAST, **extra}


def alert(title: str = "CPU high on web-01", *, resolves: bool = False, key: str = "cpu:web-01", **kw: Any) -> Message:
    return Message(title, "load 12 for 10 minutes", priority=kw.pop("priority", "high"), thread_key=key,
                   fields={"host": "web-01"}, links=[("Dashboard", "https://grafana.example.com/d/1")],
                   resolves=resolves, **kw)


async def send(hub: Any, message: Message) -> dict[str, Any]:
    r = await hub.notify(message)
    return await settle(hub, r.id)


async def test_an_alert_opens_one_incident_with_its_fields(make_hub: Any, snow: ServiceNow) -> None:
    hub = await make_hub(routed("sn", sn(snow)))
    d = await send(hub, alert())
    assert d["status"] == "delivered"
    [incident] = snow.incidents.values()
    assert d["remote_id"] == incident["number"]
    assert incident["short_description"] == "CPU high on web-01"
    assert (incident["impact"], incident["urgency"]) == ("1", "2")
    assert incident["correlation_display"] == "tidings" and incident["assignment_group"] == "Network"
    assert "host: web-01" in incident["description"] and "https://grafana.example.com/d/1" in incident["description"]
    row = await ledger_row(hub.store, "sn", "cpu:web-01")
    assert row is not None and row["state"] == "open" and row["remote_id"] == incident["sys_id"]
    assert incident["correlation_id"] == row["marker"] and row["lease_owner"] is None


async def test_repeats_one_incident_rate_limited_notes_then_resolve_and_reopen(make_hub: Any, snow: ServiceNow) -> None:
    hub = await make_hub(routed("sn", sn(snow, comment_every="1h")))
    for _ in range(6):
        assert (await send(hub, alert()))["status"] == "delivered"
    [incident] = snow.incidents.values()
    notes = snow.notes[incident["sys_id"]]
    assert len(notes) == 1 and "once more" in notes[0], "the first repeat is noted, the next 4 wait for the window"
    row = await ledger_row(hub.store, "sn", "cpu:web-01")
    assert row is not None and row["pending_repeats"] == 4 and row["comments"] == 1

    assert (await send(hub, alert("CPU back to normal", resolves=True)))["status"] == "delivered"
    assert incident["state"] == "6" and incident["close_code"] == "Solution provided"
    assert "4 more times" in incident["close_notes"]

    assert (await send(hub, alert()))["status"] == "delivered"
    assert len(snow.incidents) == 1 and incident["state"] == "2", "reopened, not a new incident"
    assert "after it was resolved" in snow.notes[incident["sys_id"]][-1]


async def test_reopen_false_opens_a_new_incident(make_hub: Any, snow: ServiceNow) -> None:
    hub = await make_hub(routed("sn", sn(snow, reopen=False)))
    await send(hub, alert())
    await send(hub, alert(resolves=True))
    await send(hub, alert())
    first, second = snow.incidents.values()
    assert first["state"] == "6" and second["state"] == "1"
    assert first["correlation_id"] != second["correlation_id"]
    row = await ledger_row(hub.store, "sn", "cpu:web-01")
    assert row is not None and row["tickets"] == 2 and row["remote_id"] == second["sys_id"]


async def test_a_resolve_without_a_ticket_creates_nothing(make_hub: Any, snow: ServiceNow) -> None:
    hub = await make_hub(routed("sn", sn(snow)))
    d = await send(hub, alert(resolves=True))
    assert d["status"] == "delivered" and "nothing to resolve" in (d["last_error"] or "")
    assert snow.incidents == {}


async def test_a_lost_answer_on_create_makes_no_duplicate(make_hub: Any, snow: ServiceNow) -> None:
    snow.drop_next_create()
    hub = await make_hub(routed("sn", sn(snow)))
    d = await send(hub, alert())
    assert d["status"] == "delivered" and d["attempts"] == 2
    assert len(snow.incidents) == 1
    assert snow.calls["POST /api/now/table/incident"] == 1, "the retry found the incident by its correlation id"
    assert d["remote_id"] == next(iter(snow.incidents.values()))["number"]


@pytest.mark.parametrize("fault", ["429", "500", "reset"])
async def test_busy_and_broken_answers_are_retried(make_hub: Any, snow: ServiceNow, fault: str) -> None:
    if fault == "reset":
        snow.reset_next()
    else:
        snow.fail(int(fault), retry_after=0 if fault == "429" else None, times=2)
    hub = await make_hub(routed("sn", sn(snow)))
    d = await send(hub, alert())
    assert d["status"] == "delivered" and d["attempts"] >= 2
    assert len(snow.incidents) == 1


async def test_401_disables_the_integration_and_holds_its_deliveries(make_hub: Any, snow: ServiceNow) -> None:
    hub = await make_hub(routed("sn", sn(snow, password="wrong-password")))
    d = await send(hub, alert())
    assert d["status"] == "dead" and "401" in d["last_error"] and "User Not Authenticated" in d["last_error"]
    assert "wrong-password" not in d["last_error"]

    async def disabled() -> bool:
        async with hub.store.read() as conn:
            row = (await conn.execute(select(integration_state).where(integration_state.c.name == "sn"))).first()
        return row is not None and row.disabled

    await eventually(disabled)
    later = await hub.notify(alert("again", key="other"))
    await asyncio.sleep(0.3)  # the dispatcher had its chance to send; nothing may have gone out
    held = (await hub.message(later.id))["deliveries"][0]
    assert held["status"] in ("pending", "held") and held["attempts"] == 0
    assert snow.incidents == {}


@pytest.mark.parametrize(("status", "says"), [(400, "HTTP 400"), (403, "ACL")])
async def test_refusals_are_dead_with_servicenows_reason(make_hub: Any, snow: ServiceNow, status: int, says: str) -> None:
    if status == 403:
        snow.acl_denied = True
    else:
        snow.fail(400)
    hub = await make_hub(routed("sn", sn(snow)))
    d = await send(hub, alert())
    assert d["status"] == "dead" and d["attempts"] == 1 and says in d["last_error"]


async def test_oauth_client_credentials_cached_and_renewed(make_hub: Any, snow: ServiceNow) -> None:
    settings = sn(snow, client_id=snow.client_id, client_secret=snow.client_secret)
    del settings["user"], settings["password"]
    hub = await make_hub(routed("sn", settings))
    await send(hub, alert())
    await send(hub, alert(key="b"))
    assert snow.calls["POST /oauth_token.do"] == 1, "the token is cached"
    snow.expire_tokens()
    assert (await send(hub, alert(key="c")))["status"] == "delivered"
    assert snow.calls["POST /oauth_token.do"] == 2 and len(snow.incidents) == 3


async def test_wrong_client_secret_disables(make_hub: Any, snow: ServiceNow) -> None:
    settings = sn(snow, client_id=snow.client_id, client_secret="not-the-secret")
    del settings["user"], settings["password"]
    hub = await make_hub(routed("sn", settings))
    d = await send(hub, alert())
    assert d["status"] == "dead" and "client credentials" in d["last_error"] and "not-the-secret" not in d["last_error"]


async def test_preview_and_connection_test_create_nothing(make_hub: Any, snow: ServiceNow) -> None:
    hub = await make_hub(routed("sn", sn(snow)))
    [preview] = hub.preview(alert(priority="critical"))
    incident = preview["payload"]["incident"]
    assert (incident["impact"], incident["urgency"]) == ("1", "1") and incident["category"] == "network"
    outcome = await hub.test("sn")
    assert outcome.ok
    assert snow.calls["GET /api/now/table/incident"] == 1 and snow.incidents == {}
    snow.password = "rotated"
    bad = await hub.test("sn")
    assert not bad.ok and "401" in (bad.error or "")


async def test_two_workers_same_alert_one_incident(make_hub: Any, snow: ServiceNow, db: str) -> None:
    if db != "postgresql" or not pg_available():
        pytest.skip("two workers share a PostgreSQL database")
    config = routed("sn", sn(snow, comment_every=0))
    one, two = await make_hub(config), await make_hub(config)
    sent = await asyncio.gather(*(hub.notify(alert()) for hub in (one, two, one, two)))
    for hub, r in zip((one, two, one, two), sent, strict=True):
        assert (await settle(hub, r.id))["status"] == "delivered"
    assert len(snow.incidents) == 1
    assert len(snow.notes[next(iter(snow.incidents))]) == 3, "the other three are repeats"


def test_settings_need_one_way_to_authenticate() -> None:
    with pytest.raises(ValueError, match="user \\+ password"):
        ServiceNowSettings(kind="servicenow", instance_url="https://x.service-now.com")
    with pytest.raises(ValueError, match="both client_id and client_secret"):
        ServiceNowSettings(kind="servicenow", instance_url="https://x.service-now.com", client_id="abc")
    with pytest.raises(ValueError, match="1, 2 or 3"):
        ServiceNowSettings(kind="servicenow", instance_url="https://x.service-now.com", user="u", password="p",
                           priorities={"high": (1, 4)})


@pytest.mark.parametrize("how", ["closed", "deleted"])
async def test_an_incident_closed_or_deleted_by_a_person_gets_a_new_one(make_hub: Any, snow: ServiceNow, how: str) -> None:
    hub = await make_hub(routed("sn", sn(snow, comment_every=0)))
    await send(hub, alert())
    [first] = list(snow.incidents)
    if how == "closed":
        await send(hub, alert(resolves=True))
        snow.close(first)
    else:
        snow.delete(first)
    d = await send(hub, alert())
    assert d["status"] == "delivered"
    assert len(snow.active()) == 1 and snow.active()[0]["sys_id"] != first
    row = await ledger_row(hub.store, "sn", "cpu:web-01")
    assert row is not None and row["state"] == "open" and row["tickets"] == 2
