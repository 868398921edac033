"""Acknowledging over HTTP: the signed links of emails and Teams cards (a confirmation page, then
a POST; no sign-in), the API's ``POST /messages/{id}/ack`` (``message:ack``), and ``tidings ack``.
An acknowledgement stops the message's escalation; a bad link is refused with a page saying why."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet
from people import cast
from sqlalchemy import select

from tidings import Message, Priority
from tidings.recipients.links import Unsubscribe, ack_url, unsubscribe_url
from tidings.store.tables import audit_log


@pytest.fixture
def secret_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("TIDINGS_SECRET_KEY", key)
    return key


def config(teams_url: str | None = None) -> dict[str, Any]:
    integrations: dict[str, Any] = {"ops": {"kind": "inbox"}, "pager": {"kind": "inbox"},
                                    "x-inbox": {"kind": "inbox", "project": "x"}}
    if teams_url:
        integrations["chat"] = {"kind": "teams", "webhook_url": teams_url}
    return {
        "integrations": integrations,
        "routes": [{"name": "db", "match": {"labels": {"team": "db"}}, "to": ["chat" if teams_url else "ops"],
                    "escalation": {"steps": [{"after": "10m", "to": ["pager"]}]}},
                   {"project": "x", "to": ["x-inbox"]}],
    }


def critical() -> Message:
    return Message("db down", priority=Priority.CRITICAL, labels={"team": "db"})


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def test_a_valid_link_shows_a_page_then_acknowledges_and_stops_the_escalation(
    make_api: Any, secret_key: str
) -> None:
    api = await make_api(config(), dispatch=False)
    receipt = await api.hub.notify(critical())
    link = path_of(ack_url(api.hub.signer(), api.url, receipt.id)) + "?via=email"

    page = await api.get(link, auth=False)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "db down" in page.text and '<form method="post">' in page.text and "Acknowledge</button>" in page.text
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    assert (await api.hub.message(receipt.id))["acks"] == []  # a GET (a mail scanner's) changes nothing

    done = await api.post(link, auth=False)
    assert done.status_code == 200 and "<h1" in done.text and "Acknowledged" in done.text
    message = await api.hub.message(receipt.id)
    assert [(a["by"], a["via"]) for a in message["acks"]] == [("link", "email")]
    assert message["escalation"]["status"] == "stopped"
    assert message["escalation"]["reason"].startswith("acknowledged by link via email at ")
    async with api.hub.store.read() as conn:
        [entry] = (await conn.execute(select(audit_log).where(audit_log.c.action == "ack"))).all()
    assert (entry.actor_name, entry.auth_method, entry.target, entry.ip) == (
        "ack link (email)", "link", f"message/{receipt.id}", "127.0.0.1")

    again = await api.post(link, auth=False)
    assert again.status_code == 200 and "Already acknowledged" in again.text
    assert "Already acknowledged" in (await api.get(link, auth=False)).text
    assert len((await api.hub.message(receipt.id))["acks"]) == 1


async def test_bad_links_are_refused_clearly_and_change_nothing(make_api: Any, secret_key: str) -> None:
    api = await make_api(config(), dispatch=False)
    receipt = await api.hub.notify(critical())
    signer = api.hub.signer()
    good = ack_url(signer, api.url, receipt.id).rsplit("/", 1)[1]
    body, mac = good.split(".")
    other_key = ack_url(type(signer)([Fernet.generate_key().decode()]), api.url, receipt.id).rsplit("/", 1)[1]
    unsubscribe = unsubscribe_url(signer, api.url, Unsubscribe("r1", "deploys", "email")).rsplit("/", 1)[1]
    expired = ack_url(signer, api.url, receipt.id, now=time.time() - 8 * 86400).rsplit("/", 1)[1]
    bad = {
        "forged": other_key,
        "altered": ("A" if body[0] != "A" else "B") + body[1:] + "." + mac,
        "bad mac": body + "." + mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB"),
        "unsubscribe": unsubscribe,
        "expired": expired,
        "garbage": "not-a-token",
        "huge": "a" * 3000 + "." + "b",
    }
    for what, token in bad.items():
        for method in ("GET", "POST"):
            r = await api.request(method, f"/l/ack/{token}", auth=False)
            assert r.status_code == 400, (what, method, r.status_code, r.text[:200])
            assert "This link does not work" in r.text, what
    assert "expired" in (await api.post(f"/l/ack/{expired}", auth=False)).text
    assert "something else" in (await api.post(f"/l/ack/{unsubscribe}", auth=False)).text
    nul = await api.post("/l/ack/abc%00def", auth=False)
    assert 400 <= nul.status_code < 500
    message = await api.hub.message(receipt.id)
    assert message["acks"] == [] and message["escalation"]["status"] == "waiting"


async def test_links_without_a_secret_key_are_refused(make_api: Any) -> None:
    api = await make_api(config(), dispatch=False)
    r = await api.post("/l/ack/abc.def", auth=False)
    assert r.status_code == 400 and "secret key" in r.text


async def test_a_link_to_a_message_that_is_gone_answers_404(make_api: Any, secret_key: str) -> None:
    api = await make_api(config(), dispatch=False)
    token = ack_url(api.hub.signer(), api.url, "0190f4c2-7d1e-7a00-8000-000000000001").rsplit("/", 1)[1]
    for method in ("GET", "POST"):
        r = await api.request(method, f"/l/ack/{token}", auth=False)
        assert r.status_code == 404 and "no longer exists" in r.text


async def test_the_api_acknowledges_once_within_its_project(make_api: Any) -> None:
    api = await make_api(config(), dispatch=False)
    tokens = await cast(api.hub.store, ["default"], "x")
    receipt = await api.hub.notify(critical())
    member = {"Authorization": f"Bearer {tokens['member']}"}

    r = await api.post(f"/api/v1/messages/{receipt.id}/ack", auth=False, headers=member)
    assert r.status_code == 200, r.text
    assert (r.json()["message_id"], r.json()["by"], r.json()["via"], r.json()["created"]) == (
        receipt.id, "member@example.com", "api", True)
    again = await api.post(f"/api/v1/messages/{receipt.id}/ack", auth=False, headers=member)
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["at"] == r.json()["at"]
    shown = (await api.get(f"/api/v1/messages/{receipt.id}")).json()
    assert shown["escalation"]["status"] == "stopped"
    assert shown["escalation"]["reason"].startswith("acknowledged by member@example.com via api at ")

    other = await api.hub.notify(critical())
    viewer = await api.post(f"/api/v1/messages/{other.id}/ack", auth=False,
                            headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert viewer.status_code == 403 and "message:ack" in viewer.json()["detail"]
    elsewhere = await api.post(f"/api/v1/projects/x/messages/{other.id}/ack", auth=False,
                               headers={"Authorization": f"Bearer {tokens['other owner']}"})
    assert elsewhere.status_code == 404  # another project's message is not found there
    assert (await api.post("/api/v1/messages/nothing/ack", auth=False, headers=member)).status_code == 404
    assert (await api.hub.message(other.id))["acks"] == []


async def test_a_critical_teams_card_carries_a_working_acknowledge_button(
    make_api: Any, teams: Any, secret_key: str
) -> None:
    api = await make_api(config(teams.workflow_url()))
    receipt = await api.hub.notify(critical())
    await api.hub.wait(receipt.id)
    card = teams.card_at(0)
    [ack_set] = [i for i in card["body"][0]["items"] if i.get("id") == "tidings-ack"]
    [button] = ack_set["actions"]
    assert (button["type"], button["title"]) == ("Action.OpenUrl", "Acknowledge")
    assert button["url"].startswith(f"{api.hub.config.server.base_url}/l/ack/") and button["url"].endswith("?via=teams")
    r = await api.post(path_of(button["url"]), auth=False)
    assert r.status_code == 200 and "Acknowledged" in r.text
    message = await api.hub.message(receipt.id)
    assert [(a["by"], a["via"]) for a in message["acks"]] == [("link", "teams")]
    assert message["escalation"]["status"] == "stopped"
    # A medium message's card has no button.
    medium = await api.hub.notify(Message("fyi", labels={"team": "db"}))
    await api.hub.wait(medium.id)
    assert not [i for i in teams.card_at(1)["body"][0]["items"] if i.get("id") == "tidings-ack"]
