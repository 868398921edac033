"""Passwords: argon2id (argon2-cffi's RFC 9106 low-memory profile)."""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
MIN_LENGTH = 12
_DUMMY: str | None = None
"""Verified against when the user doesn't exist, so a wrong email costs as long as a wrong password.
Made on first use (:func:`_dummy`): a hash at import cost every process start, the CLI's too, 0.15 s."""


def _dummy() -> str:
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = _hasher.hash("tidings-dummy-password")
    return _DUMMY


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters")
    return _hasher.hash(password)


def check_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_VERIFIERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tidings-argon2")
"""Where sign-ins verify: argon2 releases the GIL, and at most two verifications (64 MiB each) run
at once per process however many sign-ins arrive; the default executor stays free for DNS."""


async def verify_password(stored: str | None, password: str) -> bool:
    """:func:`check_password` off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_VERIFIERS, check_password, stored, password)


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def new_password() -> str:
    """A one-time password to print once (20 url-safe characters, ~120 bits)."""
    return secrets.token_urlsafe(15)
