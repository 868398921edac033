"""Messages, deliveries and Send in a real browser against ``tidings serve``: send a message and
watch it turn delivered without a reload; a peer that fails leaves a dead delivery, retried once
it is back (one by one and all of an integration's at once); the preview shows each target as its
platform would; a viewer sees everything but no button that changes anything."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cli_support import wait_until
from playwright.sync_api import expect
from sink import Reply, Sink
from ui_support import Background, Site, check_page, sign_in

_names = itertools.count(1)
MESSAGES = "/api/v1/projects/default/messages"


def create_integration(site: Site, name: str, kind: str, settings: dict[str, Any]) -> None:
    r = httpx.post(f"{site.url}/api/v1/projects/default/integrations", timeout=30,
                   json={"name": name, "kind": kind, "settings": settings},
                   headers={"Authorization": f"Bearer {site.token}", "If-Match": "*"})
    assert r.status_code == 201, r.text


@pytest.fixture
def hook(hub_site: Site, background: Background) -> Iterator[tuple[str, Sink]]:
    """A webhook integration (its own name) to a sink on 127.0.0.1: two tries, 1 s apart."""
    sink = Sink()
    background.run(sink.start())
    name = f"hook-{next(_names)}-{os.getpid()}"
    create_integration(hub_site, name, "webhook", {"url": sink.url + "/hook", "allow_destinations": ["127.0.0.1"],
                                                   "retry": {"base": "1s", "cap": "1s", "max_attempts": 2}})
    yield name, sink
    background.run(sink.stop())


def send(site: Site, title: str, to: list[str]) -> str:
    r = site.api("POST", MESSAGES, json={"title": title, "to": to})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def dead(site: Site, message_id: str) -> Callable[[], bool]:
    def check() -> bool:
        found = site.api("GET", f"{MESSAGES}/{message_id}").json()
        return all(d["status"] == "dead" for d in found["deliveries"])
    return check


def test_send_a_message_and_watch_it_turn_delivered(admin_page: Any, hub_site: Site, hook: tuple[str, Sink]) -> None:
    name, sink = hook
    sink.script(Reply(delay=2.5))  # slow enough to see it under way first
    page = admin_page
    page.get_by_role("link", name="Send", exact=True).click()
    page.get_by_label("Title").fill("Disk almost full")
    page.get_by_label("Body").fill("db-1: 93% used")
    page.get_by_label("Priority").select_option("high")
    page.get_by_label("To", exact=True).select_option([name])
    page.get_by_label("Labels").fill("service=db\nteam=ops")
    page.get_by_role("button", name="Preview").click()
    preview = page.get_by_role("region", name=re.compile(name))
    expect(preview).to_contain_text('"title": "Disk almost full"')
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_url(re.compile(r"/messages/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Disk almost full")
    expect(page.get_by_role("status")).to_contain_text("1 delivery under way")
    page.evaluate("window.stayed = true")
    state = page.locator("#message-state")
    expect(state.get_by_role("cell", name=name)).to_be_visible()
    expect(state.locator(".badge.s-delivered")).to_be_visible(timeout=20_000)
    assert page.evaluate("window.stayed === true"), "the page was reloaded"
    expect(page.get_by_role("button", name="Acknowledge")).to_be_visible()
    check_page(page, "messages-message")
    received = sink.received[-1].json()["data"]
    assert received["title"] == "Disk almost full" and received["labels"] == {"service": "db", "team": "ops"}

    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status")).to_have_text("Acknowledged")
    expect(page.locator("#message-state")).to_contain_text("Acknowledged")


def test_a_dead_delivery_is_retried_once_the_peer_is_back(admin_page: Any, hub_site: Site,
                                                          hook: tuple[str, Sink]) -> None:
    name, sink = hook
    sink.default = Reply(500)
    first, second = send(hub_site, "Broken peer 1", [name]), send(hub_site, "Broken peer 2", [name])
    page = admin_page
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"/ui/p/default/messages/{first}")
    expect(page.locator("#message-state .badge.s-dead")).to_be_visible(timeout=20_000)  # without a reload
    expect(page.locator("#message-state")).to_contain_text("500")
    tries = page.locator("#message-state details.attempts").get_by_role("row")
    expect(tries).to_have_count(3)  # the header, then each failed attempt with the peer's status
    expect(tries.nth(1)).to_contain_text(re.compile(r"retry\s*500"))
    expect(tries.nth(2)).to_contain_text(re.compile(r"dead\s*500"))
    wait_until(dead(hub_site, second), timeout=20, what="the second delivery dead")

    page.goto(f"/ui/p/default/integrations/{name}?tab=deliveries")  # the integration's log says so too
    expect(page.get_by_role("row").filter(has_text="Broken peer 1")).to_contain_text("2 failed attempts: 500, 500")
    check_page(page, "messages-integration-deliveries")

    page.goto(f"/ui/p/default/messages?status=dead&integration={name}")
    rows = page.get_by_role("row")
    expect(rows.filter(has_text="Broken peer 1")).to_contain_text("1 dead")
    expect(rows.filter(has_text="Broken peer 2")).to_contain_text("1 dead")
    check_page(page, "messages-list")

    sink.default = Reply(200)
    page.get_by_role("link", name="Broken peer 1").click()
    page.get_by_role("button", name="Retry", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Sent again")
    expect(page.locator("#message-state .badge.s-delivered")).to_be_visible(timeout=20_000)
    expect(tries).to_have_count(4)  # the history stays: retry, dead, then the delivered attempt
    expect(tries.nth(3)).to_contain_text("delivered")
    check_page(page, "messages-attempts")
    page.get_by_role("link", name=f"The request to {name}").click()  # what the peer was sent, rendered again
    expect(page.get_by_role("heading", level=1)).to_have_text(f"The request to {name}")
    expect(page.get_by_role("region", name=re.compile(name))).to_contain_text('"title": "Broken peer 1"')
    check_page(page, "messages-request")
    page.go_back()

    page.goto(f"/ui/p/default/messages?integration={name}")  # after the outage: the rest at once
    page.get_by_label("Integration").nth(1).select_option(name)
    page.get_by_role("button", name="Retry all dead").click()
    expect(page.get_by_role("status")).to_have_text(f"Sent 1 dead delivery of {name} again")
    row = page.get_by_role("row").filter(has_text="Broken peer 2")
    expect(row).to_contain_text("1 delivered", timeout=20_000)  # the list follows while it is under way


def test_the_preview_shows_each_target_as_its_platform_would(admin_page: Any, hub_site: Site) -> None:
    n = f"{next(_names)}-{os.getpid()}"
    mail, chat, cards = f"mail-{n}", f"chat-{n}", f"cards-{n}"
    create_integration(hub_site, mail, "email", {"host": "smtp.example.com", "from_address": "hub@example.com",
                                                 "to": ["ops@example.com"]})
    create_integration(hub_site, chat, "slack", {"webhook_url": "https://hooks.slack.com/services/T0/B0/abc"})
    create_integration(hub_site, cards, "teams", {"webhook_url": "https://prod-00.westeurope.logic.azure.com/workflows/"
                                                  "0123456789abcdef/triggers/manual/paths/invoke?sig=abc"})
    page = admin_page
    page.goto("/ui/p/default/send")
    page.get_by_label("Title").fill("Deploy finished")
    page.get_by_label("Body").fill("**api** v2.3 is *live*")
    page.get_by_label("Format").select_option("markdown")
    page.get_by_label("To", exact=True).select_option([mail, chat, cards])
    page.get_by_role("button", name="Preview").click()

    email = page.get_by_role("region", name=re.compile(mail))
    expect(email).to_contain_text("Deploy finished")
    frame = page.frame_locator(f"section:has(h3:text('{mail}')) iframe")
    expect(frame.locator("body")).to_contain_text("v2.3 is live")
    assert page.locator("iframe").first.get_attribute("sandbox") == ""  # no script, no same origin
    # styled as a mail program shows it: the page's policy allows exactly the email's inline styles
    assert frame.locator("h1").evaluate("el => getComputedStyle(el).fontSize") == "20px"
    expect(page.get_by_role("region", name=re.compile(chat))).to_contain_text('"type": "section"')
    expect(page.get_by_role("region", name=re.compile(cards))).to_contain_text('"type": "AdaptiveCard"')
    expect(page.get_by_label("Title")).to_have_value("Deploy finished")  # the form keeps what was typed
    check_page(page, "messages-send")

    page.get_by_label("Title").fill("")
    page.get_by_role("button", name="Preview").click()  # the browser insists on a title
    assert page.get_by_label("Title").evaluate("el => !el.validity.valid")


def test_a_scheduled_message_can_be_cancelled(admin_page: Any, hub_site: Site, hook: tuple[str, Sink]) -> None:
    name, _ = hook
    page = admin_page
    page.goto("/ui/p/default/send")
    page.get_by_label("Title").fill("Maintenance tonight")
    page.get_by_label("To", exact=True).select_option([name])
    page.get_by_label("Or after").fill("2h")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Scheduled for")
    expect(page.locator("#message-state .badge.s-scheduled")).to_be_visible()
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel sending").click()
    expect(page.get_by_role("status")).to_contain_text("Cancelled")
    expect(page.locator("#message-state .badge.s-cancelled")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel sending")).to_have_count(0)


def test_a_viewer_sees_messages_but_no_button_that_changes_them(page: Any, hub_site: Site, hook: tuple[str, Sink],
                                                                person: Callable[[str], tuple[str, str]]) -> None:
    name, sink = hook
    sink.default = Reply(500)
    message_id = send(hub_site, "Seen by a viewer", [name])
    wait_until(dead(hub_site, message_id), timeout=20, what="its delivery dead")
    sign_in(page, *person("viewer"))
    expect(page.get_by_role("link", name="Messages")).to_be_visible()
    expect(page.get_by_role("link", name="Send", exact=True)).to_have_count(0)
    page.goto("/ui/p/default/messages")
    expect(page.get_by_role("link", name="Seen by a viewer")).to_be_visible()
    expect(page.get_by_role("button", name="Retry all dead")).to_have_count(0)
    expect(page.get_by_role("link", name="Send a message")).to_have_count(0)
    page.get_by_role("link", name="Seen by a viewer").click()
    expect(page.locator("#message-state .badge.s-dead")).to_be_visible()
    expect(page.get_by_role("button")).to_have_count(1)  # only Sign out
    page.goto("/ui/p/default/send")  # by its address: a viewer may preview, not send
    page.get_by_label("Title").fill("Only a look")
    page.get_by_label("To", exact=True).select_option([name])
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("region", name=re.compile(name))).to_contain_text('"title": "Only a look"')
    expect(page.get_by_role("button", name="Send", exact=True)).to_have_count(0)
    # The API refuses what the page doesn't offer, should a viewer post it anyway.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    r = page.request.post(f"/ui/p/default/messages/{message_id}/ack", form={"csrf_token": token}, max_redirects=0)
    assert r.status == 403
