"""Passwords: argon2id (argon2-cffi's RFC 9106 low-memory profile)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
MIN_LENGTH = 12
_DUMMY = _hasher.hash("tidings-dummy-password")
"""Verified against when the user doesn't exist, so a wrong email costs as long as a wrong password."""


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters")
    return _hasher.hash(password)


def check_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def new_password() -> str:
    """A one-time password to print once (20 url-safe characters, ~120 bits)."""
    return secrets.token_urlsafe(15)
