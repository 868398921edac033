"""The managed part of the configuration as a plain document: ``integrations``, ``routes`` and
``default``, as the user wrote them (``${ENV}`` references kept), secrets only as references.

A revision stores a document; every process turns it into a :class:`Config` with its own file's
process settings (server, dispatcher, retention, audit) by :func:`to_config`, which validates it
with the same models and messages as ``tidings config validate``.

A secret written literally in the YAML file never enters the database: the document holds
``${file:integrations.NAME.FIELD}`` instead, and each process takes the value from its own file.
"""

from __future__ import annotations

import copy
import hashlib
import re
import types
import typing
from functools import cache
from typing import Any

import orjson
from pydantic import SecretStr

from ..errors import ConfigError
from ..integrations.base import DEFAULT_PROJECT, VAULT_REF
from .models import Config

Document = dict[str, Any]
SECTIONS = ("integrations", "routes", "default", "projects")
"""What a revision holds; the rest of tidings.yaml stays with each process."""
PROCESS_SECTIONS = ("server", "dispatcher", "retention", "audit", "oauth", "projects")
FILE_REF = re.compile(r"^\$\{file:integrations\.([A-Za-z0-9_\-]+)\.([A-Za-z0-9_]+)(?:\.([^}]+))?\}$")
"""``${file:integrations.NAME.FIELD}``, or ``...FIELD.KEY`` for one value of a mapping (a header)."""
_REFERENCE = re.compile(r"^\$\{[^}]+\}$")
_DEFAULTED = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:-.+\}$")
"""``${ENV:-fallback}``: its fallback is written literally."""


def file_ref(integration: str, field: str, key: str | None = None) -> str:
    return f"${{file:integrations.{integration}.{field}{'.' + key if key is not None else ''}}}"


@cache
def secret_fields(kind: str) -> tuple[str, ...]:
    """The settings of ``kind`` that hold a secret (typed ``SecretStr``)."""
    from ..integrations.registry import settings_model

    out = []
    for name, field in settings_model(kind).model_fields.items():
        annotation = field.annotation
        args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) else ()
        if annotation is SecretStr or SecretStr in args:
            out.append(name)
    return tuple(out)


def is_reference(value: Any) -> bool:
    """``${vault:NAME}``, ``${file:...}`` or a whole ``${ENV}`` (without a ``:-fallback``, which
    would be written literally): a pointer to a secret, not one."""
    return isinstance(value, str) and bool(_REFERENCE.match(value)) and not _DEFAULTED.match(value)


def document_of(config: Config) -> Document:
    """``config``'s managed sections as written in its file (``${ENV}`` kept), literal secrets
    replaced by ``${file:...}`` references."""
    raw = getattr(config, "_raw", None)
    if raw is not None:
        doc: Document = {k: copy.deepcopy(raw[k]) for k in SECTIONS if raw.get(k) is not None}
    else:  # built in code, not parsed: what it holds
        dumped = config.model_dump(mode="python", by_alias=True, exclude_unset=True, include=set(SECTIONS))
        doc = orjson.loads(orjson.dumps(dumped, default=_plain))
    integrations = doc.setdefault("integrations", {})
    for name, settings in config.integrations.items():
        entry = integrations.setdefault(name, {"kind": settings.kind})
        if isinstance(entry, dict):
            _hide_secrets(name, entry, settings)
    return normalize(doc)


def _hide_secrets(name: str, entry: dict[str, Any], settings: Any) -> None:
    """Replace, in ``entry`` (as written), each secret written literally by its ``${file:...}``
    reference: the secret-typed fields and whatever else the settings count among their secrets
    (a sensitive header, a URL with credentials). A value that only names a secret
    (``${vault:...}``, a whole ``${ENV}``) stays."""
    secrets = set(settings.secret_values())
    typed = secret_fields(settings.kind)
    for field, value in list(entry.items()):
        if isinstance(value, dict):
            held = getattr(settings, field, None)
            for key, inner in list(value.items()):
                resolved = held.get(key) if isinstance(held, dict) else None
                if _written_secret(inner, resolved, secrets):
                    value[key] = file_ref(name, field, str(key))
            continue
        if isinstance(value, SecretStr):
            value = entry[field] = value.get_secret_value()
        resolved = getattr(settings, field, None)
        if isinstance(resolved, SecretStr):
            resolved = resolved.get_secret_value()
        if _written_secret(value, resolved, secrets) or (field in typed and isinstance(value, str) and value
                                                         and not is_reference(value)):
            entry[field] = file_ref(name, field)


def _written_secret(written: Any, resolved: Any, secrets: set[str]) -> bool:
    return (isinstance(written, str) and not is_reference(written) and isinstance(resolved, str)
            and resolved in secrets)


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    raise TypeError(f"{type(value).__name__} is not JSON")


def normalize(doc: Document) -> Document:
    """``doc`` with the sections every document has (so that equal configurations compare equal)."""
    out = {k: doc[k] for k in SECTIONS if doc.get(k) is not None}
    out["integrations"] = dict(out.get("integrations") or {})  # a copy: the caller's document stays as it is
    out["integrations"].setdefault("inbox", {"kind": "inbox"})
    out.setdefault("routes", [])
    out.setdefault("default", {})
    return out


def canonical(doc: Document) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def digest(doc: Document) -> str:
    return hashlib.sha256(canonical(doc)).hexdigest()


