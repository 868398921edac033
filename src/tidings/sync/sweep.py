"""The sweep of one tracker: its items changed since the mark (less an overlap), page by page,
then the export pass over the tasks that changed here. Webhooks are hints; this repairs what they missed."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select

from ..store.tables import task_links, tasks
from . import links
from .links import CREATING, DELETED, LINKED, UNLINKED
from .model import AuthFailed, RateLimited, RemoteItem, Unavailable, digest
from .state import Outcome, RunState, Stop, wait_or_stop
from .tasks import TaskError

if TYPE_CHECKING:
    from .engine import Engine


async def sweep_remote(engine: Engine, run: RunState, mark: float | None, list_etag: str | None) -> None:
    """The tracker's items changed since ``mark`` less the overlap, oldest first. A listing cut
    short (a short rate limit, a peer down a moment) starts again from where the run got to."""
    since = None if mark is None else mark - float(engine.settings.overlap)
    etag, first_etag, held, waits, first = list_etag, None, False, 0, True
    delays = iter(engine.retry_delays)
    while True:
        try:
            async for page in engine.tracker.changes(since, etag):
                if page.not_modified:
                    return
                if first:
                    first_etag, first = page.etag, False
                held = await sweep_page(engine, page.items, run, held)
                if run.stopped is not None:
                    break
            break
        except (RateLimited, AuthFailed, Unavailable) as exc:
            waits += isinstance(exc, RateLimited)
            try:
                await wait_or_stop(exc, waits=waits, max_wait=float(engine.settings.max_wait), delays=delays)
            except Unavailable as down:
                raise Stop(f"tracker unavailable: {down}", None) from down
        # Listing again from where the run got to: what was done is skipped as unchanged.
        if run.mark is not None and run.mark != mark:
            since = run.mark
        etag, first_etag, first = None, None, False
    # The first page's ETag only answers 304 for the same ``since``: keep it when the mark stayed.
    run.list_etag = first_etag if run.mark == mark and not held and run.stopped is None else None


async def sweep_page(engine: Engine, items: list[RemoteItem], run: RunState, held: bool) -> bool:
    """Sync one page's items in order; returns whether the mark is held (an item to retry)."""
    async with engine.store.read() as conn:
        known = await links.by_remotes(conn, engine.name, [i.id for i in items])
    imported: set[str] = set()
    new = [i for i in items if i.id not in known and not i.marker and not i.deleted]
    if len(new) > 1 and not run.dry and engine.settings.create in ("both", "import"):
        with contextlib.suppress(TaskError):  # a value a task can't take: the items go one by one
            if await engine.import_new(new, run):
                imported = {i.id for i in new}
    for item in items:
        link = known.get(item.id)
        if item.id in imported:
            outcome: Outcome = "ok"
        elif link is not None and seen(engine, link, item):
            run.unchanged += 1
            outcome = "ok"
        else:
            outcome = await engine._attempt(run, engine._sync_item(item, run), remote=item.key)
        if outcome == "stopped":
            return held
        if outcome == "held":
            held = True
        elif not held:
            run.mark = item.updated_at if run.mark is None else max(run.mark, item.updated_at)
    return held


def seen(engine: Engine, link: dict[str, Any], item: RemoteItem) -> bool:
    """Whether the sweep may skip ``item``: nothing new since we last synced it."""
    if link["state"] in (UNLINKED, DELETED) or link["task_id"] is None:
        return True
    if link["state"] != LINKED or item.deleted or link["remote_updated"] is None or link["error"]:
        return False
    if item.updated_at != link["remote_updated"]:
        return item.updated_at < link["remote_updated"]
    # The same second (GitHub's precision): skip only when its values are what we know.
    if digest(item.fields) == link["written_hash"]:
        return True
    base = link["base"]
    return all(base.get(k, v) == v for k, v in engine._carried(item).items())


async def export_pass(engine: Engine, run: RunState) -> None:
    """Tasks with no item here (when creates export), changed since they last agreed with
    theirs, left mid-create, or whose last sync failed."""
    j = task_links.c
    wanted = [j.state == CREATING,
              and_(j.state == LINKED, or_(tasks.c.updated_at > j.synced_at, j.synced_at.is_(None),
                                          j.error.is_not(None)))]
    if engine.settings.create in ("both", "export"):
        wanted.append(j.id.is_(None))
    q = (select(tasks.c.id)
         .select_from(tasks.outerjoin(task_links, and_(j.task_id == tasks.c.id, j.integration == engine.name)))
         .where(tasks.c.project == engine.project, or_(*wanted))
         .order_by(tasks.c.updated_at))
    async with engine.store.read() as conn:
        ids = [row.id for row in await conn.execute(q) if row.id not in run.seen]
    for task_id in ids:
        if await engine._attempt(run, engine._push_task(task_id, run), task=task_id) == "stopped":
            return
