"""Retention: what tidings keeps, and for how long (``retention:`` in tidings.yaml).

A hub that dispatches prunes once per ``retention.interval``; ``tidings db prune`` does it now.
What goes, oldest first, in small batches so that no transaction holds SQLite's write lock for
long (the rows to delete are found in a read transaction, then deleted by key):

- messages older than ``retention.messages`` whose deliveries are all finished (delivered, dead,
  suppressed, folded into a digest already sent) and that no escalation waits on, with their
  deliveries and acknowledgements; a scheduled message stays while it waits and that long after it
  was routed or cancelled;
- inbound events older than ``retention.events`` whose processing is over;
- inbox items older than ``retention.inbox``;
- dedup windows that have closed, silences that ended ``retention.messages`` ago, threads and
  flushed digest groups nobody wrote to for that long.

Nothing still to send or to process is ever removed, however old: the DELETE states the condition
again, so a row that changed after it was found (a delivery retried by hand) stays. Each period is optional:
``null`` keeps those rows forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Table, and_, delete, exists, func, not_, or_, select, tuple_

from .background import Background
from .config.models import RetentionSettings
from .ids import id_floor
from .metrics import Metrics
from .security.redact import clip
from .store.engine import Store
from .store.recipient_tables import escalations, schedules
from .store.tables import (
    ACTIVE,
    EVENT_ACTIVE,
    dedup,
    deliveries,
    events,
    group_members,
    groups,
    inbox,
    messages,
    silences,
    sync_runs,
    threads,
)

log = structlog.get_logger("tidings.retention")

BATCH = 500
"""Rows deleted per transaction."""
PAUSE = 0.05
"""Between two batches, so that the hot path's writers are never kept waiting long."""

@dataclass(frozen=True)
class _Rule:
    table: Table
    keep: str | None
    """The retention setting that sets the age, or None for rows that expire by themselves."""
    due: Callable[[float], Any]
    """now -> the condition a row must meet to go. Checked again in the DELETE itself: a row may
    have changed since it was found (a delivery retried by hand, a group joined again)."""
    oldest_first: bool = True
    """Find rows in key order (time order, for tables keyed by time-ordered ids)."""


def _rules(settings: RetentionSettings) -> list[_Rule]:
    def before(seconds: float | None, now: float) -> float:
        return now - (seconds or 0.0)

    def old_messages(now: float) -> Any:
        waiting = exists().where(deliveries.c.message_id == messages.c.id, deliveries.c.status.in_(ACTIVE))
        in_digest = exists().where(group_members.c.message_id == messages.c.id, group_members.c.flushed_at.is_(None))
        escalating = exists().where(escalations.c.message_id == messages.c.id, escalations.c.status == "waiting")
        scheduled = exists().where(schedules.c.message_id == messages.c.id, or_(
            schedules.c.status == "scheduled", schedules.c.updated_at >= before(settings.messages, now)))
        return and_(messages.c.id < id_floor(before(settings.messages, now)), not_(waiting), not_(in_digest),
                    not_(escalating), not_(scheduled))

    def old_events(now: float) -> Any:
        return and_(events.c.id < id_floor(before(settings.events, now)), events.c.status.not_in(EVENT_ACTIVE))

    def old_inbox(now: float) -> Any:
        return inbox.c.received_at < before(settings.inbox, now)

    def old_sync_runs(now: float) -> Any:
        return and_(sync_runs.c.id < id_floor(before(settings.sync_runs, now)), sync_runs.c.status != "running")

    def closed_windows(now: float) -> Any:
        return dedup.c.expires_at < now

    def ended_silences(now: float) -> Any:
        return silences.c.until < before(settings.messages, now)

    def idle_threads(now: float) -> Any:
        return threads.c.updated_at < before(settings.messages, now)

    def flushed_groups(now: float) -> Any:
        return and_(groups.c.updated_at < before(settings.messages, now), groups.c.pending == 0, groups.c.flush_at.is_(None))

    rules = [
        _Rule(messages, "messages", old_messages),
        _Rule(events, "events", old_events),
        _Rule(inbox, "inbox", old_inbox),
        _Rule(sync_runs, "sync_runs", old_sync_runs),
        _Rule(dedup, None, closed_windows, oldest_first=False),
        _Rule(silences, "messages", ended_silences, oldest_first=False),
        _Rule(threads, "messages", idle_threads, oldest_first=False),
        _Rule(groups, "messages", flushed_groups, oldest_first=False),
    ]
    return [r for r in rules if r.keep is None or getattr(settings, r.keep) is not None]


def _select_due(rule: _Rule, now: float, limit: int | None) -> Any:
    pk = list(rule.table.primary_key.columns)
    query = select(*pk).where(rule.due(now))
    if rule.oldest_first:
        query = query.order_by(*pk)
    return query.limit(limit) if limit is not None else query


async def prune(
    store: Store, settings: RetentionSettings, *, dry_run: bool = False, now: float | None = None,
    batch: int = BATCH, pause: float = PAUSE, metrics: Metrics | None = None,
) -> dict[str, int]:
    """Delete (or with ``dry_run``, count) what the settings no longer keep; rows per table.
    What is deleted is counted in ``metrics`` (``tidings_pruned_rows_total``)."""
    now = time.time() if now is None else now
    counts: dict[str, int] = {}
    for rule in _rules(settings):
        if dry_run:
            counts[rule.table.name] = await _count(store, rule, now)
            continue
        counts[rule.table.name] = n = await _delete(store, rule, now, batch, pause)
        if metrics is not None:
            metrics.pruned.labels(rule.table.name).inc(n)
    return counts


async def _count(store: Store, rule: _Rule, now: float) -> int:
    async with store.read() as conn:
        due = _select_due(rule, now, None).subquery()
        return int((await conn.execute(select(func.count()).select_from(due))).scalar() or 0)


async def _delete(store: Store, rule: _Rule, now: float, batch: int, pause: float) -> int:
    """Rows are found in a read transaction (no write lock while searching), then deleted by key
    if they still meet the condition; only what was deleted is counted (with several workers
    pruning, each row once)."""
    pk = list(rule.table.primary_key.columns)
    done = 0
    while True:
        async with store.read() as conn:
            keys = [tuple(r) for r in (await conn.execute(_select_due(rule, now, batch))).all()]
        if not keys:
            return done
        match = pk[0].in_([k[0] for k in keys]) if len(pk) == 1 else tuple_(*pk).in_(keys)
        async with store.write() as conn:
            done += (await conn.execute(delete(rule.table).where(match, rule.due(now)))).rowcount
        if len(keys) < batch:
            return done
        await asyncio.sleep(pause)


class Pruner(Background):
    """Prunes in the background, once per ``retention.interval`` (the first time a minute after
    start, so that starting never waits for it)."""

    FIRST_RUN = 60.0
    task_name = "tidings-retention"

    def __init__(self, store: Store, settings: RetentionSettings, metrics: Metrics | None = None) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics

    def start(self) -> None:
        if self.settings.interval is not None:
            super().start()

    async def _run(self) -> None:
        assert self.settings.interval is not None
        await asyncio.sleep(min(self.FIRST_RUN, self.settings.interval))
        while True:
            try:
                counts = await prune(self.store, self.settings, metrics=self.metrics)
                if any(counts.values()):
                    log.info("retention.pruned", **counts)
            except Exception as exc:  # the next interval tries again; nothing is lost by waiting
                log.warning("retention.failed", error=clip(f"{type(exc).__name__}: {exc}", 300))
            await asyncio.sleep(self.settings.interval)
