"""``GET /api/v1/audit`` and friends: who sees which entries (site admins everything, project owners
their projects', viewers nothing: a 403 that is itself audited), filters, pages, bad input, verify."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tidings.accounts.projects import create_project, set_member
from tidings.accounts.users import create_user
from tidings.audit import SYSTEM, Actor
from tidings.audit.verify import read_entries
from tidings.security.tokens import create_token

CONFIG = {"integrations": {"inbox": {"kind": "inbox"}}}
ALICE = Actor("user", id="u-alice", name="alice@example.com", auth_method="session")


@pytest.fixture
async def world(make_api: Any) -> Any:
    """A served hub; the default token is a site admin. owner@ owns `default`, viewer@ views it,
    other@ owns project `other`; entries exist in both projects and site-wide."""
    api = await make_api(CONFIG)
    store = api.hub.store
    async with store.write() as conn:
        for email in ("owner@example.com", "viewer@example.com", "other@example.com"):
            await create_user(conn, SYSTEM, email=email)
        await create_project(conn, SYSTEM, "other")
        await set_member(conn, SYSTEM, "default", "owner@example.com", "owner")
        await set_member(conn, SYSTEM, "default", "viewer@example.com", "viewer")
        await set_member(conn, SYSTEM, "other", "other@example.com", "owner")
    api.tokens = {who: await create_token(store, who, user=f"{who}@example.com") for who in ("owner", "viewer", "other")}
    for i in range(3):
        silence, _ = await api.hub.silence({"service": f"s{i}"}, 600, by="alice", actor=ALICE)
    await api.hub.unsilence(silence.id, actor=ALICE)
    return api


def as_(api: Any, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.tokens[who]}"}


async def listing(api: Any, path: str = "/api/v1/audit", who: str | None = None, **params: Any) -> dict[str, Any]:
    r = await api.client.get(path, params=params, headers=as_(api, who) if who else api.auth)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_site_admin_sees_every_entry(world: Any) -> None:
    everything = await read_entries(world.hub.store)
    page = await listing(world, limit=500)
    assert [e["seq"] for e in page["items"]] == [e["seq"] for e in reversed(everything)] and page["next"] is None
    assert {e["project"] for e in page["items"]} == {None, "default", "other"}
    newest = page["items"][0]
    assert newest["action"] == "silence.end" and newest["actor_name"] == "alice@example.com"
    assert newest["auth_method"] == "session" and newest["before"]["until"] > newest["after"]["until"]
    assert len(newest["hash"]) == 64 and newest["prev_hash"] == page["items"][1]["hash"]


async def test_a_project_owner_sees_only_their_projects_entries(world: Any) -> None:
    page = await listing(world, who="owner", limit=500)
    assert page["items"] and {e["project"] for e in page["items"]} == {"default"}
    assert {e["action"] for e in page["items"]} >= {"silence.create", "silence.end", "member.add"}
    other = await listing(world, "/api/v1/projects/other/audit", who="other")
    assert other["items"] and {e["project"] for e in other["items"]} == {"other"}
    assert {e["action"] for e in other["items"]} == {"project.create", "member.add"}
    mine = await listing(world, "/api/v1/projects/default/audit", who="owner", action="silence.*")
    assert [e["action"] for e in mine["items"]] == ["silence.end"] + ["silence.create"] * 3


@pytest.mark.parametrize(
    ("who", "path", "params"),
    [
        ("viewer", "/api/v1/audit", {}),
        ("viewer", "/api/v1/projects/default/audit", {}),
        ("other", "/api/v1/audit", {}),  # owns another project, not this one
        ("other", "/api/v1/projects/default/audit", {}),
        ("owner", "/api/v1/projects/other/audit", {}),
        ("owner", "/api/v1/audit", {"project": "other"}),
        ("owner", "/api/v1/audit/verify", {}),
    ],
)
async def test_reading_without_audit_read_is_refused_and_the_refusal_audited(
    world: Any, who: str, path: str, params: dict[str, str]
) -> None:
    before = len(await read_entries(world.hub.store))
    r = await world.client.get(path, params=params, headers=as_(world, who))
    assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
    permission = "site:admin" if path.endswith("/verify") else "audit:read"
    assert permission in r.json()["detail"]
    entries = await read_entries(world.hub.store)
    assert len(entries) == before + 1
    denied = entries[-1]
    assert (denied["action"], denied["outcome"], denied["actor_name"]) == ("access.denied", "denied", f"{who}@example.com")
    assert denied["after"] == {"permission": permission} and denied["target"] == f"GET {path}"


async def test_filters_and_pages(world: Any) -> None:
    by_alice = await listing(world, actor="alice@example.com")
    assert [e["action"] for e in by_alice["items"]] == ["silence.end"] + ["silence.create"] * 3
    assert (await listing(world, actor="u-alice"))["items"] == by_alice["items"]  # by id too
    assert (await listing(world, actor="nobody"))["items"] == []
    assert [e["action"] for e in (await listing(world, action="silence.end"))["items"]] == ["silence.end"]
    assert {e["action"] for e in (await listing(world, action="member.*"))["items"]} == {"member.add"}
    assert {e["project"] for e in (await listing(world, project="other"))["items"]} == {"other"}
    assert len((await listing(world, since="1h", limit=500))["items"]) == len(await read_entries(world.hub.store))
    first = await listing(world, limit=2)
    second = await listing(world, limit=2, before=first["next"])
    assert [e["seq"] for e in first["items"] + second["items"]] == [
        e["seq"] for e in (await listing(world, limit=4))["items"]]
    assert first["next"] == first["items"][-1]["seq"]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("action=DROP%20TABLE", 422), ("action=silence.%25", 422), ("since=0s", 422), ("since=soon", 422),
        ("limit=0", 422), ("limit=501", 422), ("before=0", 422), ("before=x", 422), ("actor=", 422),
        ("actor=" + "a" * 400, 422), ("colour=red", 422), ("actor=ali%00ce", 400), ("project=a%00", 400),
    ],
)
async def test_bad_filters_are_a_clear_4xx(world: Any, query: str, status: int) -> None:
    r = await world.client.get(f"/api/v1/audit?{query}", headers=world.auth)
    assert r.status_code == status, r.text
    assert r.json()["error"] in ("invalid request", "bad request", "malformed request")


async def test_no_token_is_401_and_an_unknown_project_404(world: Any) -> None:
    assert (await world.client.get("/api/v1/audit")).status_code == 401
    assert (await world.client.get("/api/v1/audit", headers={"Authorization": "Bearer tdg_nope"})).status_code == 401
    r = await world.client.get("/api/v1/projects/nope/audit", headers=world.auth)
    assert r.status_code == 404 and "nope" in r.json()["detail"]


async def test_verify_answers_the_first_changed_entry(world: Any) -> None:
    r = await world.client.get("/api/v1/audit/verify", headers=world.auth)
    total = len(await read_entries(world.hub.store))
    assert r.status_code == 200 and r.json() == {"ok": True, "first": 1, "last": total, "checkpoints": 0,
                                                 "signatures_checked": False, "problem": None}
    async with world.hub.store.write() as conn:
        await conn.execute(text("UPDATE audit_log SET action = 'silence.forged' WHERE seq = 3"))
    r = await world.client.get("/api/v1/audit/verify", headers=world.auth)
    assert r.json()["ok"] is False and r.json()["problem"] == {"seq": 3, "reason": "was changed"}


async def test_a_refused_retry_is_409_and_leaves_no_entry(world: Any) -> None:
    from tidings.message import Message

    receipt = await world.hub.notify(Message("fine"), to=["inbox"])
    await world.hub.wait(receipt.id)
    before = await read_entries(world.hub.store)
    r = await world.client.post(f"/api/v1/deliveries/{receipt.deliveries[0].id}/retry", headers=world.auth)
    assert r.status_code == 409 and "delivered" in r.json()["detail"]
    assert await read_entries(world.hub.store) == before
