"""Users and their sign-in: every change appends its audit entry in the same transaction."""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from ..audit import Actor, append
from ..errors import TidingsError
from ..ids import new_id
from ..store.engine import Conn, Store
from ..store.tables import api_tokens, memberships, users
from .passwords import check_password, hash_password, needs_rehash, verify_password
from .principal import Principal


class AccountError(TidingsError):
    """A change to accounts that can't be made (invalid input; the subclasses: unknown, or in
    conflict with what exists). ``status`` is how the HTTP API answers it."""

    status = 422


class UnknownAccount(AccountError):
    """No user or project of that email, id or slug."""

    status = 404


class AccountConflict(AccountError):
    """Exists already, or would leave a project without an owner or the site without an admin."""

    status = 409


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    disabled: bool
    site_admin: bool
    created_at: float

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "name": self.name, "disabled": self.disabled,
                "site_admin": self.site_admin, "created_at": self.created_at}


def normalize_email(email: str) -> str:
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() or unicodedata.category(c) == "Cc" for c in email) or len(email) > 320:
        raise AccountError(f"not an email address: {email!r}")
    return email.lower()


def _user(row: Any) -> User:
    return User(row.id, row.email, row.name, bool(row.disabled), bool(row.site_admin), row.created_at)


async def get_user(conn: Conn, email_or_id: str) -> User | None:
    cond = users.c.id == email_or_id if "@" not in email_or_id else users.c.email == email_or_id.strip().lower()
    row = (await conn.execute(select(users).where(cond))).first()
    return _user(row) if row else None


async def list_users(conn: Conn) -> list[User]:
    return [_user(r) for r in await conn.execute(select(users).order_by(users.c.email))]


async def create_user(
    conn: Conn, actor: Actor, *, email: str, name: str | None = None, password: str | None = None,
    site_admin: bool = False,
) -> User:
    """Create a user. The first site admin also becomes the owner of tokens made before users
    existed, so nothing is lost."""
    email = normalize_email(email)
    if await get_user(conn, email) is not None:
        raise AccountConflict(f"a user {email} exists already")
    now = time.time()
    uid = new_id()
    first_admin = site_admin and not (
        await conn.execute(select(func.count()).select_from(users).where(users.c.site_admin.is_(True)))
    ).scalar()
    await conn.execute(users.insert().values(
        id=uid, email=email, name=name or email.split("@")[0], disabled=False, site_admin=site_admin,
        password_hash=hash_password(password) if password is not None else None, created_at=now, updated_at=now,
    ))
    adopted = 0
    if first_admin:
        result = await conn.execute(update(api_tokens).where(api_tokens.c.user_id.is_(None)).values(user_id=uid))
        adopted = result.rowcount or 0
    user = User(uid, email, name or email.split("@")[0], False, site_admin, now)
    await append(conn, actor, "user.create", target=f"user/{email}",
                 after={**user.public(), "adopted_tokens": adopted})
    return user


async def _require(conn: Conn, email_or_id: str) -> User:
    user = await get_user(conn, email_or_id)
    if user is None:
        raise UnknownAccount(f"no user {email_or_id}")
    return user


async def set_disabled(conn: Conn, actor: Actor, email_or_id: str, disabled: bool) -> User:
    user = await _require(conn, email_or_id)
    if disabled and user.site_admin:
        await _keep_an_admin(conn, user.id)
    await conn.execute(update(users).where(users.c.id == user.id).values(disabled=disabled, updated_at=time.time()))
    await append(conn, actor, "user.disable" if disabled else "user.enable", target=f"user/{user.email}",
                 before={"disabled": user.disabled}, after={"disabled": disabled})
    return await _require(conn, user.id)


async def set_password(conn: Conn, actor: Actor, email_or_id: str, password: str) -> None:
    user = await _require(conn, email_or_id)
    await conn.execute(update(users).where(users.c.id == user.id).values(
        password_hash=hash_password(password), updated_at=time.time()))
    await append(conn, actor, "user.set_password", target=f"user/{user.email}")


async def _keep_an_admin(conn: Conn, leaving: str) -> None:
    others = (await conn.execute(select(func.count()).select_from(users).where(
        users.c.site_admin.is_(True), users.c.disabled.is_(False), users.c.id != leaving))).scalar()
    if not others:
        raise AccountConflict("that would leave no enabled site admin")


async def _login_row(conn: Conn, email: str) -> Any:
    try:
        email = normalize_email(email)
    except AccountError:
        return None
    return (await conn.execute(select(users).where(users.c.email == email))).first()


async def check_login(conn: Conn, email: str, password: str) -> User | None:
    """The user when the password is right and the account enabled (a missing user costs the
    same time as a wrong password); rehashes an outdated hash. Verifies on the event loop: a
    server uses :func:`verify_login`."""
    row = await _login_row(conn, email)
    if not check_password(row.password_hash if row else None, password) or row is None or row.disabled:
        return None
    if needs_rehash(row.password_hash):
        await conn.execute(update(users).where(users.c.id == row.id).values(password_hash=hash_password(password)))
    return _user(row)


async def verify_login(store: Store, email: str, password: str) -> User | None:
    """:func:`check_login` for a server: the row is read in a short transaction and the hash
    verified outside any transaction and off the event loop (argon2 takes ~0.1 s of CPU and 64 MiB:
    inside a write transaction it would hold SQLite's lock that long)."""
    async with store.read() as conn:
        row = await _login_row(conn, email)
    if not await verify_password(row.password_hash if row else None, password) or row is None or row.disabled:
        return None
    if needs_rehash(row.password_hash):
        async with store.write() as conn:
            await conn.execute(update(users).where(users.c.id == row.id).values(password_hash=hash_password(password)))
    return _user(row)


async def principal_for(conn: Conn, user: User, *, auth_method: str, token_id: str | None = None,
                        token_project: str | None = None) -> Principal:
    roles = {r.project: r.role for r in await conn.execute(
        select(memberships.c.project, memberships.c.role).where(memberships.c.user_id == user.id))}
    return Principal(user.id, user.email, site_admin=user.site_admin, memberships=roles, auth_method=auth_method,
                     token_id=token_id, token_project=token_project)
