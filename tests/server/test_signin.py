"""Signing in and out over HTTP (a real server, SQLite and PostgreSQL): the session cookie and its
flags, /auth/me, sessions ending (logout, idle, absolute), CSRF end to end, the same 401 for every
wrong sign-in, cross-site sign-ins refused, and malformed bodies answered 4xx."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from signin_support import PASSWORD, add_user, browser_fixture, entries, sign_in, token_of  # noqa: F401  (fixtures)
from sqlalchemy import update

from tidings.accounts import passwords
from tidings.accounts.sessions import IDLE
from tidings.accounts.users import create_user, set_disabled
from tidings.audit import SYSTEM
from tidings.server import create_app
from tidings.store.tables import sessions

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"])


def cookie_flags(response: httpx.Response) -> dict[str, str]:
    """The attributes of the tidings_session Set-Cookie header (lower-cased names)."""
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith("tidings_session=")]
    parts = [p.strip() for p in header.split(";")]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts}


async def test_sign_in_me_and_sign_out(make_api: Any, browser: Callable[..., httpx.AsyncClient]) -> None:
    api = await make_api(dispatch=False)
    await add_user(api, "alice@example.com", roles={"default": "member", "payments": "owner"})
    alice = browser(api)
    r = await alice.post("/auth/login", json={"email": "Alice@Example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["email"] == "alice@example.com" and not body["user"]["site_admin"]
    assert "password" not in r.text and "argon2" not in r.text
    assert r.headers["cache-control"] == "no-store"
    flags = cookie_flags(r)
    assert {"httponly", "path", "samesite"} <= set(flags) and "secure" not in flags  # plain http here
    assert flags["path"] == "/" and flags["samesite"].lower() == "lax"
    csrf = body["csrf_token"]

    me = await alice.get("/auth/me")
    assert me.status_code == 200, me.text
    assert me.json()["user"]["email"] == "alice@example.com" and me.json()["auth_method"] == "session"
    assert me.json()["csrf_token"] == csrf and me.json()["token"] is None
    assert [(p["slug"], p["role"]) for p in me.json()["projects"]] == [("default", "member"), ("payments", "owner")]

    r = await alice.post("/auth/logout")  # no CSRF token: refused, and the session lives on
    assert r.status_code == 403 and "CSRF" in r.json()["detail"], r.text
    assert (await alice.get("/auth/me")).status_code == 200
    r = await alice.post("/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json() == {"signed_out": True}, r.text
    assert cookie_flags(r)["max-age"] == "0"

    stolen = browser(api, cookies={"tidings_session": r.request.headers["cookie"].split("=", 1)[1]})
    r = await stolen.get("/auth/me")  # the same cookie, kept after sign-out
    assert r.status_code == 401 and r.json()["error"] == "unauthorized", r.text
    r = await stolen.post("/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401, r.text
    assert (await alice.get("/auth/me")).status_code == 401  # the cleared cookie: nothing

    trail = [(e["action"], e["outcome"]) for e in await entries(api) if e["action"].startswith(("auth.", "access."))]
    assert trail == [("auth.login", "ok"), ("access.denied", "denied"), ("auth.logout", "ok")]
    login = (await entries(api, "auth.login"))[0]
    assert login["actor_name"] == "alice@example.com" and login["auth_method"] == "password" and login["ip"] == "127.0.0.1"


@SQLITE_ONLY
@pytest.mark.parametrize(("trusted", "header", "secure"), [
    ("127.0.0.1", {"X-Forwarded-Proto": "https"}, True),
    ("127.0.0.1", {}, False),
    ("10.9.9.9", {"X-Forwarded-Proto": "https"}, False),  # a proxy header from an untrusted peer is ignored
])
async def test_the_cookie_is_secure_when_uvicorn_says_https(
    make_hub: Any, serve_asgi: Any, trusted: str, header: dict[str, str], secure: bool,
) -> None:
    hub = await make_hub(dispatch=False)
    url = await serve_asgi(create_app(hub), lifespan="on", proxy_headers=True, forwarded_allow_ips=trusted)
    async with hub.store.write() as conn:
        await create_user(conn, SYSTEM, email="alice@example.com", password=PASSWORD)
    async with httpx.AsyncClient(base_url=url) as client:
        r = await client.post("/auth/login", json={"email": "alice@example.com", "password": PASSWORD}, headers=header)
    assert r.status_code == 200, r.text
    assert ("secure" in cookie_flags(r)) is secure


async def test_every_wrong_sign_in_answers_the_same_401_after_the_same_work(
    make_api: Any, browser: Callable[..., httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = await make_api(dispatch=False)
    await add_user(api, "alice@example.com")
    await add_user(api, "bob@example.com")
    await add_user(api, "nopass@example.com", password=None)
    async with api.hub.store.write() as conn:
        await set_disabled(conn, SYSTEM, "bob@example.com", True)
    checked: list[bool] = []
    real = passwords.check_password
    monkeypatch.setattr(passwords, "check_password", lambda stored, pw: checked.append(stored is None) or real(stored, pw))
    client = browser(api)
    answers = []
    for email, password in [("alice@example.com", "wrong password here"), ("nobody@example.com", PASSWORD),
                            ("bob@example.com", PASSWORD), ("nopass@example.com", PASSWORD), ("not an email", PASSWORD)]:
        r = await client.post("/auth/login", json={"email": email, "password": password})
        answers.append((r.status_code, r.json(), r.headers.get("www-authenticate")))
        assert "tidings_session" not in r.headers.get("set-cookie", "")
    assert all(a == answers[0] for a in answers), answers
    assert answers[0][:2] == (401, {"error": "unauthorized", "detail": "wrong email or password"})
    assert checked == [False, True, False, True, True]  # a hash was verified every time: a dummy one when none
    failed = await entries(api, "auth.login")
    assert [(e["target"], e["outcome"]) for e in failed] == [
        ("user/alice@example.com", "failed"), ("user/nobody@example.com", "failed"), ("user/bob@example.com", "failed"),
        ("user/nopass@example.com", "failed"), ("user/not an email", "failed")]
    assert "wrong password" not in str(await entries(api)) and PASSWORD not in str(await entries(api))


async def test_sessions_end_when_idle_or_too_old(make_api: Any, browser: Callable[..., httpx.AsyncClient]) -> None:
    api = await make_api(dispatch=False)
    await add_user(api, "alice@example.com")
    for column in ("idle", "absolute"):
        client = browser(api)
        await sign_in(client, "alice@example.com")
        assert (await client.get("/auth/me")).status_code == 200
        now = time.time()
        values = {"last_seen_at": now - IDLE - 1} if column == "idle" else {"expires_at": now - 1}
        async with api.hub.store.write() as conn:
            await conn.execute(update(sessions).where(sessions.c.revoked_at.is_(None)).values(**values))
        r = await client.get("/auth/me")
        assert r.status_code == 401 and "sign in again" in r.json()["detail"], (column, r.text)


async def test_csrf_guards_every_unsafe_request_of_a_session(make_api: Any, browser: Callable[..., httpx.AsyncClient]) -> None:
    api = await make_api(dispatch=False)
    await add_user(api, "alice@example.com", roles={"default": "member"})
    alice = browser(api)
    csrf = await sign_in(alice, "alice@example.com")
    silence = {"matchers": {"service": "db"}, "duration": "1h"}
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}, {"X-CSRF-Token": ""}):
        r = await alice.post("/api/v1/silences", json=silence, headers=headers)
        assert r.status_code == 403 and "CSRF" in r.json()["detail"], r.text
    assert (await alice.get("/api/v1/silences")).json()["items"] == []  # nothing changed; reads need no token
    denied = await entries(api, "access.denied")
    assert [(e["after"], e["actor_name"], e["target"]) for e in denied] == [
        ({"reason": "csrf"}, "alice@example.com", "POST /api/v1/silences")] * 3
    r = await alice.post("/api/v1/silences", json=silence, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    assert len((await alice.get("/api/v1/silences")).json()["items"]) == 1
    # A token needs no CSRF token (no browser sends it by itself), even beside a session cookie.
    r = await alice.post("/api/v1/silences", json={**silence, "matchers": {"a": "b"}}, headers=api.auth)
    assert r.status_code == 201, r.text


async def test_me_with_a_token(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    r = await api.get("/auth/me")  # a token made before users existed
    assert r.status_code == 200, r.text
    assert r.json()["user"] is None and r.json()["site_admin"] and r.json()["token"]["name"] == "test"
    await add_user(api, "carol@example.com", roles={"default": "viewer", "payments": "member"})
    scoped = await token_of(api, "carol@example.com", project="payments")
    r = await api.get("/auth/me", auth=False, headers=scoped)
    me = r.json()
    assert me["auth_method"] == "token" and me["csrf_token"] is None and me["token"]["project"] == "payments"
    assert me["projects"] == [{"slug": "payments", "name": "payments", "role": "member"}]
    assert (await api.get("/auth/me", auth=False)).status_code == 401
    assert (await api.get("/auth/me", auth=False, headers={"Authorization": "Bearer tdg_nope"})).status_code == 401


async def test_a_disabled_user_is_signed_out_and_their_tokens_stop(make_api: Any, browser: Callable[..., httpx.AsyncClient]) -> None:
    api = await make_api(dispatch=False)
    await add_user(api, "root@example.com", site_admin=True)  # adopts api.token
    await add_user(api, "bob@example.com", roles={"default": "member"})
    bob = browser(api)
    await sign_in(bob, "bob@example.com")
    bob_token = await token_of(api, "bob@example.com")
    assert (await api.get("/api/v1/silences", auth=False, headers=bob_token)).status_code == 200  # now cached
    r = await api.post("/api/v1/users/bob@example.com/disable")
    assert r.status_code == 200 and r.json()["disabled"], r.text
    assert (await bob.get("/auth/me")).status_code == 401
    assert (await api.get("/api/v1/silences", auth=False, headers=bob_token)).status_code == 401
    r = await bob.post("/auth/login", json={"email": "bob@example.com", "password": PASSWORD})
    assert r.status_code == 401
    assert (await api.post("/api/v1/users/bob@example.com/enable")).status_code == 200
    assert (await api.get("/api/v1/silences", auth=False, headers=bob_token)).status_code == 200
    await sign_in(bob, "bob@example.com")


@SQLITE_ONLY
async def test_a_form_signs_in_from_this_site_only(make_api: Any, browser: Callable[..., httpx.AsyncClient]) -> None:
    api = await make_api(dispatch=False)
    await add_user(api, "alice@example.com")
    form = {"email": "alice@example.com", "password": PASSWORD}
    here = api.url

    r = await browser(api).post("/auth/login", data=form)  # no Origin, no Referer: maybe another site's form
    assert r.status_code == 403 and "Origin" in r.json()["detail"], r.text
    r = await browser(api).post("/auth/login", data=form, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "another site" in r.json()["detail"], r.text
    r = await browser(api).post("/auth/login", json=form, headers={"Origin": "null"})
    assert r.status_code == 403, r.text
    assert [e["after"] for e in await entries(api, "auth.login")] == [{"reason": "cross-site"}] * 3

    r = await browser(api).post("/auth/login", data=form, headers={"Origin": here})
    assert r.status_code == 200 and "tidings_session" in r.headers["set-cookie"], r.text
    r = await browser(api).post("/auth/login", data=form, headers={"Referer": f"{here}/ui/login?x=1"})
    assert r.status_code == 200, r.text
    r = await browser(api).post("/auth/login", data={**form, "next": "/ui/inbox?a=1"}, headers={"Origin": here})
    assert r.status_code == 303 and r.headers["location"] == "/ui/inbox?a=1", r.text
    assert r.json()["user"]["email"] == "alice@example.com"
    for bad in ("//evil.example/", "https://evil.example/", "/\\evil.example", "ui", "/a\nb"):
        r = await browser(api).post("/auth/login", data={**form, "next": bad}, headers={"Origin": here})
        assert r.status_code == 422 and "next" in str(r.json()["detail"]), (bad, r.text)
    r = await browser(api).post("/auth/login", json=form, headers={"Origin": here})  # the UI's fetch()
    assert r.status_code == 200, r.text


async def test_bad_bodies_get_4xx_never_500_and_sign_nobody_in(make_api: Any, browser: Callable[..., httpx.AsyncClient]) -> None:
    api = await make_api({"server": {"body_limit": "4KiB"}}, dispatch=False)
    await add_user(api, "alice@example.com")
    client = browser(api)
    cases: list[tuple[dict[str, Any], int]] = [
        ({"json": {"email": "alice@example.com\u0000", "password": PASSWORD}}, 422),
        ({"json": {"email": "alice@example.com", "password": "x\u0000" * 8}}, 422),
        ({"json": {"email": "a" * 400 + "@example.com", "password": PASSWORD}}, 422),
        ({"json": {"email": "alice@example.com", "password": "p" * 2000}}, 422),
        ({"json": {"email": "alice@example.com"}}, 422),
        ({"json": {"email": "alice@example.com", "password": PASSWORD, "admin": True}}, 422),
        ({"json": ["alice@example.com", PASSWORD]}, 422),
        ({"json": {"email": 5, "password": PASSWORD}}, 422),
        ({"content": b'{"email": "alice@example.com", "password": ', "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b"", "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b"email=a%40b.c&password=x", "headers": {"Content-Type": "text/plain"}}, 415),
        ({"content": b"email=a", "headers": {}}, 415),
        ({"content": b"email=%ff%fe&password=xxxxxxxxxxxx", "headers": {"Content-Type": "application/x-www-form-urlencoded", "Origin": api.url}}, 400),
        ({"content": b"email=a%40b.c&email=x%40y.z&password=p", "headers": {"Content-Type": "application/x-www-form-urlencoded", "Origin": api.url}}, 422),
        ({"content": b"email=a%00%40b.c&password=xxxxxxxxxxxx", "headers": {"Content-Type": "application/x-www-form-urlencoded", "Origin": api.url}}, 422),
        ({"json": {"email": "alice@example.com", "password": "p" * 5000}}, 413),
    ]
    for kwargs, status in cases:
        r = await client.post("/auth/login", **kwargs)
        assert r.status_code == status, (kwargs, r.text)
        assert r.json()["error"] and "tidings_session" not in r.headers.get("set-cookie", ""), (kwargs, r.text)
    assert await entries(api, "auth.login") == []  # refused before any check: nothing to audit
    r = await client.post("/auth/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
    r = await client.post("/auth/logout", content=b"\x00" * 10, headers={"X-CSRF-Token": "x" * 5000})
    assert r.status_code == 403, r.text
