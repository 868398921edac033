"""The configuration API, continued: a project's routes in order (insert, change, move, delete) and
the default route; deleting an integration with deliveries still to send (refused, or forced: they
end dead with the reason, retryable by hand); tests of draft settings against a local peer; the
kinds' settings schemas. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from peer import Peer
from sink import Reply
from sqlalchemy import select
from test_config_api import ALPHA, as_, revisions, start, vault_key_fixture, whsec  # noqa: F401  (a fixture)

from tidings.store.tables import deliveries

ROUTES = f"{ALPHA}/routes"
PROJECTS = {"alpha-inbox": {"kind": "inbox", "project": "alpha"}, "beta-inbox": {"kind": "inbox", "project": "beta"}}
"""Integrations of the projects the tests' people belong to (made at start)."""


async def names(api: Any, token: str) -> list[tuple[int, str | None]]:
    r = await api.get(ROUTES, **as_(token))
    assert r.status_code == 200 and r.headers["ETag"] == f'"{r.json()["revision"]}"', r.text
    return [(i["index"], i.get("name")) for i in r.json()["items"]]


async def test_a_projects_routes_in_order(make_api: Any) -> None:
    api, people = await start(make_api)
    owner = people["owner"]
    assert await names(api, owner) == [(0, "all")]
    count = len(await revisions(api))
    # Inserted last by default, or at a position; each write one revision.
    for body in ({"name": "last", "to": ["alpha-inbox"]},
                 {"name": "first", "to": ["alpha-inbox"], "match": {"priority": ">=high"}, "position": 0},
                 {"name": "middle", "to": ["alpha-inbox"], "position": 2}):
        r = await api.post(ROUTES, json=body, **as_(owner, "*"))
        assert r.status_code == 201 and r.json()["name"] == body["name"], r.text
        assert "position" not in r.json() and r.json()["index"] == body.get("position", 1)
    assert await names(api, owner) == [(0, "first"), (1, "all"), (2, "middle"), (3, "last")]
    assert len(await revisions(api)) == count + 3
    # Another project's routes don't move (beta's route stays where it was in the document).
    doc = (await revisions(api))[-1].document
    assert '"project":"beta"' in doc.replace(" ", "")
    # By index or by name.
    assert (await api.get(f"{ROUTES}/2", **as_(people["viewer"]))).json()["name"] == "middle"
    r = await api.get(f"{ROUTES}/first", **as_(owner))
    assert r.json()["index"] == 0 and r.json()["match"] == {"priority": ">=high"}
    for missing in ("4", "nope"):
        assert (await api.get(f"{ROUTES}/{missing}", **as_(owner))).status_code == 404
    # A merge patch; `position` moves it too.
    r = await api.request("PATCH", f"{ROUTES}/first", json={"match": None, "cooldown": "1m", "position": 3},
                          **as_(owner, "*"))
    assert r.status_code == 200 and r.json()["index"] == 3 and "match" not in r.json(), r.text
    assert await names(api, owner) == [(0, "all"), (1, "middle"), (2, "last"), (3, "first")]
    r = await api.post(f"{ROUTES}/last/move", json={"to": 0}, **as_(owner, "*"))
    assert r.status_code == 200 and r.json()["index"] == 0, r.text
    assert await names(api, owner) == [(0, "last"), (1, "all"), (2, "middle"), (3, "first")]
    for bad in ({"to": 4}, {"to": -1}):
        r = await api.post(f"{ROUTES}/last/move", json=bad, **as_(owner, "*"))
        assert r.status_code == 422, r.text
    r = await api.post(ROUTES, json={"to": ["alpha-inbox"], "position": 9}, **as_(owner, "*"))
    assert r.status_code == 422 and r.json()["problems"] == ["position: 9 is out of range (0 to 4)"], r.text
    r = await api.request("PATCH", f"{ROUTES}/0", json={"project": "beta"}, **as_(owner, "*"))
    assert r.status_code == 422, r.text
    # Deleted: the ones after it move up.
    r = await api.request("DELETE", f"{ROUTES}/all", **as_(owner, "*"))
    assert r.status_code == 200 and r.json()["index"] == 1 and r.json()["deleted"], r.text
    assert await names(api, owner) == [(0, "last"), (1, "middle"), (2, "first")]
    assert len(await revisions(api)) == count + 6
    last = (await revisions(api))[-1]
    assert (last.author, last.source) == ("owner@example.com", "api")


