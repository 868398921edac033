"""`tidings sync run|plan|log|conflicts|resolve`, in-process (typer's runner), on SQLite and
PostgreSQL, around a scripted engine and fake trackers (``sync/service_fakes.py``)."""

from __future__ import annotations

import getpass
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import Ran, in_process, on_store
from sqlalchemy import select
from sync.service_fakes import Script, install, tracker

from tidings.audit import SYSTEM
from tidings.ids import new_id
from tidings.store.engine import Store
from tidings.store.tables import audit_log, sync_conflicts
from tidings.sync import service as service_module
from tidings.sync.model import Rejected
from tidings.sync.tasks import create_task

WHO = f"cli:{getpass.getuser()}"
CONFIG = {"integrations": {"alpha-inbox": {"kind": "inbox", "project": "alpha"}},
          "routes": [{"project": "alpha", "to": ["alpha-inbox"]}]}


class Site:
    def __init__(self, path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path, self.db_url, self.monkeypatch = path, db_url, monkeypatch
        (path / "tidings.yaml").write_text(yaml.safe_dump({"server": {"database": db_url}, **CONFIG}))

    def run(self, *args: str) -> Ran:
        return in_process(self.path, self.monkeypatch, *args)

    def on_store(self, call: Any) -> Any:
        return on_store(self.db_url, call)


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    """The fake engine, and fake trackers gh (alpha) and off (alpha, disabled) in every hub the CLI starts."""
    s = install(monkeypatch)
    real = service_module.trackers_of

    def trackers_of(hub: Any, *args: Any, **kwargs: Any) -> Any:
        if "gh" not in hub._integrations:
            tracker(hub, "gh", project="alpha")
            tracker(hub, "off", project="alpha", enabled=False)
        return real(hub, *args, **kwargs)

    monkeypatch.setattr(service_module, "trackers_of", trackers_of)
    return s


@pytest.fixture
def site(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, script: Script) -> Site:
    s = Site(tmp_path, db_url, monkeypatch)
    s.run("db", "upgrade").ok()
    return s


def test_run_waits_for_the_runs_and_the_log_shows_them(site: Site, script: Script) -> None:
    async def item_errors(_t: Any, run: Any, *_: Any) -> None:
        run.created, run.errors = 2, 1
        run.problems.append({"remote": "owner/repo#7", "error": "Rejected: 422 Validation Failed"})

    script.sweep = item_errors
    ran = site.run("sync", "run", "alpha").ok()
    assert "partial" in ran.out and "owner/repo#7" in ran.out and "Validation Failed" in ran.out
    [run] = site.run("sync", "run", "alpha", "gh", "--json").ok().json
    assert (run["trigger"], run["status"], run["created"], run["api_calls"]) == ("manual", "partial", 2, 1)
    page = site.run("sync", "log", "alpha", "--json", "--limit", "1").ok().json
    assert [r["id"] for r in page["items"]] == [run["id"]] and page["next"]
    log = site.run("sync", "log", "alpha", "--integration", "gh").ok().out
    assert log.count("manual") == 2
    assert site.run("sync", "log", "alpha", "--status", "failed", "--json").ok().json["items"] == []

    async def audited(store: Store) -> list[Any]:
        async with store.read() as conn:
            return list((await conn.execute(select(audit_log).where(audit_log.c.action == "sync.run"))).all())

    assert [(a.actor_name, a.project) for a in site.on_store(audited)] == [(WHO, "alpha"), (WHO, "alpha")]


def test_a_failed_run_exits_non_zero_and_bad_arguments_are_one_line(site: Site, script: Script) -> None:
    async def refused(*_: Any) -> None:
        raise Rejected("403 Resource not accessible by personal access token")

    script.sweep = refused
    ran = site.run("sync", "run", "alpha")
    assert ran.code == 1 and "gh: failed: Rejected: 403 Resource not accessible by personal access token" in ran.out
    site.run("sync", "run", "alpha", "off").one_line_error("disabled")
    site.run("sync", "run", "alpha", "nope").one_line_error("no sync mapping 'nope'")
    site.run("sync", "run", "nosuch").one_line_error("no project 'nosuch'")
    site.run("sync", "log", "alpha", "--status", "bogus").one_line_error("unknown status 'bogus'")
    assert "no sync mapping is enabled" in site.run("sync", "run", "default").ok().out


def test_plan_lists_what_would_change_and_writes_nothing(site: Site, script: Script) -> None:
    async def planned(t: Any, run: Any, *_: Any) -> None:
        run.planned.append({"action": "create", "remote": "owner/repo#3", "fields": {"title": "Fix the build"}})

    script.sweep = planned
    items = site.run("sync", "plan", "alpha", "--json").ok().json
    assert [(p["integration"], p["action"]) for p in items] == [("gh", "create"), ("off", "create")]
    assert "Fix the build" in site.run("sync", "plan", "alpha", "gh").ok().out
    assert site.run("sync", "log", "alpha", "--json").ok().json["items"] == []


def test_conflicts_are_listed_and_resolved(site: Site, script: Script) -> None:
    async def park(store: Store) -> str:
        async with store.write() as conn:
            change = await create_task(conn, "alpha", {"title": "Ship", "labels": ["a"]}, actor=SYSTEM)
            conflict_id = new_id()
            await conn.execute(sync_conflicts.insert().values(
                id=conflict_id, task_id=change.task["id"], project="alpha", integration="gh", field="labels",
                base=["a"], local=["a", "b"], remote=[], created_at=time.time()))
        return conflict_id

    assert "no conflicts" in site.run("sync", "conflicts", "alpha").ok().out  # (starting makes the project)
    conflict_id = site.on_store(park)
    [c] = site.run("sync", "conflicts", "alpha", "--task", "T-1", "--json").ok().json
    assert (c["id"], c["local"], c["remote"]) == (conflict_id, ["a", "b"], [])
    assert conflict_id in site.run("sync", "conflicts", "alpha").ok().out
    site.run("sync", "conflicts", "alpha", "--task", "T-9").one_line_error("no task 'T-9'")
    site.run("sync", "resolve", conflict_id).one_line_error("give one of --local, --remote or --value")
    site.run("sync", "resolve", conflict_id, "--local", "--remote").one_line_error("give one of")
    site.run("sync", "resolve", "nothing", "--local").one_line_error("no sync conflict nothing")
    done = site.run("sync", "resolve", conflict_id, "--value", '["b"]', "--json").ok().json
    assert done["resolution"] == ["b"] and done["resolved_by"] == WHO
    site.run("sync", "resolve", conflict_id, "--remote").one_line_error("resolved already")
    assert site.run("sync", "conflicts", "alpha", "--json").ok().json == []
    assert len(site.run("sync", "conflicts", "alpha", "--all", "--json").ok().json) == 1
