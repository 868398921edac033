"""Time-ordered ids (UUIDv7 layout) so that sorting by id sorts by creation time."""

from __future__ import annotations

import os
import random
import time

_random = random.Random()  # seeded from os.urandom
os.register_at_fork(after_in_child=_random.seed)  # a child must not repeat its parent's ids


def new_id() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, then 74 random bits (seeded from ``os.urandom``;
    ids need to be unique, not secret). Formatted directly: ``uuid.UUID`` costs several µs."""
    value = (time.time_ns() // 1_000_000 & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | _random.getrandbits(12) << 64
    value |= 0x2 << 62 | _random.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def id_floor(when: float) -> str:
    """The smallest id :func:`new_id` can make at or after ``when`` (epoch seconds): ids compare
    as text in time order, so ``id >= id_floor(t)`` selects what was created since ``t``."""
    h = f"{(int(when * 1000) & 0xFFFFFFFFFFFF) << 80:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
