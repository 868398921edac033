"""The dashboard in a real browser against ``tidings serve``: its figures (waiting, dead, delivered,
integrations in trouble) follow what happens without a reload, and the dead count leads to the
dead deliveries."""

from __future__ import annotations

import os
import re
from typing import Any

import httpx
from playwright.sync_api import expect
from sink import Reply, Sink
from ui_support import Background, Site, check_page


def test_the_dashboard_counts_deliveries_and_follows_an_outage_live(admin_page: Any, hub_site: Site,
                                                                    background: Background) -> None:
    sink = Sink()
    sink.default = Reply(500)
    background.run(sink.start())
    name = f"board-{os.getpid()}"
    r = httpx.post(f"{hub_site.url}/api/v1/projects/default/integrations", timeout=30, json={
        "name": name, "kind": "webhook", "settings": {"url": sink.url + "/hook", "allow_destinations": ["127.0.0.1"],
                                                      "retry": {"base": "1s", "cap": "1s", "max_attempts": 2}}},
        headers={"Authorization": f"Bearer {hub_site.token}", "If-Match": "*"})
    assert r.status_code == 201, r.text
    page = admin_page
    page.goto("/ui/p/default/")
    dead = page.locator("[data-figure=dead]")
    before = int(dead.inner_text())
    page.evaluate("window.stayed = true")

    r = hub_site.api("POST", "/api/v1/projects/default/messages", json={"title": "Into the outage", "to": [name]})
    assert r.status_code == 202, r.text
    expect(dead).to_have_text(str(before + 1), timeout=30_000)  # polled every 5 s
    trouble = page.get_by_role("row").filter(has_text=name)
    expect(trouble).to_contain_text("failing")
    expect(trouble).to_contain_text("500")
    expect(page.get_by_role("img", name=re.compile("Deliveries per minute"))).to_be_visible()
    expect(page.get_by_role("list", name="Last hour by status")).to_contain_text("dead")
    assert page.evaluate("window.stayed === true"), "the page was reloaded"
    check_page(page, "dashboard")

    dead.click()
    page.wait_for_url(re.compile(r"/messages\?status=dead$"))
    expect(page.get_by_role("row").filter(has_text="Into the outage")).to_contain_text("1 dead")
    background.run(sink.stop())
