"""Recompute the chain and name the first entry that was changed, deleted, inserted or reordered."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from ..store.engine import Store
from ..store.tables import audit_log
from .chain import GENESIS, entry_hash
from .checkpoints import Checkpoint, load_checkpoints

_WINDOW = 1000
"""How many entries around a divergence are read to tell what happened there."""


@dataclass(frozen=True, slots=True)
class Verified:
    first: int
    last: int
    checkpoints: int
    """Signed checkpoints the chain was checked against."""


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"entry {self.seq} {self.reason}"


def verify_entries(
    entries: Iterable[Mapping[str, Any]],
    checkpoints: Iterable[Checkpoint] = (),
    public_key: Ed25519PublicKey | None = None,
    *,
    start: Checkpoint | None = None,
) -> Verified | Problem:
    """Check ``entries`` (in ``seq`` order) from the first entry, or after the trusted ``start``
    checkpoint. Each checkpoint must carry a valid signature of ``public_key`` (when given) and
    match the recomputed head at its size; one past the last entry means the tail was cut."""
    cps: dict[int, Checkpoint] = {}
    for cp in checkpoints:
        if public_key is not None and not cp.valid(public_key):
            return Problem(cp.tree_size, "is pinned by a checkpoint whose signature is invalid (forged checkpoint)")
        cps[cp.tree_size] = cp
    if start is not None and public_key is not None and not start.valid(public_key):
        return Problem(start.tree_size, "is pinned by a start checkpoint whose signature is invalid")
    first = expected = start.tree_size + 1 if start else 1
    prev = start.head_hash if start else GENESIS
    seen: OrderedDict[str, int] = OrderedDict()
    checked = 0
    rows = iter(entries)
    for row in rows:
        seq = row["seq"]
        if seq < expected:
            continue
        if seq > expected:
            return Problem(expected, f"is missing: deleted (the entry after {expected - 1} is {seq})")
        computed = entry_hash(prev, row)
        if row["prev_hash"] != prev or row["hash"] != computed:
            return _diagnose(row, prev, seen, list(itertools.islice(rows, _WINDOW)))
        cp = cps.get(seq)
        if cp is not None:
            if cp.head_hash != computed:
                return Problem(seq, f"differs from the signed checkpoint at {seq}: the chain was rewritten before it")
            checked += 1
        seen[computed] = seq
        if len(seen) > _WINDOW:
            seen.popitem(last=False)
        prev = computed
        expected += 1
    last = expected - 1
    beyond = [size for size in cps if size > last]
    if beyond:
        return Problem(last + 1, f"is missing: the signed checkpoint at {max(beyond)} is past the end (the tail was cut)")
    return Verified(first, last, checked)


def _diagnose(row: Mapping[str, Any], prev: str, seen: Mapping[str, int], after: list[Mapping[str, Any]]) -> Problem:
    seq = row["seq"]
    if any(later["hash"] == row["prev_hash"] for later in after):
        return Problem(seq, "is out of order (reordered)")
    if any(later["prev_hash"] == prev for later in after):  # the chain goes on after this row
        return Problem(seq, "was inserted (it is not part of the chain)")
    if row["prev_hash"] == prev:
        return Problem(seq, "was changed")
    if row["prev_hash"] in seen:
        return Problem(seen[row["prev_hash"]] + 1, "was inserted (it is not part of the chain)")
    return Problem(seq, f"does not follow entry {seq - 1}: it was inserted, or an entry before it deleted or rewritten")


async def _rows(store: Store, after: int) -> AsyncIterator[list[dict[str, Any]]]:
    last = after
    while True:
        async with store.read() as conn:
            result = await conn.execute(
                select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq).limit(5000)
            )
            batch = [{str(k): v for k, v in r._mapping.items()} for r in result]
        if not batch:
            return
        yield batch
        last = batch[-1]["seq"]


async def read_entries(store: Store, after: int = 0) -> list[dict[str, Any]]:
    """Every entry after ``after`` (in seq order)."""
    out: list[dict[str, Any]] = []
    async for batch in _rows(store, after):
        out.extend(batch)
    return out


async def verify_store(
    store: Store,
    public_key: Ed25519PublicKey | None,
    *,
    extra_checkpoints: Iterable[Checkpoint] = (),
    from_checkpoint: bool = False,
) -> Verified | Problem:
    """Verify the stored trail against its stored checkpoints and ``extra_checkpoints`` (exported
    earlier: they catch a cut tail even when the stored checkpoints were deleted too). With
    ``from_checkpoint`` the walk starts at the last stored checkpoint whose signature is valid."""
    stored = await load_checkpoints(store)
    cps = {cp.tree_size: cp for cp in [*stored, *extra_checkpoints]}
    start = None
    if from_checkpoint and public_key is not None:
        valid = [cp for cp in stored if cp.valid(public_key)]
        start = valid[-1] if valid else None
    entries = await read_entries(store, start.tree_size if start else 0)
    return verify_entries(entries, cps.values(), public_key, start=start)
