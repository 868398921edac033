"""The quiet-hours digest: what was deferred for one person on one channel, sent as one message
when their quiet hours end (``QuietHours.digest``).

It reuses the digest engine's group state (``groups``/``group_members``, see ``digest.py``): one
group per (recipient, integration) under the route name :data:`QUIET_ROUTE`, whose ``flush_at``
is the end of the quiet period. A folded delivery stays ``grouped``; when the group is flushed
its reason names the digest message that carried it. Restart-safe (all of it is rows) and shared
by many workers on PostgreSQL (the :class:`~tidings.delivery.digest.Grouper` claims due groups
with ``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..ids import new_id
from ..message import TITLE_MAX, Format, Message, Priority
from ..store.engine import Conn
from ..store.recipient_tables import recipients
from ..store.tables import deliveries, group_members, groups, messages

if TYPE_CHECKING:
    from .outbox import Claimed, Lease

QUIET_ROUTE = "@quiet-hours"
"""The ``groups.route`` of quiet-hours digests (a name no configured route is given: see
:func:`quiet_key`)."""

DIGEST_LINES = 20


def quiet_key(recipient: str, integration: str) -> str:
    return hashlib.sha256(f"quiet-hours\x1f{recipient}\x1f{integration}".encode()).hexdigest()


async def join_quiet_digests(conn: Conn, joins: Sequence[tuple[str, str, float, str]], now: float) -> None:
    """Fold deferred deliveries, given as (recipient, integration, quiet period's end, message id),
    into their person's digest on that channel, due when the quiet period ends."""
    by_group: dict[tuple[str, str], tuple[float, list[str]]] = {}
    for recipient, integration, until, message_id in joins:
        first, ids = by_group.get((recipient, integration), (until, []))
        if message_id not in ids:
            ids.append(message_id)
        by_group[(recipient, integration)] = (min(first, until), ids)
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(groups)
    for (recipient, integration), (until, ids) in sorted(by_group.items()):  # one lock order: no deadlocks
        key = quiet_key(recipient, integration)
        await conn.execute(
            ins.values(
                id=new_id(), route=QUIET_ROUTE, key=key, labels={"recipient": recipient, "integration": integration},
                created_at=now, updated_at=now, pending=0, total=0, firing=False,
            ).on_conflict_do_nothing(index_elements=[groups.c.route, groups.c.key])
        )
        query = select(groups).where(groups.c.route == QUIET_ROUTE, groups.c.key == key)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await conn.execute(query)).one()
        flush_at = until if row.pending == 0 or row.flush_at is None else min(row.flush_at, until)
        await conn.execute(
            update(groups).where(groups.c.id == row.id).values(
                pending=groups.c.pending + len(ids), total=groups.c.total + len(ids), updated_at=now, flush_at=flush_at)
        )
        await conn.execute(
            group_members.insert(), [{"group_id": row.id, "message_id": m, "created_at": now} for m in ids]
        )


def build_quiet_digest(members: list[dict[str, Any]], held_at: list[float], zone: str) -> Message:
    """One message for what was held: ``3 messages held during quiet hours: Disk full, …``."""
    priority = min((Priority(m["priority"]) for m in members), key=lambda p: p.rank)
    titles = list(dict.fromkeys(m["title"] for m in members))
    title = f"{len(members):,} messages held during quiet hours: " + ", ".join(titles[:3]) + (", …" if len(titles) > 3 else "")
    tz = _zone(zone)
    lines = [
        f"- {dt.datetime.fromtimestamp(at, tz).strftime('%a %H:%M')} [{m['priority']}] {m['title']}"
        for m, at in zip(members[:DIGEST_LINES], held_at, strict=False)
    ]
    if len(members) > DIGEST_LINES:
        lines.append(f"- … and {len(members) - DIGEST_LINES:,} more")
    return Message(
        title=title[:TITLE_MAX],
        body="\n".join(lines),
        format=Format.MARKDOWN,
        priority=priority,
        fields={"Held": f"{len(members):,}", "Time zone": zone},
        labels={"source": "tidings", "event_type": "digest.quiet_hours"},
    )


def _zone(name: str) -> dt.tzinfo:
    from ..recipients.quiet import zone_of

    try:
        return zone_of(name)
    except Exception:  # a zone this machine lost: show UTC rather than fail the digest
        return dt.UTC


async def flush_quiet_digest(conn: Conn, row: Any, now: float, lease: Lease | None) -> list[Claimed]:
    """Send one due quiet-hours group (a ``groups`` row claimed by the Grouper): the deferred
    messages as one digest to the person on that channel (a single one as itself), each folded
    delivery's reason naming the digest. Returns the deliveries leased to this process."""
    from ..routing import Target
    from .outbox import Planned, write_messages

    recipient, integration = row.labels["recipient"], row.labels["integration"]
    members = (
        await conn.execute(
            select(messages.c.id, messages.c.data, messages.c.project, group_members.c.created_at)
            .join(group_members, group_members.c.message_id == messages.c.id)
            .where(group_members.c.group_id == row.id, group_members.c.flushed_at.is_(None))
            .order_by(group_members.c.created_at, messages.c.id)
        )
    ).all()
    ids = [m.id for m in members]
    folded = (
        deliveries.c.message_id.in_(ids), deliveries.c.recipient == recipient,
        deliveries.c.integration == integration, deliveries.c.status == "grouped",
    )
    person = (await conn.execute(select(recipients.c.name, recipients.c.timezone).where(recipients.c.id == recipient))).first()
    leased: list[Claimed] = []
    if ids and person is None:
        await conn.execute(update(deliveries).where(*folded).values(
            status="suppressed", updated_at=now, reason="not sent: the recipient was removed during quiet hours"))
    elif len(ids) == 1:  # one held message goes as itself
        await conn.execute(update(deliveries).where(*folded).values(
            status="pending", next_attempt_at=now, queued_at=now, updated_at=now,
            reason=func.coalesce(deliveries.c.reason, "held by quiet hours") + "; sent alone when they ended (nothing else was held)"))
    elif ids:
        digest = build_quiet_digest([dict(m.data) for m in members], [m.created_at for m in members], person.timezone)
        planned = Planned(
            digest,
            [Target(integration, None, 0.0, recipient=recipient,
                    reason=f"quiet-hours digest of {len(ids):,} messages held for @{person.name}")],
            project=members[0].project,
        )
        receipt = (await write_messages(conn, [planned], now, lease))[0]
        assert not isinstance(receipt, BaseException)  # no idempotency key: nothing to conflict with
        leased = planned.leased
        await conn.execute(update(deliveries).where(*folded).values(
            updated_at=now, reason=f"folded into the quiet-hours digest {receipt.id}"))
    if ids:
        await conn.execute(
            update(group_members)
            .where(group_members.c.group_id == row.id, group_members.c.flushed_at.is_(None))
            .values(flushed_at=now)
        )
    await conn.execute(
        update(groups).where(groups.c.id == row.id).values(
            pending=0, updated_at=now, flush_at=None, last_flush_at=now if ids else row.last_flush_at)
    )
    return leased
