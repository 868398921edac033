"""A recipient's quiet hours in the browser: read as a list (not JSON), set through the form (days
ticked, start, end; a window added and removed; the policy per priority; the digest), the API's
422 words beside the field they name, 412 with the current values, a person setting their own and
another member refused with the API's words; the project's default on the recipients page."""

from __future__ import annotations

import os
import re
from typing import Any

import httpx
from playwright.sync_api import expect
from ui_support import Site, check_page, sign_in

PID = os.getpid()
SITE_YAML = """\
projects:
  default:
    quiet_hours:
      timezone: Europe/Berlin
      windows: [{days: weekends}]
      policy: {low: drop}
"""
API = "/api/v1/projects/default/recipients"


def _recipient(site: Site, name: str, **fields: Any) -> dict[str, Any]:
    r = site.api("POST", API, json={"name": name, "timezone": "Europe/Berlin", **fields})
    assert r.status_code == 201, r.text
    return r.json()


def _stored(site: Site, name: str) -> Any:
    return site.api("GET", f"{API}/{name}").json()["quiet_hours"]


def _window(page: Any, n: int) -> Any:
    return page.get_by_role("group", name=f"Window {n}", exact=True)


def _fill(page: Any, n: int, days: list[str], start: str, end: str) -> None:
    window = _window(page, n)
    for day in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"):
        window.get_by_label(day, exact=True).set_checked(day in days)
    window.get_by_label("Start").fill(start)
    window.get_by_label("End").fill(end)


WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri"]


def test_an_owner_sets_quiet_hours_and_the_api_returns_them(admin_page: Any, hub_site: Site) -> None:
    page, name = admin_page, f"ann-{PID}"
    _recipient(hub_site, name)
    page.goto(f"/ui/p/default/recipients/{name}")
    quiet = page.locator("#quiet")
    expect(quiet).to_contain_text("The project's apply")
    expect(quiet.locator(".quiet-windows li")).to_have_text(["Sat–Sun all day (Europe/Berlin)"])
    expect(quiet.locator("pre")).to_have_count(0)
    # The model's defaults: critical delivers, the others defer.
    expect(page.get_by_label("critical", exact=True)).to_have_value("deliver")
    expect(page.get_by_label("high", exact=True)).to_have_value("defer")
    _fill(page, 1, WEEKDAYS, "22:00", "07:00")
    page.get_by_role("button", name="Add a window").click()  # htmx: the section again, one more row
    expect(_window(page, 2)).to_be_visible()
    expect(_window(page, 1).get_by_label("Start")).to_have_value("22:00")  # what was entered stays
    expect(_window(page, 1).get_by_label("Fri", exact=True)).to_be_checked()
    _fill(page, 2, ["Sat", "Sun"], "23:00", "09:00")
    page.get_by_label("high", exact=True).select_option("deliver")
    page.get_by_label(re.compile("^Digest")).check()
    page.get_by_role("button", name="Set quiet hours").click()
    expect(page.get_by_role("status")).to_contain_text(f"Quiet hours of {name} saved")
    assert _stored(hub_site, name) == {
        "windows": [{"days": "mon-fri", "start": "22:00", "end": "07:00"},
                    {"days": "sat-sun", "start": "23:00", "end": "09:00"}],
        "policy": {"high": "deliver"}, "digest": True}
    expect(quiet).to_contain_text(f"{name}'s own")
    expect(quiet.locator(".quiet-windows li")).to_have_text(
        ["Mon–Fri 22:00–07:00 (Europe/Berlin)", "Sat–Sun 23:00–09:00 (Europe/Berlin)"])
    expect(quiet.locator("dl")).to_contain_text("deliver: sent at once")
    check_page(page, "quiet-hours-recipient")
    # Remove the second window; then back to the project's.
    _window(page, 2).get_by_label("Remove window 2").check()
    page.get_by_role("button", name="Set quiet hours").click()
    expect(page.get_by_role("status")).to_contain_text("saved")
    assert [w["days"] for w in _stored(hub_site, name)["windows"]] == ["mon-fri"]
    page.get_by_role("button", name="Use the project's").click()
    expect(page.get_by_role("status")).to_contain_text(f"{name} has the project's quiet hours again")
    assert _stored(hub_site, name) is None
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Recipients").click()
    expect(page.locator("main")).to_contain_text("What applies to each recipient without their own")
    expect(page.locator("main .quiet-windows li")).to_have_text(["Sat–Sun all day"])
    expect(page.locator("main dl")).to_contain_text("drop: recorded, not sent")
    check_page(page, "quiet-hours-recipients")


def test_a_bad_form_shows_the_apis_words_beside_the_field_and_keeps_what_was_entered(
    admin_page: Any, hub_site: Site
) -> None:
    page, name = admin_page, f"bob-{PID}"
    _recipient(hub_site, name)
    page.goto(f"/ui/p/default/recipients/{name}")
    _fill(page, 1, ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], "00:00", "00:00")
    page.get_by_role("button", name="Set quiet hours").click()
    expect(page.locator("#h-windows")).to_contain_text("these windows cover the whole week")
    expect(_window(page, 1).get_by_label("Sun", exact=True)).to_be_checked()
    check_page(page, "quiet-hours-invalid")
    _fill(page, 1, [], "22:00", "07:00")  # no day ticked
    page.get_by_role("button", name="Set quiet hours").click()
    expect(_window(page, 1).locator(".help")).to_contain_text("days '': write 'daily'")
    expect(_window(page, 1).get_by_label("Start")).to_have_value("22:00")
    expect(_window(page, 1).get_by_label("End")).to_have_value("07:00")
    _fill(page, 1, ["Tue"], "22:00", "22:00")
    page.get_by_label("Time zone of the windows").fill("Mars/Olympus")
    page.get_by_role("button", name="Set quiet hours").click()
    expect(page.locator("#h-zone")).to_contain_text("unknown time zone 'Mars/Olympus'")
    expect(page.get_by_label("Time zone of the windows")).to_have_value("Mars/Olympus")
    page.get_by_label("Time zone of the windows").fill("Europe/Berlin")
    page.get_by_role("button", name="Set quiet hours").click()
    expect(_window(page, 1).locator(".help")).to_contain_text("window 22:00–22:00 starts when it ends")
    assert _stored(hub_site, name) is None


