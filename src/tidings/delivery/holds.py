"""Holding the deliveries of an integration that can't send: removed from the configuration or
disabled (by hand, or by its peer answering HTTP 410). A held delivery waits, with its reason,
and is resumed when its integration comes back (a revision that adds it again, ``enable``); it
also keeps its thread's later deliveries waiting (DESIGN rule 9).

A revision commit and ``queries.set_enabled`` hold what waits at that moment. What a send still
in flight leaves behind (a retry, a delivery handed back) is held here, in the transaction that
records it, after checking, under the same lock the commit (``config_state``) or the switch
(``integration_state``) takes, that the integration is still gone: a revision that brought it
back meanwhile finds nothing to resume and is not undone. The locks are taken before any
delivery row is written, in the order the commit and ``set_enabled`` take them.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from ..store.engine import Conn
from ..store.tables import integration_state

BY_HAND = "disabled by hand"
"""``integration_state.reason`` of an integration disabled by hand."""


def disabled_reason(reason: str | None) -> str:
    """Why a disabled integration's deliveries are held, from why it was disabled."""
    if reason is None or reason == BY_HAND:
        return "held: integration disabled by hand"
    return f"held: integration disabled by its peer ({reason})"


def removed_reason(revision: int) -> str:
    return f"held: integration removed in configuration revision {revision}"


async def lock_removed(conn: Conn, names: Collection[str]) -> tuple[int, list[str]]:
    """Lock the configuration pointer; (the current revision, those of ``names`` it lacks)."""
    from ..config.revisions import get, lock_state

    state = await lock_state(conn)
    if not state.current or not names:
        return state.current, []
    present = (await get(conn, state.current)).document.get("integrations", {})
    return state.current, sorted(n for n in names if n not in present)


async def hold(conn: Conn, names: Collection[str], reason: str, now: float | None = None) -> int:
    from .queries import hold_deliveries

    return await hold_deliveries(conn, list(names), reason, now)


async def hold_removed(conn: Conn, names: Collection[str], now: float | None = None) -> int:
    """Hold the waiting deliveries of those of ``names`` the current revision lacks."""
    revision, gone = await lock_removed(conn, names)
    return await hold(conn, gone, removed_reason(revision), now) if gone else 0


async def lock_disabled(conn: Conn, names: Collection[str]) -> dict[str, str | None]:
    """Lock the ``integration_state`` rows of ``names``; those disabled -> why."""
    if not names:
        return {}
    q = select(integration_state.c.name, integration_state.c.disabled, integration_state.c.reason).where(
        integration_state.c.name.in_(sorted(names)))
    if conn.dialect.name == "postgresql":
        q = q.order_by(integration_state.c.name).with_for_update()
    return {r.name: r.reason for r in await conn.execute(q) if r.disabled}


async def hold_locked(conn: Conn, disabled: dict[str, str | None], now: float | None = None) -> int:
    """Hold the waiting deliveries of the integrations :func:`lock_disabled` found disabled."""
    now = time.time() if now is None else now
    return sum([await hold(conn, [name], disabled_reason(reason), now) for name, reason in disabled.items()])


async def set_disabled(conn: Conn, name: str, disabled: bool, reason: str | None, now: float) -> None:
    """Mark an integration disabled (by hand, or by its peer) or enabled again, with why."""
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(integration_state)
    stmt = ins.values(name=name, disabled=disabled, reason=reason, updated_at=now).on_conflict_do_update(
        index_elements=[integration_state.c.name],
        set_={"disabled": disabled, "reason": reason, "updated_at": now},
    )
    await conn.execute(stmt)
