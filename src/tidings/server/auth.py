"""Bearer API tokens on every ``/api`` route."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..security.tokens import TokenInfo, hash_token, verify_token

CACHE_SECONDS = 10.0
"""A verified token is trusted this long without asking the database again; a revoked token
stops working within this time."""

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


class TokenCache:
    def __init__(self) -> None:
        self._seen: dict[str, tuple[TokenInfo, float]] = {}

    def get(self, digest: str) -> TokenInfo | None:
        hit = self._seen.get(digest)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, digest: str, info: TokenInfo) -> None:
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[digest] = (info, time.monotonic() + CACHE_SECONDS)


bearer = HTTPBearer(
    scheme_name="token",
    bearerFormat="tidings API token",
    description="An API token made with `tidings token create`, sent as `Authorization: Bearer <token>`.",
    auto_error=False,
)
"""Describes the scheme in the OpenAPI document (Swagger UI's Authorize); :func:`authenticate`
still decides, so a refusal is the API's own 401 body."""


async def require_token(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> TokenInfo:
    return await authenticate(request.app.state, request.headers.get("authorization", ""))


async def authenticate(state: Any, header: str) -> TokenInfo:
    """The token of an ``Authorization`` header, or HTTPException(401)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "send `Authorization: Bearer <token>` (create one with `tidings token create`)", _UNAUTHORIZED)
    token = token.strip()
    digest = hash_token(token)
    info = state.tokens.get(digest)
    if info is None:
        info = await verify_token(state.hub.store, token)
        if info is None:
            raise HTTPException(401, "invalid or revoked token", _UNAUTHORIZED)
        state.tokens.put(digest, info)
    return info