def test_a_person_sets_their_own_and_another_member_is_refused(page: Any, hub_site: Site, person: Any) -> None:
    email, password = person("viewer")
    name = f"vic-{PID}"
    _recipient(hub_site, name, user=email)
    sign_in(page, email, password)
    page.goto(f"/ui/p/default/recipients/{name}")
    assert page.get_by_role("button", name=re.compile("^Delete")).count() == 0  # not an owner
    _fill(page, 1, ["Tue"], "20:00", "06:00")
    page.get_by_label("Time zone of the windows").fill("America/New_York")
    page.get_by_role("button", name="Set quiet hours").click()
    expect(page.get_by_role("status")).to_contain_text(f"Quiet hours of {name} saved")
    got = hub_site.api("GET", f"{API}/{name}").json()
    assert (got["quiet_hours"], got["timezone"]) == (
        {"windows": [{"days": "tue", "start": "20:00", "end": "06:00"}], "policy": {}, "digest": False},
        "America/New_York")
    expect(page.locator("#quiet .quiet-windows li")).to_have_text(["Tue 20:00–06:00 (America/New_York)"])

    other, other_password = person("member")
    with httpx.Client(base_url=hub_site.url, timeout=30) as client:
        r = client.post("/ui/login", data={"email": other, "password": other_password, "next": "/ui/"},
                        headers={"Origin": hub_site.url})
        assert r.status_code == 303, r.text
        text = client.get(f"/ui/p/default/recipients/{name}").text
        assert "Tue 20:00–06:00 (America/New_York)" in text and "/quiet-hours" not in text  # reads, no form
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)  # type: ignore[union-attr]
        r = client.post(f"/ui/p/default/recipients/{name}/quiet-hours",
                        data={"csrf_token": csrf, "version": "*", "rows": "1", "w0_days": "mon", "w0_start": "09:00",
                              "w0_end": "10:00", "action": "save"})
        assert r.status_code == 403 and "this needs the permission &#39;recipient:write&#39;" in r.text, r.text[-2000:]
    assert hub_site.api("GET", f"{API}/{name}").json()["quiet_hours"]["windows"][0]["days"] == "tue"


def test_a_change_meanwhile_is_412_with_the_current_values(admin_page: Any, hub_site: Site) -> None:
    page, name = admin_page, f"max-{PID}"
    _recipient(hub_site, name)
    page.goto(f"/ui/p/default/recipients/{name}")
    _fill(page, 1, WEEKDAYS, "19:00", "08:00")
    meanwhile = {"windows": [{"days": "sun", "start": "10:00", "end": "12:00"}]}
    r = hub_site.api("PATCH", f"{API}/{name}", json={"quiet_hours": meanwhile}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    with page.expect_response(lambda resp: resp.request.method == "POST") as answer:
        page.get_by_role("button", name="Set quiet hours").click()
    assert answer.value.status == 412
    expect(page.get_by_role("alert")).to_contain_text(f"Someone changed {name} meanwhile")
    expect(_window(page, 1).get_by_label("Sun", exact=True)).to_be_checked()  # the current values
    expect(_window(page, 1).get_by_label("Mon", exact=True)).not_to_be_checked()
    expect(_window(page, 1).get_by_label("Start")).to_have_value("10:00")
    expect(page.locator("#quiet .quiet-windows li")).to_have_text(["Sun 10:00–12:00 (Europe/Berlin)"])
    _fill(page, 1, WEEKDAYS, "19:00", "08:00")
    page.get_by_role("button", name="Set quiet hours").click()
    expect(page.get_by_role("status")).to_contain_text("saved")
    assert _stored(hub_site, name)["windows"] == [{"days": "mon-fri", "start": "19:00", "end": "08:00"}]


def test_without_javascript_a_window_is_added_by_submitting(browser: Any, hub_site: Site) -> None:
    name = f"noa-{PID}"
    _recipient(hub_site, name, quiet_hours={"windows": [{"days": "weekdays", "start": "18:00", "end": "24:00"}]})
    context = browser.new_context(base_url=hub_site.url, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, hub_site.email, hub_site.password)
        page.goto(f"/ui/p/default/recipients/{name}")
        expect(_window(page, 1).get_by_label("End")).to_have_value("00:00")  # 24:00: the end of the day
        expect(_window(page, 2)).to_be_visible()  # the empty row
        _fill(page, 2, ["Sat"], "", "")
        page.get_by_role("button", name="Add a window").click()
        expect(_window(page, 3)).to_be_visible()
        expect(_window(page, 2).get_by_label("Sat", exact=True)).to_be_checked()
        _fill(page, 3, ["Sun"], "08:00", "10:00")
        page.get_by_role("button", name="Set quiet hours").click()
        expect(page.get_by_role("status")).to_contain_text("saved")
    finally:
        context.close()
    assert _stored(hub_site, name)["windows"] == [{"days": "mon-fri", "start": "18:00", "end": "00:00"},
                                                  {"days": "sat", "start": "00:00", "end": "24:00"},
                                                  {"days": "sun", "start": "08:00", "end": "10:00"}]
