"""The integrations pages in a browser against a real ``tidings serve``: create a Slack
integration from its kind's schema form and test it against the Slack stand-in, validation errors
beside their field, two editors (the second save is refused), deleting one with pending deliveries,
and what a viewer sees."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cli_support import wait_until
from fake_slack import FakeSlack
from playwright.sync_api import expect
from ui_support import Background, Site, check_page, sign_in

_names = itertools.count(1)


def unique(stem: str) -> str:
    return f"{stem}-{os.getpid()}-{next(_names)}"


def make_webhook(site: Site, name: str, **settings: Any) -> None:
    """An integration set up through the API (admin token): a webhook to a closed local port."""
    r = httpx.post(site.url + "/api/v1/projects/default/integrations", timeout=30, headers={
        "Authorization": f"Bearer {site.token}", "If-Match": "*"}, json={"name": name, "kind": "webhook", "settings": {
            "url": "http://127.0.0.1:9/none", "allow_destinations": ["127.0.0.1"], **settings}})
    assert r.status_code == 201, r.text


@pytest.fixture
def slack(background: Background) -> Iterator[FakeSlack]:
    fake = FakeSlack()
    background.run(fake.start())
    yield fake
    background.run(fake.stop())


def test_an_admin_creates_a_slack_integration_and_tests_it(admin_page: Any, slack: FakeSlack,
                                                            background: Background) -> None:
    page = admin_page
    name = unique("slack")
    page.get_by_role("link", name="Integrations").click()
    expect(page.get_by_role("heading", name="Integrations")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="inbox")).to_be_visible()
    check_page(page, "integrations-list")
    page.get_by_role("link", name="New integration").click()
    page.get_by_role("link", name="slack", exact=True).click()
    expect(page.get_by_role("heading", name="New slack integration")).to_be_visible()
    page.get_by_label("Integration name").fill(name)
    page.get_by_label("token", exact=True).fill(slack.token)
    page.get_by_label("channel", exact=True).fill("#alerts")
    page.get_by_label("api_url").fill(slack.api_url)
    page.get_by_label("signing_secret", exact=True).fill("8f742231b10e8888abcd99yyyzzz85a5")
    page.get_by_text("Delivery and network settings").click()
    page.get_by_label("allow_destinations").fill("127.0.0.1")
    check_page(page, "integrations-new")
    page.get_by_role("button", name="Create integration").click()
    page.wait_for_url(re.compile(rf"/integrations/{name}$"))
    expect(page.get_by_role("status").filter(has_text=f"Integration {name} created")).to_be_visible()
    # The token is a secret: entered once, shown masked, never given back to the page.
    expect(page.locator("#h-f-s-token")).to_contain_text("set (masked")
    assert slack.token not in page.content()
    # The test goes to the stand-in and its result is shown in place.
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#test-result")).to_contain_text("Test delivered")
    assert background.run(slack.wait_for("auth.test", 1))
    assert re.search(rf"/integrations/{name}$", page.url)  # swapped in place, no navigation
    check_page(page, "integrations-configure")
    # The receiving side: a Slack app posts to the webhook URL, which the page gives to copy.
    expect(page.locator("#hook-url")).to_have_value(re.compile(rf"/hooks/{name}$"))
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    expect(page.get_by_role("definition").filter(has_text="stored as ${vault:default/" + name + "/signing_secret}")
           ).to_be_visible()
    assert "8f742231b10e8888abcd99yyyzzz85a5" not in page.content()


def test_a_validation_error_is_shown_beside_its_field(admin_page: Any) -> None:
    page = admin_page
    name = unique("badslack")
    page.goto("/ui/p/default/new-integration?kind=slack")
    page.get_by_label("Integration name").fill(name)
    page.get_by_label("token", exact=True).fill("not-a-bot-token-1234")
    page.get_by_label("channel", exact=True).fill("#alerts")
    page.get_by_role("button", name="Create integration").click()
    token = page.get_by_label("token", exact=True)
    expect(token).to_have_attribute("aria-describedby", "h-f-s-token")
    expect(page.locator("#h-f-s-token")).to_contain_text("a bot token starts with 'xoxb-'")
    expect(page.get_by_label("Integration name")).to_have_value(name)  # what they typed stays (but the secret)
    expect(page.get_by_label("channel", exact=True)).to_have_value("#alerts")
    assert "not-a-bot-token-1234" not in page.content()
    check_page(page, "integrations-new-invalid")


def test_two_editors_the_second_save_is_refused(browser: Any, hub_site: Site) -> None:
    name = unique("hook")
    make_webhook(hub_site, name)
    pages = []
    for _ in range(2):
        context = browser.new_context(base_url=hub_site.url, viewport={"width": 1280, "height": 900})
        pg = context.new_page()
        sign_in(pg, hub_site.email, hub_site.password)
        pg.goto(f"/ui/p/default/integrations/{name}")
        pages.append(pg)
    first, second = pages
    first.get_by_label("description").fill("changed by the first editor")
    first.get_by_role("button", name="Save settings").click()
    expect(first.get_by_role("status").filter(has_text=f"Saved: {name}")).to_be_visible()
    second.get_by_label("description").fill("changed by the second editor")
    second.get_by_role("button", name="Save settings").click()
    expect(second.get_by_role("alert")).to_contain_text("Changed by someone else meanwhile: reload")
    expect(second.get_by_role("alert").get_by_role("link", name="reload")).to_have_attribute("href", re.compile(name))
    expect(second.get_by_label("description")).to_have_value("changed by the second editor")
    r = hub_site.api("GET", f"/api/v1/projects/default/integrations/{name}")
    assert r.json()["settings"]["description"] == "changed by the first editor"
    for pg in pages:
        pg.context.close()


def test_deleting_an_integration_with_pending_deliveries_says_what_ends(admin_page: Any, hub_site: Site) -> None:
    page = admin_page
    name = unique("held")
    make_webhook(hub_site, name)
    assert hub_site.api("POST", f"/api/v1/projects/default/integrations/{name}/disable").status_code == 200
    for n in range(2):
        r = hub_site.api("POST", "/api/v1/projects/default/messages", json={"title": f"held {n}", "to": [name]})
        assert r.status_code == 202, r.text
    page.goto(f"/ui/p/default/integrations/{name}?tab=deliveries")
    expect(page.get_by_role("row").filter(has_text="held 1")).to_be_visible()
    check_page(page, "integrations-logs")
    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading", name=f"Delete {name}?")).to_be_visible()
    expect(page.get_by_role("listitem").filter(has_text="It has 2 deliveries not finished")).to_be_visible()
    check_page(page, "integrations-delete")
    page.get_by_role("button", name=f"Delete {name}").click()
    expect(page.get_by_role("alert")).to_contain_text("has 2 deliveries not finished")
    page.get_by_role("button", name="Delete anyway (end 2 pending deliveries as dead)").click()
    page.wait_for_url(re.compile(r"/integrations$"))
    expect(page.get_by_role("status")).to_contain_text(f"Integration {name} deleted; 2 unfinished deliveries ended")
    expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)


def test_a_viewer_sees_the_integrations_but_cannot_change_them(page: Any, hub_site: Site, person: Any) -> None:
    name = unique("seen")
    make_webhook(hub_site, name, description="watched by viewers")
    sign_in(page, *person("viewer"))
    page.goto("/ui/p/default/integrations")
    expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="New integration")).to_have_count(0)
    page.get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=re.compile(name))).to_be_visible()
    expect(page.get_by_text("watched by viewers").first).to_be_visible()
    for button in ("Send test", "Disable", "Save settings", "Sync now"):
        expect(page.get_by_role("button", name=button)).to_have_count(0)
    expect(page.get_by_role("link", name="Delete…")).to_have_count(0)
    expect(page.locator("form.settings")).to_have_count(0)
    expect(page.locator("input[name^='s.'], textarea[name^='s.']")).to_have_count(0)
    check_page(page, "integrations-viewer")


def test_an_inbound_event_is_replayed_from_its_integrations_page(admin_page: Any, hub_site: Site) -> None:
    page = admin_page
    name = unique("am")
    r = httpx.post(hub_site.url + "/api/v1/projects/default/integrations", timeout=30, headers={
        "Authorization": f"Bearer {hub_site.token}", "If-Match": "*"},
        json={"name": name, "kind": "alertmanager", "settings": {"bearer": "am-bearer-token-123456"}})
    assert r.status_code == 201, r.text
    alert = {"version": "4", "status": "firing", "receiver": "tidings", "groupKey": "g", "alerts": [
        {"status": "firing", "labels": {"alertname": "DiskFull", "severity": "critical"}, "annotations": {},
         "startsAt": "2026-12-06T10:00:00Z", "fingerprint": "f00d"}]}
    r = httpx.post(f"{hub_site.url}/hooks/{name}", json=alert, timeout=30,
                   headers={"Authorization": "Bearer am-bearer-token-123456"})
    assert r.status_code == 200, r.text
    page.goto(f"/ui/p/default/integrations/{name}")
    expect(page.locator("#hook-url")).to_have_value(f"{hub_site.url}/hooks/{name}")
    expect(page.get_by_role("definition").filter(has_text=f"${{vault:default/{name}/bearer}}")).to_be_visible()
    page.get_by_role("link", name="Inbound events").click()
    page.get_by_role("button", name=re.compile("^Replay")).first.click()
    expect(page.get_by_role("status").filter(has_text="replayed")).to_be_visible()
    expect(page.get_by_role("link", name="Inbound events")).to_have_attribute("aria-current", "page")
    check_page(page, "integrations-events")


# -- the schema form, without a browser ----------------------------------------------------------------
SCHEMA = {
    "$defs": {"Policy": {"type": "object", "properties": {"base": {"type": "number"}}}},
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "description": "where to send"},
        "token": {"anyOf": [{"type": "string", "format": "password", "writeOnly": True}, {"type": "null"}],
                  "writeOnly": True, "format": "password", "default": None},
        "method": {"enum": ["POST", "PUT"], "type": "string", "default": "POST"},
        "verify": {"type": "boolean", "default": True},
        "burst": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        "timeout": {"anyOf": [{"anyOf": [{"type": "number"}, {"type": "string"}]}, {"type": "null"}]},
        "to": {"type": "array", "items": {"type": "string"}},
        "retry": {"$ref": "#/$defs/Policy", "default": {"base": 5.0}},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def test_each_setting_gets_the_input_its_schema_says() -> None:
    from tidings.ui import schema_form

    fs = {f.name: f for f in schema_form.fields(SCHEMA, {"retry"})}
    assert {n: (f.widget, f.parse) for n, f in fs.items()} == {
        "url": ("text", "str"), "token": ("password", "str"), "method": ("select", "str"),
        "verify": ("checkbox", "bool"), "burst": ("number", "int"), "timeout": ("text", "num-or-str"),
        "to": ("lines", "lines-str"), "retry": ("group", "group"), "headers": ("json", "json")}
    assert fs["url"].required and fs["token"].secret and fs["retry"].common and fs["verify"].checked
    assert fs["method"].options == ["POST", "PUT"] and fs["method"].value == "POST"
    [base] = fs["retry"].children  # an object with fields of its own: a group of inputs, its default theirs
    assert (base.name, base.input_name, base.id, base.widget, base.default) == (
        "retry.base", "s.retry.base", "f-s-retry-base", "number", 5.0)


def test_a_posted_form_makes_new_settings_and_a_merge_patch() -> None:
    from starlette.datastructures import ImmutableMultiDict

    from tidings.ui import schema_form

    fs = schema_form.fields(SCHEMA)
    form = ImmutableMultiDict({"s.url": "https://x.example", "s.token": "s3cret", "s.method": "POST",
                               "s.verify": "true",
                               "s.burst": "5", "s.timeout": "30s", "s.to": "a\n\n b \n", "s.retry.base": "5",
                               "s.headers": "{\"X\": \"1\"}"})
    settings, problems = schema_form.new_settings(fs, form)
    assert not problems
    assert settings == {"url": "https://x.example", "token": "s3cret", "burst": 5, "timeout": "30s", "to": ["a", "b"],
                        "headers": {"X": "1"}}  # defaults (method, verify) left out
    stored = {"url": "https://x.example", "token": {"set": True, "masked": "…cret"}, "burst": 5, "to": ["a"],
              "headers": {"X": "1"}}
    fs = schema_form.fields(SCHEMA, settings=stored)
    edit = ImmutableMultiDict({"s.url": "https://x.example", "s.token": "", "s.method": "PUT", "s.burst": "",
                               "s.timeout": "", "s.to": "a\nc", "s.retry.base": "1", "s.headers": "{\"X\": \"1\"}"})
    patch, problems = schema_form.merge_patch(fs, edit, stored)
    # the secret left empty is kept; an emptied field is removed; the checkbox unticked turns it off
    assert patch == {"method": "PUT", "verify": False, "burst": None, "to": ["a", "c"], "retry": {"base": 1}}
    patch, problems = schema_form.merge_patch(fs, ImmutableMultiDict({"s.headers": "{nope", "clear.token": "true"}),
                                              stored)
    assert problems["headers"].startswith("not JSON") and patch["token"] is None
    # a group emptied removes the object; one unchanged is left alone
    stored["retry"] = {"base": 2}
    fs = schema_form.fields(SCHEMA, settings=stored)
    assert schema_form.merge_patch(fs, ImmutableMultiDict({"s.retry.base": ""}), stored)[0]["retry"] is None
    assert "retry" not in schema_form.merge_patch(fs, ImmutableMultiDict({"s.retry.base": "2"}), stored)[0]


def test_the_apis_problems_are_placed_beside_their_fields() -> None:
    from tidings.ui import schema_form

    fs = schema_form.fields(SCHEMA)
    by_field, rest = schema_form.place([
        "integrations.hook.token: a bot token starts with 'xoxb-'", "integrations.hook.retry.base: too small",
        "body.name: String should match pattern", "integrations.hook: set exactly one of token or url",
        "integrations.hook.nope: unknown"], fs)
    assert by_field == {"token": "token: a bot token starts with 'xoxb-'", "retry.base": "retry.base: too small",
                        "name": "String should match pattern"}
    assert rest == ["integrations.hook: set exactly one of token or url", "integrations.hook.nope: unknown"]


def test_sync_settings_are_fields_and_sync_now_runs_it(admin_page: Any, background: Background) -> None:
    from peers.github_api import GitHubAPI

    github = GitHubAPI(tokens={"ghp_uitesttoken0001"})
    background.run(github.start())
    try:
        github.open_issue("octo/ui", "Broken login page")
        page = admin_page
        name = unique("gh")
        page.goto("/ui/p/default/new-integration?kind=github")
        page.get_by_label("Integration name").fill(name)
        page.get_by_label("token", exact=True).fill("ghp_uitesttoken0001")
        page.get_by_label("api_url").fill(github.url)
        page.get_by_label("sync.repository").fill("octo/ui")
        page.get_by_label("sync.create").select_option("import")
        page.get_by_label("sync.interval").fill("1h")
        page.get_by_text("Delivery and network settings").click()
        page.get_by_label("allow_destinations").fill("127.0.0.1")
        page.get_by_role("button", name="Create integration").click()
        page.wait_for_url(re.compile(rf"/integrations/{name}$"))
        expect(page.get_by_label("sync.interval")).to_have_value("1h")
        page.get_by_role("button", name="Sync now").click()
        expect(page.get_by_role("status").filter(has_text=f"Sync of {name} started")).to_be_visible()
        expect(page.get_by_role("link", name="Sync runs")).to_have_attribute("aria-current", "page")
        run = page.get_by_role("row").filter(has_text="manual")  # it goes on in the background; the table follows
        expect(run.get_by_role("cell").nth(2)).to_have_text("ok", timeout=30_000)

        def created() -> int | None:
            """Tasks created by all the runs shown, once none is running. A new integration also gets
            a first sweep at once: the issue is imported by that run or by ours, whichever came first."""
            page.reload()
            if page.locator("#sync-runs .s-running").count():
                return None
            return sum(int(n) for n in page.locator("#sync-runs tbody tr td:nth-child(4)").all_inner_texts())

        wait_until(lambda: created() == 1, what="the one issue imported as a task, once")
    finally:
        background.run(github.stop())
