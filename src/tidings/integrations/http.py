"""What every HTTP-speaking integration shares: one pooled, guarded session (:class:`HttpClient`)
and classifying a response into an Outcome."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import re
import time
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlsplit

import aiohttp
from pydantic import AfterValidator

from ..security.outbound import DestinationRefused, guarded_session
from ..security.redact import clip, longest
from .integration import Integration
from .notifier import Notifier
from .outcome import Outcome
from .settings import IntegrationSettings

RETRYABLE_STATUS = frozenset({408, 425, 429})
_BAD_URL_CHAR = re.compile(r"[\s\x00-\x1f\x7f]")


def check_http_url(value: str) -> str:
    """An absolute http(s) URL with a host and no whitespace or control characters."""
    if _BAD_URL_CHAR.search(value):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


HttpUrl = Annotated[str, AfterValidator(check_http_url)]
ERROR_SNIPPET = 300
SNIPPET_MARGIN = 4096
RETIRE_GRACE = 5.0
"""A session replaced by new settings closes this long after the integration's timeout."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP-date. None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # the asctime form carries no zone; HTTP dates are always GMT
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if seconds == seconds else None  # NaN guard


def classify_status(status: int, headers: Mapping[str, str], snippet: str = "") -> Outcome:
    """The common reading of an HTTP answer: 2xx delivered; 408, 425, 429 and 5xx retryable
    (honouring ``Retry-After``); 410 permanent and disabling; any other status permanent."""
    if 200 <= status < 300:
        return Outcome.delivered(headers.get("x-request-id") or headers.get("request-id"))
    detail = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    if status in RETRYABLE_STATUS or status >= 500:
        return Outcome.retry(detail, parse_retry_after(headers.get("retry-after")), http_status=status)
    if status == 410:
        return Outcome.permanent(f"{detail} (the endpoint is gone)", disable=True, http_status=status)
    if 300 <= status < 400:
        location = headers.get("location", "")
        target = f" (to {location})" if location else ""
        return Outcome.permanent(f"{detail}: redirects are not followed, update the URL{target}", http_status=status)
    return Outcome.permanent(detail, http_status=status)


async def read_snippet(resp: aiohttp.ClientResponse, limit: int = ERROR_SNIPPET) -> str:
    """The start of an error body, masked, for the delivery's last error; never the whole body.
    Read past ``limit`` so that a secret crossing it is masked whole before the text is cut."""
    want = limit + max(SNIPPET_MARGIN, 2 * longest())
    chunks: list[bytes] = []
    size = 0
    try:
        while size < want:
            chunk = await resp.content.read(want - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (aiohttp.ClientError, TimeoutError):
        return ""
    return snippet(b"".join(chunks), limit, complete=resp.content.at_eof())


def snippet(raw: bytes, limit: int = ERROR_SNIPPET, *, complete: bool = True) -> str:
    """An error body on one line, masked and then cut to ``limit`` characters. ``complete=False``:
    ``raw`` is only the start of the body."""
    return clip(raw.decode("utf-8", "replace").strip().replace("\n", " "), limit, complete=complete)


def connection_error(exc: BaseException) -> Outcome:
    """Timeouts, resets, refused connections, DNS failures: all worth another try. A destination
    the outbound guard refused is not: it would be refused again."""
    if isinstance(exc, DestinationRefused):
        return Outcome.permanent(str(exc))
    if isinstance(exc, TimeoutError):
        return Outcome.retry("timed out waiting for the peer")
    name = type(exc).__name__
    text = str(exc) or name
    return Outcome.retry(f"{name}: {text}" if text != name else name)


class HttpClient(Integration):
    """An integration that speaks HTTP: one pooled, guarded aiohttp session for its lifetime (DESIGN
    rules 8 and 10), opened on first use (once, even when the first requests start together) and
    closed with it. New settings get a new session; the old one closes once requests still using
    it have timed out at the latest."""

    _session: aiohttp.ClientSession | None = None
    _opening: asyncio.Lock | None = None
    _retiring: dict[aiohttp.ClientSession, asyncio.Task[None]] | None = None
    """Sessions replaced by :meth:`reconfigure`, each with the task that closes it once its requests are over."""

    @property
    def http_concurrency(self) -> int:
        """Connections the session may hold at once."""
        return self.settings.concurrency or 8

    def session_headers(self) -> dict[str, str]:
        """Headers on every request (credentials that never change belong here)."""
        from .. import __version__

        return {"User-Agent": f"tidings/{__version__}"}

    async def session(self) -> aiohttp.ClientSession:
        if self._session is not None:
            return self._session
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._session is None:
                self._session = guarded_session(
                    self.destinations,
                    concurrency=self.http_concurrency,
                    timeout=self.effective_timeout,
                    headers=self.session_headers(),
                )
        return self._session

    async def open(self) -> None:
        await self.session()

    def reconfigure(self, settings: IntegrationSettings) -> None:
        """New settings, and a new session for the next request (its headers may carry the old
        credential, its guard the old destinations)."""
        super().reconfigure(settings)
        old, self._session = self._session, None
        if old is None:
            return

        async def retire() -> None:
            await asyncio.sleep(self.effective_timeout + RETIRE_GRACE)
            if self._retiring is not None and self._retiring.pop(old, None) is not None:
                await old.close()

        if self._retiring is None:
            self._retiring = {}
        self._retiring[old] = asyncio.get_running_loop().create_task(retire(), name=f"tidings-retire-{self.name}")

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        retiring, self._retiring = self._retiring or {}, None
        for old, task in retiring.items():
            task.cancel()
            await old.close()
        await super().close()


class HttpNotifier(HttpClient, Notifier):
    """A notifier that speaks HTTP (see :class:`HttpClient`)."""

    @property
    def http_concurrency(self) -> int:
        return self.effective_concurrency
