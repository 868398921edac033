"""Acknowledgements: someone took an alert in hand.

An alert is acknowledged once: the first acknowledgement is kept (who, through what, when) and
any later one (a second click, a retried request, the same alert acknowledged from another
channel) returns that first one instead of recording another. The ack's id is derived from the
message id, so this holds across processes and databases without a lock.

An acknowledgement stops the message's waiting escalations in its own transaction (see
``delivery/escalation.py`` for why that update, which locks their rows, comes before the audit).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from .audit import SYSTEM, Actor, append
from .recipients.links import ack_url
from .security.signed import LinkError
from .store.engine import Conn
from .store.pages import by_id
from .store.recipient_tables import escalations
from .store.tables import acks, messages

if TYPE_CHECKING:
    from .hub import Hub


def ack_id(message_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tidings:ack:{message_id}"))


async def record_ack(
    conn: Conn, message_id: str, *, by: str, via: str, integration: str | None = None, now: float | None = None,
    project: str | None = None,
    actor: Actor = SYSTEM,
) -> tuple[dict[str, Any], bool]:
    """Acknowledge ``message_id``: (the acknowledgement that holds, whether this call made it).
    A new acknowledgement is audited (``ack``) in the same transaction. Raises NotFound for an
    unknown message (or one of another project than ``project``, when given)."""
    found = await by_id(conn, messages, message_id, project, "message",
                        select(messages.c.id, messages.c.thread_key, messages.c.project))
    row = {
        "id": ack_id(message_id), "message_id": message_id, "thread_key": found.thread_key,
        "integration": integration, "by": by[:200], "via": via[:40], "at": time.time() if now is None else now,
    }
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(acks)
    stmt = ins.values(**row).on_conflict_do_nothing(index_elements=[acks.c.id]).returning(acks.c.id)
    created = (await conn.execute(stmt)).first() is not None
    held = (await conn.execute(select(acks).where(acks.c.id == row["id"]))).one()
    await conn.execute(
        update(escalations)
        .where(escalations.c.message_id == message_id, escalations.c.status == "waiting")
        .values(status="stopped", reason=acknowledged(_ack(held)), updated_at=row["at"], lease_owner=None,
                lease_until=None)
    )
    if created:
        await append(conn, actor, "ack", target=f"message/{message_id}", project=found.project, after=_ack(held),
                     at=row["at"])
    return _ack(held), created


async def acks_of(conn: Conn, message_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(select(acks).where(acks.c.message_id == message_id).order_by(acks.c.at))
    return [_ack(r) for r in rows]


def acknowledged(ack: dict[str, Any]) -> str:
    """Why an escalation stopped: ``acknowledged by U123 (ana) via slack at 2026-12-06 13:00:05 UTC``."""
    at = dt.datetime.fromtimestamp(ack["at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"acknowledged by {ack['by']} via {ack['via']} at {at}"[:500]


def _ack(row: Any) -> dict[str, Any]:
    return {"by": row.by, "via": row.via, "integration": row.integration, "at": row.at, "thread_key": row.thread_key}


def ack_links(hub: Hub) -> Callable[[str, float, str], str | None]:
    """What integrations put on critical and high messages (``Context.ack_link``): (message id,
    issued at, channel) -> a signed ``/l/ack/{token}`` link on the server's base URL (valid a
    week from ``issued at``, so a retried send carries the same link), or None without a secret key."""

    def make(message_id: str, issued_at: float, via: str) -> str | None:
        try:
            signer = hub.signer()
        except LinkError:
            return None
        return f"{ack_url(signer, hub.config.server.base_url, message_id, now=issued_at)}?via={via}"

    return make
