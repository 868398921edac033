"""tidings.yaml: loading, ${ENV} interpolation, overrides, one clear line per problem, the JSON
Schema for editors."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tidings import ConfigError, Hub, Message
from tidings.config import config_path, config_schema, load_config, parse_config
from tidings.integrations.registry import kinds

jsonschema = pytest.importorskip("jsonschema")


def write(tmp_path: Path, text: str, name: str = "tidings.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def problems_of(data: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env=env or {})
    return info.value.problems


def one_problem(data: Any, env: dict[str, str] | None = None) -> str:
    found = problems_of(data, env)
    assert len(found) == 1, found
    return found[0]


# -- loading -------------------------------------------------------------------------------------

FULL = """
    # A complete file, as `tidings init` would write it.
    server:
      host: 0.0.0.0
      port: 9000
      database: sqlite:///data/tidings.db
      body_limit: 2MiB
    dispatcher:
      batch: 50
      lease: 2m
      poll_interval: 500ms
    integrations:
      ops:
        kind: webhook
        description: the ops endpoint
        url: https://hooks.example.com/ops
        rate_limit: 4/second
        timeout: 5s
        retry: {base: 2s, cap: 10m, max_attempts: 5}
        breaker: {failures: 3, cool_off: 1m}
    routes:
      - name: pages
        match: {priority: ">=high", labels: {service: [api, web], env: {regex: "prod-.*"}}, source: prometheus}
        to: [ops, inbox]
        continue: true
        cooldown: 10m
      - match: {priority: [info, low]}
        to: [inbox]
    default:
      to: [inbox]
      cooldown: 1h
    """


def test_a_full_file_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    assert config.server.host == "0.0.0.0" and config.server.port == 9000
    assert config.server.database == f"sqlite:///{tmp_path / 'data' / 'tidings.db'}"  # relative to the file
    assert config.server.body_limit == 2 * 1024 * 1024
    assert config.dispatcher.batch == 50 and config.dispatcher.lease == 120.0 and config.dispatcher.poll_interval == 0.5
    assert list(config.integrations) == ["ops", "inbox"]
    ops = config.integrations["ops"]
    assert ops.kind == "webhook" and ops.url == "https://hooks.example.com/ops"  # type: ignore[attr-defined]
    assert ops.timeout == 5.0 and ops.rate_limit == "4/second"
    assert ops.retry.base == 2.0 and ops.retry.cap == 600.0 and ops.retry.max_attempts == 5
    assert ops.breaker.min_calls == 3 and ops.breaker.cool_off == 60.0
    first, second = config.routes
    assert first.name == "pages" and first.to == ["ops", "inbox"] and first.continue_ is True and first.cooldown == 600.0
    assert first.match.priority == ">=high" and first.match.source == "prometheus"
    assert first.match.labels["service"] == ["api", "web"]
    assert first.match.labels["env"].regex == "prod-.*"  # type: ignore[union-attr]
    assert second.name is None and second.continue_ is False and second.cooldown == 300.0
    assert config.default.to == ["inbox"] and config.default.cooldown == 3600.0


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert list(config.integrations) == ["inbox"]
    assert config.integrations["inbox"].kind == "inbox"
    assert config.routes == [] and config.default.to == ["inbox"]
    assert config.server.port == 8400 and config.server.body_limit == 1024 * 1024
    with pytest.raises(ConfigError) as info:
        load_config(required=True)
    assert "tidings.yaml: no such file" in info.value.problems[0]


def test_a_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.yaml")
    assert info.value.problems == [f"{tmp_path / 'missing.yaml'}: no such file (run `tidings init` to create one)"]


@pytest.mark.parametrize(
    "text",
    ["", "# nothing but comments\n", "---\n", "server:\nintegrations:\nroutes:\ndefault:\ndispatcher:\n",
     "server:\n  # port: 1\nintegrations:\n  # ops: {kind: webhook}\nroutes:\n  # - to: [ops]\n"],
    ids=["empty", "comments", "document-marker", "bare-sections", "commented-sections"],
)
def test_empty_files_and_sections_left_empty_are_accepted(tmp_path: Path, text: str) -> None:
    config = load_config(write(tmp_path, text))
    assert list(config.integrations) == ["inbox"]
    assert config.routes == [] and config.default.to == ["inbox"] and config.server.port == 8400


def test_the_inbox_is_always_there_and_can_be_configured(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "integrations:\n  ops: {kind: webhook, url: 'http://h/x'}\n"))
    assert list(config.integrations) == ["ops", "inbox"]
    config = parse_config({"integrations": {"inbox": {"kind": "inbox", "description": "mine", "concurrency": 2}}}, env={})
    assert config.integrations["inbox"].description == "mine" and config.integrations["inbox"].concurrency == 2


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [
        ("server:\n  port: 8400\n database: x\n", 3, 2),
        ("integrations:\n  ops: {kind: webhook, url: 'http://x'\nroutes: []\n", 3, 1),
        ("routes:\n  - to: [inbox\n", 3, 1),
        ("server:\n\tport: 1\n", 2, 1),
    ],
    ids=["indent", "unclosed-brace", "unclosed-list", "tab"],
)
def test_yaml_syntax_errors_name_file_line_and_column(tmp_path: Path, text: str, line: int, col: int) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:{line}:{col}: "), problem
    assert len(problem) > len(f"{path}:{line}:{col}: ")


def test_the_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "- a\n- b\n"))
    assert "top level must be a mapping" in info.value.problems[0]
    assert info.value.source == str(tmp_path / "tidings.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'tidings.yaml'}: ")


def test_problems_carry_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 99999\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    assert info.value.problems == ["server.port: Input should be less than or equal to 65535"]
    assert str(info.value) == f"{path}: server.port: Input should be less than or equal to 65535"


# -- ${ENV} --------------------------------------------------------------------------------------


def test_env_interpolation_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPS_HOST", "hooks.example.com")
    monkeypatch.setenv("OPS_TOKEN", "s3cret")
    monkeypatch.delenv("OPS_PATH", raising=False)
    path = write(
        tmp_path,
        """
        integrations:
          ops:
            kind: webhook
            url: https://${OPS_HOST}${OPS_PATH:-/default/path}?v=1
            headers: {Authorization: "Bearer ${OPS_TOKEN}", X-Price: "$$5 and $${NOT_A_VAR}", X-Empty: "${OPS_PATH:-}"}
        """,
    )
    ops: Any = load_config(path).integrations["ops"]
    assert ops.url == "https://hooks.example.com/default/path?v=1"
    assert ops.headers == {"Authorization": "Bearer s3cret", "X-Price": "$5 and ${NOT_A_VAR}", "X-Empty": ""}


def test_env_values_in_every_position() -> None:
    env = {"PORT": "9100", "TARGET": "ops", "COOL": "90s", "SVC": "api"}
    config = parse_config(
        {
            "server": {"port": "${PORT}"},
            "integrations": {"ops": {"kind": "webhook", "url": "http://x/${SVC}"}},
            "routes": [{"match": {"labels": {"service": "${SVC}"}}, "to": ["${TARGET}"], "cooldown": "${COOL}"}],
        },
        env=env,
    )
    assert config.server.port == 9100
    assert config.routes[0].to == ["ops"] and config.routes[0].cooldown == 90.0
    assert config.routes[0].match.labels["service"] == "api"


def test_defaults_apply_only_when_the_variable_is_unset() -> None:
    data = {"integrations": {"ops": {"kind": "webhook", "url": "${URL:-http://fallback/x}"}}}
    assert parse_config(data, env={}).integrations["ops"].url == "http://fallback/x"  # type: ignore[attr-defined]
    assert parse_config(data, env={"URL": "http://set/y"}).integrations["ops"].url == "http://set/y"  # type: ignore[attr-defined]
    # Set but empty is still set.
    assert one_problem(data, env={"URL": ""}).startswith("integrations.ops.url:")


def test_interpolation_is_one_pass_and_leaves_other_dollars_alone() -> None:
    env = {"A": "${B}", "B": "never"}
    config = parse_config({"integrations": {"ops": {"kind": "webhook", "url": "http://x/", "headers": {
        "X-A": "${A}", "X-Plain": "cost: $5", "X-Brace": "${not valid}", "X-Dollar-End": "a$", "X-Double": "$$$$",
    }}}}, env=env)
    assert config.integrations["ops"].headers == {  # type: ignore[attr-defined]
        "X-A": "${B}", "X-Plain": "cost: $5", "X-Brace": "${not valid}", "X-Dollar-End": "a$", "X-Double": "$$",
    }


def test_vault_references_are_not_environment_variables() -> None:
    config = parse_config(
        {"integrations": {"ops": {"kind": "webhook", "url": "http://x/", "secret": "${vault:ops_secret}"}}}, env={}
    )
    assert config.integrations["ops"].vault_refs() == {"secret": "ops_secret"}


def test_a_missing_variable_is_a_problem_line_with_its_path() -> None:
    found = problems_of(
        {
            "server": {"database": "${DB_URL}"},
            "integrations": {"ops": {"kind": "webhook", "url": "http://x/", "headers": {"X-Key": "${OPS_KEY}"}}},
            "routes": [{"to": ["inbox", "${SECOND}"]}],
        }
    )
    assert found == [
        "server.database: environment variable DB_URL is not set",
        "integrations.ops.headers.X-Key: environment variable OPS_KEY is not set",
        "routes[0].to[1]: environment variable SECOND is not set",
    ]


def test_parse_config_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_TEST_URL", "http://from-env/x")
    config = parse_config({"integrations": {"ops": {"kind": "webhook", "url": "${TIDINGS_TEST_URL}"}}})
    assert config.integrations["ops"].url == "http://from-env/x"  # type: ignore[attr-defined]


# -- overrides -----------------------------------------------------------------------------------


def test_database_port_and_host_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "server:\n  port: 9000\n  host: 127.0.0.1\n  database: sqlite:///a.db\n")
    monkeypatch.setenv("TIDINGS_DATABASE_URL", "postgresql://u@db/tidings")
    monkeypatch.setenv("TIDINGS_PORT", "9200")
    monkeypatch.setenv("TIDINGS_HOST", "0.0.0.0")
    config = load_config(path)
    assert config.server.database == "postgresql://u@db/tidings"
    assert config.server.port == 9200 and config.server.host == "0.0.0.0"
    # Without a server section, and without a file at all.
    config = load_config(write(tmp_path, "routes: []\n", "other.yaml"))
    assert config.server.database == "postgresql://u@db/tidings" and config.server.port == 9200
    monkeypatch.chdir(tmp_path / "..")
    assert load_config().server.port == 9200


def test_a_bad_port_override_is_reported() -> None:
    problem = one_problem({}, env={"TIDINGS_PORT": "eighty"})
    assert problem.startswith("server.port:")
    problem = one_problem({}, env={"TIDINGS_PORT": "70000"})
    assert problem.startswith("server.port:")


def test_tidings_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "server:\n  port: 9311\n", "elsewhere.yaml")
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "server:\n  port: 1111\n")  # ./tidings.yaml, ignored
    monkeypatch.setenv("TIDINGS_CONFIG", str(path))
    assert config_path() == path
    assert load_config().server.port == 9311
    # An explicit argument beats the variable.
    assert load_config(tmp_path / "tidings.yaml").server.port == 1111
    # The variable naming a missing file is an error, not the defaults.
    monkeypatch.setenv("TIDINGS_CONFIG", str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_config()


def test_hub_from_config_uses_the_files_folder(tmp_path: Path) -> None:
    path = write(tmp_path, f"server:\n  database: sqlite:///{tmp_path / 'x.db'}\n")
    hub = Hub.from_config(path)
    assert hub.config_dir == tmp_path.resolve()
    assert hub.config.server.database.endswith("x.db")


# -- one line per problem -------------------------------------------------------------------------


def test_an_unknown_integration_in_a_route() -> None:
    data = {
        "integrations": {"slack": {"kind": "webhook", "url": "http://x/"}, "ops": {"kind": "inbox"}},
        "routes": [{"to": ["ops"]}, {"to": ["inbox"]}, {"to": ["slak"]}],
    }
    problem = one_problem(data)
    assert problem.startswith("routes[2].to[0]: unknown integration 'slak'")
    assert "did you mean 'slack'" in problem
    exact = one_problem({"routes": [{"to": ["inbox"]}, {"to": ["inbox"]}, {"to": ["slak"]}]})
    assert exact.startswith("routes[2].to[0]: unknown integration 'slak'")


def test_every_unknown_reference_is_listed() -> None:
    found = problems_of({"routes": [{"to": ["a", "inbox", "b"]}], "default": {"to": ["c"]}})
    assert [p.split(" (did")[0] for p in found] == [
        "routes[0].to[0]: unknown integration 'a'",
        "routes[0].to[2]: unknown integration 'b'",
        "default.to[0]: unknown integration 'c'",
    ]


def test_an_unknown_kind_lists_the_known_ones() -> None:
    problem = one_problem({"integrations": {"chat": {"kind": "slak", "url": "http://x/"}}})
    assert problem.startswith("integrations.chat.kind: unknown kind 'slak'")
    for kind in kinds():
        assert kind in problem
    assert one_problem({"integrations": {"chat": {"url": "http://x/"}}}).startswith("integrations.chat.kind: required")


def test_problems_inside_an_integration_have_its_path() -> None:
    problem = one_problem({"integrations": {"ops": {"kind": "webhook", "url": "ftp://x"}}})
    assert problem.startswith("integrations.ops.url:")
    problem = one_problem({"integrations": {"ops": {"kind": "webhook", "url": "http://x/", "colour": 1}}})
    assert problem == "integrations.ops.colour: Extra inputs are not permitted"
    problem = one_problem({"integrations": {"ops": {"kind": "webhook"}}})
    assert problem == "integrations.ops: set url (to send), receive (to receive), or both"


@pytest.mark.parametrize(
    ("data", "prefix", "words"),
    [
        ({"routes": [{"to": ["inbox"], "cooldown": "5 parsecs"}]}, "routes[0].cooldown:", "invalid duration '5 parsecs'"),
        ({"dispatcher": {"lease": "-5s"}}, "dispatcher.lease:", "invalid duration"),
        ({"dispatcher": {"poll_interval": -1}}, "dispatcher.poll_interval:", "negative"),
        ({"dispatcher": {"shutdown_timeout": "nan"}}, "dispatcher.shutdown_timeout:", "finite"),
        ({"default": {"cooldown": "soon"}}, "default.cooldown:", "invalid duration"),
        ({"server": {"body_limit": "lots"}}, "server.body_limit:", "invalid size 'lots'"),
        ({"server": {"body_limit": 0}}, "server.body_limit:", "positive"),
        ({"integrations": {"ops": {"kind": "webhook", "url": "http://x/", "rate_limit": "fast"}}},
         "integrations.ops.rate_limit:", "invalid rate 'fast'"),
        ({"integrations": {"ops": {"kind": "webhook", "url": "http://x/", "rate_limit": "4/fortnight"}}},
         "integrations.ops.rate_limit:", "invalid rate"),
        ({"integrations": {"ops": {"kind": "webhook", "url": "http://x/", "timeout": "soon"}}},
         "integrations.ops.timeout:", "invalid duration"),
        ({"integrations": {"ops": {"kind": "webhook", "url": "http://x/", "retry": {"base": "x"}}}},
         "integrations.ops.retry.base:", "invalid duration"),
        ({"routes": [{"match": {"priority": ">=urgent"}, "to": ["inbox"]}]}, "routes[0].match.priority:", "unknown priority 'urgent'"),
        ({"routes": [{"match": {"priority": "!!high"}, "to": ["inbox"]}]}, "routes[0].match.priority:", "invalid priority expression"),
        ({"routes": [{"match": {"priority": ["high", "nope"]}, "to": ["inbox"]}]}, "routes[0].match.priority:", "unknown priority 'nope'"),
        ({"routes": [{"to": ["inbox"], "name": "n" * 101}]}, "routes[0].name:", "100"),
        ({"routes": [{"to": []}]}, "routes[0].to:", "at least 1"),
        ({"routes": [{"match": {"priority": "high"}}]}, "routes[0].to:", "required"),
        ({"server": {"port": 0}}, "server.port:", "greater than or equal to 1"),
        ({"server": {"sqlite_synchronous": "OFF"}}, "server.sqlite_synchronous:", "FULL"),
        ({"dispatcher": {"batch": 0}}, "dispatcher.batch:", "greater than or equal to 1"),
        ({"surprise": 1}, "surprise:", "Extra inputs are not permitted"),
    ],
)
def test_bad_values_give_one_line_with_the_path(data: dict[str, Any], prefix: str, words: str) -> None:
    problem = one_problem(data)
    assert problem.startswith(prefix), problem
    assert words in problem, problem


def test_an_invalid_regex_is_reported_with_its_path() -> None:
    found = problems_of({"routes": [{"match": {"labels": {"service": {"regex": "api-(eu"}}}, "to": ["inbox"]}]})
    regex_lines = [p for p in found if "invalid regex" in p]
    assert len(regex_lines) == 1, found
    assert regex_lines[0].startswith("routes[0].match.labels.service")
    assert "missing )" in regex_lines[0]


def test_bad_integration_names() -> None:
    for name in ("Ops", "has space", "-dash", "x" * 65, "ops!"):
        problem = one_problem({"integrations": {name: {"kind": "inbox"}}})
        assert problem.startswith(f"integrations.{name}: a name is lowercase letters")


def test_many_problems_are_all_reported_together() -> None:
    found = problems_of({"server": {"port": "x", "body_limit": "lots"}, "dispatcher": {"lease": "soon"}})
    assert sorted(p.split(":")[0] for p in found) == ["dispatcher.lease", "server.body_limit", "server.port"]


async def test_what_the_config_accepts_the_database_stores(make_hub: Any) -> None:
    """The longest route name (the route column holds 100 characters) and the longest source label."""
    hub = await make_hub({"routes": [{"name": "r" * 100, "to": ["inbox"]}]}, dispatch=False)
    receipt = await hub.notify(Message("x", labels={"source": "s" * 500}))
    stored = await hub.message(receipt.id)
    assert stored["deliveries"][0]["route"] == "r" * 100
    assert stored["labels"]["source"] == "s" * 500


# -- JSON Schema ---------------------------------------------------------------------------------


def test_the_schema_is_valid_json_schema() -> None:
    schema = config_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    json.dumps(schema)  # plain JSON
    assert set(schema["properties"]) == {"server", "dispatcher", "integrations", "routes", "default", "retention", "audit", "oauth", "projects"}
    union = schema["properties"]["integrations"]["additionalProperties"]
    assert set(union["discriminator"]["mapping"]) == set(kinds())
    route = schema["$defs"]["Route"]
    assert "continue" in route["properties"] and "continue_" not in route["properties"]


def _validator() -> Any:
    return jsonschema.Draft202012Validator(config_schema())


@pytest.mark.parametrize(
    "text",
    [FULL, "", "routes: []\n", "server: {body_limit: 1048576, port: 8401}\ndispatcher: {lease: 90}\n",
     "integrations:\n  hook: {kind: webhook, url: 'http://h/x', timeout: 2.5, retry: {cap: 1h}}\n"],
    ids=["full", "empty", "routes", "numbers", "webhook"],
)
def test_configs_that_load_also_validate_against_the_schema(tmp_path: Path, text: str) -> None:
    import yaml

    load_config(write(tmp_path, text))
    data = yaml.safe_load(textwrap.dedent(text)) or {}
    errors = [e.message for e in _validator().iter_errors(data)]
    assert errors == []


@pytest.mark.parametrize(
    "data",
    [
        {"surprise": 1},
        {"server": {"port": "eighty"}},
        {"integrations": {"chat": {"kind": "slak"}}},
        {"integrations": {"ops": {"kind": "webhook"}}},
        {"routes": [{"to": []}]},
        {"routes": [{"match": {"colour": "red"}, "to": ["inbox"]}]},
        {"routes": "all"},
    ],
)
def test_configs_the_loader_rejects_the_schema_rejects_too(data: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        parse_config(data, env={})
    assert list(_validator().iter_errors(data)), data
