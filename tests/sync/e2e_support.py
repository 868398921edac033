"""End to end: a dispatching hub served by uvicorn, with a ``github`` and a ``jira`` integration mapped to
the project ``default``, the GitHub and Jira stand-ins posting their signed webhooks to ``/hooks/<name>``.

``await make_world(github={...sync}, jira={...sync}, seed=callback)`` starts everything; ``world.quiet()``
waits until nothing is left to do anywhere (webhooks delivered, events processed, sync queues empty)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from apiserver import Api
from peers.github_api import GitHubAPI
from peers.jira_api import JiraCloud
from sqlalchemy import func, select
from sync.service_fakes import until

from tidings.store.tables import EVENT_ACTIVE, events, sync_runs

REPO = "octo/repo"
GH_TOKEN = "ghp_test"
GH_SECRET = "github hook secret"
JIRA_SECRET = "jira hook secret"
MAYA = "712020:maya-0001"
GH_WRITES = ("POST issues", "PATCH issue")


@dataclass
class World:
    api: Api
    gh: GitHubAPI
    jira: JiraCloud

    @property
    def hub(self) -> Any:
        return self.api.hub

    def gh_writes(self) -> int:
        return sum(self.gh.calls[k] for k in GH_WRITES)

    def jira_writes(self) -> int:
        return sum(n for route, n in self.jira.calls.items()
                   if route.split(" ")[0] in ("POST", "PUT", "DELETE") and not route.endswith("/search/jql"))

    async def _busy(self) -> bool:
        gh_queue = self.gh._hook_queue
        if (gh_queue is not None and gh_queue._unfinished_tasks) or self.jira._tasks:  # type: ignore[attr-defined]
            return True
        sync = self.hub.sync
        if sync._running or sync._queues:
            return True
        async with self.hub.store.read() as conn:
            pending = (await conn.execute(select(func.count()).select_from(events)
                                          .where(events.c.status.in_(EVENT_ACTIVE)))).scalar_one()
        return bool(pending)

    async def first_sweeps_ended(self) -> bool:
        async with self.hub.store.read() as conn:
            rows = (await conn.execute(select(sync_runs.c.integration).where(sync_runs.c.ended_at.is_not(None)))).all()
        return {r.integration for r in rows} >= {"github", "jira"}

    async def quiet(self, timeout: float = 20.0) -> None:
        """Until webhooks, their events and the sync runs they start have all ended (checked twice in a row:
        a run ending may write, and its webhooks come back)."""
        calm = 0

        async def settled() -> bool:
            nonlocal calm
            calm = 0 if await self._busy() else calm + 1
            return calm >= 3

        await until(settled, timeout=timeout, what="everything settled")

    async def tasks(self) -> list[dict[str, Any]]:
        r = await self.api.get("/api/v1/tasks", params={"limit": 200})
        assert r.status_code == 200, r.text
        return r.json()["items"]  # type: ignore[no-any-return]

    async def task(self, key: str) -> dict[str, Any]:
        r = await self.api.get(f"/api/v1/tasks/{key}")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def patch(self, key: str, **values: Any) -> dict[str, Any]:
        r = await self.api.request("PATCH", f"/api/v1/tasks/{key}", json=values, headers={"If-Match": "*"})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def link(self, task: dict[str, Any], integration: str) -> dict[str, Any] | None:
        return next((x for x in task["links"] if x["integration"] == integration), None)

    def gh_issue(self, task: dict[str, Any]) -> Any:
        link = self.link(task, "github")
        assert link is not None and link["state"] == "linked", task
        return self.gh.issue(REPO, int(link["remote_key"].rsplit("#", 1)[1]))

    def jira_issue(self, task: dict[str, Any]) -> Any:
        link = self.link(task, "jira")
        assert link is not None and link["state"] == "linked", task
        return self.jira.issue(link["remote_key"])

    async def linked_both(self, key: str) -> dict[str, Any]:
        """The task, once linked to an item on each tracker."""
        async def both() -> dict[str, Any] | None:
            t = await self.task(key)
            states = {x["integration"]: x["state"] for x in t["links"]}
            return t if states == {"github": "linked", "jira": "linked"} else None

        return await until(both, what=f"{key} linked to GitHub and Jira")  # type: ignore[no-any-return]

    async def sweep(self, integration: str) -> dict[str, Any]:
        """A manual run through the API, waited for; the run."""
        r = await self.api.post("/api/v1/sync", json={"integration": integration})
        assert r.status_code == 202, r.text
        [run_id] = r.json()["runs"]

        async def ended() -> dict[str, Any] | None:
            run = (await self.api.get(f"/api/v1/sync/runs/{run_id}")).json()
            return run if run["ended_at"] is not None else None

        return await until(ended, timeout=30, what=f"run {run_id} of {integration}")  # type: ignore[no-any-return]


def config(gh: GitHubAPI, jira: JiraCloud, github: dict[str, Any], jira_sync: dict[str, Any]) -> dict[str, Any]:
    return {"integrations": {
        "github": {"kind": "github", "api_url": gh.url, "token": GH_TOKEN, "secret": GH_SECRET, "timeout": 5,
                   "allow_destinations": ["127.0.0.1"],
                   "sync": {"repository": REPO, "interval": 3600, **github}},
        "jira": {"kind": "jira", "base_url": jira.url, "email": jira.email, "api_token": jira.api_token,
                 "secret": JIRA_SECRET, "timeout": 5, "allow_destinations": ["127.0.0.1"],
                 "sync": {"project": "OPS", "interval": 3600, "assignees": {"maya@example.com": MAYA}, **jira_sync}},
    }, "dispatcher": {"poll_interval": 0.05}}


@pytest.fixture
async def make_world(make_hub: Callable[..., Any], serve: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    started: list[Any] = []

    async def start(github: dict[str, Any] | None = None, jira: dict[str, Any] | None = None,
                    seed: Callable[[GitHubAPI, JiraCloud], Any] | None = None) -> World:
        gh = GitHubAPI(tokens={GH_TOKEN})
        gh.repo(REPO)
        await gh.start()
        started.append(gh)
        site = JiraCloud()
        await site.start()
        started.append(site)
        site.add_project("OPS", "Operations")
        site.add_user(MAYA, "Maya Lindqvist")
        if seed is not None:
            seed(gh, site)
        hub = await make_hub(config(gh, site, github or {}, jira or {}), migrate=False)
        hub.sync.window = 0.05  # webhook runs start at once (1 s apart in production)
        api = await serve(hub)
        gh.hooks(f"{api.url}/hooks/github", GH_SECRET)
        site.hook(f"{api.url}/hooks/jira", JIRA_SECRET)
        world = World(api, gh, site)
        await until(lambda: world.first_sweeps_ended(), timeout=30, what="the first sweep of each mapping")
        await world.quiet()
        return world

    yield start
    for peer in reversed(started):
        await peer.stop()


def now() -> float:
    return time.time()
