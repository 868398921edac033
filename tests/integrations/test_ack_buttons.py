"""Emails and Teams cards of critical and high messages carry an Acknowledge link when the hub
can sign one (``Context.ack_link``); other messages, and hubs without a secret key, carry none.
The link is issued at the delivery's creation, so a retry sends the same bytes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from helpers import local_context

from tidings import Message, Priority
from tidings.config import parse_config
from tidings.integrations.base import Attempt
from tidings.integrations.email import EmailNotifier
from tidings.integrations.teams import TeamsNotifier

WORKFLOW = "https://prod-00.westeurope.logic.azure.com/workflows/0123456789abcdef0123456789abcdef/triggers/manual/paths/invoke?sig=abcdefghijklmnopqrstuvwxyz0123456789"


def links(message_id: str, issued_at: float, via: str) -> str:
    return f"https://tidings.example.com/l/ack/{message_id}.{int(issued_at)}?via={via}"


def email(ack: Any = links) -> EmailNotifier:
    settings = parse_config({"integrations": {"mail": {
        "kind": "email", "host": "smtp.example.com", "from_address": "alerts@example.com", "to": ["ops@example.com"],
        "username": "u", "password": "p"}}}).integrations["mail"]
    return EmailNotifier("mail", settings, replace(local_context(), ack_link=ack))


def teams(ack: Any = links) -> TeamsNotifier:
    settings = parse_config({"integrations": {"chat": {"kind": "teams", "webhook_url": WORKFLOW}}}).integrations["chat"]
    return TeamsNotifier("chat", settings, replace(local_context(), ack_link=ack))


def attempt(priority: Priority) -> Attempt:
    return Attempt("d-1", "m-1", 1, 1_700_000_000.0, Message("db down", priority=priority))


def test_a_critical_or_high_email_carries_the_link_in_both_parts() -> None:
    for priority in (Priority.CRITICAL, Priority.HIGH):
        a = attempt(priority)
        n = email()
        built = n.build(n.render(a.message), a)
        text = built.get_body(("plain",)).get_content()
        markup = built.get_body(("html",)).get_content()
        url = links("m-1", 1_700_000_000.0, "email")
        assert f"\nAcknowledge: {url}\n" in text
        assert f'href="{url.replace("&", "&amp;")}"' in markup and ">Acknowledge</a>" in markup
        assert bytes(n.build(n.render(a.message), a)) == bytes(built)  # a retry: the same bytes
        assert "(a signed link)" in n.preview(n.render(a.message))["text"]


def test_no_link_for_other_priorities_or_without_a_key() -> None:
    for n, priority in ((email(), Priority.MEDIUM), (email(lambda *_: None), Priority.CRITICAL), (email(None), Priority.HIGH)):
        a = attempt(priority)
        built = n.build(n.render(a.message), a)
        for part in ("plain", "html"):
            content = built.get_body((part,)).get_content()
            assert "Acknowledge" not in content and "\u2060" not in content


def test_a_critical_teams_card_gets_an_acknowledge_button_and_others_none() -> None:
    import orjson

    n = teams()
    a = attempt(Priority.CRITICAL)
    card = orjson.loads(n.body(n.render(a.message), a))["attachments"][0]["content"]
    [button_set] = [i for i in card["body"][0]["items"] if i.get("id") == "tidings-ack"]
    assert button_set["actions"] == [{"type": "Action.OpenUrl", "title": "Acknowledge",
                                      "url": links("m-1", 1_700_000_000.0, "teams")}]
    for n, priority in ((teams(), Priority.LOW), (teams(lambda *_: None), Priority.HIGH), (teams(None), Priority.CRITICAL)):
        a = attempt(priority)
        card = orjson.loads(n.body(n.render(a.message), a))["attachments"][0]["content"]
        assert not [i for i in card["body"][0]["items"] if i.get("id") == "tidings-ack"]


def test_a_full_critical_card_still_fits_with_its_button() -> None:
    n = teams()
    message = Message("db down", body="x" * 40_000, priority=Priority.CRITICAL)
    a = Attempt("d-1", "m-1", 1, 1_700_000_000.0, message)
    assert len(n.body(n.render(message), a)) <= n.settings.max_bytes
