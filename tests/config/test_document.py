"""The managed document (config/document.py): what a revision holds of a file, how a process
turns it back into a configuration, and how a file's change is merged into the current revision."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from tidings.config import parse_config
from tidings.config.document import (
    digest,
    document_of,
    is_reference,
    merge_file_change,
    project_part,
    secret_fields,
    to_config,
    with_project_part,
)
from tidings.errors import ConfigError

SLACK_TOKEN = "xoxb-1234567890-literal-token"
SMTP_PASSWORD = "pa$$word-literal"  # as the process has it: written "pa$$$$word-literal" in YAML
WHSEC = "whsec_QUJDREVGR0hJSktMTU5PUA=="
BEARER = "Bearer literal-bearer-abcdef"
URL_PASSWORD = "urlpass-literal-98765"
LITERALS = (SLACK_TOKEN, SMTP_PASSWORD, "pa$$$$word-literal", WHSEC, "literal-bearer-abcdef", URL_PASSWORD,
            "xoxb-fallback-literal-secret")


def raw_file() -> dict[str, Any]:
    """tidings.yaml as read: literal secrets, ${ENV} and ${vault:} references."""
    return {
        "integrations": {
            "chat": {"kind": "slack", "token": SLACK_TOKEN, "channel": "#ops"},
            "chat-env": {"kind": "slack", "token": "${T_SLACK_TOKEN}", "channel": "#ops"},
            "chat-vault": {"kind": "slack", "token": "${vault:slack-token}", "channel": "#ops"},
            "chat-fallback": {"kind": "slack", "token": "${T_UNSET_TOKEN:-xoxb-fallback-literal-secret}", "channel": "#x"},
            "mail": {"kind": "email", "host": "smtp.example.com", "username": "u", "password": "pa$$$$word-literal",
                     "from_address": "a@example.com", "to": ["b@example.com"]},
            "hook": {"kind": "webhook", "url": f"https://user:{URL_PASSWORD}@hooks.example.com/in",
                     "secret": WHSEC, "headers": {"Authorization": BEARER, "X-Team": "ops"}},
            "plain": {"kind": "webhook", "url": "https://hooks.example.com/plain"},
        },
        "routes": [{"match": {"priority": ">=high"}, "to": ["chat"]}],
        "default": {"to": ["inbox"]},
    }


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_SLACK_TOKEN", "xoxb-from-the-environment-1")
    monkeypatch.delenv("T_UNSET_TOKEN", raising=False)


def test_the_document_keeps_references_and_turns_literal_secrets_into_file_references(env: None) -> None:
    doc = document_of(parse_config(raw_file()))
    integrations = doc["integrations"]
    assert integrations["chat-env"]["token"] == "${T_SLACK_TOKEN}"
    assert integrations["chat-vault"]["token"] == "${vault:slack-token}"
    assert integrations["chat"]["token"] == "${file:integrations.chat.token}"
    assert integrations["chat-fallback"]["token"] == "${file:integrations.chat-fallback.token}"
    assert integrations["mail"]["password"] == "${file:integrations.mail.password}"
    assert integrations["hook"]["secret"] == "${file:integrations.hook.secret}"
    assert integrations["hook"]["url"] == "${file:integrations.hook.url}"  # a URL with credentials
    assert integrations["hook"]["headers"] == {"Authorization": "${file:integrations.hook.headers.Authorization}",
                                               "X-Team": "ops"}
    assert integrations["plain"]["url"] == "https://hooks.example.com/plain"  # not a secret: as written
    assert integrations["inbox"] == {"kind": "inbox"}
    assert doc["routes"] == raw_file()["routes"] and doc["default"] == {"to": ["inbox"]}
    text = orjson.dumps(doc).decode()
    for literal in (*LITERALS, "xoxb-from-the-environment-1"):
        assert literal not in text


def test_a_configuration_built_in_code_gives_the_same_references() -> None:
    config = parse_config(raw_file() | {"integrations": {"chat": raw_file()["integrations"]["chat"]}})
    config._raw = None  # as if built from models, not parsed
    doc = document_of(config)
    assert doc["integrations"]["chat"]["token"] == "${file:integrations.chat.token}"
    assert SLACK_TOKEN not in orjson.dumps(doc).decode()


def test_is_reference() -> None:
    assert is_reference("${vault:a/b}") and is_reference("${ENV_NAME}") and is_reference("${file:integrations.a.b}")
    assert not is_reference("${ENV:-literal}")  # its fallback is written in the file
    assert not is_reference("xoxb-${ENV}") and not is_reference("literal") and not is_reference(None)


def test_secret_fields_name_the_secret_typed_settings() -> None:
    assert set(secret_fields("slack")) == {"token", "webhook_url", "signing_secret"}
    assert secret_fields("email") == ("password",)
    assert secret_fields("inbox") == ()


def test_to_config_resolves_file_references_from_its_base(env: None) -> None:
    config = parse_config(raw_file())
    doc = document_of(config)
    run = to_config(doc, config)
    assert run.integrations["chat"].token.get_secret_value() == SLACK_TOKEN
    assert run.integrations["mail"].password.get_secret_value() == SMTP_PASSWORD  # '$' not interpolated twice
    assert run.integrations["hook"].secret.get_secret_value() == WHSEC
    assert run.integrations["hook"].headers == {"Authorization": BEARER, "X-Team": "ops"}
    assert run.integrations["hook"].url == f"https://user:{URL_PASSWORD}@hooks.example.com/in"
    assert run.integrations["chat-env"].token.get_secret_value() == "xoxb-from-the-environment-1"
    assert run.integrations["chat-fallback"].token.get_secret_value() == "xoxb-fallback-literal-secret"
    assert run.integrations["chat-vault"].token.get_secret_value() == "${vault:slack-token}"
    assert run.routes[0].to == ["chat"]
    assert document_of(run) == doc  # what it runs gives the same document back
    assert run.server == config.server and run.dispatcher == config.dispatcher  # the process's own


def test_to_config_takes_the_process_settings_of_its_base_not_of_the_document() -> None:
    base = parse_config({"dispatcher": {"poll_interval": 0.3}, "audit": {"checkpoint_every": 7}})
    run = to_config({"integrations": {"log": {"kind": "inbox"}}, "routes": [], "default": {"to": ["log"]}}, base)
    assert run.dispatcher.poll_interval == 0.3 and run.audit.checkpoint_every == 7
    assert set(run.integrations) == {"log", "inbox"} and run.default.to == ["log"]


def test_a_file_reference_the_base_lacks_is_a_problem_with_its_path(env: None) -> None:
    doc = document_of(parse_config(raw_file()))
    other = parse_config({"integrations": {"chat": {"kind": "slack", "webhook_url": "${vault:hook}"}}})
    with pytest.raises(ConfigError) as caught:
        to_config(doc, other)
    problems = caught.value.problems
    assert any(p.startswith("integrations.chat.token: ${file:integrations.chat.token}") for p in problems)
    assert any(p.startswith("integrations.mail.password: ") for p in problems)
    assert any(p.startswith("integrations.hook.headers.Authorization: ") for p in problems)
    for literal in LITERALS:
        assert all(literal not in p for p in problems)


def test_to_config_reports_an_invalid_document_one_problem_per_line() -> None:
    doc = {"integrations": {"x": {"kind": "webhook"}, "y": {"kind": "nope"}}, "routes": [{"to": ["missing"]}]}
    with pytest.raises(ConfigError) as caught:
        to_config(doc, parse_config({}))
    text = "\n".join(caught.value.problems)
    assert "integrations.x" in text and "integrations.y.kind" in text and "routes[0].to[0]" in text


def _doc(integrations: dict[str, Any], routes: list[Any] | None = None, default: Any = None) -> dict[str, Any]:
    return {"integrations": {"inbox": {"kind": "inbox"}, **integrations}, "routes": routes or [],
            "default": default if default is not None else {}}


HOOK = {"kind": "webhook", "url": "https://a.example.com/"}


def test_merge_keeps_what_the_api_added_and_the_file_did_not_touch() -> None:
    last = _doc({"a": HOOK})
    current = _doc({"a": HOOK, "api": {**HOOK, "url": "https://api.example.com/"}})
    new_file = _doc({"a": HOOK, "b": {**HOOK, "url": "https://b.example.com/"}})
    merged = merge_file_change(current, last, new_file)
    assert merged["integrations"]["api"] == {**HOOK, "url": "https://api.example.com/"}
    assert merged["integrations"]["b"] == {**HOOK, "url": "https://b.example.com/"}


def test_merge_overwrites_what_the_file_changed_and_drops_what_it_removed() -> None:
    last = _doc({"a": HOOK, "gone": HOOK, "same": HOOK})
    current = _doc({"a": {**HOOK, "description": "changed through the API"}, "gone": HOOK,
                    "same": {**HOOK, "description": "api"}})
    new_file = _doc({"a": {**HOOK, "url": "https://new.example.com/"}, "same": HOOK})
    merged = merge_file_change(current, last, new_file)
    assert merged["integrations"]["a"] == {**HOOK, "url": "https://new.example.com/"}
    assert "gone" not in merged["integrations"]
    assert merged["integrations"]["same"] == {**HOOK, "description": "api"}  # the file did not change it


def test_merge_replaces_a_projects_routes_in_place_and_keeps_the_others() -> None:
    r = {"default": [{"to": ["inbox"], "name": "d1"}], "ops": [{"project": "ops", "to": ["o"], "name": "o1"}],
         "web": [{"project": "web", "to": ["w"], "name": "w1"}]}
    last = _doc({}, [*r["default"], *r["ops"]])
    current = _doc({}, [*r["default"], *r["ops"], {"project": "ops", "to": ["o"], "name": "o-api"}, *r["web"],
                        {"to": ["inbox"], "name": "d-api"}])
    new_ops = [{"project": "ops", "to": ["o"], "name": "o-file-1"}, {"project": "ops", "to": ["o"], "name": "o-file-2"}]
    merged = merge_file_change(current, last, _doc({}, [*r["default"], *new_ops]))
    assert [x["name"] for x in merged["routes"]] == ["d1", "o-file-1", "o-file-2", "w1", "d-api"]
    # A project the file never had routes for gets them at the end.
    new_file = _doc({}, [*r["default"], *r["ops"], {"project": "new", "to": ["n"], "name": "n1"}])
    assert [x["name"] for x in merge_file_change(current, last, new_file)["routes"]] == [
        "d1", "o1", "o-api", "w1", "d-api", "n1"]


def test_merge_takes_the_default_route_only_when_the_file_changed_it() -> None:
    last = _doc({}, default={"to": ["inbox"]})
    current = _doc({}, default={"to": ["api-target"]})
    assert merge_file_change(current, last, _doc({}, default={"to": ["inbox"]}))["default"] == {"to": ["api-target"]}
    assert merge_file_change(current, last, _doc({}, default={"to": ["file"]}))["default"] == {"to": ["file"]}


def test_merge_leaves_its_inputs_alone() -> None:
    last, current, new_file = _doc({"a": HOOK}), _doc({"a": HOOK, "b": HOOK}), _doc({"c": HOOK})
    copies = copy.deepcopy((last, current, new_file))
    merged = merge_file_change(current, last, new_file)
    merged["integrations"]["c"]["url"] = "changed"
    assert (last, current, new_file) == copies


def test_project_part_and_with_project_part() -> None:
    doc = _doc({"a": HOOK, "o": {**HOOK, "project": "ops"}},
               [{"to": ["a"]}, {"project": "ops", "to": ["o"]}, {"to": ["inbox"]}], {"to": ["a"]})
    ops = project_part(doc, "ops")
    assert ops == {"integrations": {"o": {**HOOK, "project": "ops"}}, "routes": [{"project": "ops", "to": ["o"]}]}
    assert project_part(doc, "default")["default"] == {"to": ["a"]}
    assert project_part(doc, None) == doc
    changed = with_project_part(doc, {"integrations": {"o2": {**HOOK, "project": "ops"}},
                                      "routes": [{"project": "ops", "to": ["o2"]}]}, "ops")
    assert set(changed["integrations"]) == {"inbox", "a", "o2"}
    assert changed["routes"] == [{"to": ["a"]}, {"project": "ops", "to": ["o2"]}, {"to": ["inbox"]}]
    assert with_project_part(doc, ops, "ops") == doc


def test_the_digest_ignores_key_order() -> None:
    assert digest({"a": 1, "b": {"c": 2, "d": 3}}) == digest({"b": {"d": 3, "c": 2}, "a": 1})
    assert digest(_doc({})) != digest(_doc({"a": HOOK}))


def test_a_projects_changed_routes_keep_their_places_among_other_projects() -> None:
    a1, b1, a2, b2 = ({"project": p, "to": [f"{p}-hook"], "name": n} for p, n in
                      (("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2")))
    current = {"routes": [a1, b1, a2, b2]}
    last = {"routes": [a1, a2, b1, b2]}
    changed = {**a2, "to": ["a-other"]}
    # a's routes changed in the file: each goes back into a place a's routes held, b's stay where they are.
    merged = merge_file_change(current, last, {"routes": [a1, changed, b1, b2]})
    assert merged["routes"] == [a1, b1, changed, b2]
    # One more: after the last place; one fewer: the last place empties.
    a3 = {"project": "a", "to": ["a-hook"], "name": "a3"}
    assert merge_file_change(current, last, {"routes": [a1, a2, a3, b1, b2]})["routes"] == [a1, b1, a2, a3, b2]
    assert merge_file_change(current, last, {"routes": [a1, b1, b2]})["routes"] == [a1, b1, b2]
