"""What the list and read endpoints answer: keyset pages, newest first (``{"items", "next"}``),
narrowed by the filters given; and one row by its id, within a project."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, Row, Select, Table, select

from ..errors import NotFound
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


def where_given(query: Select[Any], *equal: tuple[Column[Any], Any]) -> Select[Any]:
    """``query`` where each column equals its value; a value not given (``None`` or ``""``, as an
    empty query parameter) filters nothing."""
    for column, value in equal:
        if value is not None and value != "":
            query = query.where(column == value)
    return query


async def by_id(
    conn: Conn, table: Table, row_id: str, project: str | None, what: str, query: Select[Any] | None = None,
) -> Row[Any]:
    """The row of ``table`` whose ``id`` is ``row_id``, of ``project`` when given (another project's is
    not found): :class:`NotFound` ``no {what} {row_id}`` else. ``query``: other columns than the table's."""
    q = (select(table) if query is None else query).where(table.c.id == row_id)
    if project is not None:
        q = q.where(table.c.project == project)
    row = (await conn.execute(q)).first()
    if row is None:
        raise NotFound(f"no {what} {row_id}")
    return row
