"""Export the trail as JSON lines, verifiable offline with the public key alone.

The file is a header line (``{"type": "tidings-audit-export-v1", ...}``), the signed checkpoints
(``{"type": "checkpoint", ...}``) and then the entries (``{"type": "entry", ...}``) in ``seq``
order. Checkpoints come first so that a verifier checks the entries against them as it reads:
neither side holds the whole trail in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select

from ..store.engine import Store
from ..store.tables import audit_log
from .checkpoints import Checkpoint, key_id, load_checkpoints, public_key_text
from .verify import LOOKAHEAD, ChainWalk, Mismatch, Problem, Verified, iter_entries

FORMAT = "tidings-audit-export-v1"


class ExportError(ValueError):
    """A file that is not an audit export (or not one this version reads)."""


async def first_seq_since(store: Store, since: float) -> int:
    """The ``seq`` before the first entry made at or after Unix time ``since`` (0: from the start)."""
    async with store.read() as conn:
        first = (await conn.execute(select(func.min(audit_log.c.seq)).where(audit_log.c.at >= since))).scalar()
        if first is None:
            head = (await conn.execute(select(func.max(audit_log.c.seq)))).scalar()
            return int(head or 0)
    return int(first) - 1


async def iter_export(
    store: Store, public_key: Ed25519PublicKey | None, *, since_seq: int = 0
) -> AsyncIterator[bytes]:
    """The export, line by line (each without its newline): the entries after ``since_seq`` up
    to the head when the export started. A partial export starts at the last checkpoint at or
    before ``since_seq``, so it verifies from a signed head."""
    checkpoints = await load_checkpoints(store)
    async with store.read() as conn:
        head = int((await conn.execute(select(func.max(audit_log.c.seq)))).scalar() or 0)
    start = max((cp for cp in checkpoints if cp.tree_size <= since_seq), key=lambda cp: cp.tree_size, default=None)
    header: dict[str, Any] = {"type": FORMAT, "head": head}
    if public_key is not None:
        header |= {"public_key": public_key_text(public_key), "key_id": key_id(public_key)}
    if start is not None:
        header["start"] = start.as_dict()
    yield orjson.dumps(header)
    for cp in checkpoints:
        yield orjson.dumps({"type": "checkpoint", **cp.as_dict()})
    async for entry in iter_entries(store, start.tree_size if start else 0, until=head):
        yield orjson.dumps({"type": "entry", **entry})


async def export_lines(store: Store, public_key: Ed25519PublicKey | None, *, since_seq: int = 0) -> list[bytes]:
    """:func:`iter_export` as a list (small trails, tests)."""
    return [line async for line in iter_export(store, public_key, since_seq=since_seq)]


def read_checkpoints(lines: Iterable[bytes | str]) -> list[Checkpoint]:
    """The checkpoints in a file of JSON lines: an export, or checkpoints one a line (as
    ``tidings audit checkpoint --json`` prints them); other lines are skipped."""
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise ExportError(f"line {n} is not JSON") from None
        items = obj if isinstance(obj, list) else [obj]
        for item in items:
            if isinstance(item, dict) and item.get("type", "checkpoint") == "checkpoint" and "tree_size" in item:
                out.append(_checkpoint(item, n))
    return out


def _checkpoint(obj: dict[str, Any], line: int) -> Checkpoint:
    try:
        cp = Checkpoint(**{k: obj[k] for k in ("tree_size", "head_hash", "at", "key_id", "signature")})
    except (KeyError, TypeError) as exc:
        raise ExportError(f"line {line}: not a checkpoint ({exc})") from None
    if not isinstance(cp.tree_size, int) or not isinstance(cp.signature, str) or not isinstance(cp.head_hash, str):
        raise ExportError(f"line {line}: not a checkpoint (wrong types)")
    return cp


def verify_export(lines: Iterable[bytes | str], public_key: Ed25519PublicKey) -> Verified | Problem:
    """Verify an export with the public key alone (the key in the header is not trusted), reading
    it once, line by line."""
    it = iter(enumerate(lines, 1))
    _, first = next(it, (0, b"{}"))
    try:
        header = orjson.loads(first)
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("type") != FORMAT:
        raise ExportError(f"not a {FORMAT} file")
    start = _checkpoint(header["start"], 1) if header.get("start") else None
    checkpoints: list[Checkpoint] = []
    walk: ChainWalk | None = None
    for n, line in it:
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise ExportError(f"line {n} is not JSON") from None
        kind = obj.pop("type", None) if isinstance(obj, dict) else None
        if kind == "checkpoint":
            if walk is not None:
                raise ExportError(f"line {n}: a checkpoint after the entries (checkpoints come first)")
            checkpoints.append(_checkpoint(obj, n))
        elif kind == "entry":
            if walk is None:
                walk = ChainWalk(checkpoints, public_key, start)
                if walk.problem is not None:
                    return walk.problem
            try:
                problem = walk.step(obj)
            except Mismatch:
                after = []
                for _, later in it:
                    if later.strip():
                        after.append(orjson.loads(later))
                    if len(after) >= LOOKAHEAD:
                        break
                return walk.diagnose(obj, after)
            except KeyError as exc:
                raise ExportError(f"line {n}: an entry without {exc}") from None
            if problem is not None:
                return problem
        else:
            raise ExportError(f"line {n}: unknown line type {kind!r}")
    if walk is None:
        walk = ChainWalk(checkpoints, public_key, start)
        if walk.problem is not None:
            return walk.problem
    return walk.finish()
