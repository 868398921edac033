"""Routing rules: priority expressions, label and source matching, route order, the default route,
explicit targets."""

from __future__ import annotations

from typing import Any

import pytest

from tidings import ConfigError, Message, MessageError, UnknownIntegration
from tidings.config import parse_config
from tidings.config.models import Match
from tidings.routing import Router, Target, compile_match, parse_priority


def names(expr: Any) -> set[str]:
    return {p.value for p in parse_priority(expr)}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (">=high", {"critical", "high"}),
        (">=critical", {"critical"}),
        (">=info", {"critical", "high", "medium", "low", "info"}),
        (">high", {"critical"}),
        (">critical", set()),
        ("<=low", {"low", "info"}),
        ("<low", {"info"}),
        ("<info", set()),
        ("<medium", {"low", "info"}),
        ("<=medium", {"medium", "low", "info"}),
        ("==medium", {"medium"}),
        ("=medium", {"medium"}),
        ("critical", {"critical"}),
        ("info", {"info"}),
        ("HIGH", {"high"}),
        (" >= high ", {"critical", "high"}),
        (">= High", {"critical", "high"}),
        (["critical", "low"], {"critical", "low"}),
        ([">=high", "info"], {"critical", "high", "info"}),
        (["high", "high"], {"high"}),
    ],
)
def test_priority_expressions(expr: Any, expected: set[str]) -> None:
    assert names(expr) == expected


@pytest.mark.parametrize("expr", ["", "!high", ">=", ">=>high", "=>high", "high low", "high,low", "1", ">= 2", "~high"])
def test_malformed_priority_expressions(expr: str) -> None:
    with pytest.raises(ValueError, match="invalid priority expression"):
        parse_priority(expr)


@pytest.mark.parametrize("expr", ["urgent", ">=urgent", ["high", "nope"]])
def test_unknown_priority_names(expr: Any) -> None:
    with pytest.raises(ValueError, match="unknown priority"):
        parse_priority(expr)


def matches(match: dict[str, Any], message: Message) -> bool:
    return compile_match(Match.model_validate(match))(message)


def test_an_empty_match_matches_everything() -> None:
    assert matches({}, Message("x"))
    assert matches({}, Message("x", priority="info", labels={"a": "b"}))


def test_priority_match() -> None:
    assert matches({"priority": ">=high"}, Message("x", priority="critical"))
    assert matches({"priority": ">=high"}, Message("x", priority="high"))
    assert not matches({"priority": ">=high"}, Message("x", priority="medium"))
    assert matches({"priority": ["low", "info"]}, Message("x", priority="info"))
    assert not matches({"priority": ["low", "info"]}, Message("x"))


def test_label_matching_exact_list_and_regex() -> None:
    api = Message("x", labels={"service": "api-eu", "env": "prod"})
    web = Message("x", labels={"service": "web", "env": "staging"})
    bare = Message("x")
    assert matches({"labels": {"service": "api-eu"}}, api)
    assert not matches({"labels": {"service": "api"}}, api), "exact means exact"
    assert not matches({"labels": {"service": "api-eu"}}, bare)
    assert matches({"labels": {"env": ["prod", "staging"]}}, api)
    assert matches({"labels": {"env": ["prod", "staging"]}}, web)
    assert not matches({"labels": {"env": ["dev"]}}, api)
    assert not matches({"labels": {"env": ["prod"]}}, bare)
    assert matches({"labels": {"service": {"regex": "api-.*"}}}, api)
    assert not matches({"labels": {"service": {"regex": "api-.*"}}}, web)
    assert not matches({"labels": {"service": {"regex": "api"}}}, api), "a regex must match the whole value"
    assert not matches({"labels": {"service": {"regex": "eu"}}}, api)
    assert matches({"labels": {"service": {"regex": ".*eu"}}}, api)
    assert not matches({"labels": {"service": {"regex": ".*"}}}, bare), "a missing label matches no regex"
    assert matches({"labels": {"service": {"regex": "(api|web)(-.*)?"}}}, web)
    # Every condition must hold.
    assert matches({"labels": {"service": "api-eu", "env": "prod"}}, api)
    assert not matches({"labels": {"service": "api-eu", "env": "staging"}}, api)


def test_source_matching() -> None:
    ci = Message("x", labels={"source": "ci"})
    assert matches({"source": "ci"}, ci)
    assert not matches({"source": "cron"}, ci)
    assert matches({"source": ["cron", "ci"]}, ci)
    assert not matches({"source": "ci"}, Message("x"))
    assert matches({"source": "ci", "priority": "medium", "labels": {"source": "ci"}}, ci)
    assert not matches({"source": "ci", "priority": "critical"}, ci)


def router(routes: list[dict[str, Any]], default: dict[str, Any] | None = None, extra: tuple[str, ...] = ()) -> Router:
    integrations = {name: {"kind": "inbox"} for name in ("pager", "chat", "email", "audit", *extra)}
    data: dict[str, Any] = {"integrations": integrations, "routes": routes}
    if default is not None:
        data["default"] = default
    return Router(parse_config(data, env={}))


def targets(r: Router, message: Message, to: list[str] | None = None) -> list[tuple[str, str | None]]:
    return [(t.integration, t.route) for t in r.targets(message, to)]


