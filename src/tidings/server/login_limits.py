"""Failed sign-ins, counted per account and per client address in moving windows (the ``limits``
library), in Redis when ``dispatcher.rate_limit_storage`` names one (every worker shares the
counts), else in this process's memory.

The rule: only failures count. Before a password is checked, both counters must have room left
(minus the sign-ins of this process still being checked, so parallel guesses can't overrun a
limit); otherwise the answer is 429 and the password is not checked. A failure adds one to both
counters. A success resets nothing: failures leave the count only as the window moves past them,
so an attacker's guesses on an account aren't forgiven because its owner signed in meanwhile.
Unknown emails count like known ones (else the limit would tell which accounts exist).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ..config.models import Config
from ..delivery.throttle import SharedLimits
from ..security.redact import register


@dataclass(frozen=True, slots=True)
class Limited:
    """A sign-in refused before its password was checked."""

    which: str
    """``account`` or ``address``"""
    retry_after: int
    """whole seconds until the window frees a slot (at least 1)"""


class LoginLimits:
    """The two counters of failed sign-ins; one per application."""

    def __init__(self, config: Config) -> None:
        server = config.server
        window = max(1, math.ceil(server.login_failure_window))
        self.items: dict[str, RateLimitItem] = {
            "account": RateLimitItemPerSecond(server.login_failures_per_account, window),
            "address": RateLimitItemPerSecond(server.login_failures_per_ip, window),
        }
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._shared: SharedLimits | None = None
        storage = config.dispatcher.rate_limit_storage
        if storage.startswith(("redis://", "rediss://")):
            password = urlsplit(storage).password
            if password:
                register([password])
            self._shared = SharedLimits(storage)
        self._checking: dict[tuple[str, str], int] = {}

    @staticmethod
    def keys(email: str, ip: str | None) -> dict[str, str]:
        """The counters' keys: a digest of the email as typed (trimmed, lower-cased: no address is
        stored in Redis) and the client's address."""
        account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        return {"account": f"login/account/{account}", "address": f"login/address/{ip or '-'}"}

    async def begin(self, keys: dict[str, str]) -> Limited | None:
        """Take a place among the sign-ins being checked, or say which limit refuses it. Every
        ``begin`` that returns None is followed by :meth:`end`."""
        for which, key in keys.items():
            self._checking[(which, key)] = self._checking.get((which, key), 0) + 1
        for which, key in keys.items():
            remaining, reset = await self._stats(which, key)
            if remaining < self._checking[(which, key)]:
                self._release(keys)
                return Limited(which, max(1, math.ceil(reset - time.time())))
        return None

    async def end(self, keys: dict[str, str], *, failed: bool) -> None:
        """The sign-in was checked: count it when it failed."""
        self._release(keys)
        if failed:
            for which, key in keys.items():
                await self._hit(which, key)

    def _release(self, keys: dict[str, str]) -> None:
        for which, key in keys.items():
            left = self._checking.get((which, key), 1) - 1
            if left:
                self._checking[(which, key)] = left
            else:
                self._checking.pop((which, key), None)

    async def _stats(self, which: str, key: str) -> tuple[int, float]:
        item = self.items[which]
        shared = self._shared
        if shared is not None and shared.up:
            try:
                stats = await shared.limiter.get_window_stats(item, key)
                return stats.remaining, stats.reset_time
            except Exception as exc:  # Redis away: this process counts alone meanwhile (logged)
                shared.failed(exc)
        stats = self._memory.get_window_stats(item, key)
        return stats.remaining, stats.reset_time

    async def _hit(self, which: str, key: str) -> None:
        item = self.items[which]
        shared = self._shared
        if shared is not None and shared.up:
            try:
                await shared.limiter.hit(item, key)
                return
            except Exception as exc:
                shared.failed(exc)
        self._memory.hit(item, key)

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.close()
