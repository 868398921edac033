"""Planning ``@handles``: the router keeps them apart from integrations, the configuration accepts
them (and still refuses unknown integrations), each person gets one delivery per channel that can
address them, and a delivery is addressed (and given its unsubscribe link) at dispatch."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from helpers import local_context

from tidings import Message
from tidings.config import parse_config
from tidings.errors import ConfigError, UnknownIntegration
from tidings.integrations.email import EmailNotifier
from tidings.integrations.slack import SlackNotifier
from tidings.recipients.addressing import Addresser
from tidings.recipients.directory import Directory
from tidings.recipients.links import read_unsubscribe
from tidings.recipients.model import People, Person
from tidings.recipients.plan import addressable, plan_people
from tidings.routing import Addressees, Router
from tidings.security.signed import Signer
from tidings.security.vault import new_key

MAIL = {"kind": "email", "host": "smtp.example.com", "from_address": "t@example.com", "to": ["team@example.com"],
        "cc": ["boss@example.com"]}
BOT = {"kind": "slack", "token": "xoxb-1-2-abcdefghijklmnop", "channel": "#ops"}
HOOK = {"kind": "slack", "webhook_url": "https://hooks.slack.com/services/T0/B0/abcdefghijklmnopqrstuvwx"}

ADA = Person("id-ada", "default", "ada", "Ada Lovelace", email="ada@example.com", slack_user="U0ADA")
GRACE = Person("id-grace", "default", "grace", "Grace Hopper", email="grace@corp.example", slack_user="U0GRACE",
               prefs={("deploys", "mail"): False})
LINUS = Person("id-linus", "default", "linus", "Linus T")
PEOPLE = People("default", {"ada": ADA, "grace": GRACE, "linus": LINUS},
                {"oncall": ("ada", "grace"), "empty": ()})


def config(routes: list[dict[str, Any]], **integrations: Any) -> Any:
    return parse_config({"integrations": integrations or {"mail": MAIL, "chat": BOT}, "routes": routes})


def notifiers(cfg: Any) -> list[Any]:
    kinds = {"email": EmailNotifier, "slack": SlackNotifier}
    return [kinds[s.kind](name, s, local_context()) for name, s in cfg.integrations.items() if s.kind in kinds]


# -- the router and the configuration ------------------------------------------------------------
def test_the_router_keeps_handles_apart_from_integrations() -> None:
    cfg = config([{"name": "pager", "topic": "deploys", "to": ["chat", "@oncall", "@ada"]}])
    router = Router(cfg)
    routed = router.route(Message("x"))
    assert [t.integration for t in routed.targets] == ["chat"]
    assert routed.people == [Addressees(("@oncall", "@ada"), "pager", 300.0, "deploys")]
    assert router.targets(Message("x")) == routed.targets
    assert router.targets_of["pager"] == ["chat"]  # digests go to integrations only
    assert router.topic_of["pager"] == "deploys"


def test_continue_collects_the_people_of_every_matching_route() -> None:
    cfg = config([{"name": "a", "to": ["@ada"], "continue": True, "topic": "builds"},
                  {"name": "b", "to": ["mail", "@grace"]}])
    routed = Router(cfg).route(Message("x"))
    assert [(a.route, a.handles, a.topic) for a in routed.people] == [("a", ("@ada",), "builds"), ("b", ("@grace",), None)]
    assert [t.integration for t in routed.targets] == ["mail"]


def test_to_may_name_people_but_not_unknown_integrations() -> None:
    router = Router(config([{"to": ["chat"]}]))
    routed = router.route(Message("x"), to=["@ada", "mail"])
    assert [t.integration for t in routed.targets] == ["mail"]
    assert routed.people == [Addressees(("@ada",), None, 300.0)]
    with pytest.raises(UnknownIntegration, match="'nope'"):
        router.route(Message("x"), to=["@ada", "nope"])


def test_the_configuration_accepts_handles_in_routes_and_escalation_steps() -> None:
    cfg = config([{"to": ["@oncall"], "escalation": {"steps": [{"after": "10m", "to": ["@oncall-secondary", "mail"]}]}}])
    assert cfg.routes[0].escalation.steps[0].to == ["@oncall-secondary", "mail"]
    assert parse_config({"default": {"to": ["@oncall"]}}).default.to == ["@oncall"]


@pytest.mark.parametrize(("route", "problem"), [
    ({"to": ["@oncall", "mial"]}, "routes[0].to[1]: unknown integration 'mial' (did you mean 'mail'?)"),
    ({"to": ["@On Call"]}, "routes[0].to[0]: '@On Call' is not a recipient handle"),
    ({"to": ["mail"], "escalation": {"steps": [{"after": "5m", "to": ["@b", "pager"]}]}},
     "routes[0].escalation.steps[0].to[1]: unknown integration 'pager'"),
])
def test_the_configuration_still_refuses_what_names_no_integration(route: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config([route])
    assert problem in str(caught.value)


def test_an_escalation_step_may_not_name_another_projects_integration() -> None:
    with pytest.raises(ConfigError, match=r"escalation.steps\[0\].to\[0\]: integration 'other' belongs to project"):
        parse_config({"integrations": {"mail": MAIL, "other": {**MAIL, "project": "acme"}},
                      "routes": [{"to": ["mail"], "escalation": {"steps": [{"after": "5m", "to": ["other"]}]}}]})


# -- planning ------------------------------------------------------------------------------------
def test_each_person_gets_one_delivery_per_channel_that_reaches_them() -> None:
    cfg = config([], mail=MAIL, chat=BOT, hook=HOOK)
    channels = addressable(notifiers(cfg), "default")
    assert [c.name for c in channels] == ["mail", "chat", "hook"]
    named = [Addressees(("@oncall", "@ada", "@linus", "@nobody", "@empty", "@nobody"), "pager", 60.0, "deploys")]

    planned = plan_people(Message("x"), named, PEOPLE, channels, None)

    got = [(t.integration, t.recipient, t.status, t.reason) for t in planned]
    assert got == [
        ("mail", "id-ada", None, "to @oncall (Ada Lovelace) by route pager"),
        ("chat", "id-ada", None, "to @oncall (Ada Lovelace) by route pager"),
        ("mail", "id-grace", "suppressed", "grace turned off topic deploys for mail"),
        ("chat", "id-grace", None, "to @oncall (Grace Hopper) by route pager"),
        # the webhook can't DM: nobody is reached through it; Ada named again: nothing more
        ("@linus", "id-linus", "suppressed",
         "linus has no address on any of the project's integrations (named as @linus by route pager)"),
        ("@nobody", None, "suppressed", "@nobody names no recipient or group of project default"),
        ("@empty", None, "suppressed", "group @empty has no members"),
    ]
    assert all(t.cooldown == 60.0 and t.route == "pager" and t.group is None for t in planned)


def test_the_topic_label_wins_over_the_routes_topic() -> None:
    channels = addressable(notifiers(config([])), "default")
    named = [Addressees(("@grace",), "pager", 60.0, "deploys")]
    planned = plan_people(Message("x", labels={"topic": "builds"}), named, PEOPLE, channels, None)
    assert [t.status for t in planned] == [None, None]


def test_only_the_projects_integrations_address_its_people() -> None:
    cfg = parse_config({"integrations": {"mail": MAIL, "acme-mail": {**MAIL, "project": "acme"}}})
    assert [n.name for n in addressable(notifiers(cfg), "acme")] == ["acme-mail"]


def test_email_allowed_domains_limit_whom_it_reaches() -> None:
    (mail,) = notifiers(parse_config({"integrations": {"mail": {**MAIL, "allowed_domains": ["example.com"]}}}))
    assert mail.reaches(ADA) and not mail.reaches(GRACE) and not mail.reaches(LINUS)
    assert mail.address(Message("x"), GRACE) is None


# -- addressing ----------------------------------------------------------------------------------
def test_an_email_goes_to_the_person_alone() -> None:
    (mail,) = notifiers(parse_config({"integrations": {"mail": MAIL}}))
    shared = mail.render(Message("x"))
    assert shared.cc == ("boss@example.com",) and shared.to == ("team@example.com",)
    personal = mail.render(mail.address(Message("x"), ADA))
    assert (personal.to, personal.cc, personal.bcc, personal.recipients) == (("ada@example.com",), (), (), ("ada@example.com",))


def test_a_slack_dm_goes_to_the_user_id_in_a_thread_of_its_own() -> None:
    chat, hook = notifiers(parse_config({"integrations": {"chat": BOT, "hook": HOOK}}))
    sent = chat.address(Message("x", thread_key="disk:web-1", labels={"channel": "#elsewhere"}), ADA)
    assert sent.labels["channel"] == "U0ADA"
    assert sent.thread_key not in (None, "disk:web-1")
    assert sent.thread_key != chat.address(Message("x", thread_key="disk:web-1"), GRACE).thread_key
    assert chat.render(sent)["channel"] == "U0ADA"
    assert hook.address(Message("x"), ADA) is None and not hook.reaches(ADA)


def fake_hub(keys: list[str], people: list[Person], **projects: Any) -> Any:
    directory = Directory(None)  # type: ignore[arg-type]
    directory._set({"default": People("default", {p.name: p for p in people})})
    cfg = parse_config({"integrations": {"mail": MAIL, "chat": BOT},
                        "routes": [{"name": "pager", "topic": "deploys", "to": ["@ada"]}],
                        "server": {"public_url": "https://tidings.example.com"},
                        "projects": {"default": {"topics": {"security": {"required": True}}}}})
    return SimpleNamespace(directory=directory, config=cfg, router=Router(cfg), vault=SimpleNamespace(keys=keys))


def claimed(recipient: str | None, route: str | None = "pager") -> Any:
    return SimpleNamespace(id="d1", recipient=recipient, route=route)


def test_an_email_carries_a_signed_unsubscribe_link_for_a_topic_that_is_not_required() -> None:
    key = new_key()
    hub = fake_hub([key], [ADA])
    mail, chat = notifiers(hub.config)
    address = Addresser(hub)

    sent = address(mail, claimed("id-ada"), Message("x"))
    url = sent.labels["unsubscribe_url"]
    assert url.startswith("https://tidings.example.com/l/unsubscribe/")
    what = read_unsubscribe(Signer([key]), url.rsplit("/", 1)[1])
    assert (what.recipient, what.topic, what.channel) == ("id-ada", "deploys", "mail")
    assert sent.labels["email_to"] == "ada@example.com"

    assert "unsubscribe_url" not in address(mail, claimed("id-ada"), Message("x", labels={"topic": "security"})).labels
    assert "unsubscribe_url" not in address(mail, claimed("id-ada", route=None), Message("x")).labels  # no topic
    assert "unsubscribe_url" not in address(chat, claimed("id-ada"), Message("x")).labels  # only where it is read
    assert "unsubscribe_url" not in Addresser(fake_hub([], [ADA]))(mail, claimed("id-ada"), Message("x")).labels


def test_addressing_fails_clearly_when_the_person_is_gone_or_unreachable() -> None:
    hub = fake_hub([], [LINUS])
    mail, _ = notifiers(hub.config)
    address = Addresser(hub)
    assert address(mail, claimed("id-ada"), Message("x")) == "recipient id-ada no longer exists: nothing sent"
    assert address(mail, claimed("id-linus"), Message("x")) == "linus has no address on mail any more: nothing sent"