async def test_the_default_route(make_api: Any) -> None:
    api, people = await start(make_api, {"integrations": {"inbox": {"kind": "inbox"}, "other": {"kind": "inbox"},
                                                          **PROJECTS}})
    owner = people["owner"]
    r = await api.get("/api/v1/default-route", **as_(owner))
    assert r.status_code == 200 and r.json()["to"] == ["inbox"], r.text
    r = await api.request("PUT", "/api/v1/default-route", json={"to": ["other"], "cooldown": "1m"},
                          **as_(owner, r.headers["ETag"]))
    assert r.status_code == 200 and r.json()["to"] == ["other"] and r.json()["cooldown"] == "1m", r.text
    assert (await api.get("/api/v1/projects/default/default-route", **as_(owner))).json()["to"] == ["other"]
    r = await api.request("PUT", "/api/v1/default-route", json={"to": ["alpha-inbox"]}, **as_(owner, "*"))
    assert r.status_code == 422 and "belongs to project 'alpha'" in r.json()["problems"][0], r.text
    r = await api.request("PUT", "/api/v1/default-route", json={"to": ["other"], "match": {}}, **as_(owner, "*"))
    assert r.status_code == 422 and r.json()["problems"] == ["default.match: the default route has no match"]
    r = await api.get(f"{ALPHA}/default-route", **as_(owner))
    assert r.status_code == 404 and "only the project 'default'" in r.json()["detail"]
    r = await api.request("PUT", f"{ALPHA}/default-route", json={"to": ["alpha-inbox"]}, **as_(owner, "*"))
    assert r.status_code == 404


async def _pending(api: Any, integration: str) -> list[Any]:
    async with api.hub.store.read() as conn:
        return list((await conn.execute(select(deliveries).where(deliveries.c.integration == integration)
                                        .order_by(deliveries.c.id))).all())


async def test_deleting_an_integration_with_deliveries_to_send(make_api: Any) -> None:
    config = {"integrations": {"inbox": {"kind": "inbox"}, "spare": {"kind": "inbox"}, **PROJECTS}}
    api, people = await start(make_api, config)
    owner = people["owner"]
    for _ in range(3):  # no dispatcher: they stay pending
        r = await api.post("/api/v1/messages", json={"title": "t", "to": ["spare"]}, **as_(owner))
        assert r.status_code == 202, r.text
    count = len(await revisions(api))
    r = await api.request("DELETE", "/api/v1/integrations/spare", **as_(owner, "*"))
    assert r.status_code == 409 and "has 3 deliveries not finished" in r.json()["detail"], r.text
    assert len(await revisions(api)) == count and {d.status for d in await _pending(api, "spare")} == {"pending"}
    r = await api.request("DELETE", "/api/v1/integrations/spare?force=true", **as_(owner, "*"))
    assert r.status_code == 200 and r.json()["killed"] == 3 and r.json()["revision"] == count + 1, r.text
    dead = await _pending(api, "spare")
    reason = f"integration spare deleted in revision {count + 1} by owner@example.com"
    assert {(d.status, d.last_error) for d in dead} == {("dead", reason)}
    entries = [e async for e in _entries(api, "delivery.kill")]
    assert entries and entries[-1]["after"]["count"] == 3 and entries[-1]["actor_name"] == "owner@example.com"
    # It comes back; its dead deliveries can be retried by hand.
    r = await api.post("/api/v1/integrations", json={"name": "spare", "kind": "inbox"}, **as_(owner, "*"))
    assert r.status_code == 201, r.text
    r = await api.post(f"/api/v1/deliveries/{dead[0].id}/retry", **as_(owner))
    assert r.status_code == 200 and r.json()["status"] == "pending", r.text


