"""Export the trail as JSON lines, verifiable offline with the public key alone."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..store.engine import Store
from .checkpoints import Checkpoint, key_id, load_checkpoints, public_key_text
from .verify import Problem, Verified, read_entries, verify_entries

FORMAT = "tidings-audit-export-v1"


async def export_lines(store: Store, public_key: Ed25519PublicKey | None, *, since_seq: int = 0) -> list[bytes]:
    """A header, the entries after ``since_seq`` and the checkpoints, one JSON object a line. A
    partial export starts at the last checkpoint at or before ``since_seq``, so it verifies from a
    signed head."""
    checkpoints = await load_checkpoints(store)
    start = max((cp for cp in checkpoints if cp.tree_size <= since_seq), key=lambda cp: cp.tree_size, default=None)
    header: dict[str, Any] = {"type": FORMAT}
    if public_key is not None:
        header |= {"public_key": public_key_text(public_key), "key_id": key_id(public_key)}
    if start is not None:
        header["start"] = start.as_dict()
    lines = [orjson.dumps(header)]
    lines += [orjson.dumps({"type": "entry", **e}) for e in await read_entries(store, start.tree_size if start else 0)]
    lines += [orjson.dumps({"type": "checkpoint", **cp.as_dict()}) for cp in checkpoints]
    return lines


def verify_export(lines: Iterable[bytes | str], public_key: Ed25519PublicKey) -> Verified | Problem:
    """Verify an export with the public key alone (the key in the header is not trusted)."""
    it: Iterator[bytes | str] = iter(lines)
    header = orjson.loads(next(it, b"{}"))
    if header.get("type") != FORMAT:
        raise ValueError(f"not a {FORMAT} file")
    start = Checkpoint(**header["start"]) if header.get("start") else None
    entries: list[dict[str, Any]] = []
    checkpoints: list[Checkpoint] = []
    for line in it:
        if not line.strip():
            continue
        obj = orjson.loads(line)
        kind = obj.pop("type", None)
        if kind == "entry":
            entries.append(obj)
        elif kind == "checkpoint":
            checkpoints.append(Checkpoint(**obj))
        else:
            raise ValueError(f"unknown line type {kind!r}")
    return verify_entries(entries, checkpoints, public_key, start=start)
