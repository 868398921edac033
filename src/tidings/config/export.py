"""A revision written back as tidings.yaml, readable by a person: the process sections of this
machine's file (server, dispatcher, retention, audit) as written there, then ``integrations``,
``routes`` and ``default`` (each integration and route with its usual keys first).

Imported again (``tidings config reload`` against it), the file gives the same document, so no
new revision: ``${vault:...}`` and ``${ENV}`` references are written as they are; a
``${file:integrations.NAME.FIELD}`` reference (a secret written literally in the file the
revision came from) is kept and explained in a comment, or replaced by this machine's file's value
with ``with_file_secrets``.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import SecretStr

from ..integrations.base import DEFAULT_PROJECT
from .document import FILE_REF, PROCESS_SECTIONS, Document, normalize
from .models import Config

_INTEGRATION_FIRST = ("kind", "project", "enabled")
_ROUTE_FIRST = ("name", "project", "match", "to")
KEPT_NOTE = "a secret kept in the configuration file; see the note at the top"


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, as people write YAML."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    """A list of a few plain values on one line (``to: [inbox, ops]``), others as a block."""
    flow = all(isinstance(v, str | int | float | bool) for v in value) and len(str(value)) <= 60
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(list, _list)


def ordered_document(doc: Document) -> Document:
    """``doc`` in the order a person writes it: integrations (kind, project first), routes (name,
    project, match, to first), default."""
    doc = normalize(doc)
    integrations = sorted(doc["integrations"].items(), key=lambda item: _project_order(item[1]))
    return {
        "integrations": {name: _first(entry, _INTEGRATION_FIRST) for name, entry in integrations},
        "routes": [_first(route, _ROUTE_FIRST) for route in doc["routes"]],
        "default": doc["default"],
    }


def _project_order(entry: Any) -> tuple[bool, str]:
    """Project ``default`` first, then the others by name (a stable sort keeps each one's order)."""
    project = entry.get("project", DEFAULT_PROJECT) if isinstance(entry, dict) else DEFAULT_PROJECT
    return project != DEFAULT_PROJECT, project


def _first(entry: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(entry, dict):
        return entry
    return {**{k: entry[k] for k in keys if k in entry}, **{k: v for k, v in entry.items() if k not in keys}}


def dump_yaml(data: dict[str, Any]) -> str:
    """``data`` as block YAML, keys in their order, top-level sections apart."""
    parts = [yaml.dump({key: value}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000,
                       default_flow_style=False) for key, value in data.items()]
    return "\n".join(parts)


def _file_values(doc: Document) -> list[tuple[dict[str, Any], str]]:
    """(the mapping, its key) of each ``${file:...}`` reference in ``doc``'s integrations: a field,
    or one value of a mapping field (a header)."""
    out = []
    for entry in normalize(doc)["integrations"].values():
        for field, value in (entry.items() if isinstance(entry, dict) else ()):
            for holder, key, inner in ([(value, k, v) for k, v in value.items()] if isinstance(value, dict)
                                       else [(entry, field, value)]):
                if isinstance(inner, str) and FILE_REF.match(inner):
                    out.append((holder, key))
    return out


def _local_secret(base: Config, ref: str) -> str | None:
    """The value ``ref`` names in this machine's file (escaped for the YAML: ``$`` written ``$$``),
    or None when that file has none."""
    m = FILE_REF.match(ref)
    if m is None:
        return None
    name, field, *rest = m.groups()
    settings = base.integrations.get(name)
    value: Any = getattr(settings, field, None) if settings is not None else None
    if rest and rest[0] is not None:
        value = value.get(rest[0]) if isinstance(value, dict) else None
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value.replace("$", "$$") if isinstance(value, str) and value else None


def export_yaml(doc: Document, base: Config, *, with_file_secrets: bool = False, header: str | None = None) -> str:
    """``doc`` as a complete tidings.yaml: ``base``'s process sections as its file has them, then
    the document. ``${file:...}`` references stay (with a comment) unless ``with_file_secrets``
    and ``base`` holds the value."""
    document = copy.deepcopy(ordered_document(doc))
    kept: list[str] = []
    for holder, key in _file_values(document):
        value = _local_secret(base, holder[key]) if with_file_secrets else None
        if value is not None:
            holder[key] = value
        else:
            kept.append(holder[key])
    raw = getattr(base, "_raw", None) or {}
    process = {k: copy.deepcopy(raw[k]) for k in PROCESS_SECTIONS if raw.get(k) is not None}
    lines = [f"# {line}" if line else "#" for line in (header or "").splitlines()]
    if kept:
        lines += [
            "# ${file:integrations.NAME.FIELD}: a secret written literally in the configuration file this",
            "# revision was imported from; the database never holds it, each process reads it from its own",
            "# file. Imported as it is, this file keeps the reference (the same revision) but gives no value",
            "# for it: write the value instead (`tidings config export --with-file-secrets` takes it from",
            "# this machine's file), or store it in the vault (`tidings secret set NAME`) and write",
            "# ${vault:NAME}.",
        ]
    text = dump_yaml({**process, **document})
    if kept:
        text = "\n".join(f"{line}  # {KEPT_NOTE}" if any(line.endswith(ref) for ref in kept) else line
                         for line in text.splitlines()) + "\n"
    return ("\n".join(lines) + "\n\n" if lines else "") + text
