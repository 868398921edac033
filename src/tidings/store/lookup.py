"""Ids by a unique prefix: people copy the start of an id from a table and paste it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, select

from ..errors import NotFound, TidingsError
from .engine import Conn
from .tables import api_tokens, deliveries, events, messages, silences

KINDS: dict[str, Table] = {
    "message": messages,
    "delivery": deliveries,
    "event": events,
    "silence": silences,
    "token": api_tokens,
}
SHOWN = 10
"""How many candidates an ambiguous prefix lists."""


class AmbiguousId(TidingsError, LookupError):
    """A prefix that starts more than one id; ``candidates`` holds the first few."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


async def resolve_id(conn: Conn, kind: str, given: str, *, where: Any = None) -> str:
    """The one id of ``kind`` (a key of :data:`KINDS`) equal to ``given`` or starting with it.
    :class:`NotFound` when none does, :class:`AmbiguousId` (listing them) when several do."""
    table = KINDS[kind]
    given = given.strip()
    if not given:
        raise NotFound(f"no {kind} id given")
    q = select(table.c.id)
    if where is not None:
        q = q.where(where)
    if (await conn.execute(q.where(table.c.id == given))).first() is not None:
        return given
    pattern = given.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = (await conn.execute(q.where(table.c.id.like(pattern, escape="\\")).order_by(table.c.id).limit(SHOWN + 1))).all()
    ids = [r.id for r in rows]
    if not ids:
        raise NotFound(f"no {kind} {given}")
    if len(ids) > 1:
        more = ", ..." if len(ids) > SHOWN else ""
        raise AmbiguousId(f"{kind} id {given!r} is ambiguous: {', '.join(ids[:SHOWN])}{more}", ids[:SHOWN])
    return str(ids[0])
