"""Reading incidents: ``GET /api/v1[/projects/{project}]/incidents[/{id}]`` (``logs:read``) and
``tidings incidents``."""

from __future__ import annotations

from typing import Any

from cli_support import Project, tidings, with_dead_end

from tidings.accounts.projects import set_member
from tidings.accounts.users import create_user
from tidings.audit import SYSTEM
from tidings.security.tokens import create_token

CONFIG = {
    "integrations": {"inbox": {"kind": "inbox"}, "alpha-inbox": {"kind": "inbox", "project": "alpha"}},
    "routes": [{"project": "alpha", "to": ["alpha-inbox"]}],
}


async def test_incidents_of_a_project_through_the_api(make_api: Any) -> None:
    api = await make_api(CONFIG, dispatch=False)
    watch = api.hub.watch
    ours = await watch.open("alpha", "integration/alpha-inbox", "failing", "HTTP 500 from the peer")
    other = await watch.open("alpha", "sync/gh", "sync", "401 Bad credentials")
    await watch.resolve("alpha", "sync/gh", "sync")
    theirs = await watch.open("default", "integration/inbox", "dead", "gone")

    r = await api.get("/api/v1/projects/alpha/incidents", headers=api.auth)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [i["id"] for i in page["items"]] == [other["id"], ours["id"]] and page["next"] is None
    assert page["items"][1]["kind"] == "failing" and page["items"][1]["status"] == "open"
    assert page["items"][1]["notice"] == "no notice: project alpha sets no alerts_to"
    opened = (await api.get("/api/v1/projects/alpha/incidents?status=open", headers=api.auth)).json()
    assert [i["id"] for i in opened["items"]] == [ours["id"]]
    by_subject = (await api.get("/api/v1/projects/alpha/incidents?subject=sync/gh", headers=api.auth)).json()
    assert [i["id"] for i in by_subject["items"]] == [other["id"]]
    first = (await api.get("/api/v1/projects/alpha/incidents?limit=1", headers=api.auth)).json()
    assert len(first["items"]) == 1 and first["next"] == other["id"]
    rest = (await api.get(f"/api/v1/projects/alpha/incidents?limit=1&before={first['next']}", headers=api.auth)).json()
    assert [i["id"] for i in rest["items"]] == [ours["id"]]

    one = await api.get(f"/api/v1/projects/alpha/incidents/{ours['id']}", headers=api.auth)
    assert one.status_code == 200 and one.json()["detail"] == "HTTP 500 from the peer"
    # Another project's incident is not found here; the project default's route sees its own.
    assert (await api.get(f"/api/v1/projects/alpha/incidents/{theirs['id']}", headers=api.auth)).status_code == 404
    assert [i["id"] for i in (await api.get("/api/v1/incidents", headers=api.auth)).json()["items"]] == [theirs["id"]]
    assert (await api.get(f"/api/v1/incidents/{ours['id']}", headers=api.auth)).status_code == 404


async def test_bad_queries_are_422_and_unknown_projects_404(make_api: Any) -> None:
    api = await make_api(CONFIG, dispatch=False)
    for query in ("status=broken", "limit=0", "limit=501", "subject=" + "s" * 301, "before=" + "x" * 37, "nope=1"):
        r = await api.get(f"/api/v1/projects/alpha/incidents?{query}", headers=api.auth)
        assert r.status_code == 422, (query, r.text)
    nul = await api.get("/api/v1/projects/alpha/incidents?subject=a%00b", headers=api.auth)
    assert nul.status_code == 400 and "NUL" in nul.json()["detail"]  # the guard refuses it before the route
    assert (await api.get("/api/v1/projects/nothere/incidents", headers=api.auth)).status_code == 404
    assert (await api.get("/api/v1/projects/alpha/incidents/" + "x" * 40, headers=api.auth)).status_code == 422
    assert (await api.get("/api/v1/projects/alpha/incidents", auth=False)).status_code == 401


async def test_viewers_may_not_read_incidents_members_may(make_api: Any) -> None:
    api = await make_api(CONFIG, dispatch=False)
    store = api.hub.store
    tokens = {}
    for role in ("viewer", "member"):
        async with store.write() as conn:
            await create_user(conn, SYSTEM, email=f"{role}@example.com")
            await set_member(conn, SYSTEM, "alpha", f"{role}@example.com", role)
        tokens[role] = await create_token(store, role, user=f"{role}@example.com")
    for role, status in (("viewer", 403), ("member", 200)):
        r = await api.get("/api/v1/projects/alpha/incidents", headers={"Authorization": f"Bearer {tokens[role]}"})
        assert r.status_code == status, (role, r.text)


def test_the_cli_lists_the_incident_a_dead_delivery_opened(project: Project) -> None:
    with_dead_end(project)
    p = project.path
    assert tidings(p, "send", "--to", "down", "--title", "doomed", "--json").code == 1
    listed = tidings(p, "incidents", "--json").ok().json
    [incident] = listed["items"]
    assert (incident["subject"], incident["kind"], incident["status"]) == ("integration/down", "dead", "open")
    assert "went dead" in incident["detail"]
    assert incident["notice"] == "no notice: project default sets no alerts_to"
    assert tidings(p, "incidents", "list", "--open", "--json").ok().json == listed
    assert tidings(p, "incidents", "--project", "default", "--open", "--json").ok().json == listed
    human = tidings(p, "incidents").ok().out
    assert incident["id"] in human and "integration/down" in human
    assert tidings(p, "incidents", "--project", "nope").code != 0
