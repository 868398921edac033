"""The token endpoint: exchange a code (with its PKCE verifier) or a refresh token for tokens,
and classify what the provider answered. Each provider's quirks are here and nowhere else:

- GitHub answers errors with HTTP 200 and an ``error`` field (``bad_verification_code``,
  ``bad_refresh_token``) and sends JSON only when asked (``Accept: application/json``);
- Slack answers HTTP 200 with ``ok: false`` and an ``error`` (``invalid_code``,
  ``invalid_refresh_token``) and separates scopes with commas;
- Atlassian wants a JSON body and answers a stale (rotated) refresh token 403 ``invalid_grant``;
- Google and Microsoft answer 400 ``invalid_grant`` (Microsoft with an ``AADSTS`` description).

Answers never reach a log or an error whole: tokens are registered for masking as soon as read.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson

from ..integrations.http import parse_retry_after
from ..security.redact import clip, redact, register
from .connections import TokenSet
from .errors import GrantRefused, OAuthError, TokenEndpointFailed
from .providers import Provider

REFUSED = frozenset({"invalid_grant", "bad_refresh_token", "invalid_refresh_token", "bad_verification_code",
                     "invalid_code", "code_already_used", "code_expired", "token_revoked", "token_expired"})
"""Errors that mean "this code / refresh token will never work": no retry, a person must connect."""
TOKEN_KEYS = ("access_token", "refresh_token", "id_token")


async def exchange(session: aiohttp.ClientSession, prov: Provider, client_id: str, client_secret: str, *,
                   code: str, verifier: str, redirect_uri: str, now: float | None = None) -> TokenSet:
    """Tokens for an authorization ``code``: :class:`GrantRefused` when the code (or verifier) is
    refused, :class:`TokenEndpointFailed` when the endpoint fails for now, :class:`OAuthError` else."""
    return await _request(session, prov, {
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier,
        "client_id": client_id, "client_secret": client_secret,
    }, now)


async def refresh(session: aiohttp.ClientSession, prov: Provider, client_id: str, client_secret: str,
                  refresh_token: str, now: float | None = None) -> TokenSet:
    """New tokens for ``refresh_token``: :class:`GrantRefused` when it is refused for good
    (revoked, rotated away, expired), :class:`TokenEndpointFailed` when the endpoint fails for now."""
    return await _request(session, prov, {
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id,
        "client_secret": client_secret,
    }, now)


async def _request(session: aiohttp.ClientSession, prov: Provider, body: dict[str, str], now: float | None) -> TokenSet:
    register([v for k, v in body.items() if k in ("code", "code_verifier", "client_secret", "refresh_token") and v])
    headers = {"Accept": "application/json"}
    try:
        if prov.token_body == "json":
            resp_cm = session.post(prov.token_url, json=body, headers=headers)
        else:
            resp_cm = session.post(prov.token_url, data=body, headers=headers)
        async with resp_cm as resp:
            raw = await resp.read()
            status, retry_after = resp.status, parse_retry_after(resp.headers.get("Retry-After"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TokenEndpointFailed(f"{prov.name} token endpoint unreachable: {type(exc).__name__}: "
                                  f"{clip(redact(str(exc)), 200)}") from None
    return parse(prov, status, raw, retry_after, now)


def parse(prov: Provider, status: int, raw: bytes, retry_after: float | None = None,
          now: float | None = None) -> TokenSet:
    """The :class:`TokenSet` in a token endpoint's answer, or the error it means."""
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        register([str(data[k]) for k in TOKEN_KEYS if isinstance(data.get(k), str) and data[k]])
    if status == 429 or status >= 500:
        raise TokenEndpointFailed(f"{prov.name} token endpoint answered HTTP {status}", retry_after)
    if not isinstance(data, dict):
        raise OAuthError(f"{prov.name} token endpoint answered HTTP {status} without JSON: "
                         f"{clip(redact(raw.decode('utf-8', 'replace')), 200)}")
    error = data.get("error") if (status >= 400 or "error" in data or data.get("ok") is False) else None
    if error is not None or status >= 400:
        code = str(error or f"http_{status}")
        why = clip(redact(str(data.get("error_description") or code)), 300)
        if code in REFUSED:
            raise GrantRefused(f"{prov.name} refused the grant: {code} ({why})" if why != code else
                               f"{prov.name} refused the grant: {code}")
        if code == "ratelimited":
            raise TokenEndpointFailed(f"{prov.name} token endpoint: rate limited", retry_after)
        raise OAuthError(f"{prov.name} token endpoint refused the request: {code}" + (f" ({why})" if why != code else ""))
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise OAuthError(f"{prov.name} token endpoint answered no access_token")
    now = time.time() if now is None else now
    scope = data.get("scope") or ""
    separator = "," if "," in scope else " "
    return TokenSet(
        access_token=access,
        refresh_token=data.get("refresh_token") if isinstance(data.get("refresh_token"), str) else None,
        expires_at=_at(now, data.get("expires_in")),
        refresh_expires_at=_at(now, data.get("refresh_token_expires_in")),
        scopes=[s for s in scope.split(separator) if s] if isinstance(scope, str) else [],
        raw=data,
    )


def _at(now: float, seconds: Any) -> float | None:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return None
    return now + value if value > 0 else None
