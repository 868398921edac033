"""The accounts API on a real server (SQLite and PostgreSQL): users (site admins only), projects,
members (owners only, never the last owner, never another project), tokens (one's own; scoped
tokens stay in their project); every change audited, every refusal a clear 4xx, audited where it
is an access refusal, and nothing changed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from apiserver import Api
from signin_support import (  # noqa: F401  (fixtures)
    PASSWORD,
    add_project,
    add_user,
    browser_fixture,
    entries,
    sign_in,
    token_of,
)

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"])


async def people(make_api: Any) -> tuple[Api, dict[str, dict[str, str]]]:
    """A server with a site admin (who adopts the server's token), and in project ``payments`` an
    owner, a member and a viewer; in project ``search`` another owner. Their tokens, by name."""
    api = await make_api(dispatch=False)
    await add_user(api, "root@example.com", site_admin=True)
    await add_user(api, "olga@example.com", roles={"payments": "owner"})
    await add_user(api, "max@example.com", roles={"payments": "member"})
    await add_user(api, "vera@example.com", roles={"payments": "viewer"})
    await add_user(api, "sam@example.com", roles={"search": "owner"})
    tokens = {"root": api.auth}
    for name in ("olga", "max", "vera", "sam"):
        tokens[name] = await token_of(api, f"{name}@example.com")
    return api, tokens


async def call(api: Api, method: str, path: str, who: dict[str, str] | None, **kwargs: Any) -> httpx.Response:
    return await api.request(method, path, auth=False, headers=who or {}, **kwargs)


async def members(api: Api, project: str = "payments") -> dict[str, str]:
    r = await api.get(f"/api/v1/projects/{project}/members")
    assert r.status_code == 200, r.text
    return {m["email"]: m["role"] for m in r.json()}


async def test_users_are_managed_by_site_admins_only(make_api: Any) -> None:
    api, who = await people(make_api)
    r = await call(api, "GET", "/api/v1/users", who["root"])
    assert r.status_code == 200 and [u["email"] for u in r.json()][:2] == ["max@example.com", "olga@example.com"]
    assert "password" not in r.text and "argon2" not in r.text
    r = await call(api, "POST", "/api/v1/users", who["root"], json={"email": "New@Example.com", "password": PASSWORD})
    assert r.status_code == 201 and r.json()["email"] == "new@example.com" and r.json()["name"] == "new", r.text
    assert PASSWORD not in str(await entries(api))
    r = await call(api, "POST", "/api/v1/users", who["root"], json={"email": "new@example.COM"})
    assert r.status_code == 409 and r.json() == {"error": "conflict", "detail": "a user new@example.com exists already"}

    for body, where in [({"email": "not-an-email"}, "email"), ({"email": "a@b.c", "password": "short"}, "at least 12 characters"),
                        ({"email": "a@b.c", "name": "x\u0000y"}, "name"), ({"email": "a\u0000@b.c"}, "email"),
                        ({"email": "a@b.c", "name": "n" * 201}, "name"), ({"email": "a@b.c", "role": "owner"}, "role"),
                        ({"email": "a" * 320 + "@b.c"}, "email"), ({"email": "a@b.c", "site_admin": "yes"}, "site_admin")]:
        r = await call(api, "POST", "/api/v1/users", who["root"], json=body)
        assert r.status_code == 422 and where in str(r.json()["detail"]), (body, r.text)

    for name in ("olga", "max", "vera"):  # project roles give nothing site-wide
        for method, path, body in [("GET", "/api/v1/users", None), ("POST", "/api/v1/users", {"email": "evil@example.com",
                                   "site_admin": True}), ("POST", "/api/v1/users/root@example.com/disable", None)]:
            r = await call(api, method, path, who[name], json=body)
            assert r.status_code == 403 and "site:admin" in r.json()["detail"], (name, path, r.text)
    r = await call(api, "GET", "/api/v1/users", {})
    assert r.status_code == 401
    assert [e["actor_name"] for e in await entries(api, "access.denied")] == ["olga@example.com"] * 3 + [
        "max@example.com"] * 3 + ["vera@example.com"] * 3
    assert len(await entries(api, "user.create")) == 6 and len(await entries(api, "user.disable")) == 0


async def test_the_last_site_admin_stays_and_unknown_users_are_404(make_api: Any) -> None:
    api, who = await people(make_api)
    r = await call(api, "POST", "/api/v1/users/root@example.com/disable", who["root"])
    assert r.status_code == 409 and "no enabled site admin" in r.json()["detail"], r.text
    for path in ("/api/v1/users/nobody@example.com/disable", "/api/v1/users/nobody@example.com/enable",
                 "/api/v1/users/00000000-0000/disable"):
        r = await call(api, "POST", path, who["root"])
        assert r.status_code == 404 and r.json()["error"] == "not found", r.text
    r = await call(api, "POST", "/api/v1/users/MAX@example.com/disable", who["root"])
    assert r.status_code == 200 and r.json()["disabled"], r.text
    assert (await call(api, "GET", "/api/v1/projects", who["max"])).status_code == 401
    assert [e["target"] for e in await entries(api, "user.disable")] == ["user/max@example.com"]


async def test_projects_show_what_the_caller_may_see(make_api: Any) -> None:
    api, who = await people(make_api)
    r = await call(api, "GET", "/api/v1/projects", who["max"])
    assert [(p["slug"], p["role"]) for p in r.json()] == [("payments", "member")], r.text
    r = await call(api, "GET", "/api/v1/projects", who["root"])
    assert [p["slug"] for p in r.json()] == ["default", "payments", "search"]
    assert (await call(api, "GET", "/api/v1/projects/payments", who["vera"])).json()["role"] == "viewer"
    r = await call(api, "GET", "/api/v1/projects/search", who["vera"])
    assert r.status_code == 403 and "project:read" in r.json()["detail"], r.text
    r = await call(api, "GET", "/api/v1/projects/nope", who["root"])
    assert r.status_code == 404, r.text
    r = await call(api, "GET", "/api/v1/projects/Not_A_Slug", who["root"])
    assert r.status_code == 422, r.text

    r = await call(api, "POST", "/api/v1/projects", who["root"], json={"slug": "billing", "name": "Billing",
                                                                        "owner": "max@example.com"})
    assert r.status_code == 201 and r.json()["slug"] == "billing" and r.json()["role"] is None, r.text
    assert await members(api, "billing") == {"max@example.com": "owner"}
    assert [p["slug"] for p in (await call(api, "GET", "/api/v1/projects", who["max"])).json()] == ["billing", "payments"]
    r = await call(api, "POST", "/api/v1/projects", who["root"], json={"slug": "billing"})
    assert r.status_code == 409, r.text
    r = await call(api, "POST", "/api/v1/projects", who["root"], json={"slug": "ghost", "owner": "nobody@example.com"})
    assert r.status_code == 404, r.text
    assert [p["slug"] for p in (await call(api, "GET", "/api/v1/projects", who["root"])).json()] == [
        "billing", "default", "payments", "search"]  # the project without its owner was not made either
    for slug in ("UPPER", "-dash", "a" * 65, "sp ace", "x\u0000"):
        r = await call(api, "POST", "/api/v1/projects", who["root"], json={"slug": slug})
        assert r.status_code == 422 and "slug" in str(r.json()["detail"]), (slug, r.text)
    r = await call(api, "POST", "/api/v1/projects", who["olga"], json={"slug": "mine"})
    assert r.status_code == 403, r.text
    actions = [e["action"] for e in await entries(api) if e["actor_name"] == "root@example.com"]
    assert actions == ["project.create", "member.add"]


async def test_only_owners_manage_members_and_a_project_keeps_an_owner(make_api: Any) -> None:
    api, who = await people(make_api)
    before = await members(api)
    # A member or a viewer promoting anyone (themselves included) to owner: 403, audited, nothing changed.
    for name in ("max", "vera"):
        for user in ("max@example.com", "vera@example.com", "sam@example.com"):
            r = await call(api, "PUT", f"/api/v1/projects/payments/members/{user}", who[name], json={"role": "owner"})
            assert r.status_code == 403 and "member:manage" in r.json()["detail"], r.text
        r = await call(api, "DELETE", "/api/v1/projects/payments/members/olga@example.com", who[name])
        assert r.status_code == 403, r.text
    # Another project's owner: 403 too.
    r = await call(api, "PUT", "/api/v1/projects/payments/members/sam@example.com", who["sam"], json={"role": "owner"})
    assert r.status_code == 403 and "'payments'" in r.json()["detail"], r.text
    assert await members(api) == before
    denied = await entries(api, "access.denied")
    assert len(denied) == 9 and {e["project"] for e in denied} == {"payments"}
    assert {e["after"]["permission"] for e in denied} == {"member:manage"}

    # The owner: add, change, remove; the last owner can be neither demoted nor removed.
    r = await call(api, "PUT", "/api/v1/projects/payments/members/sam@example.com", who["olga"], json={"role": "viewer"})
    assert r.status_code == 200 and r.json() == {"project": "payments", "user": "sam@example.com", "role": "viewer"}
    r = await call(api, "PUT", "/api/v1/projects/payments/members/olga@example.com", who["olga"], json={"role": "member"})
    assert r.status_code == 409 and r.json()["detail"] == "that would leave project payments without an owner", r.text
    r = await call(api, "DELETE", "/api/v1/projects/payments/members/olga@example.com", who["olga"])
    assert r.status_code == 409, r.text
    r = await call(api, "PUT", "/api/v1/projects/payments/members/max@example.com", who["olga"], json={"role": "owner"})
    assert r.status_code == 200, r.text
    r = await call(api, "DELETE", "/api/v1/projects/payments/members/olga@example.com", who["olga"])
    assert r.status_code == 200 and r.json()["role"] is None, r.text
    assert await members(api) == {"max@example.com": "owner", "sam@example.com": "viewer", "vera@example.com": "viewer"}
    r = await call(api, "DELETE", "/api/v1/projects/payments/members/olga@example.com", who["max"])
    assert r.status_code == 404 and "not a member" in r.json()["detail"], r.text
    for body in ({"role": "admin"}, {}, {"role": "owner", "x": 1}, {"role": None}):
        r = await call(api, "PUT", "/api/v1/projects/payments/members/vera@example.com", who["max"], json=body)
        assert r.status_code == 422, (body, r.text)
    r = await call(api, "PUT", "/api/v1/projects/payments/members/nobody@example.com", who["max"], json={"role": "viewer"})
    assert r.status_code == 404, r.text
    changes = [(e["action"], e["target"], e["actor_name"]) for e in await entries(api) if e["action"].startswith("member.")
               and e["actor_name"] != "tidings"]
    assert changes == [("member.add", "project/payments/member/sam@example.com", "olga@example.com"),
                       ("member.update", "project/payments/member/max@example.com", "olga@example.com"),
                       ("member.remove", "project/payments/member/olga@example.com", "olga@example.com")]


async def test_a_role_change_takes_effect_at_once_for_cached_tokens(make_api: Any) -> None:
    api, who = await people(make_api)
    silences = "/api/v1/projects/payments/members"
    assert (await call(api, "GET", silences, who["vera"])).status_code == 200  # the token is cached now
    r = await call(api, "PUT", "/api/v1/projects/payments/members/vera@example.com", who["olga"], json={"role": "owner"})
    assert r.status_code == 200
    r = await call(api, "PUT", "/api/v1/projects/payments/members/max@example.com", who["vera"], json={"role": "viewer"})
    assert r.status_code == 200, r.text  # promoted a moment ago: no 10 s wait
    r = await call(api, "DELETE", "/api/v1/projects/payments/members/vera@example.com", who["olga"])
    assert r.status_code == 200
    assert (await call(api, "GET", silences, who["vera"])).status_code == 403


async def test_tokens_are_one_s_own_and_scoped_tokens_stay_in_their_project(make_api: Any) -> None:
    api, who = await people(make_api)
    r = await call(api, "POST", "/api/v1/tokens", who["max"], json={"name": "ci", "project": "payments", "expires": "90d"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["user"] == "max@example.com" and made["project"] == "payments" and made["token"].startswith("tdg_")
    assert abs(made["expires_at"] - (time.time() + 90 * 86400)) < 60
    scoped = {"Authorization": f"Bearer {made['token']}"}
    assert made["token"] not in str(await entries(api))
    listed = (await call(api, "GET", "/api/v1/tokens", who["max"])).json()
    assert [t["name"] for t in listed] == ["t", "ci"] and all("token" not in t for t in listed)
    assert made["token"] not in (await call(api, "GET", "/api/v1/tokens", who["max"])).text

    # A scoped token: its own project only, for what it makes and what it sees.
    r = await call(api, "POST", "/api/v1/tokens", scoped, json={"name": "child"})
    assert r.status_code == 201 and r.json()["project"] == "payments", r.text
    for project in ("search", "default"):
        r = await call(api, "POST", "/api/v1/tokens", scoped, json={"name": "escape", "project": project})
        assert r.status_code == 403, r.text
    assert [t["name"] for t in (await call(api, "GET", "/api/v1/tokens", scoped)).json()] == ["ci", "child"]
    r = await call(api, "DELETE", f"/api/v1/tokens/{listed[0]['id']}", scoped)  # max's unscoped token
    assert r.status_code == 403, r.text
    # Not a member: no token for that project.
    r = await call(api, "POST", "/api/v1/tokens", who["max"], json={"name": "x", "project": "search"})
    assert r.status_code == 403 and "project:read" in r.json()["detail"], r.text
    r = await call(api, "POST", "/api/v1/tokens", who["root"], json={"name": "x", "project": "nope"})
    assert r.status_code == 404, r.text
    for body in ({"name": ""}, {"name": "x", "expires": "0s"}, {"name": "x", "expires": "soon"},
                 {"name": "x", "expires": "3651d"}, {"name": "x\u0000"}, {"name": "n" * 101}, {"name": "x", "user": "root@example.com"}):
        r = await call(api, "POST", "/api/v1/tokens", who["max"], json=body)
        assert r.status_code == 422, (body, r.text)

    # Revoking: one's own; another user's needs a site admin (403, audited).
    r = await call(api, "DELETE", f"/api/v1/tokens/{made['id']}", who["vera"])
    assert r.status_code == 403 and "site:admin" in r.json()["detail"], r.text
    assert (await call(api, "GET", "/api/v1/projects", scoped)).status_code == 200
    r = await call(api, "DELETE", f"/api/v1/tokens/{made['id']}", who["max"])
    assert r.status_code == 200 and r.json()["revoked_at"] is not None and "token" not in r.json(), r.text
    assert (await call(api, "GET", "/api/v1/projects", scoped)).status_code == 401  # at once, cached or not
    assert (await call(api, "DELETE", f"/api/v1/tokens/{made['id']}", who["max"])).status_code == 200  # again: same
    assert (await call(api, "DELETE", "/api/v1/tokens/no-such-token", who["max"])).status_code == 404
    assert len(await entries(api, "token.revoke")) == 1

    # ?user= is for site admins.
    r = await call(api, "GET", "/api/v1/tokens?user=max@example.com", who["vera"])
    assert r.status_code == 403, r.text
    r = await call(api, "GET", "/api/v1/tokens?user=MAX@example.com", who["root"])
    assert [t["name"] for t in r.json()] == ["t", "ci", "child"], r.text
    assert (await call(api, "GET", "/api/v1/tokens?user=nobody@example.com", who["root"])).status_code == 404
    vera_token = (await call(api, "GET", "/api/v1/tokens", who["vera"])).json()[0]["id"]
    assert (await call(api, "DELETE", f"/api/v1/tokens/{vera_token}", who["root"])).status_code == 200
    assert (await call(api, "GET", "/api/v1/tokens", who["vera"])).status_code == 401
    made_by = [(e["actor_name"], e["project"]) for e in await entries(api, "token.create") if e["actor"] != "system"]
    assert made_by == [("max@example.com", "payments"), ("max@example.com", "payments")]


async def test_a_session_manages_accounts_with_its_csrf_token(
    make_api: Any, browser: Callable[..., httpx.AsyncClient],
) -> None:
    api, _ = await people(make_api)
    olga = browser(api)
    csrf = await sign_in(olga, "olga@example.com")
    r = await olga.put("/api/v1/projects/payments/members/sam@example.com", json={"role": "member"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    assert "sam@example.com" not in await members(api)
    r = await olga.put("/api/v1/projects/payments/members/sam@example.com", json={"role": "member"},
                       headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    r = await olga.post("/api/v1/tokens", json={"name": "from the ui"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201 and r.json()["user"] == "olga@example.com", r.text
    entry = (await entries(api, "member.add"))[-1]
    assert (entry["actor"], entry["auth_method"], entry["actor_name"]) == ("user", "session", "olga@example.com")


@SQLITE_ONLY
async def test_bad_requests_to_the_accounts_api_are_4xx(make_api: Any) -> None:
    api, who = await people(make_api)
    root = who["root"]
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("POST", "/api/v1/users", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", "/api/v1/users", {"content": b"email=a@b.c", "headers": {"Content-Type": "text/plain"}}, 422),
        ("POST", "/api/v1/users", {"json": {"email": "a@b.c"}, "params": {"force": "1"}}, 422),
        ("POST", "/api/v1/users", {"json": {"email": "a@b.c", "name": "x" * 2_000_000}}, 413),
        ("GET", "/api/v1/users/%00/disable", {}, 400),
        ("POST", "/api/v1/users/" + "u" * 400 + "/disable", {}, 422),
        ("PUT", "/api/v1/projects/payments/members/max@example.com", {"json": ["owner"]}, 422),
        ("GET", "/api/v1/tokens", {"params": {"user": ""}}, 422),
        ("DELETE", "/api/v1/tokens/" + "x" * 100, {}, 422),
        ("POST", "/api/v1/tokens", {"json": {"name": "x", "project": "NOPE"}}, 422),
    ]
    for method, path, kwargs, status in cases:
        headers = {**root, **kwargs.pop("headers", {})}
        r = await api.request(method, path, auth=False, headers=headers, **kwargs)
        assert r.status_code == status and r.json()["error"], (method, path, r.status_code, r.text)
    assert len((await call(api, "GET", "/api/v1/users", root)).json()) == 5
