"""Events, silences, tasks, sync conflicts and configuration history in a real browser, against a
real ``tidings serve``: roll back a change, resolve a real sync conflict, create and end a silence,
replay a webhook event, and what a viewer may not do."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from peers.github_api import GitHubAPI
from playwright.sync_api import expect
from ui_support import Background, Site, check_page, sign_in

_n = itertools.count(1)
TOKEN = "ghp_ui_activity"


def _unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_n)}"


def _until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    end = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _api(site: Site, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
    """``site.api`` with headers of its own (``If-Match``): conftest's sets only the token."""
    return httpx.request(method, site.url + path, headers={"Authorization": f"Bearer {site.token}", **headers},
                         timeout=30, **kwargs)


def _create_integration(site: Site, name: str, kind: str, **settings: Any) -> int:
    etag = site.api("GET", "/api/v1/integrations").headers["etag"]
    r = _api(site, "POST", "/api/v1/integrations", {"If-Match": etag},
             json={"name": name, "kind": kind, "settings": settings})
    assert r.status_code == 201, r.text
    return int(r.json()["revision"])


def _alert_event(site: Site, name: str, bearer: str) -> str:
    """An Alertmanager notification posted to the receiver; the stored event's id, once processed."""
    payload = {"version": "4", "groupKey": f"{{}}:{{alertname=\"{name}\"}}", "status": "firing", "receiver": "tidings",
               "groupLabels": {"alertname": name}, "commonLabels": {"alertname": name}, "commonAnnotations": {},
               "externalURL": "http://alertmanager.invalid", "truncatedAlerts": 0,
               "alerts": [{"status": "firing", "labels": {"alertname": name, "severity": "warning"},
                           "annotations": {"summary": f"{name} is firing"}, "startsAt": "2026-12-06T10:00:00Z",
                           "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus.invalid/graph",
                           "fingerprint": "0123456789abcdef"}]}
    r = httpx.post(f"{site.url}/hooks/{name}", json=payload, headers={"Authorization": f"Bearer {bearer}"}, timeout=30)
    assert r.status_code in (200, 202), r.text
    event_id = r.json()["id"]
    _until(lambda: site.api("GET", f"/api/v1/events/{event_id}").json()["status"] == "processed", "the event processed")
    return str(event_id)


def test_roll_back_a_configuration_change(admin_page: Any, hub_site: Site) -> None:
    page, name = admin_page, _unique("inbox-rb")
    number = _create_integration(hub_site, name, "inbox")
    page.goto("/ui/p/default/config")
    check_page(page, "activity-config")
    page.get_by_role("link", name=f"Revision {number}", exact=True).click()
    page.wait_for_url(re.compile(rf"/config/{number}$"))
    change = page.locator(".change", has_text=name)
    expect(change).to_contain_text("added")
    expect(change).to_contain_text("inbox")
    check_page(page, "activity-config-revision")
    later = _unique("inbox-later")
    _create_integration(hub_site, later, "inbox")  # meanwhile, someone else changes the configuration
    undo = page.get_by_role("button", name=f"Undo this change (roll back to revision {number - 1})")
    page.once("dialog", lambda dialog: dialog.accept())
    undo.click()
    expect(page.get_by_role("alert")).to_contain_text("Someone changed the configuration meanwhile")
    page.get_by_role("link", name="Reload").click()
    page.once("dialog", lambda dialog: dialog.accept())
    undo.click()
    page.wait_for_url(re.compile(r"/config$"))
    expect(page.get_by_role("status")).to_contain_text(f"Rolled back to revision {number - 1}")
    newest = page.get_by_role("row").nth(1)  # the first row under the header
    expect(newest).to_contain_text("current")
    expect(newest).to_contain_text(f"rollback to revision {number - 1}")
    names = [i["name"] for i in hub_site.api("GET", "/api/v1/integrations").json()]
    assert name not in names and later not in names  # the whole configuration is as it was at that revision
    newest.get_by_role("link").click()  # the rollback's own revision: it removed the integration
    expect(page.locator(".change", has_text=name)).to_contain_text("removed")


