"""Secrets never leak: every secret tidings knows is masked as ``…abcd`` wherever text leaves
the process (logs, stored errors, API answers)."""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

_MIN_LEN = 6
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


def mask(secret: str) -> str:
    return "…" + secret[-4:] if len(secret) > 8 else "…"


def register(secrets: Iterable[str]) -> None:
    """Remember secrets to mask. Short strings are ignored: masking them would garble text."""
    global _pattern
    added = {s for s in secrets if s and len(s) >= _MIN_LEN} - _known
    if not added:
        return
    _known.update(added)
    ordered = sorted(_known, key=len, reverse=True)
    _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    if _pattern is None or not text:
        return text
    return _pattern.sub(lambda m: mask(m.group(0)), text)


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


def structlog_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor that masks known secrets in every field of every log event."""
    if _pattern is None:
        return event
    for key, value in list(event.items()):
        if isinstance(value, BaseException):
            value = f"{type(value).__name__}: {value}"
        event[key] = redact_value(value)
    return event
