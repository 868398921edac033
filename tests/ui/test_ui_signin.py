"""Signing in and out of the web UI in a real browser, and what a page shows to whom."""

from __future__ import annotations

import re
from typing import Any

from ui_support import Site, check_page, sign_in


def test_a_wrong_password_is_refused_and_the_right_one_opens_the_dashboard(page: Any, hub_site: Site) -> None:
    page.goto("/ui/p/default/")
    page.wait_for_url(re.compile(r"/ui/login\?next="))
    check_page(page, "login")
    page.get_by_label("Email").fill(hub_site.email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    assert "wrong email or password" in alert.inner_text().lower()
    page.get_by_label("Password").fill(hub_site.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/ui/p/default/$"))  # back where the person was going
    assert page.get_by_role("link", name="Integrations").is_visible()
    assert "site admin" in page.locator(".who").inner_text()
    check_page(page, "dashboard")


def test_sign_out_ends_the_session(page: Any, hub_site: Site) -> None:
    sign_in(page, hub_site.email, hub_site.password)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/ui/login"))
    page.goto("/ui/p/default/")
    page.wait_for_url(re.compile(r"/ui/login"))


def test_a_viewer_gets_no_send_link(page: Any, person: Any) -> None:
    email, password = person("viewer")
    sign_in(page, email, password)
    assert "viewer" in page.locator(".who").inner_text()
    nav = page.get_by_role("navigation", name="Sections")
    assert nav.get_by_role("link", name="Messages").is_visible()
    assert nav.get_by_role("link", name="Send").count() == 0
    assert nav.get_by_role("link", name="People").count() == 0


def test_the_menu_folds_on_a_phone(page: Any, hub_site: Site) -> None:
    sign_in(page, hub_site.email, hub_site.password)
    page.set_viewport_size({"width": 375, "height": 800})
    page.reload()
    nav = page.get_by_role("navigation", name="Sections")
    assert not nav.get_by_role("link", name="Integrations").is_visible()
    nav.get_by_text("Menu").click()
    assert nav.get_by_role("link", name="Integrations").is_visible()
