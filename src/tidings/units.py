"""Durations ("5m", "1h30m", 2.5) and sizes ("1MiB", "512KB", 1048576) as config values."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib|k|m|g)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2,
    "mib": 1024**2, "g": 1024**3, "gb": 1000**3, "gib": 1024**3,
}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"5m"``, ``"1h30m"``, ``"500ms"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '5m'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts).lower() != text.lower():
                raise ValueError(f"invalid duration {value!r}; write e.g. 30s, 5m, 1h30m, 2d") from None
            seconds = sum(float(n) * _DURATION_UNITS[u.lower()] for n, u in parts)
    else:
        raise ValueError("a duration is a number of seconds or a string like '5m'")
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {value!r}: it must be finite")
    if seconds < 0:
        raise ValueError("a duration can't be negative")
    return seconds


def parse_size(value: Any) -> int:
    """Bytes from a number or a string such as ``"1MiB"``, ``"5MB"``, ``"512k"``."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string like '1MiB'")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        unit = m.group(2).lower() if m.group(2) else None
        exact = float(m.group(1)) * _SIZE_UNITS[unit]
        if exact != int(exact):
            raise ValueError(f"invalid size {value!r}: not a whole number of bytes")
        size = int(exact)
    else:
        raise ValueError(f"invalid size {value!r}; write e.g. 1048576, 512KiB, 1MiB, 5MB")
    if size <= 0:
        raise ValueError("a size must be positive")
    return size


# The JSON Schema (for editors) admits what the validators admit: a number or a string like "5m".
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}], "examples": ["30s", "5m", "1h30m"]}),
]
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}], "examples": ["512KiB", "1MiB", "5MB"]}),
]
