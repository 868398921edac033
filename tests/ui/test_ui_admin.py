"""The pages that run a server and its projects, in a real browser: API tokens (shown once), a
project's members and roles, the audit trail and its verification, people and projects (site
admins), recipients and their preferences, OAuth connections."""

from __future__ import annotations

import os
import re
from typing import Any

import httpx
from cli_support import wait_until
from playwright.sync_api import expect
from ui_support import Site, check_page, sign_in

PID = os.getpid()
SITE_YAML = """\
projects:
  default:
    topics:
      security: {required: true}
      deploys: {}
"""


def _row(page: Any, text: str) -> Any:
    return page.locator("tbody tr", has_text=text)


def test_a_token_is_shown_once_and_works(page: Any, hub_site: Site, person: Any) -> None:
    email, password = person("member")
    sign_in(page, email, password)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="API tokens").click()
    page.wait_for_url(re.compile(r"/ui/tokens$"))
    page.get_by_label("Name").fill("laptop")
    page.get_by_label("Acts in").select_option("default")
    page.get_by_label("Expires after").select_option("7d")
    page.get_by_role("button", name="Create token").click()
    shown = page.locator("#new-token")
    token = shown.input_value()
    assert token.startswith("tdg_")
    assert page.get_by_role("button", name="Copy").get_attribute("data-copy") == "new-token"
    check_page(page, "admin-tokens")
    r = httpx.get(hub_site.url + "/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200 and r.json()["user"]["email"] == email and r.json()["token"]["project"] == "default"
    page.reload()
    expect(page.get_by_role("heading", name="Your tokens")).to_be_visible()
    assert page.locator("#new-token").count() == 0 and token not in page.content()  # once, and never again
    row = _row(page, "laptop")
    expect(row.locator(".badge")).to_have_text("active")
    page.on("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("Token laptop revoked")
    expect(_row(page, "laptop").locator(".badge")).to_have_text("revoked")
    r = httpx.get(hub_site.url + "/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 401


def test_an_owner_adds_a_member_changes_the_role_and_the_audit_trail_shows_it(admin_page: Any, hub_site: Site) -> None:
    page = admin_page
    email = f"newcomer-{PID}@example.com"
    assert hub_site.api("POST", "/api/v1/users", json={"email": email, "name": "Newcomer"}).status_code == 201
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Members").click()
    page.get_by_label("Email").fill("nobody-at-all@example.com")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("alert")).to_contain_text("nobody-at-all@example.com")  # the API's words: no such user
    page.get_by_label("Email").fill(email)
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_contain_text(f"{email} added")
    row = _row(page, email)
    expect(row.get_by_label(f"Role of {email}")).to_have_value("viewer")
    check_page(page, "admin-members")
    row.get_by_label(f"Role of {email}").select_option("member")
    row.get_by_role("button", name="Change role").click()
    expect(page.get_by_role("status")).to_contain_text(f"{email} is now member")
    expect(_row(page, email).get_by_label(f"Role of {email}")).to_have_value("member")
    assert hub_site.api("GET", "/api/v1/projects/default/members").json() and any(
        m["email"] == email and m["role"] == "member" for m in hub_site.api("GET", "/api/v1/projects/default/members").json())

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Audit").click()
    page.get_by_label("Action").fill("member.*")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"action=member"))
    entries = page.locator("tbody tr", has_text=email)
    expect(entries.first).to_be_visible()
    assert entries.count() >= 2 and all(t.startswith("member.") for t in entries.locator("td:nth-child(4)").all_inner_texts())
    entries.first.get_by_text("Show").click()
    expect(entries.first.locator("pre").last).to_contain_text('"member"')
    page.get_by_role("button", name="Verify the whole trail").click()
    expect(page.get_by_role("heading", name="The chain is intact")).to_be_visible()
    check_page(page, "admin-audit")


