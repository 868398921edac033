"""The sync API (``server/sync_api.py``) around a scripted engine: who may run, plan, read the log
and settle conflicts; another project's token; bad input answered 4xx, never 500."""

from __future__ import annotations

import time
from typing import Any

import pytest
from people import person
from sqlalchemy import select
from sync.service_fakes import Script, install, tracker

from tidings.audit import SYSTEM
from tidings.ids import new_id
from tidings.store.tables import audit_log, sync_conflicts
from tidings.sync import runs
from tidings.sync.engine import RunState
from tidings.sync.tasks import create_task

CONFIG = {
    "integrations": {"alpha-inbox": {"kind": "inbox", "project": "alpha"},
                     "beta-inbox": {"kind": "inbox", "project": "beta"}},
    "routes": [{"project": "alpha", "to": ["alpha-inbox"]}, {"project": "beta", "to": ["beta-inbox"]}],
}
A = "/api/v1/projects/alpha/sync"
B = "/api/v1/projects/beta/sync"


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    return install(monkeypatch)


@pytest.fixture
async def api(make_api: Any, script: Script) -> Any:
    api = await make_api(CONFIG, dispatch=False)
    tracker(api.hub, "gh", project="alpha")
    tracker(api.hub, "off", project="alpha", enabled=False)
    tracker(api.hub, "beta-gh", project="beta")
    store = api.hub.store
    api.tokens = {
        "viewer": await person(store, "v@example.com", {"alpha": "viewer"}),
        "member": await person(store, "m@example.com", {"alpha": "member"}),
        "beta owner": await person(store, "b@example.com", {"beta": "owner"}),
        "scoped": await person(store, "s@example.com", {"alpha": "owner", "beta": "owner"}, token_project="beta"),
    }
    return api


def who(api: Any, caller: str) -> dict[str, str]:
    return {"headers": {"Authorization": f"Bearer {api.tokens[caller]}"}, "auth": False}


async def test_a_member_runs_sync_and_reads_the_log(api: Any, script: Script) -> None:
    r = await api.post(A, **who(api, "member"))
    assert r.status_code == 202, r.text
    [run_id] = r.json()["runs"]  # the disabled mapping does not run
    await api.hub.sync.settle()
    r = await api.get(f"{A}/runs", **who(api, "member"))
    assert r.status_code == 200 and [x["id"] for x in r.json()["items"]] == [run_id]
    item = r.json()["items"][0]
    assert (item["trigger"], item["status"], item["integration"], item["api_calls"]) == ("manual", "ok", "gh", 1)
    r = await api.get(f"{A}/runs/{run_id}", **who(api, "member"))
    assert r.status_code == 200 and r.json()["problems"] == []
    async with api.hub.store.read() as conn:
        [entry] = (await conn.execute(select(audit_log).where(audit_log.c.action == "sync.run"))).all()
    assert (entry.actor_name, entry.project, entry.after["runs"]) == ("m@example.com", "alpha", [run_id])
    r = await api.post(A, json={"integration": "gh"}, **who(api, "member"))
    assert r.status_code == 202 and len(r.json()["runs"]) == 1


async def test_the_log_pages_and_filters(api: Any) -> None:
    ids = []
    for status in ("ok", "failed", "ok"):
        run_id = await runs.start_run(api.hub.store, "alpha", "gh", "sweep")
        run = RunState("sweep", errors=0)
        if status == "failed":
            run.problems.append({"remote": "7", "error": "boom"})
        await runs.finish_run(api.hub.store, run_id, run, status, "peer down" if status == "failed" else None)
        ids.append(run_id)
    r = await api.get(f"{A}/runs", params={"limit": 2}, **who(api, "member"))
    page = r.json()
    assert [x["id"] for x in page["items"]] == ids[:0:-1] and page["next"] == ids[1]
    r = await api.get(f"{A}/runs", params={"before": page["next"]}, **who(api, "member"))
    assert [x["id"] for x in r.json()["items"]] == ids[:1] and r.json()["next"] is None
    r = await api.get(f"{A}/runs", params={"status": "failed"}, **who(api, "member"))
    assert [(x["id"], x["error"]) for x in r.json()["items"]] == [(ids[1], "peer down")]
    r = await api.get(f"{A}/runs/{ids[1]}", **who(api, "member"))
    assert r.json()["problems"] == [{"remote": "7", "error": "boom"}]
    assert (await api.get(f"{A}/runs", params={"integration": "nope"}, **who(api, "member"))).json()["items"] == []


async def test_permissions_and_another_projects_token(api: Any) -> None:
    run_id = await runs.start_run(api.hub.store, "alpha", "gh", "sweep")
    viewer, beta, scoped = who(api, "viewer"), who(api, "beta owner"), who(api, "scoped")
    assert (await api.post(A, **viewer)).status_code == 403
    assert (await api.get(f"{A}/plan", **viewer)).status_code == 403
    assert (await api.get(f"{A}/runs", **viewer)).status_code == 403  # the log needs logs:read
    assert (await api.get(f"{A}/conflicts", **viewer)).status_code == 200
    for caller in (beta, scoped):
        assert (await api.post(A, **caller)).status_code == 403
        assert (await api.get(f"{A}/runs/{run_id}", **caller)).status_code == 403
        assert (await api.get(f"{A}/conflicts", **caller)).status_code == 403
    # In its own project, the other project's run is not found, and its mappings don't run.
    assert (await api.get(f"{B}/runs/{run_id}", **beta)).status_code == 404
    assert (await api.post(B, json={"integration": "gh"}, **beta)).status_code == 404
    assert (await api.get(f"{B}/runs", **beta)).json()["items"] == []
    assert (await api.post("/api/v1/projects/nope/sync", **beta)).status_code == 403
    assert (await api.get("/api/v1/sync/runs")).status_code == 200  # the default token in default


