"""Copies of the audit trail in an object store: an integration with ``put`` (the ``s3`` kind) named by
``audit.archive`` gets each new signed checkpoint at ``<prefix>/audit/checkpoints/<tree size>.json``,
and ``tidings audit export --to NAME`` writes an export to ``<prefix>/audit/export-<time>.jsonl``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import orjson

from ..errors import TidingsError

if TYPE_CHECKING:
    from ..integrations.base import Outcome
    from .checkpoints import Checkpoint


@runtime_checkable
class ObjectArchive(Protocol):
    """What an integration offers to hold copies: write ``body`` at ``key`` under its prefix."""

    async def put(self, key: str, body: bytes, content_type: str = "application/json") -> Outcome: ...


def archive_of(integrations: dict[str, object], name: str) -> ObjectArchive:
    """The integration ``name`` as an archive; a clear error when it is none."""
    target = integrations.get(name)
    if target is None:
        raise TidingsError(f"no integration {name!r} to archive the audit trail to")
    if not isinstance(target, ObjectArchive):
        raise TidingsError(f"integration {name!r} can't hold audit copies (an s3 integration can)")
    return target


def checkpoint_key(cp: Checkpoint) -> str:
    return f"audit/checkpoints/{cp.tree_size}.json"


def checkpoint_body(cp: Checkpoint) -> bytes:
    """The checkpoint as an export line holds it (``tidings audit verify --checkpoints`` reads both)."""
    return orjson.dumps({"type": "checkpoint", **cp.as_dict()})


def export_key(now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"audit/export-{stamp}.jsonl"


__all__ = ["ObjectArchive", "archive_of", "checkpoint_body", "checkpoint_key", "export_key"]
