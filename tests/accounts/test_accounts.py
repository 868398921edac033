"""Users, projects, memberships, sessions and authorize(), on SQLite and PostgreSQL; every change
leaves its audit entry in the same transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tidings.accounts import Forbidden, Principal, Unauthenticated, authorize
from tidings.accounts.projects import create_project, list_members, list_projects, remove_member, set_member
from tidings.accounts.roles import PERMISSIONS, ROLES
from tidings.accounts.sessions import ABSOLUTE, IDLE, csrf_ok, end_session, find_session, start_session
from tidings.accounts.users import (
    AccountError,
    check_login,
    create_user,
    list_users,
    principal_for,
    set_disabled,
    set_password,
)
from tidings.audit import SYSTEM, Actor
from tidings.audit.verify import read_entries
from tidings.security.tokens import create_token
from tidings.store.engine import Store
from tidings.store.tables import api_tokens, users

PASSWORD = "correct horse battery staple"


async def test_users_are_unique_case_insensitively_and_passwords_hashed(store: Store) -> None:
    async with store.write() as conn:
        await create_user(conn, SYSTEM, email="Alice@Example.COM", name="Alice", password=PASSWORD)
    with pytest.raises(AccountError, match="exists already"):
        async with store.write() as conn:
            await create_user(conn, SYSTEM, email="alice@example.com")
    async with store.read() as conn:
        row = (await conn.execute(select(users))).one()
    assert row.email == "alice@example.com" and row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in str(await read_entries(store))
    async with store.write() as conn:
        assert (await check_login(conn, "ALICE@example.com", PASSWORD)) is not None
        assert await check_login(conn, "alice@example.com", "wrong password!!") is None
        assert await check_login(conn, "nobody@example.com", PASSWORD) is None
        assert await check_login(conn, "not an email", PASSWORD) is None


@pytest.mark.parametrize("email", ["", "alice", "a b@example.com", "alice@localhost", "@example.com"])
async def test_bad_emails_are_refused(store: Store, email: str) -> None:
    with pytest.raises(AccountError, match="not an email"):
        async with store.write() as conn:
            await create_user(conn, SYSTEM, email=email)


async def test_short_passwords_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="at least 12"):
        async with store.write() as conn:
            await create_user(conn, SYSTEM, email="a@example.com", password="short")
    async with store.read() as conn:
        assert await list_users(conn) == []
    assert await read_entries(store) == []  # nothing changed, nothing audited


async def test_a_disabled_user_cannot_sign_in_and_the_last_admin_stays(store: Store) -> None:
    async with store.write() as conn:
        admin = await create_user(conn, SYSTEM, email="root@example.com", password=PASSWORD, site_admin=True)
        await create_user(conn, SYSTEM, email="bob@example.com", password=PASSWORD)
    with pytest.raises(AccountError, match="no enabled site admin"):
        async with store.write() as conn:
            await set_disabled(conn, SYSTEM, admin.id, True)
    async with store.write() as conn:
        await set_disabled(conn, SYSTEM, "bob@example.com", True)
        assert await check_login(conn, "bob@example.com", PASSWORD) is None
        await set_disabled(conn, SYSTEM, "bob@example.com", False)
        await set_password(conn, SYSTEM, "bob@example.com", "another long password")
        assert await check_login(conn, "bob@example.com", "another long password") is not None
    actions = [e["action"] for e in await read_entries(store)]
    assert actions == ["user.create", "user.create", "user.disable", "user.enable", "user.set_password"]


async def test_tokens_made_before_users_go_to_the_first_admin(store: Store) -> None:
    await create_token(store, "ci")
    await create_token(store, "deploy")
    async with store.write() as conn:
        admin = await create_user(conn, SYSTEM, email="root@example.com", site_admin=True)
        await create_user(conn, SYSTEM, email="second@example.com", site_admin=True)
    async with store.read() as conn:
        owners = {r.name: r.user_id for r in await conn.execute(select(api_tokens.c.name, api_tokens.c.user_id))}
    assert owners == {"ci": admin.id, "deploy": admin.id}
    created = [e for e in await read_entries(store) if e["action"] == "user.create"]
    assert created[0]["after"]["adopted_tokens"] == 2


async def test_projects_members_and_roles(store: Store) -> None:
    async with store.write() as conn:
        alice = await create_user(conn, SYSTEM, email="alice@example.com")
        await create_user(conn, SYSTEM, email="bob@example.com")
        await create_project(conn, SYSTEM, "payments", "Payments")
        await set_member(conn, SYSTEM, "payments", "alice@example.com", "owner")
        await set_member(conn, SYSTEM, "payments", "bob@example.com", "viewer")
        await set_member(conn, SYSTEM, "payments", "bob@example.com", "member")
        members = await list_members(conn, "payments")
        principal = await principal_for(conn, alice, auth_method="session")
        assert [p["slug"] for p in await list_projects(conn, principal)] == ["payments"]
        assert [p["slug"] for p in await list_projects(conn)] == ["default", "payments"]
    assert [(m["email"], m["role"]) for m in members] == [("alice@example.com", "owner"), ("bob@example.com", "member")]
    assert principal.memberships == {"payments": "owner"}
    for bad in ("Payments", "-x", "a" * 65, "a_b", ""):
        with pytest.raises(AccountError, match="slug"):
            async with store.write() as conn:
                await create_project(conn, SYSTEM, bad)
    with pytest.raises(AccountError, match="without an owner"):
        async with store.write() as conn:
            await remove_member(conn, SYSTEM, "payments", "alice@example.com")
    with pytest.raises(ValueError, match="unknown role"):
        async with store.write() as conn:
            await set_member(conn, SYSTEM, "payments", "bob@example.com", "admin")
    async with store.write() as conn:
        assert await remove_member(conn, SYSTEM, "payments", "bob@example.com") is True
        assert await remove_member(conn, SYSTEM, "payments", "bob@example.com") is False
    entries = await read_entries(store)
    assert [e["action"] for e in entries if e["action"].startswith("member")] == [
        "member.add", "member.add", "member.update", "member.remove"]
    assert entries[-1]["project"] == "payments" and entries[-1]["before"] == {"role": "member"}


def _p(**kw: object) -> Principal:
    return Principal("u1", "u@example.com", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("principal", "permission", "project", "ok"),
    [
        (_p(memberships={"a": "viewer"}), "integration:read", "a", True),
        (_p(memberships={"a": "viewer"}), "integration:write", "a", False),
        (_p(memberships={"a": "viewer"}), "delivery:retry", "a", False),
        (_p(memberships={"a": "member"}), "delivery:retry", "a", True),
        (_p(memberships={"a": "member"}), "member:manage", "a", False),
        (_p(memberships={"a": "owner"}), "member:manage", "a", True),
        (_p(memberships={"a": "owner"}), "integration:read", "b", False),
        (_p(memberships={"a": "owner"}), "site:admin", None, False),
        (_p(site_admin=True), "integration:write", "b", True),
        (_p(site_admin=True), "site:admin", None, True),
        (_p(site_admin=True, token_project="a"), "integration:write", "b", False),
        (_p(site_admin=True, token_project="a"), "site:admin", None, False),
        (_p(memberships={"a": "owner", "b": "owner"}, token_project="a"), "integration:read", "b", False),
        (_p(memberships={"a": "owner", "b": "owner"}, token_project="a"), "integration:read", "a", True),
    ],
)
def test_authorize(principal: Principal, permission: str, project: str | None, ok: bool) -> None:
    if ok:
        assert authorize(principal, permission, project) is principal
    else:
        with pytest.raises(Forbidden, match=permission):
            authorize(principal, permission, project)


def test_authorize_without_credentials_and_unknown_permissions() -> None:
    with pytest.raises(Unauthenticated):
        authorize(None, "integration:read", "a")
    with pytest.raises(ValueError, match="unknown permission"):
        authorize(_p(site_admin=True), "integration:delete", "a")


def test_roles_nest() -> None:
    assert ROLES["viewer"] < ROLES["member"] < ROLES["owner"] == set(PERMISSIONS)


async def test_sessions_expire_idle_and_absolute_and_end_on_logout(store: Store) -> None:
    actor = Actor("user", ip="192.0.2.1", user_agent="Firefox")
    async with store.write() as conn:
        user = await create_user(conn, SYSTEM, email="alice@example.com", password=PASSWORD)
        cookie, session = await start_session(conn, actor, user, now=1000.0)
    async with store.write() as conn:
        found = await find_session(conn, cookie, now=1000.0 + IDLE - 1)
        assert found is not None and found.user.email == "alice@example.com"
        assert csrf_ok(found, session.csrf) and not csrf_ok(found, "forged") and not csrf_ok(found, None)
        assert await find_session(conn, cookie + "x", now=1001.0) is None
        # used within the idle window again and again, it still ends at the absolute limit
        assert await find_session(conn, cookie, now=1000.0 + 2 * IDLE - 10) is not None
        assert await find_session(conn, cookie, now=1000.0 + ABSOLUTE + 1) is None
    async with store.write() as conn:
        assert await find_session(conn, cookie, now=1000.0 + 4 * IDLE) is None  # idle too long
    async with store.write() as conn:
        cookie2, _ = await start_session(conn, actor, user)
        assert await end_session(conn, actor, cookie2) is True
        assert await find_session(conn, cookie2) is None
        assert await end_session(conn, actor, cookie2) is False
    entries = await read_entries(store)
    assert [e["action"] for e in entries] == ["user.create", "auth.login", "auth.login", "auth.logout"]
    assert entries[1]["ip"] == "192.0.2.1" and cookie not in str(entries)


@pytest.mark.parametrize("email", ["a\x00b@example.com", "ops@exa\x00mple.com", "a@b\n.com", "a@x\x7f.com", "a\x1b@x.com"])
def test_control_characters_are_not_an_email_address(email: str) -> None:
    from tidings.accounts.users import AccountError, normalize_email

    with pytest.raises(AccountError, match="not an email address"):
        normalize_email(email)


@pytest.mark.parametrize("slug", ["ops\n", "ops\x00", "Ops", "-ops", "ops-", "a" * 65])
async def test_bad_project_slugs_are_refused(store: Store, slug: str) -> None:
    from tidings.accounts.projects import create_project
    from tidings.accounts.users import AccountError

    with pytest.raises(AccountError, match="slug"):
        async with store.write() as conn:
            await create_project(conn, SYSTEM, slug)
