"""Time-ordered ids (UUIDv7 layout) so that sorting by id sorts by creation time."""

from __future__ import annotations

import os
import random
import time

_random = random.Random()  # seeded from os.urandom
os.register_at_fork(after_in_child=_random.seed)  # a child must not repeat its parent's ids
_getrandbits = _random.getrandbits

_prefix: tuple[int, str] = (-1, "")
"""The current millisecond and its formatted head ``tttttttt-tttt-7``: a hub makes several ids
per millisecond, and formatting the whole value each time was half an id's cost."""


def _head(ms: int) -> str:
    h = "%012x" % (ms & 0xFFFFFFFFFFFF)
    return f"{h[:8]}-{h[8:]}-7"


def new_id() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, then 74 random bits (seeded from ``os.urandom``;
    ids need to be unique, not secret). Formatted directly: ``uuid.UUID`` costs several µs."""
    global _prefix
    ms = time.time_ns() // 1_000_000
    stamp, head = _prefix
    if ms != stamp:
        head = _head(ms)
        _prefix = (ms, head)  # one assignment: a thread sees the old pair or the new, never half
    r = _getrandbits(74)
    # 12 random bits (rand_a), the RFC 4122 variant (0b10), 62 random bits (rand_b): 19 hex digits.
    t = "%019x" % ((r >> 62) << 64 | 0x8000000000000000 | (r & 0x3FFFFFFFFFFFFFFF))
    return f"{head}{t[:3]}-{t[3:7]}-{t[7:]}"


def id_floor(when: float) -> str:
    """The smallest id :func:`new_id` can make at or after ``when`` (epoch seconds): ids compare
    as text in time order, so ``id >= id_floor(t)`` selects what was created since ``t``."""
    h = f"{(int(when * 1000) & 0xFFFFFFFFFFFF) << 80:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
