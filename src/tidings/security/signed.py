"""Signed links: a person acts by following a URL, without signing in (acknowledge an alert from
an email, unsubscribe from a topic with one click, RFC 8058).

A token is ``base64url(claims JSON) "." base64url(HMAC-SHA256)``. The HMAC key is derived from
the vault's keys (each Fernet key gives one link key), so links are as durable as the secrets:
the newest key signs, every configured key verifies (a rotated-out key stops its links once it
is removed). The claims name the purpose (a link to acknowledge can't unsubscribe), what it acts
on (a message, a recipient × topic × channel) and an expiry; anything changed breaks the MAC.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Any

import orjson

from ..errors import TidingsError

MAX_TOKEN = 2048
"""A longer token is refused before any work."""


class LinkError(TidingsError):
    """A link that is forged, altered, expired, or for another purpose."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def link_key(fernet_key: str) -> bytes:
    """The HMAC key links use, derived from one vault key (never the vault key itself)."""
    return hmac.new(base64.urlsafe_b64decode(fernet_key), b"tidings-links-v1", hashlib.sha256).digest()


class Signer:
    """Signs with the first key, verifies with any."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise LinkError("signed links need a secret key: set TIDINGS_SECRET_KEY or run `tidings init`")
        self._keys = [link_key(k) for k in keys]

    def sign(self, purpose: str, claims: dict[str, Any], *, expires_at: float) -> str:
        body = _b64(orjson.dumps({**claims, "p": purpose, "exp": int(expires_at)}, option=orjson.OPT_SORT_KEYS))
        return f"{body}.{_b64(hmac.new(self._keys[0], body.encode(), hashlib.sha256).digest())}"

    def verify(self, purpose: str, token: str, *, now: float | None = None) -> dict[str, Any]:
        """The claims of a token made by :meth:`sign` for ``purpose``; :class:`LinkError` otherwise."""
        if len(token) > MAX_TOKEN or token.count(".") != 1:
            raise LinkError("not a tidings link")
        body, mac = token.split(".")
        try:
            given = _unb64(mac)
        except (binascii.Error, ValueError):
            raise LinkError("not a tidings link") from None
        if not any(hmac.compare_digest(given, hmac.new(k, body.encode(), hashlib.sha256).digest()) for k in self._keys):
            raise LinkError("this link was not made by this tidings (or was altered)")
        claims = orjson.loads(_unb64(body))
        if not isinstance(claims, dict) or claims.get("p") != purpose:
            raise LinkError("this link is for something else")
        if claims.get("exp", 0) < (time.time() if now is None else now):
            raise LinkError("this link has expired")
        return {k: v for k, v in claims.items() if k not in ("p", "exp")}
