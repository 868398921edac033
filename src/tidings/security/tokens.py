"""API tokens: shown once, stored as a SHA-256 hash; each belongs to a user, may be scoped to one
project and may expire.

Tokens carry 256 random bits, so a fast hash is safe (nobody can guess a preimage) and checking
one costs microseconds per request; a slow password hash would only slow the API down.

A token made before users existed (``user_id`` NULL) acts as a site admin, as every token did
then; the first site admin created adopts them (``accounts.users.create_user``).
"""

from __future__ import annotations

import hashlib
import secrets as pysecrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update

from ..audit import SYSTEM, Actor, append
from ..errors import TidingsError
from ..ids import new_id
from ..store.engine import Store
from ..store.tables import api_tokens, projects, users

PREFIX = "tdg_"
TOUCH_EVERY = 60.0
"""``last_used_at`` is written at most this often per token."""


class TokenError(TidingsError):
    """A token that can't be made or found (unknown user or project, bad expiry)."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    name: str
    user_id: str | None
    project: str | None
    expires_at: float | None
    last_used_at: float | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _public(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "user": getattr(row, "email", None), "project": row.project,
            "created_at": row.created_at, "expires_at": row.expires_at, "last_used_at": row.last_used_at,
            "revoked_at": row.revoked_at}


async def create_token(
    store: Store, name: str, *, user: str | None = None, project: str | None = None,
    expires_at: float | None = None, actor: Actor = SYSTEM,
) -> str:
    """Create a token and return it: the only time its plaintext exists. ``user`` is an email or id
    (None: the first site admin, when there is one). Audited in the same transaction."""
    token = PREFIX + pysecrets.token_urlsafe(32)
    now = time.time()
    if expires_at is not None and expires_at <= now:
        raise TokenError("the expiry must be in the future")
    async with store.write() as conn:
        if user is None:
            row = (await conn.execute(select(users.c.id, users.c.email).where(users.c.site_admin.is_(True))
                                      .order_by(users.c.created_at).limit(1))).first()
        else:
            cond = users.c.email == user.strip().lower() if "@" in user else users.c.id == user
            row = (await conn.execute(select(users.c.id, users.c.email).where(cond))).first()
            if row is None:
                raise TokenError(f"no user {user!r}")
        if project is not None and (await conn.execute(select(projects.c.slug).where(projects.c.slug == project))).first() is None:
            raise TokenError(f"no project {project!r}")
        tid = new_id()
        await conn.execute(api_tokens.insert().values(
            id=tid, name=name, token_hash=hash_token(token), role="token", created_at=now,
            user_id=row.id if row else None, project=project, expires_at=expires_at,
        ))
        await append(conn, actor, "token.create", target=f"token/{tid}", project=project, after={
            "name": name, "user": row.email if row else None, "project": project, "expires_at": expires_at})
    return token


async def verify_token(store: Store, token: str, *, now: float | None = None) -> TokenInfo | None:
    """The live token (not revoked, not expired) of a plaintext token, or None."""
    now = time.time() if now is None else now
    async with store.read() as conn:
        row = (await conn.execute(
            select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.user_id, api_tokens.c.project,
                   api_tokens.c.expires_at, api_tokens.c.last_used_at)
            .where(api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None),
                   or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > now))
        )).first()
    if row is None:
        return None
    return TokenInfo(row.id, row.name, row.user_id, row.project, row.expires_at, row.last_used_at)


async def touch(store: Store, info: TokenInfo, *, now: float | None = None) -> None:
    """Record that ``info`` was used (at most every :data:`TOUCH_EVERY`; not an audited change)."""
    now = time.time() if now is None else now
    if info.last_used_at is not None and now - info.last_used_at < TOUCH_EVERY:
        return
    async with store.write() as conn:
        await conn.execute(update(api_tokens).where(api_tokens.c.id == info.id).values(last_used_at=now))


async def count_tokens(store: Store) -> int:
    async with store.read() as conn:
        rows = await conn.execute(select(api_tokens.c.id).where(api_tokens.c.revoked_at.is_(None)))
        return len(rows.all())


async def revoke_token(
    store: Store, name: str | None = None, *, token_id: str | None = None, user: str | None = None,
    actor: Actor = SYSTEM,
) -> int:
    """Revoke every active token named ``name`` (of ``user``, an id, when given), or the one with
    ``token_id``; how many. Each revocation is audited."""
    which = api_tokens.c.id == token_id if token_id is not None else api_tokens.c.name == name
    conds = [which, api_tokens.c.revoked_at.is_(None)]
    if user is not None:
        conds.append(api_tokens.c.user_id == user)
    async with store.write() as conn:
        rows = (await conn.execute(select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.project).where(*conds))).all()
        if rows:
            await conn.execute(update(api_tokens).where(api_tokens.c.id.in_([r.id for r in rows]))
                               .values(revoked_at=time.time()))
        for r in rows:
            await append(conn, actor, "token.revoke", target=f"token/{r.id}", project=r.project,
                         before={"name": r.name})
    return len(rows)


async def list_tokens(store: Store, *, user: str | None = None) -> list[dict[str, Any]]:
    """Every token (of ``user``, an id, when given) with its owner's email; never a hash."""
    query = (select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.project, api_tokens.c.created_at,
                    api_tokens.c.expires_at, api_tokens.c.last_used_at, api_tokens.c.revoked_at, users.c.email)
             .select_from(api_tokens.outerjoin(users, users.c.id == api_tokens.c.user_id))
             .order_by(api_tokens.c.created_at))
    if user is not None:
        query = query.where(api_tokens.c.user_id == user)
    async with store.read() as conn:
        return [_public(r) for r in await conn.execute(query)]


async def get_token(store: Store, token_id: str) -> dict[str, Any] | None:
    """One token (revoked or not) with its owner's email and ``user_id``; never its hash."""
    query = (select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.project, api_tokens.c.created_at,
                    api_tokens.c.expires_at, api_tokens.c.last_used_at, api_tokens.c.revoked_at,
                    api_tokens.c.user_id, users.c.email)
             .select_from(api_tokens.outerjoin(users, users.c.id == api_tokens.c.user_id))
             .where(api_tokens.c.id == token_id))
    async with store.read() as conn:
        row = (await conn.execute(query)).first()
    return {**_public(row), "user_id": row.user_id} if row else None
