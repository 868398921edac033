"""Projects keep to themselves: routing never crosses them, a member of one can't see, retry,
replay or silence another's things (403 on its paths, 404 for its ids on their own), a silence
silences its own project only, events and their messages belong to the receiver's project, and the
unscoped routes are the ``default`` project's. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

from helpers import eventually
from people import person
from sqlalchemy import select, update

from tidings import Hub, Message
from tidings.store.tables import audit_log, deliveries, events, messages, projects

SECRET = "projects-test-secret"
ALPHA, BETA = "/api/v1/projects/alpha", "/api/v1/projects/beta"
CONFIG: dict[str, Any] = {
    "integrations": {
        "inbox": {"kind": "inbox"},
        "alpha-inbox": {"kind": "inbox", "project": "alpha"},
        "beta-inbox": {"kind": "inbox", "project": "beta"},
        "beta-gh": {"kind": "github", "secret": SECRET, "project": "beta"},
    },
    "routes": [
        {"project": "alpha", "to": ["alpha-inbox"]},
        {"project": "beta", "match": {"source": "github"}, "to": ["beta-inbox"]},
        {"project": "beta", "match": {"labels": {"severity": "critical"}}, "to": ["beta-inbox"]},
    ],
}
CRITICAL = {"severity": "critical", "service": "db"}


def auth(token: str) -> dict[str, str]:
    return {"headers": {"Authorization": f"Bearer {token}"}, "auth": False}


async def start(make_api: Any, **kwargs: Any) -> tuple[Any, dict[str, str]]:
    api = await make_api(CONFIG, **kwargs)
    store = api.hub.store
    people = {
        "alpha": await person(store, "a@example.com", {"alpha": "member"}),
        "alpha owner": await person(store, "ao@example.com", {"alpha": "owner"}),
        "beta": await person(store, "b@example.com", {"beta": "member"}),
        "beta viewer": await person(store, "bv@example.com", {"beta": "viewer"}),
    }
    return api, people


async def send(api: Any, token: str, base: str, **message: Any) -> Any:
    r = await api.post(f"{base}/messages", json={"title": "t", **message}, **auth(token))
    assert r.status_code in (202, 422), r.text
    return r


async def project_of(api: Any, message_id: str) -> str:
    async with api.hub.store.read() as conn:
        return str((await conn.execute(select(messages.c.project).where(messages.c.id == message_id))).scalar())


async def test_routing_never_crosses_projects(make_api: Any) -> None:
    api, people = await start(make_api, dispatch=False)
    r = await send(api, people["alpha"], ALPHA)
    assert [d["integration"] for d in r.json()["deliveries"]] == ["alpha-inbox"]
    assert await project_of(api, r.json()["id"]) == "alpha"
    r = await send(api, people["beta"], BETA, labels=CRITICAL)
    assert [d["integration"] for d in r.json()["deliveries"]] == ["beta-inbox"]
    # No route of beta matches: stored in beta, sent nowhere (beta has no default route).
    r = await send(api, people["beta"], BETA)
    assert r.status_code == 202 and r.json()["deliveries"] == [] and await project_of(api, r.json()["id"]) == "beta"
    # The unscoped route sends in default, by default's routes.
    r = await send(api, api.token, "/api/v1")
    assert [d["integration"] for d in r.json()["deliveries"]] == ["inbox"]
    assert await project_of(api, r.json()["id"]) == "default"
    # `to` naming another project's integration is an unknown integration, wherever it is sent from.
    async with api.hub.store.read() as conn:
        stored = len((await conn.execute(select(messages.c.id))).all())
    for token, base, target in ((people["alpha"], ALPHA, "beta-inbox"), (people["alpha"], ALPHA, "inbox"),
                                (api.token, "/api/v1", "alpha-inbox"), (api.token, BETA, "alpha-inbox")):
        r = await send(api, token, base, to=[target])
        assert r.status_code == 422 and r.json() == {"error": "unknown integration",
                                                     "detail": f"unknown integration {target!r}"}, r.text
        r = await api.post(f"{base}/preview", json={"title": "t", "to": [target]}, **auth(token))
        assert r.status_code == 422, r.text
    async with api.hub.store.read() as conn:
        assert len((await conn.execute(select(messages.c.id))).all()) == stored
    r = await api.post(f"{ALPHA}/preview", json={"title": "t"}, **auth(people["alpha"]))
    assert [t["integration"] for t in r.json()["targets"]] == ["alpha-inbox"]
    # The library sends in default unless told otherwise.
    hub: Hub = api.hub
    assert await project_of(api, (await hub.notify(Message("lib"))).id) == "default"
    receipt = await hub.notify(Message("lib"), project="alpha")
    assert await project_of(api, receipt.id) == "alpha" and [d.integration for d in receipt.deliveries] == ["alpha-inbox"]


async def test_a_member_of_one_project_cannot_reach_anothers_things(make_api: Any) -> None:
    api, people = await start(make_api, dispatch=False)
    alpha, beta = people["alpha"], people["beta"]
    theirs = (await send(api, beta, BETA, labels=CRITICAL)).json()
    delivery = theirs["deliveries"][0]["id"]
    async with api.hub.store.write() as conn:
        await conn.execute(update(deliveries).where(deliveries.c.id == delivery).values(status="dead"))
    silence = (await api.post(f"{BETA}/silences", json={"matchers": {"service": "x"}, "duration": "1h"},
                              **auth(beta))).json()
    event = await github_event(api)
    mine = (await send(api, alpha, ALPHA)).json()
    # On beta's paths: 403, naming the permission and the project.
    for method, path in (("GET", "/deliveries"), ("GET", f"/messages/{theirs['id']}"), ("GET", "/silences"),
                         ("POST", f"/deliveries/{delivery}/retry"), ("POST", f"/events/{event}/replay"),
                         ("DELETE", f"/silences/{silence['id']}"), ("GET", "/events"), ("GET", "/integrations")):
        r = await api.request(method, BETA + path, **auth(alpha))
        assert r.status_code == 403 and "in project 'beta'" in r.json()["detail"], (method, path, r.text)
    # Beta's ids on alpha's paths (and on default's): 404, as if they didn't exist.
    for base, token in ((ALPHA, alpha), ("/api/v1", api.token)):
        for method, path in (("GET", f"/messages/{theirs['id']}"), ("POST", f"/deliveries/{delivery}/retry"),
                             ("GET", f"/events/{event}"), ("POST", f"/events/{event}/replay"),
                             ("DELETE", f"/silences/{silence['id']}"), ("DELETE", f"/silences/{silence['id'][:8]}"),
                             ("POST", "/integrations/beta-inbox/disable"), ("POST", "/integrations/beta-inbox/test")):
            r = await api.request(method, base + path, **auth(token if "disable" not in path else people["alpha owner"]
                                                                 if base == ALPHA else token))
            assert r.status_code == 404 and r.json()["error"] == "not found", (base, method, path, r.text)
    r = await api.post(f"{ALPHA}/deliveries/retry", json={"status": "dead"}, **auth(alpha))
    assert r.json() == {"retried": []}
    # Listings hold only the project's own.
    listed = (await api.get(f"{ALPHA}/deliveries", **auth(alpha))).json()["items"]
    assert [d["message_id"] for d in listed] == [mine["id"]]
    assert (await api.get(f"{ALPHA}/silences", **auth(alpha))).json() == {"items": []}
    assert (await api.get(f"{ALPHA}/events", **auth(alpha))).json()["items"] == []
    assert [i["name"] for i in (await api.get(f"{ALPHA}/integrations", **auth(alpha))).json()] == ["alpha-inbox"]
    # Nothing of beta's changed; beta's member still reaches it all.
    r = await api.get(f"{BETA}/messages/{theirs['id']}", **auth(beta))
    assert r.status_code == 200 and r.json()["project"] == "beta" and r.json()["deliveries"][0]["status"] == "dead"
    assert [s["id"] for s in (await api.get(f"{BETA}/silences", **auth(beta))).json()["items"]] == [silence["id"]]
    assert (await api.post(f"{BETA}/deliveries/{delivery}/retry", **auth(beta))).json()["status"] == "pending"
    # A project that doesn't exist: 403 for a member elsewhere (nothing learnt), 404 for a site admin.
    assert (await api.get("/api/v1/projects/nope/deliveries", **auth(alpha))).status_code == 403
    r = await api.get("/api/v1/projects/nope/deliveries")
    assert r.status_code == 404 and r.json()["detail"] == "no project 'nope'"


async def github_event(api: Any) -> str:
    """An issue opened on beta's GitHub receiver; the stored event's id."""
    body = json.dumps({"action": "opened", "issue": {"number": 7, "title": "Broken", "html_url": "https://github.com/o/r/issues/7",
                                                      "user": {"login": "octo"}},
                       "repository": {"full_name": "o/r"}, "sender": {"login": "octo"}}).encode()
    headers = {"content-type": "application/json", "x-github-event": "issues", "x-github-delivery": str(uuid.uuid4()),
               "x-hub-signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}
    r = await api.post("/hooks/beta-gh", content=body, headers=headers, auth=False)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def test_events_and_the_messages_they_make_belong_to_the_receivers_project(make_api: Any) -> None:
    api, people = await start(make_api)
    event = await github_event(api)

    async def processed() -> bool:
        r = await api.get(f"{BETA}/events/{event}", **auth(people["beta"]))
        return bool(r.json()["status"] == "processed")

    await eventually(processed)
    async with api.hub.store.read() as conn:
        assert (await conn.execute(select(events.c.project).where(events.c.id == event))).scalar() == "beta"
        made = (await conn.execute(select(messages.c.id, messages.c.project))).all()
    assert [m.project for m in made] == ["beta"]
    listed = (await api.get(f"{BETA}/deliveries", **auth(people["beta"]))).json()["items"]
    assert [(d["message_id"], d["integration"]) for d in listed] == [(made[0].id, "beta-inbox")]
    assert (await api.get("/api/v1/events")).json()["items"] == []
    # A member reads the payload; a viewer reads the event without headers and body.
    full = (await api.get(f"{BETA}/events/{event}", **auth(people["beta"]))).json()
    assert full["redacted"] is False and "opened" in full["body"] and full["headers"]["x-github-event"] == "issues"
    seen = (await api.get(f"{BETA}/events/{event}", **auth(people["beta viewer"]))).json()
    assert seen["redacted"] is True and seen["body"] is None and seen["headers"] == {}
    assert {k: v for k, v in seen.items() if k not in ("body", "headers", "redacted")} == {
        k: v for k, v in full.items() if k not in ("body", "headers", "redacted")}


async def test_a_silence_silences_its_own_project_only(make_api: Any) -> None:
    api, people = await start(make_api, dispatch=False)
    r = await api.post(f"{ALPHA}/silences", json={"matchers": {"service": "db"}, "duration": "1h"}, **auth(people["alpha"]))
    assert r.status_code == 201 and r.json()["project"] == "alpha"
    silenced = (await send(api, people["alpha"], ALPHA, labels=CRITICAL)).json()
    assert [d["status"] for d in silenced["deliveries"]] == ["suppressed"]
    beta = (await send(api, people["beta"], BETA, labels=CRITICAL)).json()
    assert [d["status"] for d in beta["deliveries"]] == ["pending"]
    default = (await send(api, api.token, "/api/v1", labels=CRITICAL)).json()
    assert [d["status"] for d in default["deliveries"]] == ["pending"]
    assert (await api.get("/api/v1/silences")).json() == {"items": []}
    # And one made on the unscoped path is default's.
    r = await api.post("/api/v1/silences", json={"matchers": {"service": "db"}, "duration": "1h"})
    assert r.json()["project"] == "default"
    assert [d["status"] for d in (await send(api, api.token, "/api/v1", labels=CRITICAL)).json()["deliveries"]] == [
        "suppressed"]
    assert [d["status"] for d in (await send(api, people["beta"], BETA, labels=CRITICAL)).json()["deliveries"]] == [
        "pending"]


async def test_the_unscoped_routes_are_the_default_projects(make_api: Any) -> None:
    api, people = await start(make_api)
    for token, base in ((api.token, "/api/v1"), (people["alpha"], ALPHA), (people["beta"], BETA)):
        await send(api, token, base, labels=CRITICAL)
        await api.post(f"{base}/silences", json={"matchers": {"service": base}, "duration": "1h"}, **auth(token))
    await github_event(api)

    async def delivered() -> bool:  # the inboxes hold what was sent, the event's message too
        counts = [len((await api.get(f"{base}/inbox", **auth(token))).json()["items"])
                  for token, base in ((api.token, "/api/v1"), (people["alpha"], ALPHA), (people["beta"], BETA))]
        return counts == [1, 1, 2]

    await eventually(delivered)
    for path in ("/deliveries", "/integrations", "/silences", "/events", "/inbox"):
        unscoped = (await api.get(f"/api/v1{path}")).json()
        assert unscoped == (await api.get(f"/api/v1/projects/default{path}")).json(), path
        assert unscoped != (await api.get(f"{BETA}{path}")).json(), path
    assert [i["name"] for i in (await api.get("/api/v1/integrations")).json()] == ["inbox"]


async def test_a_reused_idempotency_key_never_replays_another_projects_message(make_api: Any) -> None:
    api, people = await start(make_api, dispatch=False)
    key = {"Idempotency-Key": "deploy-42"}
    first = await api.post(f"{ALPHA}/messages", json={"title": "t"}, headers={**key, **auth(people["alpha"])["headers"]},
                           auth=False)
    assert first.status_code == 202
    other = await api.post(f"{BETA}/messages", json={"title": "t"}, headers={**key, **auth(people["beta"])["headers"]},
                           auth=False)
    assert other.status_code == 422 and other.json()["error"] == "idempotency key reused", other.text
    again = await api.post(f"{ALPHA}/messages", json={"title": "t"}, headers={**key, **auth(people["alpha"])["headers"]},
                           auth=False)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


async def test_the_hub_creates_the_projects_its_configuration_names(make_hub: Any) -> None:
    hub = await make_hub(CONFIG, dispatch=False)
    assert await hub.project_exists("alpha") and await hub.project_exists("beta")
    assert not await hub.project_exists("gamma")
    await hub.stop()
    await (await make_hub(CONFIG, dispatch=False)).stop()  # a second start finds them
    store = (await make_hub(dispatch=False)).store
    async with store.read() as conn:
        slugs = (await conn.execute(select(projects.c.slug).order_by(projects.c.slug))).scalars().all()
        made = (await conn.execute(select(audit_log.c.actor, audit_log.c.target)
                                   .where(audit_log.c.action == "project.create").order_by(audit_log.c.seq))).all()
    assert slugs == ["alpha", "beta", "default"]
    assert [tuple(m) for m in made] == [("system", "project/alpha"), ("system", "project/beta")]


async def test_a_malformed_project_in_the_path_is_refused_cleanly(make_api: Any) -> None:
    api, people = await start(make_api, dispatch=False)
    alpha = people["alpha"]

    async def denials() -> int:
        async with api.hub.store.read() as conn:
            return len((await conn.execute(select(audit_log.c.seq).where(audit_log.c.action == "access.denied"))).all())

    before = await denials()
    for slug in ("UPPER", "a" * 65, "x" * 1000, "-dash", "sp%20ace", "%C3%A9t%C3%A9"):
        assert (await api.get(f"/api/v1/projects/{slug}/deliveries", auth=False)).status_code == 401, slug
        for token in (alpha, api.token):
            r = await api.get(f"/api/v1/projects/{slug}/deliveries", **auth(token))
            assert r.status_code == 422 and r.json()["detail"] == [
                "path.project: a project slug is lower-case letters, digits and '-' (at most 64)"], (slug, r.text)
        r = await api.post(f"/api/v1/projects/{slug}/messages", json={"title": "t"}, **auth(alpha))
        assert r.status_code == 422, r.text
    assert await denials() == before, "nothing to audit: no one can make such a project"
    assert (await api.get("/api/v1/projects/a%00b/deliveries", **auth(alpha))).status_code == 400
    # A well-formed one: 403 (audited) for a member elsewhere, 404 for a site admin.
    longest = "a" * 64
    assert (await api.get(f"/api/v1/projects/{longest}/deliveries", **auth(alpha))).status_code == 403
    assert await denials() == before + 1
    assert (await api.get(f"/api/v1/projects/{longest}/deliveries")).status_code == 404
    async with api.hub.store.read() as conn:
        assert (await conn.execute(select(messages.c.id))).all() == []
