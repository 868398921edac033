"""Grouping and digests, with Alertmanager's semantics, for routes that set ``group_by``.

A message matching such a route joins the group of its ``group_by`` label values; its deliveries
are ``grouped``. A group's first digest goes out ``group_wait`` after its first message, later
ones at most every ``group_interval`` while messages keep coming, and a still-firing group is
recalled every ``repeat_interval``. A storm of 1,000 alerts reaches each channel as one message
("1,000 alerts: 990 × Disk full, …"), updated in its own thread. Group state lives in the
database: a restart mid-window loses nothing, and on PostgreSQL many workers share the flushing
(``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..background import Background
from ..ids import new_id
from ..message import TITLE_MAX, Format, Message, Priority
from ..store.engine import Conn, Store
from ..store.tables import group_members, groups, messages

if TYPE_CHECKING:
    from ..routing import Grouping, Router
    from .outbox import Claimed, Lease

log = structlog.get_logger("tidings.digest")

DIGEST_LINES = 20
FLUSH_BATCH = 50


def group_labels(grouping: Grouping, message: Message) -> dict[str, str]:
    return {name: message.labels.get(name, "") for name in grouping.by}


def group_key(route: str, labels: dict[str, str]) -> str:
    return hashlib.sha256(orjson.dumps([route, list(labels.items())])).hexdigest()


async def join_groups(conn: Conn, joins: list[tuple[str, Grouping, Message, str]], now: float) -> None:
    """Add stored messages (route, grouping, message, message id) to their groups, scheduling each
    group's next digest. One upsert and one update per group, however many messages join it."""
    by_group: dict[tuple[str, str], list[tuple[Grouping, Message, str, dict[str, str]]]] = {}
    for route, grouping, message, message_id in joins:
        labels = group_labels(grouping, message)
        by_group.setdefault((route, group_key(route, labels)), []).append((grouping, message, message_id, labels))
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(groups)
    for (route, key), members in by_group.items():
        grouping, _, _, labels = members[0]
        await conn.execute(
            ins.values(
                id=new_id(), route=route, key=key, labels=labels, created_at=now, updated_at=now,
                pending=0, total=0, firing=True,
            ).on_conflict_do_nothing(index_elements=[groups.c.route, groups.c.key])
        )
        query = select(groups).where(groups.c.route == route, groups.c.key == key)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await conn.execute(query)).one()
        flush_at = row.flush_at
        if row.pending == 0:
            due = now + grouping.wait if row.last_flush_at is None else max(now, row.last_flush_at + grouping.interval)
            flush_at = due if flush_at is None else min(flush_at, due)
        await conn.execute(
            update(groups)
            .where(groups.c.id == row.id)
            .values(
                pending=groups.c.pending + len(members),
                total=groups.c.total + len(members),
                updated_at=now,
                flush_at=flush_at,
                firing=not members[-1][1].resolves,
            )
        )
        await conn.execute(
            group_members.insert(),
            [{"group_id": row.id, "message_id": message_id, "created_at": now} for _, _, message_id, _ in members],
        )


