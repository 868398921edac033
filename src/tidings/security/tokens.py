"""API tokens: shown once, stored as a SHA-256 hash.

Tokens carry 256 random bits, so a fast hash is safe (nobody can guess a preimage) and checking
one costs microseconds per request; a slow password hash would only slow the API down.
"""

from __future__ import annotations

import hashlib
import secrets as pysecrets
import time
from dataclasses import dataclass

from sqlalchemy import select, update

from ..ids import new_id
from ..store.engine import Store
from ..store.tables import api_tokens

PREFIX = "tdg_"
ROLES = ("admin",)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    name: str
    role: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(store: Store, name: str, role: str = "admin") -> str:
    """Create a token and return it: the only time its plaintext exists."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    token = PREFIX + pysecrets.token_urlsafe(32)
    async with store.write() as conn:
        await conn.execute(
            api_tokens.insert().values(
                id=new_id(), name=name, token_hash=hash_token(token), role=role, created_at=time.time()
            )
        )
    return token


async def verify_token(store: Store, token: str) -> TokenInfo | None:
    async with store.read() as conn:
        row = (
            await conn.execute(
                select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role).where(
                    api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None)
                )
            )
        ).first()
    return TokenInfo(row.id, row.name, row.role) if row else None


async def count_tokens(store: Store) -> int:
    async with store.read() as conn:
        rows = await conn.execute(select(api_tokens.c.id).where(api_tokens.c.revoked_at.is_(None)))
        return len(rows.all())


async def revoke_token(store: Store, name: str | None = None, *, token_id: str | None = None) -> int:
    """Revoke every active token named ``name``, or the one with ``token_id``; how many."""
    which = api_tokens.c.id == token_id if token_id is not None else api_tokens.c.name == name
    async with store.write() as conn:
        result = await conn.execute(
            update(api_tokens).where(which, api_tokens.c.revoked_at.is_(None)).values(revoked_at=time.time())
        )
    return result.rowcount or 0


async def list_tokens(store: Store) -> list[dict[str, object]]:
    async with store.read() as conn:
        rows = await conn.execute(
            select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role, api_tokens.c.created_at, api_tokens.c.revoked_at)
            .order_by(api_tokens.c.created_at)
        )
        return [dict(r._mapping) for r in rows]
