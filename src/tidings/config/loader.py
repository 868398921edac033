"""Read tidings.yaml: YAML, then ``${ENV}`` interpolation, then validation with one line per problem."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from ..message import format_error
from ..security.redact import register
from .models import Config, config_model, integration_name_problem

DEFAULT_PATH = "tidings.yaml"
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The file to read: the argument, else ``TIDINGS_CONFIG``, else ``./tidings.yaml``."""
    return Path(path or os.environ.get("TIDINGS_CONFIG") or DEFAULT_PATH)


def load_config(path: str | os.PathLike[str] | None = None, *, required: bool = False) -> Config:
    """Load and validate the configuration. A missing default file gives the built-in defaults
    (an inbox and a default route to it) unless ``required``."""
    file = config_path(path)
    explicit = path is not None or "TIDINGS_CONFIG" in os.environ
    if not file.exists():
        if required or explicit:
            raise ConfigError([f"{file}: no such file (run `tidings init` to create one)"])
        return parse_config({}, source=str(file), base_dir=file.resolve().parent)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: {problem}"]) from None
    except OSError as exc:
        raise ConfigError([f"{file}: {exc.strerror}"]) from None
    if raw is None:
        raw = {}
    return parse_config(raw, source=str(file), base_dir=file.resolve().parent)


def parse_config(
    raw: Any, *, source: str | None = None, env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Validate ``raw``. A relative SQLite path in it is taken from ``base_dir`` (the config
    file's directory), not from wherever the process happens to run."""
    env = os.environ if env is None else env
    if not isinstance(raw, dict):
        raise ConfigError(["the top level must be a mapping (server, integrations, routes, default)"], source)
    problems: list[str] = []
    # A section left with only comments (``routes:``) reads as None: take it as empty.
    data = _interpolate({k: v for k, v in raw.items() if v is not None}, env, "", problems)
    _apply_env_overrides(data, env)
    integrations = data.setdefault("integrations", {})
    if isinstance(integrations, dict):
        integrations.setdefault("inbox", {"kind": "inbox"})
        for name in integrations:
            if problem := integration_name_problem(str(name)):
                problems.append(problem)
        problems += _file_references(integrations)
    if problems:  # a missing variable or a bad name would only cause confusing problems below
        raise ConfigError(problems, source)
    problems = _check_references(data)
    try:
        config = config_model().model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(e) for e in exc.errors()] + problems, source) from None
    register(config.secret_values())  # before anything can print them
    problems += _check_timeouts(config) + _check_targets(config) + _check_projects(config) + _check_archive(config)
    problems += _check_escalations(config)
    if problems:
        raise ConfigError(problems, source)
    if base_dir is not None and "TIDINGS_DATABASE_URL" not in env:
        database = anchor_sqlite(config.server.database, base_dir)
        if database != config.server.database:
            config = config.model_copy(update={"server": config.server.model_copy(update={"database": database})})
    config._raw = {k: v for k, v in raw.items() if v is not None}
    return config


def anchor_sqlite(url: str, base_dir: Path) -> str:
    """``url`` with a relative SQLite path made absolute from ``base_dir``; other URLs unchanged.
    ($TIDINGS_DATABASE_URL is left alone: a path typed in a shell means the shell's directory.)"""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if not u.drivername.startswith("sqlite") or not u.database or u.database == ":memory:":
        return url
    path = Path(u.database).expanduser()
    if path.is_absolute():
        return url
    return u.set(database=str((base_dir / path).resolve())).render_as_string(hide_password=False)


