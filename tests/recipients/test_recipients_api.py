"""The recipients API: create, read, change (If-Match, 428/412) and delete; preferences, quiet
hours and time zone a person may change for themselves only; the project's quiet hours; groups; who may do what in which project; bad bodies are a clean
4xx; every change audited; the directory sees a change at once."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from people import person

from tidings.audit.verify import read_entries

ALPHA, BETA = "/api/v1/projects/alpha", "/api/v1/projects/beta"
TEAMS = "https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=t0p-s3cr3t-sig"
CONFIG: dict[str, Any] = {
    "integrations": {
        "inbox": {"kind": "inbox"},
        "alpha-inbox": {"kind": "inbox", "project": "alpha"},
        "beta-inbox": {"kind": "inbox", "project": "beta"},
    },
    "routes": [{"project": "alpha", "to": ["alpha-inbox"]}, {"project": "beta", "to": ["beta-inbox"]}],
    "projects": {"alpha": {"topics": {"security": {"required": True}, "deploys": {}},
                           "quiet_hours": {"timezone": "Europe/Berlin", "windows": [{"days": "weekends"}],
                                           "policy": {"low": "drop"}}}},
}


def as_(token: str, etag: str | None = None) -> dict[str, Any]:
    return {"auth": False, "headers": {"Authorization": f"Bearer {token}", **({"If-Match": etag} if etag else {})}}


@pytest.fixture
async def api(make_api: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, str]]:
    monkeypatch.setenv("TIDINGS_SECRET_KEY", Fernet.generate_key().decode())
    api = await make_api(CONFIG, dispatch=False)
    store = api.hub.store
    people = {
        "owner": await person(store, "owner@example.com", {"alpha": "owner", "default": "owner"}),
        "member": await person(store, "member@example.com", {"alpha": "member"}),
        "viewer": await person(store, "viewer@example.com", {"alpha": "viewer"}),
        "beta": await person(store, "beta@example.com", {"beta": "owner"}),
        "scoped": await person(store, "scoped@example.com", {"alpha": "owner", "beta": "owner"}, token_project="beta"),
    }
    return api, people


def detail(r: Any, status: int, *fragments: str) -> str:
    assert r.status_code == status, r.text
    text = str(r.json()["detail"])
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    return text


async def test_a_recipient_made_read_changed_and_deleted(api: tuple[Any, dict[str, str]]) -> None:
    a, people = api
    owner = people["owner"]
    body = {"name": "ann", "display_name": "Ann Lee", "email": "ann@Example.com", "slack_user": "U024BE7LH",
            "teams": TEAMS, "timezone": "Europe/Berlin", "user": "viewer@example.com",
            "quiet_hours": {"windows": [{"days": "weekdays", "start": "19:00", "end": "08:00"}]}}
    r = await a.post(f"{ALPHA}/recipients", json=body, **as_(owner))
    assert r.status_code == 201 and r.headers["ETag"] == '"1"', r.text
    made = r.json()
    assert (made["email"], made["teams"], made["user"], made["timezone"]) == (
        "ann@example.com", True, "viewer@example.com", "Europe/Berlin")
    assert "s3cr3t" not in r.text
    # The directory sees it at once (the next message planned can address @ann).
    person_ = a.hub.directory.people("alpha").persons["ann"]
    assert person_.teams_url == "${vault:recipient/alpha/ann/teams}" and person_.email == "ann@example.com"
    # Everyone in the project reads; the ETag is the version.
    r = await a.get(f"{ALPHA}/recipients/ann", **as_(people["viewer"]))
    assert r.status_code == 200 and r.json() == made and r.headers["ETag"] == '"1"'
    assert [x["name"] for x in (await a.get(f"{ALPHA}/recipients", **as_(people["member"]))).json()["items"]] == ["ann"]
    # A change needs If-Match (428); a stale one is 412 with the current recipient; the right one changes it.
    detail(await a.request("PATCH", f"{ALPHA}/recipients/ann", json={"timezone": "UTC"}, **as_(owner)), 428, "If-Match")
    r = await a.request("PATCH", f"{ALPHA}/recipients/ann", json={"timezone": "UTC", "teams": None}, **as_(owner, '"1"'))
    assert r.status_code == 200 and r.headers["ETag"] == '"2"' and r.json()["teams"] is False, r.text
    r = await a.request("PATCH", f"{ALPHA}/recipients/ann", json={"display_name": "late"}, **as_(owner, '"1"'))
    detail(r, 412, "changed meanwhile", "version 2")
    assert r.headers["ETag"] == '"2"' and r.json()["recipient"]["display_name"] == "Ann Lee"
    for bad in ('"abc"', "W/", '"1", "2"', '"' + "9" * 40 + '"'):  # not a version: a clear 4xx, never a 500
        detail(await a.request("PATCH", f"{ALPHA}/recipients/ann", json={"display_name": "x"}, **as_(owner, bad)),
               422, "If-Match")
    r = await a.request("PATCH", f"{ALPHA}/recipients/ann", json={"name": "anna"}, **as_(owner, "*"))
    detail(r, 422, "name")  # a handle routes name can't change
    assert a.hub.directory.people("alpha").persons["ann"].teams_url is None
    # Delete: If-Match too; then it's gone.
    detail(await a.request("DELETE", f"{ALPHA}/recipients/ann", **as_(owner, '"1"')), 412)
    r = await a.request("DELETE", f"{ALPHA}/recipients/ann", **as_(owner, '"2"'))
    assert r.json() == {"name": "ann", "deleted": True}
    detail(await a.get(f"{ALPHA}/recipients/ann", **as_(owner)), 404, "no recipient 'ann'")
    assert "ann" not in a.hub.directory.people("alpha").persons
    trail = await read_entries(a.hub.store)
    assert [e["action"] for e in trail if "alpha/ann" in (e["target"] or "")] == [
        "secret.set", "recipient.create", "secret.delete", "recipient.update", "recipient.delete"]
    assert "s3cr3t" not in str(trail)
    [create] = [e for e in trail if e["action"] == "recipient.create"]
    assert create["actor_name"] == "owner@example.com" and create["after"]["teams"] is True


async def test_who_may_write_and_other_projects(api: tuple[Any, dict[str, str]]) -> None:
    a, people = api
    body = {"name": "ann"}
    for who in ("member", "viewer", "beta", "scoped"):
        detail(await a.post(f"{ALPHA}/recipients", json=body, **as_(people[who])), 403, "recipient:write")
    for who in ("beta", "scoped"):
        detail(await a.get(f"{ALPHA}/recipients", **as_(people[who])), 403, "recipient:read")
    assert (await a.post(f"{ALPHA}/recipients", json=body, **as_(people["owner"]))).status_code == 201
    assert (await a.post(f"{BETA}/recipients", json={"name": "bob"}, **as_(people["beta"]))).status_code == 201
    # Beta's recipient is not alpha's: not found there, whoever asks.
    detail(await a.get(f"{ALPHA}/recipients/bob", **as_(people["owner"])), 404)
    detail(await a.request("PATCH", f"{ALPHA}/recipients/bob", json={"timezone": "UTC"}, **as_(people["owner"], "*")),
           404)
    # The unscoped form is the project default.
    assert (await a.get("/api/v1/recipients", **as_(people["owner"]))).json() == {"items": []}
    # Groups: the same rules.
    group = {"name": "oncall", "members": ["ann"]}
    detail(await a.post(f"{ALPHA}/recipient-groups", json=group, **as_(people["member"])), 403, "recipient:write")
    r = await a.post(f"{ALPHA}/recipient-groups", json=group, **as_(people["owner"]))
    assert r.status_code == 201 and r.json()["members"] == ["ann"], r.text
    detail(await a.post(f"{ALPHA}/recipient-groups", json={"name": "ann"}, **as_(people["owner"])), 409, "share a name")
    detail(await a.post(f"{ALPHA}/recipients", json={"name": "oncall"}, **as_(people["owner"])), 409, "share a name")
    await a.post(f"{ALPHA}/recipients", json={"name": "bea"}, **as_(people["owner"]))
    r = await a.request("PUT", f"{ALPHA}/recipient-groups/oncall/members", json={"members": ["bea", "ann"]}, **as_(people["owner"]))
    assert r.json()["members"] == ["bea", "ann"]
    assert a.hub.directory.people("alpha").groups == {"oncall": ("bea", "ann")}
    detail(await a.request("PUT", f"{ALPHA}/recipient-groups/oncall/members", json={"members": ["bob"]}, **as_(people["owner"])),
           422, "no recipient 'bob'")  # beta's bob is no member of alpha
    r = await a.get(f"{ALPHA}/recipient-groups", **as_(people["viewer"]))
    assert [(g["name"], g["members"]) for g in r.json()["items"]] == [("oncall", ["bea", "ann"])]
    detail(await a.get(f"{BETA}/recipient-groups/oncall", **as_(people["beta"])), 404)
    assert (await a.request("DELETE", f"{ALPHA}/recipient-groups/oncall", **as_(people["owner"]))).json() == {
        "name": "oncall", "deleted": True}
    assert a.hub.directory.people("alpha").groups == {}


async def test_a_person_changes_their_own_preferences_only(api: tuple[Any, dict[str, str]]) -> None:
    a, people = api
    owner, viewer = people["owner"], people["viewer"]
    await a.post(f"{ALPHA}/recipients", json={"name": "vera", "user": "viewer@example.com"}, **as_(owner))
    await a.post(f"{ALPHA}/recipients", json={"name": "max", "user": "member@example.com"}, **as_(owner))
    off = {"topic": "deploys", "channel": "alpha-inbox", "enabled": False}
    # The viewer is vera: her own preferences, without recipient:write.
    r = await a.request("PUT", f"{ALPHA}/recipients/vera/preferences", json=off, **as_(viewer))
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["updated_by"] == "viewer@example.com", r.text
    # Not max's (403, audited), though she may read them; the owner may change anyone's.
    detail(await a.request("PUT", f"{ALPHA}/recipients/max/preferences", json=off, **as_(viewer)), 403, "recipient:write")
    detail(await a.request("DELETE", f"{ALPHA}/recipients/max/preferences", **as_(viewer)), 403, "recipient:write")
    assert (await a.get(f"{ALPHA}/recipients/max/preferences", **as_(viewer))).json() == {"recipient": "max", "items": []}
    assert (await a.request("PUT", f"{ALPHA}/recipients/max/preferences", json=off, **as_(owner))).status_code == 200
    # Someone of another project, or a token scoped elsewhere: 403 before anything else.
    for who in ("beta", "scoped"):
        detail(await a.request("PUT", f"{ALPHA}/recipients/vera/preferences", json=off, **as_(people[who])), 403)
    # A required topic can't be turned off, by anyone; turning it on is fine.
    for who in (viewer, owner):
        r = await a.request("PUT", f"{ALPHA}/recipients/vera/preferences", json={"topic": "security", "enabled": False}, **as_(who))
        detail(r, 409, "'security' is required")
    assert (await a.request("PUT", f"{ALPHA}/recipients/vera/preferences", json={"topic": "security", "enabled": True},
                        **as_(viewer))).status_code == 200
    r = await a.get(f"{ALPHA}/recipients/vera/preferences", **as_(viewer))
    assert [(p["topic"], p["channel"], p["enabled"]) for p in r.json()["items"]] == [
        ("deploys", "alpha-inbox", False), ("security", "", True)]
    assert a.hub.directory.people("alpha").persons["vera"].prefs == {("deploys", "alpha-inbox"): False,
                                                                    ("security", ""): True}
    # Unset: the next level decides again; a second unset is 404.
    r = await a.request("DELETE", f"{ALPHA}/recipients/vera/preferences?topic=deploys&channel=alpha-inbox",
                        **as_(viewer))
    assert r.json() == {"topic": "deploys", "channel": "alpha-inbox", "unset": True}, r.text
    detail(await a.request("DELETE", f"{ALPHA}/recipients/vera/preferences?topic=deploys&channel=alpha-inbox",
                           **as_(viewer)), 404)
    trail = await read_entries(a.hub.store)
    assert [(e["action"], e["actor_name"], e["target"]) for e in trail if e["action"].startswith("preference.")] == [
        ("preference.set", "viewer@example.com", "recipient/alpha/vera/preference/deploys/alpha-inbox"),
        ("preference.set", "owner@example.com", "recipient/alpha/max/preference/deploys/alpha-inbox"),
        ("preference.set", "viewer@example.com", "recipient/alpha/vera/preference/security/*"),
        ("preference.unset", "viewer@example.com", "recipient/alpha/vera/preference/deploys/alpha-inbox"),
    ]
    denied = [e for e in trail if e["action"] == "access.denied" and "max/preferences" in (e["target"] or "")]
    assert len(denied) == 2 and all(e["after"]["permission"] == "recipient:write" for e in denied)


async def test_a_person_changes_their_own_quiet_hours_and_time_zone_only(api: tuple[Any, dict[str, str]]) -> None:
    a, people = api
    owner, viewer, member = people["owner"], people["viewer"], people["member"]
    await a.post(f"{ALPHA}/recipients", json={"name": "vera", "user": "viewer@example.com"}, **as_(owner))
    await a.post(f"{ALPHA}/recipients", json={"name": "max", "user": "member@example.com"}, **as_(owner))
    nights = {"windows": [{"days": "mon-fri", "start": "22:00", "end": "07:00"}], "policy": {"high": "deliver"},
              "digest": True}
    mine = {"quiet_hours": nights, "timezone": "Europe/Berlin"}
    # The viewer is vera: her own quiet hours and time zone, with If-Match, without recipient:write.
    detail(await a.request("PATCH", f"{ALPHA}/recipients/vera", json=mine, **as_(viewer)), 428, "If-Match")
    r = await a.request("PATCH", f"{ALPHA}/recipients/vera", json=mine, **as_(viewer, '"1"'))
    assert r.status_code == 200 and r.headers["ETag"] == '"2"', r.text
    assert (r.json()["quiet_hours"], r.json()["timezone"]) == (nights, "Europe/Berlin")
    assert a.hub.directory.people("alpha").persons["vera"].quiet_hours.windows[0].start == "22:00"
    detail(await a.request("PATCH", f"{ALPHA}/recipients/vera", json={"timezone": "UTC"}, **as_(viewer, '"1"')), 412,
           "changed meanwhile")
    detail(await a.request("PATCH", f"{ALPHA}/recipients/vera", json={"quiet_hours": {"windows": [{"days": "daily"}]}},
                           **as_(viewer, "*")), 422, "quiet_hours.windows: these windows cover the whole week")
    # Nothing else of hers (her addresses, her link are the owners'), even with her quiet hours.
    for body in ({"email": "vera@example.com"}, {"quiet_hours": nights, "display_name": "Vera"}, {"user": None}):
        detail(await a.request("PATCH", f"{ALPHA}/recipients/vera", json=body, **as_(viewer, "*")), 403,
               "this needs the permission 'recipient:write' in project 'alpha'")
    # Not another's: a viewer may not change max's, nor may max (a member) change vera's.
    detail(await a.request("PATCH", f"{ALPHA}/recipients/max", json=mine, **as_(viewer, "*")), 403, "recipient:write")
    detail(await a.request("PATCH", f"{ALPHA}/recipients/vera", json=mine, **as_(member, "*")), 403, "recipient:write")
    for who in ("beta", "scoped"):
        detail(await a.request("PATCH", f"{ALPHA}/recipients/vera", json=mine, **as_(people[who], "*")), 403,
               "recipient:read")
    # Back to the project's; the owner changes anyone's.
    r = await a.request("PATCH", f"{ALPHA}/recipients/vera", json={"quiet_hours": None}, **as_(viewer, '"2"'))
    assert r.status_code == 200 and r.json()["quiet_hours"] is None and r.json()["version"] == 3, r.text
    r = await a.request("PATCH", f"{ALPHA}/recipients/max", json=mine, **as_(owner, "*"))
    assert r.status_code == 200 and r.json()["quiet_hours"] == nights, r.text
    got = (await a.get(f"{ALPHA}/recipients/max", **as_(member))).json()
    assert (got["quiet_hours"], got["email"]) == (nights, None)
    trail = await read_entries(a.hub.store)
    changes = [(e["actor_name"], e["target"], e["before"], e["after"]) for e in trail if e["action"] == "recipient.update"]
    assert changes == [
        ("viewer@example.com", "recipient/alpha/vera", {"timezone": "UTC", "quiet_hours": None},
         {"timezone": "Europe/Berlin", "quiet_hours": nights}),
        ("viewer@example.com", "recipient/alpha/vera", {"quiet_hours": nights}, {"quiet_hours": None}),
        ("owner@example.com", "recipient/alpha/max", {"timezone": "UTC", "quiet_hours": None},
         {"timezone": "Europe/Berlin", "quiet_hours": nights}),
    ]
    denied = [(e["actor_name"], e["target"], e["after"]["permission"]) for e in trail if e["action"] == "access.denied"]
    assert denied == [("viewer@example.com", f"PATCH {ALPHA}/recipients/vera", "recipient:write")] * 3 + [
        ("viewer@example.com", f"PATCH {ALPHA}/recipients/max", "recipient:write"),
        ("member@example.com", f"PATCH {ALPHA}/recipients/vera", "recipient:write"),
        ("beta@example.com", f"PATCH {ALPHA}/recipients/vera", "recipient:read"),
        ("scoped@example.com", f"PATCH {ALPHA}/recipients/vera", "recipient:read"),
    ]


async def test_the_projects_quiet_hours_are_read_by_everyone_in_it(api: tuple[Any, dict[str, str]]) -> None:
    a, people = api
    r = await a.get(f"{ALPHA}/quiet-hours", **as_(people["viewer"]))
    assert r.json() == {"quiet_hours": {"timezone": "Europe/Berlin", "policy": {"low": "drop"}, "digest": False,
                                        "windows": [{"days": "weekends", "start": "00:00", "end": "24:00"}]}}, r.text
    assert (await a.get(f"{BETA}/quiet-hours", **as_(people["beta"]))).json() == {"quiet_hours": None}
    detail(await a.get(f"{ALPHA}/quiet-hours", **as_(people["beta"])), 403, "recipient:read")


async def test_the_topics_of_a_project_say_which_are_required(api: tuple[Any, dict[str, str]]) -> None:
    a, people = api
    r = await a.get(f"{ALPHA}/topics", **as_(people["viewer"]))
    assert r.json() == {"items": [{"name": "deploys", "required": False, "description": None},
                                  {"name": "security", "required": True, "description": None}]}, r.text
    assert (await a.get(f"{BETA}/topics", **as_(people["beta"]))).json() == {"items": []}
    assert (await a.get(f"{BETA}/topics", **as_(people["viewer"]))).status_code == 403


@pytest.mark.parametrize("db", ["sqlite"])
async def test_bad_bodies_are_a_clean_4xx(api: tuple[Any, dict[str, str]]) -> None:
    a, people = api
    h = as_(people["owner"])
    url = f"{ALPHA}/recipients"
    raw = {**h, "headers": {**h["headers"], "Content-Type": "application/json"}}
    detail(await a.post(url, content=b'{"name": "ann"', **raw), 400)
    detail(await a.post(url, content=b"name=ann", **{**h, "headers": {**h["headers"], "Content-Type":
                                                                        "application/x-www-form-urlencoded"}}), 415)
    detail(await a.post(url, content=b"x" * (2 * 1024 * 1024), **raw), 413)
    for body, fragment in (
        ({"name": "a\x00b"}, "name"),
        ({"name": "ann", "display_name": "A\x00"}, "display_name"),
        ({"name": "ann", "colour": "red"}, "colour"),
        ({"name": "ann", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"name": "ann", "email": "nope"}, "email"),
        ({"name": "ann", "teams": "http://example.com/x"}, "https"),
        ({"name": "ann", "user": "member@example.com", "quiet_hours": {"windows": [{"start": "7pm"}]}}, "time"),
        ({"name": "ann", "user": "beta@example.com"}, "not a member of project alpha"),
        ({"name": "Ann"}, "name"),
        ([1, 2], "object"),
    ):
        detail(await a.post(url, json=body, **h), 422, fragment)
    await a.post(url, json={"name": "ann"}, **h)
    pref = f"{url}/ann/preferences"
    for body in ({"topic": "Deploys", "enabled": False}, {"channel": "x\x00", "enabled": False}, {"topic": "deploys"},
                 {"enabled": "maybe"}):
        detail(await a.request("PUT", pref, json=body, **h), 422)
    detail(await a.request("DELETE", f"{pref}?topic=a%00b", **h), 400)
    detail(await a.request("DELETE", f"{pref}?colour=red", **h), 422, "colour")
    detail(await a.get(f"{ALPHA}/recipients/ANN", **h), 422)
    assert [x["name"] for x in (await a.get(url, **h)).json()["items"]] == ["ann"]
