"""The tasks API: create, read, change and delete with ETag and If-Match (428, 412 with the current
task); lists with filters and pages; who may do what in which project; bad input is a clean 4xx;
every change audited; a change routed as a message to a route matching ``source: tasks``."""

from __future__ import annotations

from typing import Any

import pytest
from people import person
from sink import Sink

from tidings.audit.verify import read_entries

ALPHA, BETA = "/api/v1/projects/alpha/tasks", "/api/v1/projects/beta/tasks"
SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"])
CONFIG: dict[str, Any] = {
    "integrations": {
        "inbox": {"kind": "inbox"},
        "alpha-inbox": {"kind": "inbox", "project": "alpha"},
        "beta-inbox": {"kind": "inbox", "project": "beta"},
    },
    "routes": [{"project": "alpha", "to": ["alpha-inbox"]}, {"project": "beta", "to": ["beta-inbox"]}],
}


def as_(token: str, etag: str | None = None, **headers: str) -> dict[str, Any]:
    return {"auth": False, "headers": {"Authorization": f"Bearer {token}", **({"If-Match": etag} if etag else {}),
                                       **headers}}


async def start(make_api: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> tuple[Any, dict[str, str]]:
    api = await make_api(config or CONFIG, **{"dispatch": False, **kwargs})
    store = api.hub.store
    people = {
        "owner": await person(store, "owner@example.com", {"alpha": "owner", "default": "owner"}),
        "member": await person(store, "member@example.com", {"alpha": "member"}),
        "viewer": await person(store, "viewer@example.com", {"alpha": "viewer"}),
        "beta": await person(store, "beta@example.com", {"beta": "owner"}),
        "scoped": await person(store, "scoped@example.com", {"alpha": "owner", "beta": "owner"}, token_project="beta"),
    }
    return api, people


def assert_error(r: Any, status: int, *fragments: str) -> str:
    assert r.status_code == status, r.text
    text = str(r.json()["detail"])
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    return text


async def test_a_task_made_read_changed_and_deleted_with_if_match(make_api: Any) -> None:
    api, people = await start(make_api)
    member = people["member"]
    body = {"title": "Rotate the password", "description": "Before *Friday*", "status": "In Review",
            "priority": "high", "assignee": "Viewer@example.com", "labels": ["ops", "security"], "due": "2030-06-30"}
    r = await api.post(ALPHA, json=body, **as_(member))
    assert r.status_code == 201, r.text
    made = r.json()
    assert r.headers["ETag"] == '"1"' and r.headers["Location"] == f"{ALPHA}/T-1"
    assert (made["key"], made["status"], made["category"], made["assignee"]) == (
        "T-1", "In Review", "in_progress", "viewer@example.com")
    assert (made["links"], made["conflicts"], made["due"], made["created_by"]) == ([], 0, "2030-06-30",
                                                                                  "member@example.com")
    for key in ("T-1", "1", made["id"]):
        r = await api.get(f"{ALPHA}/{key}", **as_(people["viewer"]))
        assert r.status_code == 200 and r.json() == made and r.headers["ETag"] == '"1"', r.text
    # A change needs If-Match (428); a stale one is 412 with the current task; the right one changes it.
    r = await api.request("PATCH", f"{ALPHA}/T-1", json={"status": "done"}, **as_(member))
    assert_error(r, 428, "If-Match")
    r = await api.request("PATCH", f"{ALPHA}/T-1", json={"status": "done", "labels": None}, **as_(member, '"1"'))
    assert r.status_code == 200 and r.headers["ETag"] == '"2"', r.text
    assert (r.json()["status"], r.json()["category"], r.json()["labels"]) == ("done", "done", [])
    r = await api.request("PATCH", f"{ALPHA}/T-1", json={"title": "late"}, **as_(member, '"1"'))
    assert_error(r, 412, "changed meanwhile", "version 2")
    assert r.headers["ETag"] == '"2"' and r.json()["task"]["version"] == 2 and r.json()["task"]["title"] == made["title"]
    r = await api.request("PATCH", f"{ALPHA}/T-1", json={"title": made["title"]}, **as_(member, "*"))
    assert r.status_code == 200 and r.headers["ETag"] == '"2"'  # nothing changed: the same version
    # Delete: If-Match too; afterwards it's gone.
    assert_error(await api.request("DELETE", f"{ALPHA}/T-1", **as_(member)), 428, "If-Match")
    assert_error(await api.request("DELETE", f"{ALPHA}/T-1", **as_(member, 'W/"1"')), 412, "version 2")
    r = await api.request("DELETE", f"{ALPHA}/T-1", **as_(member, '"2"'))
    assert r.status_code == 200 and r.json() == {"id": made["id"], "key": "T-1", "deleted": True, "unlinked": []}
    assert_error(await api.get(f"{ALPHA}/T-1", **as_(member)), 404, "no task 'T-1' in project alpha")
    # Each change audited, by whom, in which project.
    entries = [e for e in await read_entries(api.hub.store) if e["action"].startswith("task.")]
    assert [(e["action"], e["target"], e["project"], e["actor_name"]) for e in entries] == [
        (f"task.{verb}", "T-1", "alpha", "member@example.com") for verb in ("create", "update", "delete")]
    assert entries[1]["after"] == {"category": "done", "status": "done", "labels": []}


@SQLITE_ONLY
async def test_lists_filter_and_page(make_api: Any) -> None:
    api, people = await start(make_api)
    owner = people["owner"]
    for body in ({"title": "Fix login", "labels": ["bug"], "assignee": "member@example.com"},
                 {"title": "Write docs", "status": "done"},
                 {"title": "Fix logout", "labels": ["bug"], "status": "Blocked", "category": "in_progress"},
                 {"title": "Triage", "status": "blocked"}):
        assert (await api.post(ALPHA, json=body, **as_(owner))).status_code == 201

    async def keys(query: str = "", who: str = "viewer") -> list[str]:
        r = await api.get(f"{ALPHA}?{query}", **as_(people[who]))
        assert r.status_code == 200, r.text
        return [t["key"] for t in r.json()["items"]]

    assert await keys() == ["T-4", "T-3", "T-2", "T-1"]
    assert await keys("status=open") == ["T-4", "T-3", "T-1"]
    assert await keys("status=in_progress") == ["T-4", "T-3"]  # "blocked" is the project's own name now
    assert await keys("label=bug&q=fix") == ["T-3", "T-1"]
    assert await keys("assignee=member@example.com") == ["T-1"]
    assert await keys("updated_since=2000-01-01T00:00:00") == ["T-4", "T-3", "T-2", "T-1"]
    assert await keys("updated_since=2999-01-01T00:00:00%2B02:00") == []
    # Pages: `next` is the `before` of the next one.
    seen, before = [], ""
    while True:
        page = (await api.get(f"{ALPHA}?limit=3{before}", **as_(owner))).json()
        seen += [t["key"] for t in page["items"]]
        if page["next"] is None:
            break
        before = f"&before={page['next']}"
    assert seen == ["T-4", "T-3", "T-2", "T-1"]
    for query, fragment in (("status=closed", "status"), ("limit=0", "limit"), ("before=x", "before"),
                            ("statsu=open", "Unknown query parameter"), ("updated_since=yesterday", "updated_since"),
                            ("updated_since=1700000000", "ISO 8601")):
        assert_error(await api.get(f"{ALPHA}?{query}", **as_(owner)), 422, fragment)
    # The unscoped routes are the project default's.
    assert (await api.get("/api/v1/tasks", **as_(owner))).json() == {"items": [], "next": None}
    r = await api.post("/api/v1/tasks", json={"title": "in default"}, **as_(owner))
    assert r.status_code == 201 and r.json()["project"] == "default" and r.headers["Location"] == "/api/v1/tasks/T-1"


@SQLITE_ONLY
async def test_who_may_read_and_write_which_tasks(make_api: Any) -> None:
    api, people = await start(make_api)
    made = (await api.post(ALPHA, json={"title": "alpha's"}, **as_(people["owner"]))).json()
    # A viewer reads, can't write (403, naming the permission).
    assert (await api.get(f"{ALPHA}/T-1", **as_(people["viewer"]))).status_code == 200
    assert_error(await api.post(ALPHA, json={"title": "x"}, **as_(people["viewer"])), 403, "task:write")
    assert_error(await api.request("PATCH", f"{ALPHA}/T-1", json={"title": "x"}, **as_(people["viewer"], "*")),
                 403, "task:write")
    assert_error(await api.request("DELETE", f"{ALPHA}/T-1", **as_(people["viewer"], "*")), 403, "task:write")
    # Another project's owner, and a token scoped to another project: 403 in alpha.
    for who in ("beta", "scoped"):
        assert_error(await api.get(f"{ALPHA}/T-1", **as_(people[who])), 403, "task:read")
        assert_error(await api.get(ALPHA, **as_(people[who])), 403, "task:read")
    # In beta, alpha's task does not exist, by key or by id.
    assert (await api.post(BETA, json={"title": "beta's"}, **as_(people["beta"]))).json()["key"] == "T-1"
    for key in ("T-2", made["id"]):
        assert_error(await api.get(f"{BETA}/{key}", **as_(people["beta"])), 404, "no task")
        assert_error(await api.request("DELETE", f"{BETA}/{key}", **as_(people["beta"], "*")), 404, "no task")
    assert (await api.get(f"{BETA}/T-1", **as_(people["beta"]))).json()["title"] == "beta's"
    # No token: 401.
    assert (await api.get(ALPHA, auth=False)).status_code == 401
    # The refusals were audited.
    denied = [e for e in await read_entries(api.hub.store) if e["action"] == "access.denied"]
    assert {(e["actor_name"], e["after"]["permission"]) for e in denied} >= {
        ("viewer@example.com", "task:write"), ("beta@example.com", "task:read"), ("scoped@example.com", "task:read")}


@SQLITE_ONLY
async def test_bad_input_is_a_clean_4xx(make_api: Any) -> None:
    api, people = await start(make_api, {**CONFIG, "server": {"body_limit": "16KiB"}})
    owner = as_(people["owner"])
    (await api.post(ALPHA, json={"title": "a task"}, **owner)).raise_for_status()
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", ALPHA, {"json": {"title": "a\x00b"}}, 422, "title"),
        ("POST", ALPHA, {"json": {"title": "ok", "labels": ["x\x00"]}}, 422, "labels"),
        ("POST", ALPHA, {"json": {"title": "x" * 1001}}, 422, "title"),
        ("POST", ALPHA, {"json": {"title": "   "}}, 422, "title"),
        ("POST", ALPHA, {"json": {}}, 422, "title"),
        ("POST", ALPHA, {"json": {"title": "ok", "colour": "red"}}, 422, "colour"),
        ("POST", ALPHA, {"json": {"title": "ok", "status": "Parked"}}, 422,
         "'Parked' is not a status project alpha knows: give its category"),
        ("POST", ALPHA, {"json": {"title": "ok", "assignee": "beta@example.com"}}, 422,
         "beta@example.com is not a member of project alpha"),
        ("POST", ALPHA, {"json": {"title": "ok", "assignee": "nobody@example.com"}}, 422, "no tidings user"),
        ("POST", ALPHA, {"json": {"title": "ok", "assignee": "octocat"}}, 422, "assignee"),
        ("POST", ALPHA, {"json": {"title": "ok", "due": "2030-02-30"}}, 422, "due"),
        ("POST", ALPHA, {"json": {"title": "ok", "priority": "urgent"}}, 422, "priority"),
        ("POST", ALPHA, {"json": ["not", "an", "object"]}, 422, ""),
        ("POST", ALPHA, {"content": b'{"title": "broken', "headers": {"Content-Type": "application/json"}}, 400, ""),
        ("POST", ALPHA, {"content": b"title=x", "headers": {"Content-Type": "text/plain"}}, 415, "application/json"),
        ("POST", ALPHA, {"json": {"title": "ok", "description": "x" * 20_000}}, 413, ""),
        ("PATCH", f"{ALPHA}/T-1", {"json": {"title": None}, "headers": {"If-Match": "*"}}, 422, "title"),
        ("PATCH", f"{ALPHA}/T-1", {"json": {"status": None}, "headers": {"If-Match": "*"}}, 422, "status"),
        ("PATCH", f"{ALPHA}/T-1", {"json": {"title": "x"}, "headers": {"If-Match": "yesterday"}}, 422, "If-Match"),
        ("PATCH", f"{ALPHA}/T-1", {"json": {"title": "x"}, "headers": {"If-Match": '"99"'}}, 412, "version 1"),
        ("GET", f"{ALPHA}/T 1", {}, 422, "key"),
        ("GET", f"{ALPHA}/{'9' * 70}", {}, 422, "key"),
        ("GET", f"{ALPHA}?q=a%00b", {}, 400, "NUL"),
    ]
    for method, url, kwargs, status, fragment in cases:
        headers = {**owner["headers"], **kwargs.pop("headers", {})}
        r = await api.request(method, url, auth=False, headers=headers, **kwargs)
        assert r.status_code == status, (method, url, r.status_code, r.text)
        assert set(r.json()) >= {"error", "detail"} and fragment in str(r.json()["detail"]), (url, r.text)
    # Nothing of those was stored; the task is as it was.
    page = (await api.get(ALPHA, **owner)).json()
    assert [(t["key"], t["title"], t["version"]) for t in page["items"]] == [("T-1", "a task", 1)]


