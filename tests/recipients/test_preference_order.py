"""Preference resolution, table-driven over every level and the tie-breaks between them."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.config.people import ProjectSettings
from tidings.recipients.model import Person
from tidings.recipients.preferences import decide

SETTINGS = ProjectSettings.model_validate({"topics": {"security": {"required": True}, "deploys": {}}})


def person(prefs: dict[tuple[str, str], bool]) -> Person:
    return Person("r1", "default", "security-lead", "Sam Lead", prefs=prefs)


def project(defaults: dict[str, dict[str, bool]]) -> ProjectSettings:
    return SETTINGS.model_copy(update={"preferences": defaults})


# (case, person's rows, project defaults, topic, channel, enabled, reason)
CASES: list[tuple[str, dict[tuple[str, str], bool], dict[str, dict[str, bool]], str, str, bool, str | None]] = [
    ("nothing said: on", {}, {}, "deploys", "email", True, None),
    ("required beats every off", {("security", "email"): False, ("", "email"): False, ("", ""): False},
     {"*": {"*": False}}, "security", "email", True, "topic security is required"),
    ("topic x channel off", {("deploys", "email"): False}, {}, "deploys", "email", False,
     "security-lead turned off topic deploys for email"),
    ("topic x channel on beats channel off", {("deploys", "email"): True, ("", "email"): False}, {},
     "deploys", "email", True, "security-lead turned on topic deploys for email"),
    ("topic x channel of another channel doesn't apply", {("deploys", "slack"): False}, {}, "deploys", "email",
     True, None),
    ("channel off", {("", "email"): False}, {}, "deploys", "email", False, "security-lead turned off email"),
    ("channel beats topic (any channel)", {("", "email"): True, ("deploys", ""): False}, {}, "deploys", "email",
     True, "security-lead turned on email"),
    ("topic (any channel) off", {("deploys", ""): False}, {}, "deploys", "email", False,
     "security-lead turned off topic deploys"),
    ("topic beats global", {("deploys", ""): True, ("", ""): False}, {}, "deploys", "email", True,
     "security-lead turned on topic deploys"),
    ("global off", {("", ""): False}, {}, "deploys", "email", False, "security-lead turned off all notifications"),
    ("global on beats project defaults", {("", ""): True}, {"*": {"*": False}}, "deploys", "email", True,
     "security-lead turned on all notifications"),
    ("no topic: topic rows don't apply", {("deploys", "email"): False, ("deploys", ""): False}, {}, "", "email",
     True, None),
    ("no topic: channel row applies", {("", "email"): False}, {}, "", "email", False, "security-lead turned off email"),
    ("project topic x channel", {}, {"deploys": {"email": False, "*": True}, "*": {"email": True}}, "deploys", "email",
     False, "project default: topic deploys off for email"),
    ("project channel beats project topic", {}, {"deploys": {"*": False}, "*": {"email": True}}, "deploys", "email",
     True, "project default: email on"),
    ("project channel off", {}, {"*": {"email": False}}, "deploys", "email", False, "project default: email off"),
    ("project topic (any channel) off", {}, {"deploys": {"*": False}, "*": {"*": True}}, "deploys", "email", False,
     "project default: topic deploys off"),
    ("project everything off", {}, {"*": {"*": False}}, "deploys", "email", False, "project default: everything off"),
    ("project defaults of another topic don't apply", {}, {"builds": {"*": False}}, "deploys", "email", True, None),
    ("no topic: project topic rows don't apply", {}, {"deploys": {"*": False}}, "", "email", True, None),
    ("person's row beats project topic x channel", {("", ""): True}, {"deploys": {"email": False}}, "deploys", "email",
     True, "security-lead turned on all notifications"),
    ("required on every channel", {("", "slack"): False}, {}, "security", "slack", True, "topic security is required"),
]


@pytest.mark.parametrize(("prefs", "defaults", "topic", "channel", "enabled", "reason"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_first_level_that_says_something_decides(prefs: Any, defaults: Any, topic: str, channel: str,
                                                       enabled: bool, reason: str | None) -> None:
    assert decide(person(prefs), topic, channel, project(defaults)) == (enabled, reason)


def test_without_project_settings_only_the_person_decides() -> None:
    assert decide(person({}), "security", "email", None) == (True, None)
    assert decide(person({("security", "email"): False}), "security", "email", None) == (
        False, "security-lead turned off topic security for email")
