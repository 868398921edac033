"""A viewer reads everything their role lets them read and finds no way to change anything: every
page of the menu (and a detail page of each list that links to one) has no form that posts and no
htmx change; a change posted to the UI anyway is refused with the API's words."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from ui_support import Site, check_page, sign_in

PID = os.getpid()
SIGN_OUT = "/ui/logout"
OWN_TOKENS = re.compile(r"^/ui/tokens(/[^/]+/revoke)?$")
"""Every signed-in person makes and revokes their own API tokens (the API allows it to anyone)."""

CHANGES = """els => els.map(e => e.tagName.toLowerCase() === 'form'
  ? 'form ' + (e.getAttribute('action') || '')
  : e.tagName.toLowerCase() + ' ' + ['hx-post', 'hx-put', 'hx-patch', 'hx-delete'].filter(a => e.hasAttribute(a))
      .map(a => a + '=' + e.getAttribute(a)).join(' '))"""


def _stage(site: Site) -> None:
    """Something on every list a viewer reads: a recipient, a group, a member, a silence, a task."""
    made = [
        site.api("POST", "/api/v1/projects/default/recipients", json={"name": f"vic-{PID}", "email": "vic@example.com"}),
        site.api("POST", "/api/v1/projects/default/recipient-groups", json={"name": f"night-{PID}",
                                                                           "members": [f"vic-{PID}"]}),
        site.api("POST", "/api/v1/projects/default/silences", json={"matchers": {"source": "x"}, "duration": "1h",
                                                                    "reason": "quiet"}),
        site.api("POST", "/api/v1/projects/default/tasks", json={"title": "look at the viewer page"}),
    ]
    assert all(r.status_code == 201 for r in made), [r.text for r in made]


def _changes_on(page: Any) -> list[str]:
    """What on the page would change something: forms posting (but Sign out), htmx changes."""
    forms = page.locator("form").evaluate_all(
        "fs => fs.filter(f => (f.getAttribute('method') || 'get').toLowerCase() === 'post')")
    assert isinstance(forms, list)
    found = page.locator("form[method=post i], form[method=POST], [hx-post], [hx-put], [hx-patch], [hx-delete]")
    items = list(dict.fromkeys(found.evaluate_all(CHANGES)))
    path = urlsplit(page.url).path
    allowed = [f"form {SIGN_OUT}"]
    return [i for i in items if i not in allowed
            and not (path == "/ui/tokens" and i.startswith("form ") and OWN_TOKENS.match(i[5:]))]


def test_a_viewer_finds_no_way_to_change_anything(page: Any, hub_site: Site, person: Any) -> None:
    _stage(hub_site)
    email, password = person("viewer")
    sign_in(page, email, password)
    nav = page.get_by_role("navigation", name="Sections")
    links = [h for h in nav.get_by_role("link").evaluate_all("as => as.map(a => a.getAttribute('href'))")
             if h.startswith("/ui/")]
    assert len(links) >= 10 and "/ui/tokens" in links and "/ui/people" not in links
    seen: dict[str, int] = {}
    for href in [*links, "/ui/people"]:
        answer = page.goto(href)
        seen[href] = answer.status
        assert answer.status < 500, (href, answer.status)
        assert not _changes_on(page), (href, _changes_on(page))
        # one detail page of the list, where the list links to one
        details = [h for h in page.locator("main a[href]").evaluate_all("as => as.map(a => a.getAttribute('href'))")
                   if h.startswith(href.rstrip("/") + "/") and "?" not in h and h != href]
        if details:
            answer = page.goto(details[0])
            seen[details[0]] = answer.status
            assert answer.status < 500, (details[0], answer.status)
            assert not _changes_on(page), (details[0], _changes_on(page))
    assert seen["/ui/people"] == 403 and seen["/ui/p/default/audit"] == 403  # site admins, owners
    assert seen["/ui/p/default/members"] == seen["/ui/p/default/recipients"] == 200
    assert f"/ui/p/default/recipients/vic-{PID}" in seen  # the walk reached a detail page
    page.goto("/ui/p/default/members")
    assert email in page.locator("main").inner_text()
    check_page(page, "viewer-members")
    page.goto("/ui/tokens")
    check_page(page, "viewer-tokens")


def test_a_change_posted_by_a_viewer_is_refused_with_the_apis_words(hub_site: Site, person: Any) -> None:
    email, password = person("viewer")
    with httpx.Client(base_url=hub_site.url, timeout=30) as client:
        r = client.post("/ui/login", data={"email": email, "password": password, "next": "/ui/"},
                        headers={"Origin": hub_site.url})
        assert r.status_code == 303, r.text
        text = client.get("/ui/p/default/members").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)  # type: ignore[union-attr]
        posts = {
            "/ui/p/default/members": ({"email": email, "role": "owner"}, "member:manage"),
            f"/ui/p/default/members/{email}/remove": ({}, "member:manage"),
            "/ui/p/default/recipients": ({"name": f"eve-{PID}"}, "recipient:write"),
            "/ui/people/users": ({"email": f"eve-{PID}@example.com"}, "site:admin"),
        }
        for path, (form, words) in posts.items():
            r = client.post(path, data={**form, "csrf_token": csrf})
            assert r.status_code == 403, (path, r.status_code, r.text[-500:])
            assert words in r.text, (path, r.text[-2000:])
    members = hub_site.api("GET", "/api/v1/projects/default/members").json()
    assert [m["role"] for m in members if m["email"] == email] == ["viewer"]
    assert hub_site.api("GET", f"/api/v1/projects/default/recipients/eve-{PID}").status_code == 404