def build_digest(route: str, labels: dict[str, str], members: list[dict[str, Any]], total: int, first_at: float, firing: bool) -> Message:
    """The message that stands for ``members``: their titles counted, most frequent first."""
    scope = ", ".join(f"{k}={v}" for k, v in labels.items() if v) or route
    thread_key = f"digest:{route}:{group_key(route, labels)}"
    common = {
        "labels": {**{k: v for k, v in labels.items() if v}, "source": "tidings", "event_type": "digest", "route": route},
        "thread_key": thread_key,
        "resolves": not firing,
    }
    if len(members) == 1:
        one = members[0]
        return Message.from_dict({**one, **common, "labels": {**one["labels"], **common["labels"]}, "dedup_key": None})
    counts = Counter(m["title"] for m in members)
    ranked = counts.most_common()
    priority = min((Priority(m["priority"]) for m in members), key=lambda p: p.rank)
    title = f"{len(members):,} messages: " + ", ".join(f"{n:,} × {t}" for t, n in ranked[:2])
    if len(ranked) > 2:
        title += ", …"
    lines = [f"- {n:,} × {t}" for t, n in ranked[:DIGEST_LINES]]
    if len(ranked) > DIGEST_LINES:
        lines.append(f"- … and {len(ranked) - DIGEST_LINES:,} more kinds")
    since = dt.datetime.fromtimestamp(first_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Message(
        title=title[:TITLE_MAX],
        body="\n".join(lines),
        format=Format.MARKDOWN,
        priority=priority,
        fields={"Group": scope, "New": f"{len(members):,}", "In all": f"{total:,}", "Since": since},
        **common,
    )


def build_reminder(route: str, labels: dict[str, str], total: int, first_at: float) -> Message:
    scope = ", ".join(f"{k}={v}" for k, v in labels.items() if v) or route
    since = dt.datetime.fromtimestamp(first_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Message(
        title=f"Still firing: {scope}",
        body=f"No new messages since the last digest; {total:,} in this group since {since}.",
        priority=Priority.INFO,
        fields={"Group": scope, "In all": f"{total:,}", "Since": since},
        labels={**{k: v for k, v in labels.items() if v}, "source": "tidings", "event_type": "digest.reminder", "route": route},
        thread_key=f"digest:{route}:{group_key(route, labels)}",
    )


class Grouper(Background):
    """Sends the digests that are due. Runs in every process that dispatches."""

    task_name = "tidings-grouper"

    def __init__(
        self,
        store: Store,
        router: Router,
        *,
        lease: Callable[[], Lease | None],
        take: Callable[[list[Claimed]], None],
        poll_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.router = router
        self._lease = lease
        self._take = take
        self._poll = poll_interval
        self._clock = clock

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.flush_due()
                wait = 0.0 if sent >= FLUSH_BATCH else await self._until_next()
            except Exception as exc:
                log.error("digest.flush_failed", error=str(exc))
                wait = self._poll
            await asyncio.sleep(wait)

    async def _until_next(self) -> float:
        async with self.store.read() as conn:
            due = (await conn.execute(select(func.min(groups.c.flush_at)))).scalar()
        if due is None:
            return self._poll
        return max(0.01, min(self._poll, due - self._clock()))

    async def flush_due(self) -> int:
        """Send every digest that is due now; returns how many groups were flushed."""
        from ..routing import Target
        from .outbox import Planned, write_messages
        from .quiet_digest import QUIET_ROUTE, flush_quiet_digest

        now = self._clock()
        leased: list[Claimed] = []
        async with self.store.write() as conn:
            query = select(groups).where(groups.c.flush_at <= now).order_by(groups.c.flush_at).limit(FLUSH_BATCH)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            due = (await conn.execute(query)).all()
            for row in due:
                if row.route == QUIET_ROUTE:  # a person's quiet hours ended
                    leased.extend(await flush_quiet_digest(conn, row, now, self._lease()))
                    continue
                options = self.router.options.get(row.route)
                targets = self.router.targets_of.get(row.route, [])
                if options is None or options.group is None or not targets:
                    log.warning("digest.route_gone", route=row.route)
                    await conn.execute(update(groups).where(groups.c.id == row.id).values(flush_at=None, updated_at=now))
                    continue
                members = (
                    await conn.execute(
                        select(messages.c.id, messages.c.data)
                        .join(group_members, group_members.c.message_id == messages.c.id)
                        .where(group_members.c.group_id == row.id, group_members.c.flushed_at.is_(None))
                        .order_by(group_members.c.created_at)
                    )
                ).all()
                labels = dict(row.labels)
                if members:
                    digest = build_digest(row.route, labels, [dict(m.data) for m in members], row.total, row.created_at, row.firing)
                elif row.firing:
                    digest = build_reminder(row.route, labels, row.total, row.created_at)
                else:
                    digest = None
                if digest is not None:
                    planned = Planned(digest, [Target(t, row.route, 0.0) for t in targets],
                                      project=self.router.project_of_route.get(row.route, "default"))
                    await write_messages(conn, [planned], now, self._lease())
                    leased.extend(planned.leased)
                if members:
                    await conn.execute(
                        update(group_members)
                        .where(group_members.c.group_id == row.id, group_members.c.flushed_at.is_(None))
                        .values(flushed_at=now)
                    )
                await conn.execute(
                    update(groups)
                    .where(groups.c.id == row.id)
                    .values(
                        pending=0,
                        updated_at=now,
                        last_flush_at=now if digest is not None else row.last_flush_at,
                        flush_at=now + options.group.repeat if row.firing else None,
                    )
                )
        if leased:
            self._take(leased)
        return len(due)