def test_first_matching_route_wins() -> None:
    r = router(
        [
            {"name": "pages", "match": {"priority": "critical"}, "to": ["pager"]},
            {"name": "important", "match": {"priority": ">=high"}, "to": ["chat"]},
            {"name": "everything", "to": ["email"]},
        ]
    )
    assert targets(r, Message("x", priority="critical")) == [("pager", "pages")]
    assert targets(r, Message("x", priority="high")) == [("chat", "important")]
    assert targets(r, Message("x", priority="info")) == [("email", "everything")]


def test_continue_falls_through_to_later_routes() -> None:
    r = router(
        [
            {"name": "audit", "match": {"labels": {"team": "sec"}}, "to": ["audit"], "continue": True},
            {"name": "pages", "match": {"priority": "critical"}, "to": ["pager"], "continue": True},
            {"name": "chat", "match": {"priority": ">=high"}, "to": ["chat"]},
            {"name": "never", "to": ["email"]},
        ]
    )
    assert targets(r, Message("x", priority="critical", labels={"team": "sec"})) == [
        ("audit", "audit"), ("pager", "pages"), ("chat", "chat"),
    ]
    assert targets(r, Message("x", priority="high")) == [("chat", "chat")]
    # A continue route that matches alone still leads to the later ones, here the catch-all.
    assert targets(r, Message("x", priority="low", labels={"team": "sec"})) == [("audit", "audit"), ("email", "never")]


def test_the_default_route_applies_when_nothing_matches() -> None:
    r = router([{"match": {"priority": "critical"}, "to": ["pager"]}], default={"to": ["email", "audit"], "cooldown": "2m"})
    got = r.targets(Message("x", priority="low"))
    assert got == [Target("email", "default", 120.0), Target("audit", "default", 120.0)]
    # Without a default section: the inbox.
    plain = router([{"match": {"priority": "critical"}, "to": ["pager"]}])
    assert targets(plain, Message("x")) == [("inbox", "default")]


def test_a_matching_continue_route_alone_is_enough_to_skip_the_default() -> None:
    r = router([{"name": "copy", "match": {"source": "ci"}, "to": ["audit"], "continue": True}], default={"to": ["email"]})
    assert targets(r, Message("x", labels={"source": "ci"})) == [("audit", "copy")]
    assert targets(r, Message("x")) == [("email", "default")]


def test_unnamed_routes_are_named_by_position_and_carry_their_cooldown() -> None:
    r = router([{"match": {"priority": "info"}, "to": ["chat"]}, {"to": ["email"], "cooldown": "90s"}])
    assert r.targets(Message("x", priority="info")) == [Target("chat", "routes[0]", 300.0)]
    assert r.targets(Message("x")) == [Target("email", "routes[1]", 90.0)]


def test_explicit_targets_bypass_the_routes() -> None:
    r = router([{"name": "all", "to": ["pager"]}], default={"to": ["email"], "cooldown": "1m"})
    got = r.targets(Message("x", priority="critical"), ["chat", "inbox"])
    assert got == [Target("chat", None, 60.0), Target("inbox", None, 60.0)]


def test_an_empty_explicit_target_list_is_refused() -> None:
    r = router([])
    with pytest.raises(MessageError, match="to: name at least one integration"):
        r.targets(Message("x"), [])


def test_an_unknown_explicit_target_raises() -> None:
    r = router([])
    with pytest.raises(UnknownIntegration) as info:
        r.targets(Message("x"), ["chat", "slak"])
    assert str(info.value) == "unknown integration 'slak'"
    assert isinstance(info.value, KeyError)


def test_duplicates_are_removed_keeping_the_first() -> None:
    r = router(
        [
            {"name": "a", "match": {"priority": ">=high"}, "to": ["chat", "pager", "chat"], "continue": True},
            {"name": "b", "to": ["pager", "email"]},
        ]
    )
    assert targets(r, Message("x", priority="critical")) == [("chat", "a"), ("pager", "a"), ("email", "b")]
    assert targets(r, Message("x"), ["email", "chat", "email", "chat"]) == [("email", None), ("chat", None)]
    d = router([], default={"to": ["email", "email"]})
    assert targets(d, Message("x")) == [("email", "default")]


def test_routing_is_per_message_and_stateless() -> None:
    r = router([{"name": "pages", "match": {"priority": "critical"}, "to": ["pager"]}])
    for _ in range(3):
        assert targets(r, Message("x", priority="critical")) == [("pager", "pages")]
        assert targets(r, Message("x")) == [("inbox", "default")]


def test_bad_matches_are_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"routes": [{"match": {"priority": ">=urgent"}, "to": ["inbox"]}]}, env={})
    assert info.value.problems[0].startswith("routes[0].match.priority: unknown priority 'urgent'")
    with pytest.raises(ConfigError) as info:
        parse_config({"routes": [{"match": {"colour": "red"}, "to": ["inbox"]}]}, env={})
    assert info.value.problems[0].startswith("routes[0].match.colour:")
    with pytest.raises(ConfigError) as info:
        parse_config({"routes": [{"match": {}, "to": []}]}, env={})
    assert info.value.problems[0].startswith("routes[0].to:")
