"""Ids are UUIDv7: valid, unique (also across a fork), and ordered by the millisecond they were made."""

from __future__ import annotations

import os
import time
import uuid

from tidings.ids import new_id


def test_ids_are_uuid7_and_unique() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for i in ids[:500]:
        u = uuid.UUID(i)
        assert str(u) == i and u.version == 7 and u.variant == uuid.RFC_4122


def test_ids_sort_by_creation_millisecond() -> None:
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert first < second
    ms = int(second.replace("-", "")[:12], 16)
    assert abs(ms - time.time() * 1000) < 1000


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, ",".join(new_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    parent = {new_id() for _ in range(100)}
    with os.fdopen(read) as f:
        child = set(f.read().split(","))
    os.waitpid(pid, 0)
    rand = {i[15:] for i in parent}  # the random part, past the timestamp and version
    assert len(child) == 100 and not rand & {i[15:] for i in child}


def test_id_floor_bounds_the_ids_of_a_moment() -> None:
    from tidings.ids import id_floor

    before = time.time()
    time.sleep(0.002)
    made = new_id()
    time.sleep(0.002)
    after = time.time()
    assert id_floor(before) <= made < id_floor(after)
    assert id_floor(before) < id_floor(before + 0.001)
    assert uuid.UUID(id_floor(before)), "a floor is itself a well-formed id"