def test_a_site_admin_creates_a_user_with_a_password_shown_once_and_a_project(admin_page: Any, hub_site: Site) -> None:
    page = admin_page
    email = f"created-{PID}@example.com"
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="People").click()
    page.wait_for_url(re.compile(r"/ui/people$"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Name", exact=True).fill("Created Person")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_contain_text(f"User {email} created")
    password = page.locator("#new-password").input_value()
    assert len(password) >= 12
    check_page(page, "admin-people")
    r = httpx.post(hub_site.url + "/auth/login", json={"email": email, "password": password}, timeout=30)
    assert r.status_code == 200, r.text
    page.reload()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    assert page.locator("#new-password").count() == 0 and password not in page.content()

    page.on("dialog", lambda d: d.accept())
    _row(page, email).get_by_role("button", name="Disable").click()
    expect(_row(page, email).locator(".badge")).to_have_text("disabled")
    assert httpx.post(hub_site.url + "/auth/login", json={"email": email, "password": password},
                      timeout=30).status_code != 200
    _row(page, email).get_by_role("button", name="Enable").click()
    expect(_row(page, email).locator(".badge")).to_have_text("active")

    slug = f"team-{PID}"
    page.get_by_label("Slug").fill("Not A Slug")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("alert")).to_contain_text("slug")
    page.get_by_label("Slug").fill(slug)
    page.get_by_label("First owner").fill(email)
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("status")).to_contain_text(f"Project {slug} created")
    page.get_by_role("link", name=slug).click()
    page.wait_for_url(re.compile(rf"/ui/p/{slug}/members$"))
    expect(_row(page, email).get_by_label(f"Role of {email}")).to_have_value("owner")


def test_an_owner_adds_a_recipient_and_sets_a_preference(admin_page: Any, hub_site: Site) -> None:
    page = admin_page
    name = f"ann-{PID}"
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Recipients").click()
    page.get_by_label(re.compile(r"^Name")).fill(name)
    page.get_by_label("Display name").fill("Ann Lee")
    page.get_by_label("Email").fill("ann@example.com")
    page.get_by_label("Time zone").fill("Mars/Olympus")
    page.get_by_role("button", name="Add recipient").click()
    expect(page.get_by_role("alert")).to_contain_text("time zone")
    expect(page.get_by_label("Display name")).to_have_value("Ann Lee")  # what was typed stays
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Add recipient").click()
    page.wait_for_url(re.compile(rf"/recipients/{name}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"@{name}")
    locked = page.get_by_role("row", name=re.compile("^security"))
    expect(locked).to_contain_text("on (locked)")
    page.get_by_label("Topic").select_option("deploys")
    page.get_by_label("Channel").select_option("")
    page.get_by_label("Choice").select_option("off")
    page.get_by_role("button", name="Set preference").click()
    expect(page.get_by_role("status")).to_contain_text("deploys on any channel: off")
    expect(page.get_by_role("row", name=re.compile("^deploys")).locator("td").first).to_have_text("off")
    page.get_by_label("Topic").select_option("security")
    page.get_by_label("Choice").select_option("off")
    page.get_by_role("button", name="Set preference").click()
    expect(page.get_by_role("alert")).to_contain_text("required")  # the API's 409, in its words
    check_page(page, "admin-recipient")
    page.get_by_label("Email").fill("ann.lee@example.com")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text(f"{name} saved")
    prefs = hub_site.api("GET", f"/api/v1/projects/default/recipients/{name}/preferences").json()["items"]
    assert [(p["topic"], p["channel"], p["enabled"]) for p in prefs] == [("deploys", "", False)]
    assert hub_site.api("GET", f"/api/v1/projects/default/recipients/{name}").json()["email"] == "ann.lee@example.com"

    page.get_by_role("link", name="Recipients").first.click()
    page.get_by_label("Group name").fill(f"oncall-{PID}")
    page.get_by_label("Members", exact=True).fill(f"{name}")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("status")).to_contain_text(f"Group oncall-{PID} created")
    expect(_row(page, f"@oncall-{PID}").get_by_label(f"Members of oncall-{PID}")).to_have_value(name)
    check_page(page, "admin-recipients")


def test_connections_offer_connect_for_an_oauth_integration(admin_page: Any, hub_site: Site) -> None:
    listed = hub_site.api("GET", "/api/v1/projects/default/integrations")
    if not any(i["name"] == "chat" for i in listed.json()):
        r = httpx.post(hub_site.url + "/api/v1/projects/default/integrations", timeout=30, json={"name": "chat", "kind": "slack", "settings": {"oauth": True, "channel": "#alerts"}},
                       headers={"Authorization": f"Bearer {hub_site.token}", "If-Match": listed.headers["etag"]})
        assert r.status_code == 201, r.text
    wait_until(lambda: any(c["integration"] == "chat" for c in
                           hub_site.api("GET", "/api/v1/projects/default/connections").json()), what="the connection")
    page = admin_page
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Connections").click()
    row = _row(page, "chat")
    expect(row.locator(".badge")).to_have_text("not connected")
    expect(row.get_by_role("link", name="Connect")).to_have_attribute("href", "/oauth/chat/start")
    assert row.get_by_role("button", name="Refresh").count() == 0  # nothing to refresh before a connection
    check_page(page, "admin-connections")