async def _entries(api: Any, action: str) -> Any:
    from tidings.audit.verify import read_entries

    for entry in await read_entries(api.hub.store):
        if entry["action"] == action:
            yield entry


def hook(peer: Peer, path: str = "/hook") -> dict[str, Any]:
    return {"url": peer.url + path, "retry": {"max_attempts": 1}}


async def test_a_draft_is_tested_without_saving_it(make_api: Any, peer: Peer, vault_key: None) -> None:
    api, people = await start(make_api)
    owner, member, viewer = people["owner"], people["member"], people["viewer"]
    count = len(await revisions(api))
    secret = whsec()
    draft = {"name": "new-hook", "kind": "webhook", "settings": {**hook(peer), "secret": secret}}
    # A new integration's draft: sent through the outbound guard (the test allows 127.0.0.1), signed.
    r = await api.post(f"{ALPHA}/integrations/test", json=draft, **as_(member))
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["status"] == "delivered", r.text
    assert peer.received[-1].path == "/hook" and "webhook-signature" in peer.received[-1].headers
    assert secret not in r.text
    # The peer's failures are reported as a send would classify them.
    peer.script(Reply(500, body="boom"))
    r = await api.post(f"{ALPHA}/integrations/test", json=draft, **as_(member))
    assert r.json()["ok"] is False and r.json()["status"] == "retry" and "500" in r.json()["error"], r.text
    peer.script(Reply(429, headers={"Retry-After": "7"}))
    r = await api.post(f"{ALPHA}/integrations/test", json=draft, **as_(member))
    assert r.json()["status"] == "retry" and r.json()["retry_after"] == 7, r.text
    # Invalid settings: 422 with paths; viewers may not test.
    r = await api.post(f"{ALPHA}/integrations/test", json={"kind": "webhook", "settings": {"method": "GET"}},
                       **as_(member))
    assert r.status_code == 422 and r.json()["problems"][0].startswith("integrations.draft.method"), r.text
    assert (await api.post(f"{ALPHA}/integrations/test", json=draft, **as_(viewer))).status_code == 403
    # A saved integration, and drafts of it: a patch over it, or a whole definition. Nothing is saved.
    r = await api.post(f"{ALPHA}/integrations", json={"name": "saved", "kind": "webhook", "settings": {
        **hook(peer), "secret": secret}}, **as_(owner, "*"))
    assert r.status_code == 201, r.text
    saved = len(await revisions(api))
    assert saved == count + 1
    r = await api.post(f"{ALPHA}/integrations/saved/test", json={"patch": {"url": peer.url + "/patched"}},
                       **as_(member))
    assert r.status_code == 200 and r.json()["ok"], r.text
    assert peer.received[-1].path == "/patched" and "webhook-signature" in peer.received[-1].headers  # the vault's secret
    r = await api.post(f"{ALPHA}/integrations/saved/test", json={"kind": "webhook", "settings": hook(peer, "/whole")},
                       **as_(member))
    assert r.status_code == 200 and r.json()["ok"], r.text
    assert peer.received[-1].path == "/whole" and "webhook-signature" not in peer.received[-1].headers
    r = await api.post(f"{ALPHA}/integrations/saved/test", json={"patch": {"kind": "slack"}}, **as_(member))
    assert r.status_code == 422, r.text
    r = await api.post(f"{ALPHA}/integrations/beta-inbox/test", json={"patch": {}}, **as_(owner))
    assert r.status_code == 404
    assert len(await revisions(api)) == saved
    assert (await api.get(f"{ALPHA}/integrations/saved", **as_(owner))).json()["settings"]["url"] == peer.url + "/hook"
    # Opening the outbound guard is a site admin's, in a draft too.
    r = await api.post(f"{ALPHA}/integrations/test", json={**draft, "settings": {
        **draft["settings"], "allow_destinations": ["10.0.0.0/8"]}}, **as_(member))
    assert r.status_code == 403 and "allow_destinations" in r.json()["detail"], r.text
    # Without a body, the running integration is tested as before.
    r = await api.post(f"{ALPHA}/integrations/alpha-inbox/test", **as_(member))
    assert r.status_code == 200 and r.json()["ok"] is True and "draft" not in r.json(), r.text