@SQLITE_ONLY
async def test_task_changes_reach_a_route_on_source_tasks(make_api: Any, sink: Sink) -> None:
    config = {"integrations": {"inbox": {"kind": "inbox"},
                               "ops": {"kind": "webhook", "url": sink.url + "/hook", "project": "alpha"},
                               "other": {"kind": "inbox", "project": "alpha"},
                               "beta-inbox": {"kind": "inbox", "project": "beta"}},
              "routes": [{"project": "alpha", "match": {"source": "tasks"}, "to": ["ops"]},
                         {"project": "alpha", "to": ["other"]}]}
    api, people = await start(make_api, config, dispatch=True)
    owner = people["owner"]
    made = (await api.post(ALPHA, json={"title": "Ship it", "description": "**soon**", "priority": "high",
                                        "labels": ["release"]}, **as_(owner))).json()
    r = await api.request("PATCH", f"{ALPHA}/T-1", json={"status": "In Review", "assignee": "member@example.com"},
                          **as_(owner, '"1"'))
    assert r.status_code == 200, r.text
    await api.request("DELETE", f"{ALPHA}/T-1", **as_(owner, '"2"'))
    received = [x.json()["data"] for x in await sink.wait_for(3)]
    by_event = {m["labels"]["event_type"]: m for m in received}
    assert set(by_event) == {"task.created", "task.updated", "task.deleted"}
    created, updated = by_event["task.created"], by_event["task.updated"]
    assert created["title"] == "T-1 created: Ship it" and created["body"] == "**soon**"
    assert created["priority"] == "high" and created["format"] == "markdown"
    assert created["labels"] | {"task_id": made["id"]} == {
        "source": "tasks", "event_type": "task.created", "task": "T-1", "task_id": made["id"], "status": "todo",
        "priority": "high", "origin": "tidings"}
    assert {"name": "Status", "value": "todo"} in created["fields"]
    assert updated["labels"]["assignee"] == "member@example.com" and updated["labels"]["status"] == "in_progress"
    assert "**status**: todo → In Review" in updated["body"] and "**assignee**: — → member@example.com" in updated["body"]
    assert created["thread_key"] == updated["thread_key"] == f"task:{made['id']}"
    assert by_event["task.deleted"]["title"] == "T-1 deleted: Ship it"