def to_config(doc: Document, base: Config) -> Config:
    """The configuration a process runs: ``doc`` with ``base``'s process settings, validated
    (:class:`ConfigError` with one line per problem). ``${file:...}`` takes the value from
    ``base`` (this process's file)."""
    from .loader import parse_config

    problems: list[str] = []
    resolved = copy.deepcopy(normalize(doc))
    for name, entry in resolved["integrations"].items():
        if not isinstance(entry, dict):
            continue
        for field, value in list(entry.items()):
            if isinstance(value, dict):
                for key, inner in list(value.items()):
                    value[key] = _from_file(inner, base, f"integrations.{name}.{field}.{key}", problems)
            else:
                entry[field] = _from_file(value, base, f"integrations.{name}.{field}", problems)
    if problems:
        raise ConfigError(problems)
    raw = getattr(base, "_raw", None) or {}
    process = {k: copy.deepcopy(raw[k]) for k in PROCESS_SECTIONS if raw.get(k) is not None}
    if not raw:
        process = {"dispatcher": base.dispatcher.model_dump(mode="json"), "audit": base.audit.model_dump(mode="json")}
    config = parse_config({**process, **resolved})
    config = config.model_copy(update={k: getattr(base, k) for k in PROCESS_SECTIONS})
    config._raw = {**process, **normalize(doc)}
    return config


def _from_file(value: Any, base: Config, path: str, problems: list[str]) -> Any:
    """``value``, or the value of ``base`` a ``${file:...}`` reference names (escaped: ``to_config``
    interpolates ``${ENV}`` after, and a resolved value is not interpolated twice)."""
    if not isinstance(value, str) or not (m := FILE_REF.match(value)):
        return value
    settings = base.integrations.get(m.group(1))
    found: Any = getattr(settings, m.group(2), None) if settings is not None else None
    if m.group(3) is not None:
        found = found.get(m.group(3)) if isinstance(found, dict) else None
    if isinstance(found, SecretStr):
        found = found.get_secret_value()
    if not isinstance(found, str) or not found:
        problems.append(f"{path}: {value} names a value of the file the revision came from,"
                        " which this process's file lacks")
        return value
    return found.replace("$", "$$")


def project_part(doc: Document, project: str | None) -> Document:
    """What of ``doc`` belongs to ``project`` (None: all of it): its integrations, its routes in
    order and, for ``default``, the default route. Two revisions whose parts are equal did not
    change that project."""
    doc = normalize(doc)
    if project is None:
        return doc
    part: Document = {
        "integrations": {n: s for n, s in doc["integrations"].items() if _project(s) == project},
        "routes": [r for r in doc["routes"] if _project(r) == project],
    }
    if project == DEFAULT_PROJECT:
        part["default"] = doc["default"]
    return part


def with_project_part(doc: Document, part: Document, project: str) -> Document:
    """``doc`` with ``project``'s part replaced by ``part`` (as :func:`project_part` gives it):
    its integrations, its routes where they stood, and for ``default`` the default route."""
    out = copy.deepcopy(normalize(doc))
    out["integrations"] = {n: s for n, s in out["integrations"].items() if _project(s) != project}
    out["integrations"].update(copy.deepcopy(part.get("integrations", {})))
    out["routes"] = _replace_routes(out["routes"], project, part.get("routes", []))
    if project == DEFAULT_PROJECT and "default" in part:
        out["default"] = copy.deepcopy(part["default"])
    return normalize(out)


def _replace_routes(routes: list[Any], project: str, new: list[Any]) -> list[Any]:
    """``routes`` with ``project``'s replaced by ``new``, one by one in the places they held (so
    routes of several projects keep their interleaving); more new routes follow the last place, fewer
    leave the last places empty; a project that had none gets them at the end."""
    places = [i for i, r in enumerate(routes) if _project(r) == project]
    fresh = copy.deepcopy(new)
    if not places:
        return [*routes, *fresh]
    out: list[Any] = []
    taken = 0
    for i, route in enumerate(routes):
        if _project(route) != project:
            out.append(route)
        elif i == places[-1]:
            out += fresh[taken:]
            taken = len(fresh)
        elif taken < len(fresh):
            out.append(fresh[taken])
            taken += 1
    return out


def _project(entry: Any) -> str:
    return entry.get("project", DEFAULT_PROJECT) if isinstance(entry, dict) else DEFAULT_PROJECT


def merge_file_change(current: Document, last_file: Document | None, new_file: Document) -> Document:
    """``current`` with what the file changed since its last import (``last_file``) applied:
    each integration the file added, changed or removed; the routes of each project whose routes
    the file changed (replaced where they stood); the default route if the file changed it.
    Whatever was made through the API and the file did not touch stays."""
    current, new_file = normalize(current), normalize(new_file)
    last = normalize(last_file) if last_file is not None else {"integrations": {}, "routes": [], "default": None}
    out = copy.deepcopy(current)
    for name in {*last["integrations"], *new_file["integrations"]}:
        before, after = last["integrations"].get(name), new_file["integrations"].get(name)
        if before == after:
            continue
        if after is None:
            out["integrations"].pop(name, None)
        else:
            out["integrations"][name] = copy.deepcopy(after)
    projects = {_project(r) for r in (*last["routes"], *new_file["routes"])}
    for project in sorted(projects):
        before_r = [r for r in last["routes"] if _project(r) == project]
        after_r = [r for r in new_file["routes"] if _project(r) == project]
        if before_r == after_r:
            continue
        out["routes"] = _replace_routes(out["routes"], project, after_r)
    if last.get("default") != new_file["default"]:
        out["default"] = copy.deepcopy(new_file["default"])
    return out


def secret_references(doc: Document) -> dict[str, str]:
    """``integrations.NAME.FIELD`` -> the vault secret each ``${vault:NAME}`` value names."""
    out = {}
    for name, entry in normalize(doc)["integrations"].items():
        for field, value in (entry.items() if isinstance(entry, dict) else ()):
            if isinstance(value, str) and (m := VAULT_REF.match(value)):
                out[f"integrations.{name}.{field}"] = m.group(1)
    return out