@pytest.mark.parametrize("db", ["sqlite"])
async def test_the_kinds_schemas_are_what_a_form_needs(make_api: Any, vault_key: None) -> None:
    api, people = await start(make_api)
    r = await api.get("/api/v1/integrations/kinds", **as_(people["viewer"]))
    assert r.status_code == 200, r.text
    kinds = {k["kind"]: k for k in r.json()["items"]}
    assert {"webhook", "slack", "email", "teams", "github", "inbox"} <= set(kinds)
    webhook, slack = kinds["webhook"], kinds["slack"]
    assert (webhook["sends"], webhook["receives"], kinds["github"]["sends"]) == (True, True, False)
    assert webhook["description"] and "``" not in webhook["description"]
    assert webhook["secret_fields"] == ["secret", "receive_secret"] and slack["secret_fields"] == [
        "token", "webhook_url", "signing_secret"]
    for kind in kinds.values():
        props = kind["schema"]["properties"]
        assert "kind" not in props and "project" not in props
        for field in kind["secret_fields"]:
            assert props[field]["writeOnly"] is True and props[field]["format"] == "password"
    good = {"url": "https://hooks.example.com/x", "secret": whsec(), "retry": {"max_attempts": 3}, "timeout": "5s",
            "headers": {"X-Team": "ops"}}
    jsonschema.validate(good, webhook["schema"])
    jsonschema.validate({"token": "xoxb-1-2-abc", "channel": "#ops"}, slack["schema"])
    for bad in ({**good, "method": "GET"}, {**good, "retry": {"max_attempts": "many"}}, {**good, "nope": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, webhook["schema"])
    # What the schema accepts, the API takes.
    r = await api.post(f"{ALPHA}/integrations", json={"name": "formed", "kind": "webhook", "settings": good},
                       **as_(people["owner"], "*"))
    assert r.status_code == 201 and r.json()["settings"]["secret"]["set"] is True, r.text
    assert (await api.get("/api/v1/integrations/kinds", auth=False)).status_code == 401


async def test_this_process_runs_a_write_at_once(make_api: Any, peer: Peer) -> None:
    """Once the hub follows revisions (``hub.watcher``), the process that took a write switches at once: the new
    integration is listed with its health and receives the next message."""
    api, people = await start(make_api, {"integrations": {"inbox": {"kind": "inbox"}, **PROJECTS}}, dispatch=True)
    if getattr(api.hub, "watcher", None) is None:
        pytest.skip("this hub does not follow configuration revisions")
    owner = people["owner"]
    r = await api.post("/api/v1/integrations", json={"name": "ops", "kind": "webhook", "settings": hook(peer)},
                       **as_(owner, "*"))
    assert r.status_code == 201, r.text
    listed = {i["name"]: i for i in (await api.get("/api/v1/integrations", **as_(owner))).json()}
    assert listed["ops"]["settings"]["url"] == peer.url + "/hook" and listed["ops"]["health"] == "ok"
    r = await api.post("/api/v1/messages", json={"title": "t", "to": ["ops"]}, **as_(owner))
    assert r.status_code == 202, r.text
    assert (await api.hub.wait(r.json()["id"]))["deliveries"][0]["status"] == "delivered"