async def test_bad_requests_are_refused_with_4xx(api: Any) -> None:
    m = who(api, "member")
    cases = [
        (await api.post(A, json={"integration": 5}, **m), 422),
        (await api.post(A, json={"integration": "gh", "extra": 1}, **m), 422),
        (await api.post(A, json={"integration": "g\x00h"}, **m), 422),
        (await api.post(A, json={"integration": ""}, **m), 422),
        (await api.post(A, json=["gh"], **m), 422),
        (await api.post(A, content=b'{"integration": ', headers={**m["headers"], "Content-Type": "application/json"},
                        auth=False), 400),
        (await api.post(A, content=b"gh", headers={**m["headers"], "Content-Type": "text/plain"}, auth=False), 415),
        (await api.post(A, json={"integration": "nope"}, **m), 404),
        (await api.post(A, json={"integration": "off"}, **m), 409),
        (await api.get(f"{A}/plan", params={"integration": "nope"}, **m), 404),
        (await api.get(f"{A}/plan", params={"integratoin": "gh"}, **m), 422),
        (await api.get(f"{A}/runs", params={"status": "bogus"}, **m), 422),
        (await api.get(f"{A}/runs", params={"limit": 0}, **m), 422),
        (await api.get(f"{A}/runs/{'x' * 37}", **m), 422),
        (await api.get(f"{A}/runs/nothing", **m), 404),
        (await api.get(f"{A}/conflicts", params={"task": "T-99"}, **m), 404),
        (await api.post(f"{A}/conflicts/nothing/resolve", json={"choose": "local"}, **m), 404),
        (await api.post(f"{A}/conflicts/nothing/resolve", json={}, **m), 422),
        (await api.post(f"{A}/conflicts/nothing/resolve", json={"choose": "local", "value": "x"}, **m), 422),
        (await api.post(f"{A}/conflicts/nothing/resolve", json={"choose": "sideways"}, **m), 422),
        (await api.post(f"{A}/conflicts/nothing/resolve", json={"value": "a\x00b"}, **m), 422),
        (await api.post("/api/v1/projects/Bad_Slug/sync", **m), 422),
    ]
    wrong = [(i, r.status_code, want, r.text[:200]) for i, (r, want) in enumerate(cases) if r.status_code != want]
    assert not wrong, wrong
    assert all(r.json()["error"] and r.json()["detail"] for r, _ in cases)


async def test_a_plan_lists_what_would_change(api: Any, script: Script) -> None:
    async def sweep(t: Any, run: RunState, *_: Any) -> None:
        run.planned.append({"action": "update", "task": "T-1", "fields": {"status": "done"}})

    script.sweep = sweep
    r = await api.get(f"{A}/plan", params={"integration": "off"}, **who(api, "member"))
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [{"integration": "off", "action": "update", "task": "T-1", "fields": {"status": "done"}}]}
    r = await api.get(f"{A}/plan", **who(api, "member"))
    assert [x["integration"] for x in r.json()["items"]] == ["gh", "off"]


async def test_conflicts_are_listed_and_resolved_once(api: Any, script: Script) -> None:
    async with api.hub.store.write() as conn:
        change = await create_task(conn, "alpha", {"title": "Ship it"}, actor=SYSTEM)
        conflict_id = new_id()
        await conn.execute(sync_conflicts.insert().values(
            id=conflict_id, task_id=change.task["id"], project="alpha", integration="gh", field="title",
            base="Ship", local="Ship it", remote="Ship it now", created_at=time.time()))
    m, viewer = who(api, "member"), who(api, "viewer")
    r = await api.get(f"{A}/conflicts", params={"task": "T-1"}, **viewer)
    assert r.status_code == 200
    [item] = r.json()["items"]
    assert (item["id"], item["base"], item["local"], item["remote"]) == (conflict_id, "Ship", "Ship it", "Ship it now")
    assert (await api.post(f"{A}/conflicts/{conflict_id}/resolve", json={"choose": "remote"}, **viewer)).status_code == 403
    assert (await api.post(f"{B}/conflicts/{conflict_id}/resolve", json={"choose": "remote"},
                           **who(api, "beta owner"))).status_code == 404
    r = await api.post(f"{A}/conflicts/{conflict_id}/resolve", json={"choose": "remote"}, **m)
    assert r.status_code == 200, r.text
    assert (r.json()["resolution"], r.json()["resolved_by"]) == ("Ship it now", "m@example.com")
    assert [(c, ch, v, a.name) for c, ch, v, a in script.resolved] == [(conflict_id, "remote", None, "m@example.com")]
    r = await api.post(f"{A}/conflicts/{conflict_id}/resolve", json={"value": None}, **m)
    assert r.status_code == 409
    assert (await api.get(f"{A}/conflicts", **viewer)).json()["items"] == []
    assert len((await api.get(f"{A}/conflicts", params={"all": "true"}, **viewer)).json()["items"]) == 1