def test_resolve_a_sync_conflict(admin_page: Any, hub_site: Site, background: Background) -> None:
    """A real conflict: the GitHub stand-in and tidings both change a synced task's title (manual
    policy, no webhooks, so the remote edit is met when the local one is pushed)."""
    page, name, repo = admin_page, _unique("gh-sync"), "octo/ui"
    gh = GitHubAPI(tokens={TOKEN})
    gh.repo(repo)
    background.run(gh.start())
    try:
        _create_integration(hub_site, name, "github", api_url=gh.url, token=TOKEN, timeout=5,
                            allow_destinations=["127.0.0.1"],
                            sync={"repository": repo, "interval": 3600, "conflict": "manual"})
        title = _unique("Base title")

        async def open_issue() -> int:
            return int(gh.open_issue(repo, title)["number"])

        number = background.run(open_issue())
        r = hub_site.api("POST", "/api/v1/sync", json={"integration": name})
        assert r.status_code == 202, r.text
        task = _until(lambda: next((t for t in hub_site.api("GET", "/api/v1/tasks", params={"q": title}).json()["items"]), None),
                      "the issue imported as a task")
        key = task["key"]
        _until(lambda: [x for x in hub_site.api("GET", f"/api/v1/tasks/{key}").json()["links"] if x["state"] == "linked"],
               "the task linked")

        async def edit_remote() -> None:
            gh.advance(120)
            gh.edit(repo, number, title="Remote title")

        background.run(edit_remote())
        r = _api(hub_site, "PATCH", f"/api/v1/tasks/{key}", {"If-Match": "*"}, json={"title": "Local title"})
        assert r.status_code == 200, r.text
        _until(lambda: hub_site.api("GET", "/api/v1/sync/conflicts", params={"task": key}).json()["items"],
               "the conflict parked")

        page.goto("/ui/p/default/tasks")
        row = page.get_by_role("row", name=re.compile(key))
        expect(row.get_by_role("link", name=f"{repo}#{number}")).to_be_visible()
        check_page(page, "activity-tasks")
        row.get_by_role("link", name=key, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Local title")
        check_page(page, "activity-task")
        page.get_by_role("link", name="choose a side").click()
        conflict = page.locator(".conflict", has_text=key)
        expect(conflict).to_contain_text("Local title")
        expect(conflict).to_contain_text("Remote title")
        expect(conflict).to_contain_text(title)
        check_page(page, "activity-conflicts")
        conflict.get_by_role("button", name=f"Take theirs ({name})").click()
        expect(page.get_by_role("status")).to_contain_text(f"Conflict on {key} title resolved")
        expect(page.locator(".conflict", has_text=key)).to_have_count(0)
        _until(lambda: hub_site.api("GET", f"/api/v1/tasks/{key}").json()["title"] == "Remote title",
               "the task taking GitHub's title")
        page.get_by_role("link", name="All, resolved too").click()
        expect(page.locator(".conflict", has_text=key)).to_contain_text("resolved")
        assert gh.issue(repo, number).title == "Remote title"
    finally:
        background.run(gh.stop())


def test_create_and_end_a_silence(admin_page: Any) -> None:
    page, alert = admin_page, _unique("DiskFull")
    page.goto("/ui/p/default/silences")
    page.get_by_label("Matchers").fill(f"alertname={alert}, instance=web-01")
    page.get_by_label("Duration").fill("soon")
    page.get_by_label("Comment").fill("disk being replaced")
    page.get_by_role("button", name="Create silence").click()
    expect(page.get_by_role("alert")).to_contain_text("not a duration")  # the API's words; the form kept
    expect(page.get_by_label("Matchers")).to_have_value(f"alertname={alert}, instance=web-01")
    page.get_by_label("Duration").fill("2h")
    page.get_by_role("button", name="Create silence").click()
    expect(page.get_by_role("status")).to_contain_text("Silence created")
    row = page.get_by_role("row", name=re.compile(alert))
    expect(row).to_contain_text("disk being replaced")
    expect(row).to_contain_text("in 2 h")
    check_page(page, "activity-silences")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("^End")).click()
    expect(page.get_by_role("status")).to_contain_text("Silence ended")
    ended = page.get_by_role("table", name=re.compile("ended")).get_by_role("row", name=re.compile(alert))
    expect(ended).to_contain_text("ended")
    ended.get_by_role("link", name="Silence again").click()
    expect(page.get_by_label("Matchers")).to_have_value(f"alertname={alert}, instance=web-01")


def test_replay_an_event(admin_page: Any, hub_site: Site) -> None:
    page, name, bearer = admin_page, _unique("am-ui"), "a bearer token for the ui test"
    _create_integration(hub_site, name, "alertmanager", bearer=bearer)
    event_id = _alert_event(hub_site, name, bearer)
    page.goto("/ui/p/default/events")
    page.get_by_label("Integration").select_option(name)
    page.get_by_label("Status").select_option("processed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(rf"integration={name}"))
    expect(page.get_by_role("row")).to_have_count(2)  # the header and the one event
    check_page(page, "activity-events")
    page.get_by_role("link", name="alert.firing").click()
    page.wait_for_url(re.compile(rf"/events/{event_id}$"))
    expect(page.locator("pre").last).to_contain_text('"groupKey"')
    expect(page.get_by_role("row", name=re.compile("user-agent"))).to_be_visible()
    check_page(page, "activity-event")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status")).to_contain_text("Event replayed")
    audit = hub_site.api("GET", "/api/v1/audit", params={"action": "event.replay"}).json()
    assert any(e.get("target") == f"event/{event_id}" for e in audit["items"]), audit


def test_a_viewer_sees_everything_but_no_change_buttons(page: Any, hub_site: Site, person: Any) -> None:
    name, bearer = _unique("am-viewer"), "another bearer token for the ui test"
    _create_integration(hub_site, name, "alertmanager", bearer=bearer)
    event_id = _alert_event(hub_site, name, bearer)
    alert = _unique("Viewer")
    r = hub_site.api("POST", "/api/v1/silences", json={"matchers": {"alertname": alert}, "duration": "1h"})
    assert r.status_code == 201, r.text
    email, password = person("viewer")
    sign_in(page, email, password)

    page.goto(f"/ui/p/default/events/{event_id}")
    expect(page.get_by_text("shown to members and owners only")).to_be_visible()
    assert page.get_by_role("button", name="Replay").count() == 0
    check_page(page, "activity-event-viewer")
    page.goto("/ui/p/default/silences")
    expect(page.get_by_role("row", name=re.compile(alert))).to_be_visible()
    assert page.get_by_role("button", name=re.compile("^End")).count() == 0
    assert page.get_by_role("button", name="Create silence").count() == 0
    check_page(page, "activity-silences-viewer")
    page.goto("/ui/p/default/config")
    expect(page.get_by_role("row").nth(1)).to_contain_text("Revision")
    assert page.get_by_role("link", name=re.compile(r"^Revision \d+")).count() == 0
    page.goto("/ui/p/default/conflicts?all=true")
    assert page.get_by_role("button", name="Keep ours").count() == 0
    page.goto("/ui/p/default/config/1")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")  # the API's refusal, in its words
