"""Projects in tidings.yaml: ``project:`` on integrations and routes, checked with one clear line
per problem (by the loader, `tidings config validate` and the JSON Schema alike)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import in_process

from tidings.accounts.projects import _SLUG
from tidings.config import parse_config
from tidings.config.loader import config_schema
from tidings.errors import ConfigError
from tidings.integrations.base import PROJECT_SLUG
from tidings.routing import Router

GOOD: dict[str, Any] = {
    "integrations": {
        "ops-inbox": {"kind": "inbox", "project": "ops"},
        "web-hook": {"kind": "webhook", "url": "https://example.com/h", "project": "web"},
    },
    "routes": [
        {"name": "ops-all", "project": "ops", "to": ["ops-inbox"]},
        {"project": "web", "match": {"priority": ">=high"}, "to": ["web-hook"]},
    ],
}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env={})
    return list(caught.value.problems)


def test_integrations_and_routes_belong_to_default_unless_they_say_otherwise() -> None:
    config = parse_config(GOOD, env={})
    assert config.integrations["inbox"].project == "default"
    assert config.integrations["ops-inbox"].project == "ops"
    assert [r.project for r in config.routes] == ["ops", "web"]
    assert config.project_names() == ["default", "ops", "web"]
    assert parse_config({}, env={}).project_names() == ["default"]
    router = Router(config)
    assert router.project_of == {"ops-inbox": "ops", "web-hook": "web", "inbox": "default"}
    assert router.project_of_route == {"ops-all": "ops", "routes[1]": "web", "default": "default"}


@pytest.mark.parametrize(
    ("change", "line"),
    [
        ({"routes": [{"project": "opps", "to": ["ops-inbox"]}]},
         "routes[0].project: unknown project 'opps': no integration belongs to it (did you mean 'ops'?)"
         " (projects: default, ops, web)"),
        ({"routes": [{"project": "ops", "to": ["web-hook"]}]},
         "routes[0].to[0]: integration 'web-hook' belongs to project 'web', not 'ops'; a route sends only to its"
         " project's integrations"),
        ({"routes": [{"to": ["ops-inbox"]}]},
         "routes[0].to[0]: integration 'ops-inbox' belongs to project 'ops', not 'default'"),
        ({"default": {"to": ["ops-inbox"]}},
         "default.to[0]: integration 'ops-inbox' belongs to project 'ops'; the default route is project 'default''s"),
        ({"routes": [{"name": "x", "project": "ops", "to": ["ops-inbox"]}, {"name": "x", "project": "web", "to": ["web-hook"]}]},
         "routes[1].name: 'x' is a route of project 'ops' already; a route name belongs to one project"),
        ({"routes": [{"name": "default", "project": "ops", "to": ["ops-inbox"]}]},
         "routes[0].name: 'default' is a route of project 'default' already"),
        ({"integrations": {**GOOD["integrations"], "bad": {"kind": "inbox", "project": "Not A Slug"}}},
         "integrations.bad.project: String should match pattern"),
        ({"routes": [{"project": "", "to": ["inbox"]}]}, "routes[0].project: String should match pattern"),
    ],
    ids=["unknown-project", "other-projects-target", "default-project-route", "default-route", "name-twice",
         "named-default", "bad-slug", "empty-slug"],
)
def test_a_project_problem_is_one_clear_line(change: dict[str, Any], line: str) -> None:
    found = problems({**GOOD, **change})
    assert any(p.startswith(line) for p in found), found
    assert len(found) == 1, found


def test_the_slug_rule_is_the_accounts_one() -> None:
    assert PROJECT_SLUG == _SLUG.pattern


def test_the_json_schema_describes_the_project_settings() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = config_schema()
    defs = schema["$defs"]
    assert defs["Route"]["properties"]["project"]["pattern"] == PROJECT_SLUG
    assert all(d["properties"]["project"]["default"] == "default" for name, d in defs.items()
               if name.endswith("Settings") and "kind" in d.get("properties", {}))
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(GOOD)) == []
    bad = {**GOOD, "routes": [{"project": "Ops!", "to": ["ops-inbox"]}]}
    assert [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(bad)]


def test_config_validate_names_an_unknown_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(GOOD))
    assert in_process(tmp_path, monkeypatch, "config", "validate", "-c", "ok.yaml").code == 0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**GOOD, "routes": [{"project": "opps", "to": ["ops-inbox"]}]}))
    ran = in_process(tmp_path, monkeypatch, "config", "validate", "-c", "bad.yaml")
    assert ran.code == 2 and ran.out == ""
    assert ran.err.strip().splitlines() == [
        "error: bad.yaml: routes[0].project: unknown project 'opps': no integration belongs to it (did you mean"
        " 'ops'?) (projects: default, ops, web)"]
