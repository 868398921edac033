"""API tokens: shown once, stored only as a SHA-256 hash, verified and revoked by name."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from tidings.security.tokens import (
    PREFIX,
    TokenError,
    TokenInfo,
    count_tokens,
    create_token,
    hash_token,
    list_tokens,
    revoke_token,
    verify_token,
)
from tidings.store.engine import Store
from tidings.store.tables import api_tokens, metadata


async def test_create_then_verify(store: Store) -> None:
    token = await create_token(store, "ci")
    assert token.startswith(PREFIX)
    assert re.fullmatch(r"tdg_[A-Za-z0-9_\-]{43}", token), "256 random bits, URL-safe"
    info = await verify_token(store, token)
    assert isinstance(info, TokenInfo)
    assert info.name == "ci" and info.id and info.user_id is None and info.project is None


async def test_tokens_are_unique(store: Store) -> None:
    tokens = {await create_token(store, "same-name") for _ in range(20)}
    assert len(tokens) == 20
    assert await count_tokens(store) == 20


@pytest.mark.parametrize("candidate", ["", "tdg_", "tdg_wrong", "Bearer x"])
async def test_unknown_tokens_do_not_verify(store: Store, candidate: str) -> None:
    await create_token(store, "ci")
    assert await verify_token(store, candidate) is None


async def test_a_near_miss_does_not_verify(store: Store) -> None:
    token = await create_token(store, "ci")
    assert await verify_token(store, token[:-1]) is None
    assert await verify_token(store, token + "x") is None
    assert await verify_token(store, token.upper()) is None
    assert await verify_token(store, " " + token) is None


async def test_revoke_by_name_stops_every_token_of_that_name_only(store: Store) -> None:
    a1 = await create_token(store, "deploy")
    a2 = await create_token(store, "deploy")
    b = await create_token(store, "grafana")
    assert await count_tokens(store) == 3
    assert await revoke_token(store, "deploy") == 2
    assert await verify_token(store, a1) is None
    assert await verify_token(store, a2) is None
    assert (await verify_token(store, b)) is not None
    assert await count_tokens(store) == 1
    # Revoking again finds nothing active.
    assert await revoke_token(store, "deploy") == 0
    assert await revoke_token(store, "nobody") == 0
    listed = await list_tokens(store)
    assert [t["name"] for t in listed] == ["deploy", "deploy", "grafana"]
    assert [t["revoked_at"] is not None for t in listed] == [True, True, False]


async def test_unknown_user_or_project_and_a_past_expiry_are_refused(store: Store) -> None:
    with pytest.raises(TokenError, match="no user 'nobody@example.com'"):
        await create_token(store, "x", user="nobody@example.com")
    with pytest.raises(TokenError, match="no project 'nope'"):
        await create_token(store, "x", project="nope")
    with pytest.raises(TokenError, match="in the future"):
        await create_token(store, "x", expires_at=time.time() - 1)
    assert await count_tokens(store) == 0


async def test_an_expired_token_no_longer_verifies(store: Store) -> None:
    token = await create_token(store, "short", expires_at=time.time() + 60)
    assert await verify_token(store, token) is not None
    assert await verify_token(store, token, now=time.time() + 61) is None


async def test_only_the_sha256_hash_is_stored(store: Store) -> None:
    token = await create_token(store, "ci")
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    async with store.read() as conn:
        rows = (await conn.execute(select(api_tokens))).all()
    assert len(rows) == 1
    row = rows[0]._mapping
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(v) for v in row.values()}
    # The listing never shows the hash, let alone the token.
    listed = await list_tokens(store)
    assert set(listed[0]) == {"id", "name", "user", "project", "created_at", "expires_at", "last_used_at",
                              "revoked_at"}
    assert token not in repr(listed) and row["token_hash"] not in repr(listed)


async def test_plaintext_token_is_nowhere_in_the_database(store: Store) -> None:
    tokens = [await create_token(store, f"t{i}") for i in range(5)]
    await revoke_token(store, "t0")
    if store.is_sqlite:
        path = store.sqlite_path
        assert path is not None
        blobs = [Path(str(path) + s).read_bytes() for s in ("", "-wal", "-shm") if Path(str(path) + s).exists()]
    else:
        blobs = []
        async with store.read() as conn:
            for t in metadata.sorted_tables:
                rows = await conn.execute(text(f'SELECT t::text FROM "{t.name}" t'))
                blobs.append("\n".join(r[0] for r in rows).encode())
    data = b"".join(blobs)
    for token in tokens:
        assert hash_token(token).encode() in data, "the search looks where the hashes are"
        assert token.encode() not in data
        assert token[len(PREFIX):].encode() not in data
