"""Recompute the chain and name the first entry that was changed, deleted, inserted or reordered.

Entries are read and checked in batches (keyset pagination on ``seq``): a trail of millions of
entries is verified in constant memory."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from ..store.engine import Store
from ..store.tables import audit_log
from .chain import GENESIS, entry_hash
from .checkpoints import Checkpoint, load_checkpoints

LOOKAHEAD = 1000
"""How many entries around a divergence are read to tell what happened there."""
BATCH = 2000
"""Entries read per query."""


@dataclass(frozen=True, slots=True)
class Verified:
    first: int
    last: int
    checkpoints: int
    """Signed checkpoints the chain was checked against."""

    def __str__(self) -> str:
        if self.last < self.first:
            return "no entries to verify"
        return f"entries {self.first}..{self.last} verified against {self.checkpoints} signed checkpoint(s)"


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"entry {self.seq} {self.reason}"


class Mismatch(Exception):
    """An entry whose links or hash don't match: :meth:`ChainWalk.diagnose` tells which case it is."""


class ChainWalk:
    """The state of one pass over the chain, fed one entry at a time."""

    def __init__(self, checkpoints: Iterable[Checkpoint], public_key: Ed25519PublicKey | None,
                 start: Checkpoint | None) -> None:
        self.problem: Problem | None = None
        self.cps: dict[int, Checkpoint] = {}
        for cp in checkpoints:
            if public_key is not None and not cp.valid(public_key):
                self.problem = Problem(cp.tree_size, "is pinned by a checkpoint whose signature is invalid (forged checkpoint)")
                return
            self.cps[cp.tree_size] = cp
        if start is not None and public_key is not None and not start.valid(public_key):
            self.problem = Problem(start.tree_size, "is pinned by a start checkpoint whose signature is invalid")
        self.first = self.expected = start.tree_size + 1 if start else 1
        self.prev = start.head_hash if start else GENESIS
        self.seen: OrderedDict[str, int] = OrderedDict()
        self.checked = 0

    def step(self, row: Mapping[str, Any]) -> Problem | None:
        """Check one entry; a Problem, or raise :class:`Mismatch` when its hash or link is wrong."""
        seq = row["seq"]
        if seq < self.expected:
            return None
        if seq > self.expected:
            return Problem(self.expected, f"is missing: deleted (the entry after {self.expected - 1} is {seq})")
        computed = entry_hash(self.prev, row)
        if row["prev_hash"] != self.prev or row["hash"] != computed:
            raise Mismatch
        cp = self.cps.get(seq)
        if cp is not None:
            if cp.head_hash != computed:
                return Problem(seq, f"differs from the signed checkpoint at {seq}: the chain was rewritten before it")
            self.checked += 1
        self.seen[computed] = seq
        if len(self.seen) > LOOKAHEAD:
            self.seen.popitem(last=False)
        self.prev = computed
        self.expected += 1
        return None

    def diagnose(self, row: Mapping[str, Any], after: list[Mapping[str, Any]]) -> Problem:
        """What happened at ``row``, from the entries that follow it."""
        seq = row["seq"]
        if any(later["hash"] == row["prev_hash"] for later in after):
            return Problem(seq, "is out of order (reordered)")
        if any(later["prev_hash"] == self.prev for later in after):  # the chain goes on after this row
            return Problem(seq, "was inserted (it is not part of the chain)")
        if row["prev_hash"] == self.prev:
            return Problem(seq, "was changed")
        if row["prev_hash"] in self.seen:
            return Problem(self.seen[row["prev_hash"]] + 1, "was inserted (it is not part of the chain)")
        return Problem(seq, f"does not follow entry {seq - 1}: it was inserted, or an entry before it deleted or rewritten")

    def finish(self) -> Verified | Problem:
        last = self.expected - 1
        beyond = [size for size in self.cps if size > last]
        if beyond:
            return Problem(last + 1, f"is missing: the signed checkpoint at {max(beyond)} is past the end (the tail was cut)")
        return Verified(self.first, last, self.checked)


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
    walk = ChainWalk(checkpoints, public_key, start)
    if walk.problem is not None:
        return walk.problem
    rows: Iterator[Mapping[str, Any]] = iter(entries)
    for row in rows:
        try:
            problem = walk.step(row)
        except Mismatch:
            return walk.diagnose(row, [r for _, r in zip(range(LOOKAHEAD), rows, strict=False)])
        if problem is not None:
            return problem
    return walk.finish()


async def iter_entry_batches(
    store: Store, after: int = 0, *, until: int | None = None, batch: int | None = None
) -> AsyncIterator[list[dict[str, Any]]]:
    """The entries after ``after`` (up to ``until``), in ``seq`` order, ``batch`` at a time: one
    short read transaction per batch, the next one starting after the last ``seq`` seen."""
    last = after
    while True:
        query = select(audit_log).where(audit_log.c.seq > last)
        if until is not None:
            query = query.where(audit_log.c.seq <= until)
        async with store.read() as conn:
            result = await conn.execute(query.order_by(audit_log.c.seq).limit(batch or BATCH))
            rows = [{str(k): v for k, v in r._mapping.items()} for r in result]
        if not rows:
            return
        yield rows
        last = rows[-1]["seq"]


async def iter_entries(store: Store, after: int = 0, *, until: int | None = None) -> AsyncIterator[dict[str, Any]]:
    """Every entry after ``after`` (up to ``until``), one at a time, read in batches."""
    async for rows in iter_entry_batches(store, after, until=until):
        for row in rows:
            yield row


async def read_entries(store: Store, after: int = 0) -> list[dict[str, Any]]:
    """Every entry after ``after`` as a list (for small trails and tests; see :func:`iter_entries`)."""
    return [row async for row in iter_entries(store, after)]


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
    walk = ChainWalk(cps.values(), public_key, start)
    if walk.problem is not None:
        return walk.problem
    rows = iter_entries(store, start.tree_size if start else 0)
    try:
        async for row in rows:
            try:
                problem = walk.step(row)
            except Mismatch:
                after: list[Mapping[str, Any]] = []
                async for later in rows:
                    after.append(later)
                    if len(after) >= LOOKAHEAD:
                        break
                return walk.diagnose(row, after)
            if problem is not None:
                return problem
    finally:
        await rows.aclose()
    return walk.finish()
