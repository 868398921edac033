"""Two-way task sync against the GitHub and Jira stand-ins: what each phase costs in API requests
and wall time, beside the request floor.

    python bench/sync.py [--n 10000] [--changes 100] [--pushes 100] [--step 10]
                         [--database auto|sqlite|postgresql://…@127.0.0.1/…]

Set-up: the stand-ins of the tests (tests/peers/github_api.py, jira_api.py) in their own process on
127.0.0.1, seeded with ``--n`` issues each (one repository, one Jira project; updated ``--step``
seconds apart, the newest an hour ago). One hub on a fresh database (a new schema of the local
PostgreSQL with ``auto`` when it answers, else SQLite) with **one mapping per project**: GitHub
syncs project ``gh``, Jira project ``jira``. (Both on one project would push every GitHub import
to Jira as a new issue: a different benchmark.) Each mapping is swept by ``Engine.sweep`` the way
the sync service runs it, one after the other, the cursor (mark, list ETag) carried from run to
run; the hub does not dispatch, so no sync service of its own sweeps meanwhile. Calls are the requests each stand-in answered (checked against the engine's own count).

Phases and their floors:

- **import**: every issue becomes a task with its link. Floor ceil(n/100) requests per mapping
  (100 a page on both). Jira's ``GET /myself`` (the user's time zone, asked once per process
  before the first ``updated >=`` query) is reported apart: the import itself never asks it.
- **unchanged**: a sweep when nothing changed since the last one (steady state: the sweep right
  after the import is reported apart as ``settle``, its query being a new one). Floor one request
  per mapping: GitHub's is conditional, answered 304; Jira's search is a POST that has no
  conditional form, so its one request returns the overlap window (``sync.overlap``, 120 s) and
  nothing in it is written.
- **change**: ``--changes`` issues edited on each side by a person (the stand-ins' ``edit``), then a
  sweep of each. Floor 2 requests per changed item (the goal of the issue: "≤ 2 requests per
  changed item"; a listing takes 1 per 100).
- **push**: ``--pushes`` tasks edited here on each project (their titles), then a sweep of each:
  the export pass fetches each item and writes it (2 requests per task: the floor), after that
  sweep's listing. Counted apart from ``change``.

Baseline, same run: a bare aiohttp client paging through the same ``--n`` issues of both
stand-ins (the same page size and fields, JSON parsed, no store): ``import_vs_bare`` is the import's
tasks/s over that rate, i.e. what the engine and the store cost beside the HTTP alone.

Goals: import and change within 1.2x their floor, the unchanged sweep at the floor, import
≥ 500 tasks/s on this machine. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _trackers import GITHUB_TOKEN, JIRA_PROJECT, REPO, Trackers  # noqa: E402
from config_reload import database  # noqa: E402

PAGE = 100


def hub_config(db: str, urls: dict[str, str]) -> dict[str, Any]:
    return {
        "server": {"database": db, "allow_destinations": ["127.0.0.1"]},
        "integrations": {
            "gh": {"kind": "github", "project": "gh", "api_url": urls["github"], "token": GITHUB_TOKEN,
                   "sync": {"repository": REPO}},
            "jira": {"kind": "jira", "project": "jira", "base_url": urls["jira"], "email": urls["jira_email"],
                     "api_token": urls["jira_token"], "sync": {"project": JIRA_PROJECT}},
        },
    }


class Mapping:
    """One engine and its cursor, as the service keeps it between runs."""

    def __init__(self, hub: Any, name: str, side: str) -> None:
        from tidings.sync.engine import Engine

        self.engine = Engine(hub, hub._integrations[name])  # no public accessor for trackers yet (sync/service.py)
        self.side = side
        self.mark: float | None = None
        self.etag: str | None = None

    async def sweep(self) -> Any:
        from tidings.sync.engine import RunState

        run = RunState("sweep")
        await self.engine.sweep(run, self.mark, self.etag)
        if run.errors or run.stopped:
            raise SystemExit(f"{self.side}: {run.errors} errors, stopped: {run.stopped}: {run.problems[:3]}")
        self.mark, self.etag = run.mark, run.list_etag
        return run


class Phase:
    def __init__(self, name: str, items: int, floor: int) -> None:
        self.name, self.items, self.floor = name, items, floor
        self.calls: dict[str, int] = {}
        self.engine_calls = 0
        self.not_modified = 0
        self.seconds = 0.0
        self.runs: dict[str, Any] = {}

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def line(self) -> str:
        per_side = ", ".join(f"{k} {v}" for k, v in self.calls.items())
        rate = f", {self.items / self.seconds:,.0f} items/s" if self.items and self.seconds else ""
        return (f"{self.name:<10} {self.total:>5} requests ({per_side}; 304: {self.not_modified})  floor {self.floor:>5}"
                f"  ratio {self.total / self.floor if self.floor else 0:5.2f}   {self.seconds:7.2f} s{rate}")


async def measure(name: str, items: int, floor: int, trackers: Trackers, mappings: list[Mapping]) -> Phase:
    phase = Phase(name, items, floor)
    trackers.do("reset")
    started = time.perf_counter()
    for m in mappings:
        run = await m.sweep()
        phase.runs[m.side] = run
        phase.engine_calls += run.stats.api_calls
        phase.not_modified += run.stats.not_modified
    phase.seconds = time.perf_counter() - started
    seen = trackers.do("calls")
    phase.calls = {"github": seen["github"], "jira": seen["jira"]}
    phase.by = {"github": seen["github_by"], "jira": seen["jira_by"]}  # type: ignore[attr-defined]
    if phase.engine_calls != phase.total:
        raise SystemExit(f"{name}: the engine counted {phase.engine_calls} calls, the stand-ins answered {phase.total}")
    print(phase.line(), file=sys.stderr)
    return phase


async def bare_paging(urls: dict[str, str], n: int) -> float:
    """Items/s of a bare client paging through both stand-ins' ``n`` issues (what the import asks
    for, parsed, nothing stored)."""
    from tidings.integrations.jira.tracker import FIELDS, PROPERTY

    got = 0
    started = time.perf_counter()
    async with aiohttp.ClientSession() as s:
        url: str | None = f"{urls['github']}/repos/{REPO}/issues"
        params: dict[str, Any] | None = {"state": "all", "sort": "updated", "direction": "asc", "per_page": PAGE}
        headers = {"Authorization": f"Bearer {GITHUB_TOKEN}", "Accept": "application/vnd.github+json"}
        while url:
            async with s.get(url, params=params, headers=headers) as r:
                got += len(orjson.loads(await r.read()))
                url, params = (str(r.links["next"]["url"]) if "next" in r.links else None), None
        basic = base64.b64encode(f"{urls['jira_email']}:{urls['jira_token']}".encode()).decode()
        token = None
        while True:
            body: dict[str, Any] = {"jql": f'project = "{JIRA_PROJECT}" ORDER BY updated ASC', "fields": FIELDS,
                                    "properties": [PROPERTY], "maxResults": PAGE}
            if token:
                body["nextPageToken"] = token
            async with s.post(f"{urls['jira']}/rest/api/3/search/jql", json=body,
                              headers={"Authorization": f"Basic {basic}"}) as r:
                answer = orjson.loads(await r.read())
            got += len(answer["issues"])
            token = answer.get("nextPageToken")
            if not token:
                break
    if got != 2 * n:
        raise SystemExit(f"the bare client read {got} issues, not {2 * n}")
    return got / (time.perf_counter() - started)


async def edit_tasks(hub: Any, project: str, n: int, every: int, tag: str) -> list[int]:
    """``n`` of ``project``'s tasks edited here by a person (their titles); the issue numbers."""
    from sqlalchemy import select

    from tidings.audit.chain import Actor
    from tidings.store.tables import task_links, tasks
    from tidings.sync.tasks import get_task_by_id, update_task

    person = Actor("user", id="bench", name="ann@example.com", auth_method="session")
    store = hub.require_store()
    async with store.read() as conn:
        rows = (await conn.execute(select(task_links.c.task_id, task_links.c.remote_key)
                                   .join(tasks, tasks.c.id == task_links.c.task_id)
                                   .where(tasks.c.project == project))).all()
    by_number = {int(r.remote_key.replace("#", "-").rsplit("-", 1)[-1]): r.task_id for r in rows}
    numbers = [1 + every // 2 + i * every for i in range(n)]
    for number in numbers:
        async with store.write() as conn:
            task = await get_task_by_id(conn, by_number[number])
            assert task is not None
            await update_task(conn, task, {"title": f"{task['title']} {tag}"}, actor=person)
    return numbers


async def count_rows(hub: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from tidings.store.tables import audit_log, task_links, tasks

    async with hub.require_store().read() as conn:
        return {t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (tasks, task_links, audit_log)}


async def run(args: argparse.Namespace, trackers: Trackers) -> dict[str, Any]:
    from tidings import Hub
    from tidings.config import parse_config

    n, step = args.n, args.step
    trackers.do("seed", n, time.time() - 3600 - n * step, step)
    urls = trackers.urls
    bare = await bare_paging(urls, n)
    with tempfile.TemporaryDirectory() as tmpdir:
        async with database(args.database, Path(tmpdir)) as (db, dialect):
            hub = Hub(parse_config(hub_config(db, urls)), config_dir=Path(tmpdir), dispatch=False, watch=False)
            async with hub:
                mappings = [Mapping(hub, "gh", "github"), Mapping(hub, "jira", "jira")]
                pages = 2 * math.ceil(n / PAGE)
                imp = await measure("import", 2 * n, pages, trackers, mappings)
                rows = await count_rows(hub)
                if rows["tasks"] != 2 * n or rows["task_links"] != 2 * n:
                    raise SystemExit(f"after the import: {rows}, expected {2 * n} tasks and links")
                created = sum(r.created for r in imp.runs.values())
                if created != 2 * n:
                    raise SystemExit(f"the runs say {created} created, not {2 * n}")
                settle = await measure("settle", 0, 2, trackers, mappings)
                unchanged = await measure("unchanged", 0, 2, trackers, mappings)
                every = max(1, n // max(1, args.changes))
                changes = min(args.changes, n)
                trackers.do("edit", changes, every, "edited there")
                change = await measure("change", 2 * changes, 2 * 2 * changes, trackers, mappings)
                updated = sum(r.updated for r in change.runs.values())
                if updated != 2 * changes:
                    raise SystemExit(f"the change sweeps updated {updated} tasks, not {2 * changes}")
                pushes = min(args.pushes, n // 2)
                numbers = []
                if pushes:
                    every = max(1, n // pushes)
                    numbers = await edit_tasks(hub, "gh", pushes, every, "edited here")
                    await edit_tasks(hub, "jira", pushes, every, "edited here")
                    push = await measure("push", 2 * pushes, 2 * 2 * pushes, trackers, mappings)
                    titles = trackers.do("titles", numbers)
                    missing = sum(not t.endswith("edited here") for side in titles.values() for t in side)
                    if missing:
                        raise SystemExit(f"{missing} local edits did not reach their tracker")
                after = await measure("after", 0, 2, trackers, mappings)
                rows = await count_rows(hub)
    myself = imp.by["jira"].get("GET /rest/api/3/myself", 0) + settle.by["jira"].get("GET /rest/api/3/myself", 0)  # type: ignore[attr-defined]
    import_tasks_per_s = 2 * n / imp.seconds
    print(f"\n{dialect}; {n:,} issues a side; bare paging of both stand-ins (same run) {bare:,.0f} items/s; "
          f"import {import_tasks_per_s:,.0f} tasks/s = {import_tasks_per_s / bare:.3f} of it (goal ≥ 500 tasks/s)",
          file=sys.stderr)
    print(f"Jira GET /myself: {myself} (once per process, in the first sweep after the import)", file=sys.stderr)
    result: dict[str, Any] = {
        "import_calls": imp.total, "import_floor": imp.floor,
        "unchanged_calls": unchanged.total, "unchanged_floor": unchanged.floor,
        "change_calls": change.total, "change_floor": change.floor,
        "import_tasks_per_s": round(import_tasks_per_s, 1),
        "import_s": round(imp.seconds, 2),
        "bare_paging_items_per_s": round(bare, 1),
        "import_vs_bare": round(import_tasks_per_s / bare, 4),
        "unchanged_304": unchanged.not_modified,
        "unchanged_s": round(unchanged.seconds, 3),
        "settle_calls": settle.total,
        "change_s": round(change.seconds, 3),
        "change_items_per_s": round(2 * changes / change.seconds, 1) if change.seconds else None,
        "jira_myself_calls": myself,
        "after_calls": after.total,
        "n": n, "changes_per_side": changes, "database": dialect,
        "audit_entries": rows["audit_log"],
    }
    if pushes:
        result.update(push_calls=push.total, push_floor=push.floor, push_s=round(push.seconds, 3),
                      pushes_per_side=pushes)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="issues on each tracker")
    ap.add_argument("--changes", type=int, default=100, help="issues edited there, on each tracker")
    ap.add_argument("--pushes", type=int, default=100, help="tasks edited here, on each project (0: no push phase)")
    ap.add_argument("--step", type=float, default=10.0, help="seconds between the seeded issues' updates")
    ap.add_argument("--database", default="auto", help="auto (PostgreSQL when it answers), sqlite, or a PostgreSQL URL")
    args = ap.parse_args()
    if args.n < 2 or args.changes < 1 or args.pushes < 0 or args.step <= 0:
        ap.error("--n at least 2, --changes at least 1, --pushes at least 0, --step positive")
    os.environ.setdefault("TIDINGS_LOG_LEVEL", "WARNING")
    from tidings.logs import configure

    configure(level="WARNING")
    with Trackers() as trackers:  # forked before this process runs an event loop
        result = asyncio.run(run(args, trackers))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
