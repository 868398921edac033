"""Keyset pages, newest first: what every list endpoint answers (``{"items", "next"}``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, Select

from .engine import Conn


async def newest_first(
    conn: Conn, query: Select[Any], key: Column[Any], *, limit: int, before: Any, item: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """``limit`` rows of ``query`` by ``key`` descending, those below ``before`` (the last page's
    ``next``; ``None`` or ``""``: from the newest), each made an answer by ``item``. ``next`` is the
    key of the page's last row when more follow, else ``None``."""
    if before is not None and before != "":
        query = query.where(key < before)
    rows = (await conn.execute(query.order_by(key.desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    return {"items": [item(r) for r in rows[:limit]], "next": getattr(rows[limit - 1], key.name) if more else None}
