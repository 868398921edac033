"""The other signals the watch turns into incidents: an inbound sender failing verification (over
HTTP), a failing sync mapping (the real sync service around a scripted engine), an OAuth connection
that needs re-auth (the keeper against a token endpoint stand-in); and the cooldown, with a clock."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually
from sink import Sink
from sqlalchemy import select
from standardwebhooks import Webhook
from sync.service_fakes import Script, install, tracker

from tidings import Hub
from tidings.oauth import keeper
from tidings.security.vault import new_key, write_key_file
from tidings.store.recipient_tables import incidents
from tidings.store.tables import messages
from tidings.sync.model import AuthFailed
from tidings.sync.service import SyncService
from tidings.watch import REJECT_AFTER

SECRET = "whsec_" + base64.b64encode(b"watch-test-secret-bytes-32......").decode()
OTHER = "whsec_" + base64.b64encode(b"some-other-secret-of-32-bytes...").decode()


@pytest.fixture
async def alerts() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    yield s
    await s.stop()


async def rows(hub: Hub) -> list[dict[str, Any]]:
    async with hub.require_store().read() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(incidents).order_by(incidents.c.opened_at))]


async def told(hub: Hub) -> list[dict[str, Any]]:
    """The notices stored (message data), oldest first."""
    async with hub.require_store().read() as conn:
        found = await conn.execute(select(messages.c.data).where(messages.c.source == "tidings")
                                   .order_by(messages.c.created_at))
        return [r.data for r in found]


def signed(secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"type": "order.failed", "data": {"title": "x"}}).encode()
    msg_id = "msg_" + os.urandom(6).hex()
    when = dt.datetime.now(dt.UTC)
    return body, {"content-type": "application/json", "webhook-id": msg_id,
                  "webhook-timestamp": str(int(when.timestamp())),
                  "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode())}


# -- inbound verification ----------------------------------------------------------------------------
async def test_repeated_bad_signatures_are_told_once_and_a_verified_request_resolves(make_api: Any,
                                                                                      alerts: Sink) -> None:
    api = await make_api({
        "integrations": {
            "partner": {"kind": "webhook", "url": alerts.url + "/partner", "receive_secret": SECRET,
                        "receive": {"mapping": {"title": "{{ payload.data.title }}"}}},
            "alerts": {"kind": "webhook", "url": alerts.url + "/alerts"},
        },
        "routes": [{"match": {"labels": {"source": "partner"}}, "to": ["alerts"]}],
        "default": {"to": ["alerts"]},
        "projects": {"default": {"alerts_to": ["partner", "alerts"]}},
    })
    hub = api.hub
    for n in range(REJECT_AFTER * 3):
        body, headers = signed(OTHER)
        r = await api.post("/hooks/partner", content=body, headers=headers, auth=False)
        assert r.status_code == 401
        await hub.watch.settled()  # (signals queued behind an unhandled one of the same incident add nothing)
        if n == REJECT_AFTER - 2:
            assert await rows(hub) == []  # not yet: a few bad requests are no incident
    await hub.watch.settled()
    [row] = await rows(hub)
    assert (row["subject"], row["kind"], row["status"], row["count"]) == ("inbound/partner", "verification", "open", 3)
    await alerts.wait_for(1)
    [notice] = [r.json()["data"] for r in alerts.received]
    assert notice["labels"]["kind"] == "verification" and notice["labels"]["event_type"] == "incident.opened"
    assert all(r.path == "/alerts" for r in alerts.received)  # never through the integration it is about

    body, headers = signed()
    r = await api.post("/hooks/partner", content=body, headers=headers, auth=False)
    assert r.status_code == 200, r.text
    await hub.watch.settled()
    assert (await rows(hub))[0]["status"] == "resolved"

    async def recovery() -> bool:
        return any(r.json()["data"]["labels"].get("event_type") == "incident.resolved" for r in alerts.received)

    await eventually(recovery)
    stages = [r.json()["data"]["labels"].get("event_type") for r in alerts.received
              if r.json()["data"]["labels"].get("source") == "tidings"]
    assert stages == ["incident.opened", "incident.resolved"]


# -- sync --------------------------------------------------------------------------------------------
ALPHA = {
    "integrations": {"alpha-inbox": {"kind": "inbox", "project": "alpha"},
                     "alpha-pager": {"kind": "inbox", "project": "alpha"}},
    "routes": [{"project": "alpha", "to": ["alpha-inbox"]}],
    "projects": {"alpha": {"alerts_to": ["alpha-pager"]}},
}


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    return install(monkeypatch)


async def test_a_failing_sync_run_is_told_through_alerts_to_and_the_next_ok_run_resolves(
    make_hub: Callable[..., Any], script: Script,
) -> None:
    hub = await make_hub(ALPHA, dispatch=False)
    tracker(hub, "gh", project="alpha")

    async def item(method: str, _t: Any, key: str, run: Any) -> None:
        raise AuthFailed("401 Bad credentials")

    script.item = item
    service = SyncService(hub, window=0, fail_after=3)
    for n in range(4):
        service.hint("gh", str(n))
        await service.settle()
        await hub.watch.settled()  # (a signal queued behind an unhandled one of the same incident adds nothing)
    [row] = await rows(hub)
    assert (row["project"], row["subject"], row["kind"], row["count"]) == ("alpha", "sync/gh", "sync", 4)
    assert "401 Bad credentials" in row["detail"]
    # One notice (the watch's, to alerts_to); the service's own "keeps failing" notice gives way to it.
    [notice] = await told(hub)
    assert notice["labels"]["event_type"] == "incident.opened" and notice["title"] == "Sync of gh failed"
    async with hub.require_store().read() as conn:
        from tidings.store.tables import deliveries

        targets = [r.integration for r in await conn.execute(
            select(deliveries.c.integration).join(messages, messages.c.id == deliveries.c.message_id)
            .where(messages.c.source == "tidings"))]
    assert targets == ["alpha-pager"]

    script.item = None
    service.hint("gh", "ok")
    await service.settle()
    await hub.watch.settled()
    assert (await rows(hub))[0]["status"] == "resolved"
    assert [n["labels"]["event_type"] for n in await told(hub)] == ["incident.opened", "incident.resolved"]


# -- cooldown ----------------------------------------------------------------------------------------
async def test_within_the_cooldown_no_second_notice_after_it_a_reminder(make_hub: Callable[..., Any]) -> None:
    hub = await make_hub({**ALPHA, "projects": {"alpha": {"alerts_to": ["alpha-pager"], "alert_cooldown": "30m"}}},
                         dispatch=False)
    now = [1_900_000_000.0]
    hub.watch.clock = lambda: now[0]
    first = await hub.watch.open("alpha", "integration/alpha-inbox", "failing", "500 from the peer")
    assert first is not None and first["count"] == 1
    now[0] += 1799
    await hub.watch.open("alpha", "integration/alpha-inbox", "failing", "500 again")
    assert len(await told(hub)) == 1
    now[0] += 1
    await hub.watch.open("alpha", "integration/alpha-inbox", "failing", "500 still")
    notices = await told(hub)
    assert [n["labels"]["event_type"] for n in notices] == ["incident.opened", "incident.reminder"]
    assert notices[1]["title"] == "Still: alpha-inbox is failing" and "500 still" in notices[1]["body"]
    assert notices[0]["thread_key"] == notices[1]["thread_key"]
    [row] = await rows(hub)
    assert row["count"] == 3 and row["notified_at"] == now[0]
    now[0] += 60
    resolved = await hub.watch.resolve("alpha", "integration/alpha-inbox", "failing")
    assert resolved is not None and resolved["status"] == "resolved"
    assert await hub.watch.resolve("alpha", "integration/alpha-inbox", "failing") is None  # once
    notices = await told(hub)
    assert [n["labels"]["event_type"] for n in notices][-1] == "incident.resolved"
    assert notices[-1]["body"].startswith("Resolved after 31 min (3 occurrences).")
    # The next failure is a new incident, told at once.
    again = await hub.watch.open("alpha", "integration/alpha-inbox", "failing", "down again")
    assert again is not None and again["id"] != first["id"]
    assert len(await told(hub)) == 4


async def test_no_recovery_notice_for_an_incident_nobody_was_told_of(make_hub: Callable[..., Any]) -> None:
    hub = await make_hub({**ALPHA, "projects": {}}, dispatch=False)
    await hub.watch.open("alpha", "integration/alpha-inbox", "dead", "gone")
    await hub.watch.resolve("alpha", "integration/alpha-inbox", "dead")
    [row] = await rows(hub)
    assert row["status"] == "resolved" and row["notified_at"] is None
    assert row["notice"] == "no notice: project alpha sets no alerts_to"
    assert await told(hub) == []


async def test_unknown_kinds_and_nul_in_details_are_handled(make_hub: Callable[..., Any]) -> None:
    hub = await make_hub(ALPHA, dispatch=False)
    with pytest.raises(ValueError, match="unknown incident kind"):
        await hub.watch.open("alpha", "integration/alpha-inbox", "bogus", None)
    row = await hub.watch.open("alpha", "integration/alpha-inbox", "dead", "bad\x00bytes " + "x" * 5000)
    assert row is not None
    [stored] = await rows(hub)
    assert "\x00" not in stored["detail"] and len(stored["detail"]) <= 2000
    assert stored["notice"].startswith("opened notice ")  # the notice carries the cleaned detail


# -- OAuth connections ---------------------------------------------------------------------------------
@pytest.fixture
def oauth_config(endpoint: Any, tmp_path: Path) -> dict[str, Any]:
    from oauth.keeper_support import demo_config

    write_key_file(tmp_path / "tidings.key", [new_key()])
    data = demo_config(endpoint, "chat")
    data["integrations"]["pager"] = {"kind": "inbox"}
    data["projects"] = {"default": {"alerts_to": ["chat", "pager"]}}
    return data


@pytest.mark.usefixtures("demo")
async def test_a_connection_needing_reauth_is_told_through_alerts_to_and_a_refresh_resolves(
    make_hub: Callable[..., Any], oauth_config: dict[str, Any], endpoint: Any,
) -> None:
    from oauth.keeper_support import connect

    hub = await make_hub(oauth_config, dispatch=False)
    grant = endpoint.grant()
    grant.expires_at = time.time() + 120
    await connect(hub, "chat", grant, now=time.time() + 120 - 3600)
    endpoint.valid.discard(grant.refresh_token)  # revoked at the provider
    assert await keeper.refresh_one(hub, "chat", "w1") == "refused"
    await hub.watch.settled()
    [row] = await rows(hub)
    assert (row["subject"], row["kind"], row["status"]) == ("connection/chat", "connection", "open")
    assert "needs re-auth" in row["detail"]
    # The watch's notice, to pager (not chat, which is what broke); the keeper's own gives way.
    [notice] = await told(hub)
    assert notice["title"] == "chat needs to be connected again"
    async with hub.require_store().read() as conn:
        from tidings.store.tables import deliveries

        targets = [r.integration for r in await conn.execute(select(deliveries.c.integration).join(
            messages, messages.c.id == deliveries.c.message_id).where(messages.c.source == "tidings"))]
    assert targets == ["pager"]
    # Connected again and refreshed: resolved, and the recovery told.
    grant = endpoint.grant()
    grant.expires_at = time.time() + 120
    await connect(hub, "chat", grant, now=time.time() + 120 - 3600)
    assert await keeper.refresh_one(hub, "chat", "w1", force=True) == "refreshed"
    await hub.watch.settled()
    assert (await rows(hub))[0]["status"] == "resolved"
    assert [n["labels"]["event_type"] for n in await told(hub)] == ["incident.opened", "incident.resolved"]


# -- the hot path is never broken --------------------------------------------------------------------
async def test_a_failing_watch_never_breaks_sending(make_hub: Callable[..., Any], alerts: Sink,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from sink import Reply

    from tidings import Message
    from tidings.watch import incidents as inc

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the incidents table is gone")

    monkeypatch.setattr(inc, "open_incident", broken)
    alerts.default = Reply(400)
    hub = await make_hub({"integrations": {"ops": {"kind": "webhook", "url": alerts.url + "/ops"},
                                           "pager": {"kind": "inbox"}},
                          "default": {"to": ["ops"]}, "projects": {"default": {"alerts_to": ["pager"]}}})
    hub.watch.recorded([object()])  # a hook given nonsense logs, never raises
    hub.watch.inbound("nope", "rejected")
    first = await hub.wait((await hub.notify(Message("dead one"))).id)
    assert first["deliveries"][0]["status"] == "dead"
    await hub.watch.settled()  # its signal failed (logged)
    alerts.default = Reply(200)
    after = await hub.wait((await hub.notify(Message("next"))).id)
    assert after["deliveries"][0]["status"] == "delivered"
    assert await rows(hub) == []
