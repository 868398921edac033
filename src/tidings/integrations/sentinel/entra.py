"""Microsoft Entra ID client credentials (OAuth 2.0, RFC 6749 section 4.4) for one integration: a
token is fetched with ``POST {authority}/{tenant}/oauth2/v2.0/token``, kept until shortly before it
expires, and fetched again by one caller at a time: the others wait for it, and share its failure
if it fails (one request per wave of senders, not one each). A token the resource
refused is dropped with :meth:`EntraToken.drop`, so the next :meth:`EntraToken.get` fetches anew.

Entra answers errors as Microsoft's "OAuth 2.0 client credentials flow" page shows: ``{"error":
..., "error_description": "AADSTS<code>: ...\\r\\nTrace ID: ...", "error_codes": [<code>], "timestamp",
"trace_id", "correlation_id"}``: a wrong secret is 401 ``invalid_client`` (AADSTS7000215, an expired
one AADSTS7000222), an unknown application 400 ``unauthorized_client`` (AADSTS700016), an unknown
tenant 400 ``invalid_request`` (AADSTS90002), a bad scope 400 ``invalid_scope`` (AADSTS70011,
AADSTS1002012). Any of those is a configuration that will not work until a person fixes it:
permanent, the integration disabled, the error naming the setting. 429 and 5xx (``temporarily_unavailable``)
are retried (``Retry-After``). Only the description's first line is kept: the trace ids follow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson

from ..base import Outcome
from ..http import RETRYABLE_STATUS, connection_error, parse_retry_after, snippet

REFRESH_MARGIN = 300.0
"""A token is fetched again this long before it expires (at most a tenth of its lifetime)."""
DEFAULT_LIFETIME = 3599.0
"""When an answer carries no ``expires_in``."""
DESCRIPTION_MAX = 200
AADSTS_HINTS = {
    7000215: "client_secret is wrong (paste the secret's Value, not its Secret ID)",
    7000222: "client_secret has expired: create a new one under Certificates & secrets",
    700016: "client_id is not an application in this tenant (check client_id and tenant_id)",
    90002: "tenant_id is not a known tenant (check tenant_id and authority_url)",
    70011: "check scope (https://monitor.azure.com//.default, or your cloud's)",
    1002012: "check scope: a client credentials scope ends in /.default",
    500011: "check scope: the resource it names is not in this tenant or cloud",
}
"""What a person must change, by Entra's AADSTS code (its ``error_codes``)."""
ERROR_HINTS = {
    "invalid_client": "check client_id and client_secret",
    "unauthorized_client": "check client_id and tenant_id",
    "invalid_scope": "check scope",
}


class TokenFailure(Exception):
    """Getting a token failed; :attr:`outcome` says how every send waiting for it ends."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    refresh_at: float
    """``time.monotonic()`` after which a new one is fetched."""


class EntraToken:
    """The cached token of one integration object (its lock is that object's too)."""

    def __init__(self, url: str, form: dict[str, str], timeout: aiohttp.ClientTimeout,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._form = form
        self._timeout = timeout
        self._clock = clock
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self._finished = 0
        """Fetches over (either way)."""
        self._failure: Outcome | None = None
        """How the last fetch failed (None: it didn't): the callers that waited for it share it."""

    def _fresh(self) -> Token | None:
        token = self._token
        return token if token is not None and self._clock() < token.refresh_at else None

    async def get(self, session: aiohttp.ClientSession, *, fresh: bool = False) -> str:
        """A token good for a while yet (``fresh``: a new one, whatever is cached); raises
        :class:`TokenFailure`."""
        if not fresh and (token := self._fresh()) is not None:
            return token.value
        finished = self._finished
        async with self._lock:
            if not fresh and (token := self._fresh()) is not None:
                return token.value
            if self._finished != finished and self._failure is not None:
                raise TokenFailure(self._failure)  # it failed while this caller waited: no second try now
            try:
                token = self._token = await self._fetch(session)
            except TokenFailure as failed:
                self._failure = failed.outcome
                raise
            except BaseException:  # cancelled (a send's deadline): the next waiter tries itself
                self._failure = None
                raise
            else:
                self._failure = None
            finally:
                self._finished += 1
        return token.value

    def drop(self, value: str) -> None:
        """The resource refused ``value``: fetch a new one next time (unless that already happened)."""
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _fetch(self, session: aiohttp.ClientSession) -> Token:
        try:
            async with session.post(self.url, data=self._form, allow_redirects=False, timeout=self._timeout,
                                    headers={"Accept": "application/json"}) as resp:
                raw = await resp.content.read(64 * 1024)
                status, headers = resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            failed = connection_error(exc)
            raise TokenFailure(Outcome(failed.status, error=f"Entra ID token: {failed.error}",
                                       http_status=failed.http_status)) from None
        answer = _json(raw)
        if status == 200 and isinstance(answer.get("access_token"), str) and answer["access_token"]:
            lifetime = _seconds(answer.get("expires_in"))
            margin = min(REFRESH_MARGIN, lifetime / 10)
            return Token(answer["access_token"], self._clock() + lifetime - margin)
        raise TokenFailure(classify(status, headers.get("retry-after"), answer, raw))


def classify(status: int, retry_after: str | None, answer: dict[str, object], raw: bytes) -> Outcome:
    """A failed token request as an outcome."""
    error = str(answer.get("error") or "")
    description = str(answer.get("error_description") or "").split("\r\n")[0].split("\n")[0]
    reason = error + (f": {description}" if description else "") if error else snippet(raw)
    detail = f"Entra ID token: HTTP {status}" + (f": {snippet(reason.encode(), DESCRIPTION_MAX)}" if reason else "")
    if status in RETRYABLE_STATUS or status >= 500:
        return Outcome.retry(detail, parse_retry_after(retry_after))
    if status == 200:
        return Outcome.retry(f"{detail}: the answer carried no access_token")
    return Outcome.permanent(f"{detail}; {_hint(error, description, answer.get('error_codes'))}", disable=True)


def _hint(error: str, description: str, codes: object) -> str:
    """The setting to fix: by the AADSTS code (``error_codes``, else the description's), else by ``error``."""
    numbers = [c for c in codes if isinstance(c, int)] if isinstance(codes, list) else []
    numbers += [c for c in AADSTS_HINTS if description.startswith(f"AADSTS{c}:")]
    for code in numbers:
        if code in AADSTS_HINTS:
            return AADSTS_HINTS[code]
    return ERROR_HINTS.get(error, "check tenant_id, client_id and client_secret")


def _json(raw: bytes) -> dict[str, object]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _seconds(value: object) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]  # Entra's v1 endpoint answers a string
    except (TypeError, ValueError):
        return DEFAULT_LIFETIME
    return seconds if 0 < seconds < 86400 * 2 else DEFAULT_LIFETIME