def _interpolate(value: Any, env: Mapping[str, str], path: str, problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, f"{path}.{k}" if path else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(f"{path}: environment variable {name} is not set")
        return ""

    return _ENV_REF.sub(sub, value)


def _apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> None:
    server = data.get("server")
    if server is None:
        server = data["server"] = {}
    if not isinstance(server, dict):
        return
    if url := env.get("TIDINGS_DATABASE_URL"):
        server["database"] = url
    if port := env.get("TIDINGS_PORT"):
        server["port"] = port
    if host := env.get("TIDINGS_HOST"):
        server["host"] = host


def _problem(err: Mapping[str, Any]) -> str:
    loc = list(err.get("loc", ()))
    # A discriminated union puts the kind tag in the path (integrations.ops.webhook.url): drop it.
    if len(loc) >= 3 and loc[0] == "integrations" and isinstance(loc[2], str) and err.get("type") != "union_tag_invalid":
        from ..integrations.registry import KINDS

        if loc[2] in KINDS:
            del loc[2]
    if err.get("type") == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"{_path(loc)}.kind: unknown kind {ctx.get('tag')!r}; known kinds: {ctx.get('expected_tags')}"
    if err.get("type") == "union_tag_not_found":
        return f"{_path(loc)}.kind: required (one of the integration kinds)"
    return format_error({**err, "loc": loc})


def _path(loc: list[Any]) -> str:
    return format_error({"loc": loc, "msg": ""}).rstrip(": ")


def _file_references(integrations: Mapping[str, Any]) -> list[str]:
    """``${file:...}`` values: a revision's pointer to a secret of the file it was imported from
    (``tidings config export`` keeps them); a file must hold the value itself."""
    from .document import FILE_REF

    found = []
    for name, entry in integrations.items():
        for field, value in (entry.items() if isinstance(entry, dict) else ()):
            inner = value.items() if isinstance(value, dict) else [(None, value)]
            found += [(f"integrations.{name}.{field}" + (f".{key}" if key is not None else ""), v)
                      for key, v in inner if isinstance(v, str) and FILE_REF.match(v)]
    return [f"{path}: {value} names a secret of the file a revision was imported from; write the value here,"
            " or ${ENV_VAR} or ${vault:NAME}" for path, value in found]


def _check_references(data: Mapping[str, Any]) -> list[str]:
    """Route and escalation targets that name no integration (``@handles`` name people: data, not
    configuration, so any well-formed one is accepted). Checked on the raw data, so that they show
    together with every other problem."""
    from .people import HANDLE

    integrations = data.get("integrations")
    if not isinstance(integrations, dict):
        return []
    names = {str(n) for n in integrations}
    targets: list[tuple[str, Any]] = []
    routes = data.get("routes")
    entries = [(f"routes[{i}]", r) for i, r in enumerate(routes if isinstance(routes, list) else [])]
    entries.append(("default", data.get("default")))
    for where, route in entries:
        if not isinstance(route, dict):
            continue
        targets += _listed(f"{where}.to", route.get("to"))
        steps = route.get("escalation", {}).get("steps") if isinstance(route.get("escalation"), dict) else None
        for k, step in enumerate(steps if isinstance(steps, list) else []):
            targets += _listed(f"{where}.escalation.steps[{k}].to", step.get("to") if isinstance(step, dict) else None)
    problems = []
    for path, t in targets:
        if not isinstance(t, str):
            continue
        if t.startswith("@"):
            if not HANDLE.match(t):
                problems.append(f"{path}: {t!r} is not a recipient handle: '@' then lowercase letters, digits,"
                                " '.', '-' and '_'")
        elif t not in names:
            problems.append(f"{path}: unknown integration {t!r}{_suggest(t, names)}")
    return problems


def _listed(path: str, items: Any) -> list[tuple[str, Any]]:
    return [(f"{path}[{j}]", t) for j, t in enumerate(items if isinstance(items, list) else [])]


def _check_targets(config: Config) -> list[str]:
    """Routes may only send to integrations that can send as configured."""
    from ..integrations.registry import integration_class

    def sends(name: str) -> bool:
        settings = config.integrations[name]
        return integration_class(settings.kind).can_send(settings)

    problems = []
    for i, route in enumerate(config.routes):
        for j, target in enumerate(route.to):
            if target in config.integrations and not sends(target):
                problems.append(f"routes[{i}].to[{j}]: integration {target!r} only receives; it can't be a target")
    for j, target in enumerate(config.default.to):
        if target in config.integrations and not sends(target):
            problems.append(f"default.to[{j}]: integration {target!r} only receives; it can't be a target")
    return problems


def _check_escalations(config: Config) -> list[str]:
    """An escalation step sends to integrations of its route's project that can send (or to
    ``@recipients``, resolved when the step fires)."""
    from ..integrations.base import DEFAULT_PROJECT
    from ..integrations.registry import integration_class
    from .people import HANDLE

    routes = [(f"routes[{i}]", r, r.project) for i, r in enumerate(config.routes)]
    problems = []
    for path, route, project in [*routes, ("default", config.default, DEFAULT_PROJECT)]:
        for k, step in enumerate(route.escalation.steps if route.escalation else []):
            for j, target in enumerate(step.to):
                where = f"{path}.escalation.steps[{k}].to[{j}]"
                settings = config.integrations.get(target)
                if HANDLE.match(target):
                    continue
                if settings is None:
                    problems.append(f"{where}: unknown integration {target!r}{_suggest(target, set(config.integrations))}")
                elif settings.project != project:
                    problems.append(f"{where}: integration {target!r} belongs to project {settings.project!r},"
                                    f" not {project!r}")
                elif not integration_class(settings.kind).can_send(settings):
                    problems.append(f"{where}: integration {target!r} only receives; it can't be a target")
    return problems


def _check_archive(config: Config) -> list[str]:
    """``audit.archive`` names an s3 integration."""
    name = config.audit.archive
    if name is None:
        return []
    settings = config.integrations.get(name)
    if settings is None:
        return [f"audit.archive: unknown integration {name!r}{_suggest(name, set(config.integrations))}"]
    if settings.kind != "s3":
        return [f"audit.archive: integration {name!r} is {settings.kind}; audit copies go to an s3 integration"]
    return []


def _check_projects(config: Config) -> list[str]:
    """A route routes one project's messages to that project's integrations only; a project a
    route names must be one an integration belongs to (``default`` always is); a route's name
    (which digests find their targets by) belongs to one project."""
    from ..integrations.base import DEFAULT_PROJECT

    known = {DEFAULT_PROJECT} | {s.project for s in config.integrations.values()}
    problems = []
    owner: dict[str, str] = {"default": DEFAULT_PROJECT}
    for i, route in enumerate(config.routes):
        if route.project not in known:
            problems.append(f"routes[{i}].project: unknown project {route.project!r}: no integration belongs to it"
                            f"{_suggest(route.project, known)} (projects: {', '.join(sorted(known))})")
            continue
        if route.name is not None and owner.setdefault(route.name, route.project) != route.project:
            problems.append(f"routes[{i}].name: {route.name!r} is a route of project {owner[route.name]!r} already;"
                            " a route name belongs to one project")
        steps = route.escalation.steps if route.escalation is not None else []
        listed = [(f"to[{j}]", t) for j, t in enumerate(route.to)]
        listed += [(f"escalation.steps[{k}].to[{j}]", t) for k, step in enumerate(steps) for j, t in enumerate(step.to)]
        for where, target in listed:
            settings = config.integrations.get(target)
            if settings is not None and settings.project != route.project:
                problems.append(f"routes[{i}].{where}: integration {target!r} belongs to project {settings.project!r},"
                                f" not {route.project!r}; a route sends only to its project's integrations")
    for j, target in enumerate(config.default.to):
        settings = config.integrations.get(target)
        if settings is not None and settings.project != DEFAULT_PROJECT:
            problems.append(f"default.to[{j}]: integration {target!r} belongs to project {settings.project!r};"
                            " the default route is project 'default''s (give other projects a route without match)")
    return problems


def _check_timeouts(config: Config) -> list[str]:
    """A send must end before its lease does, or another worker would send it again."""
    from ..delivery.sending import TIMEOUT_GRACE
    from ..integrations.registry import integration_class

    lease = config.dispatcher.lease
    problems = []
    for name, settings in config.integrations.items():
        timeout = settings.timeout or integration_class(settings.kind).timeout
        if timeout + TIMEOUT_GRACE >= lease:
            problems.append(
                f"integrations.{name}.timeout: {timeout:g}s leaves no room in dispatcher.lease ({lease:g}s);"
                f" keep it under {lease - TIMEOUT_GRACE:g}s or raise the lease"
            )
    return problems


def _suggest(name: str, names: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def config_schema() -> dict[str, Any]:
    """JSON Schema of tidings.yaml, for editors (yaml-language-server) to validate and complete."""
    schema = config_model().model_json_schema(by_alias=True)
    # A section left with only comments (``routes:`` in the file `tidings init` writes) reads as
    # null, which parse_config takes as empty: the schema must accept it too.
    for name, prop in schema.get("properties", {}).items():
        if isinstance(prop.get("type"), str):
            prop["type"] = [prop["type"], "null"]
        elif "$ref" in prop:
            schema["properties"][name] = {"anyOf": [{"$ref": prop.pop("$ref")}, {"type": "null"}], **prop}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tidings.yaml"
    return schema


def dump_schema() -> str:
    return json.dumps(config_schema(), indent=2)
