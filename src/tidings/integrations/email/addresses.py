"""Email addresses as settings and the ``email_to`` label write them: one address each
(``jane@example.com`` or ``Jane Doe <jane@example.com>``), no line breaks, no second address hiding in it."""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.utils import parseaddr

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDR_SPEC = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*$")
DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # any control character but tab


def split_address(value: str) -> tuple[str, str]:
    """``(display name, addr-spec)`` of ``jane@example.com`` or ``Jane Doe <jane@example.com>``;
    ValueError for anything else: line breaks, several addresses, a malformed address."""
    if CONTROL.search(value):
        raise ValueError("an address must not contain line breaks or control characters")
    value = value.strip()
    m = re.fullmatch(r'(?:(?P<name>[^<>]*?)\s*<(?P<addr>[^<>\s]+)>|(?P<bare>[^<>\s,;]+))', value)
    if not m:
        raise ValueError(f"{value!r} is not one email address")
    addr = m.group("addr") or m.group("bare")
    name = (m.group("name") or "").strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    if not _ADDR_SPEC.match(addr) or len(addr) > 254 or len(addr.split("@")[0]) > 64:
        raise ValueError(f"{value!r} is not a valid email address")
    if any(c in name for c in '<>"\\') or (not m.group("addr") and name):
        raise ValueError(f"{value!r}: write a name as Name <address>, without quotes or brackets in it")
    # The standard library must read it the same way (no second address hiding in it).
    parsed = parseaddr(value)
    if parsed[1] != addr:
        raise ValueError(f"{value!r} is not one email address")
    return name, addr


def check_address(value: str) -> str:
    split_address(value)
    return value.strip()


def address_header(value: str) -> Address:
    name, addr = split_address(value)
    user, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=user, domain=domain)


def no_line_breaks(value: str, what: str) -> str:
    if CONTROL.search(value):
        raise ValueError(f"{what} must not contain line breaks or control characters")
    return value
