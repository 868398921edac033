"""Edits of the managed document (``config/document.py``): add, patch and remove an integration;
insert, change, move and remove a project's route; replace the default route. The API and the CLI
make their changes with these.

Each function takes a document and returns a new one (the argument is left alone) and checks only
the edit itself (the integration exists, the position is in range, ``kind`` stays): whether the
result is a valid configuration is :func:`~tidings.config.document.to_config`'s to say, when the
revision is committed. A project's routes are numbered from 0 in the order they are tried, among
that project's routes only (the document interleaves every project's). An integration or a route
given to a project's function without ``project`` is that project's.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import NotFound, TidingsError
from ..integrations.base import DEFAULT_PROJECT
from .document import Document, normalize
from .models import integration_name_problem


class EditError(TidingsError):
    """The edit can't be made as asked (HTTP 422); ``problems`` has one line per problem, with its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class EditConflict(TidingsError):
    """The edit collides with what exists (HTTP 409): a name taken already."""


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with the JSON merge patch ``patch`` applied (RFC 7396): an object merges key by
    key, ``null`` removes a key, anything else replaces the value."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def project_of(entry: Any) -> str:
    """The project of an integration or a route as written (none: ``default``)."""
    return str(entry.get("project", DEFAULT_PROJECT)) if isinstance(entry, dict) else DEFAULT_PROJECT


def _with_project(entry: dict[str, Any], project: str) -> dict[str, Any]:
    """``entry`` naming ``project`` as the file would: not at all for ``default``."""
    out = {k: v for k, v in entry.items() if k != "project"}
    if project != DEFAULT_PROJECT:
        out["project"] = project
    return out


# -- integrations ----------------------------------------------------------------------------------
def integrations_of(doc: Document, project: str) -> dict[str, dict[str, Any]]:
    """``project``'s integrations as written, in document order."""
    return {n: e for n, e in (doc.get("integrations") or {}).items() if project_of(e) == project}


def get_integration(doc: Document, project: str, name: str) -> dict[str, Any]:
    """Integration ``name`` of ``project`` as written; :class:`NotFound` when ``project`` has none
    of that name (another project's is not found either)."""
    entry = (doc.get("integrations") or {}).get(name)
    if not isinstance(entry, dict) or project_of(entry) != project:
        raise NotFound(f"no integration {name!r}")
    return copy.deepcopy(entry)


def _check_entry(name: str, entry: Any, project: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise EditError([f"integrations.{name}: must be a mapping of settings"])
    if not isinstance(entry.get("kind"), str) or not entry["kind"]:
        raise EditError([f"integrations.{name}.kind: required (one of the integration kinds)"])
    if entry.get("project", project) != project:
        raise EditError([f"integrations.{name}.project: {entry['project']!r} is not this project ({project!r});"
                         " an integration is made in its own project"])
    return entry


def add_integration(doc: Document, project: str, name: str, entry: dict[str, Any]) -> Document:
    """``doc`` with integration ``name`` (``entry``: its settings with ``kind``) added to
    ``project``. :class:`EditConflict` when the name is taken, in any project (names are unique:
    they are the webhook URLs' last part)."""
    if problem := integration_name_problem(name):
        raise EditError([problem])
    entry = _check_entry(name, entry, project)
    out = normalize(copy.deepcopy(doc))
    if name in out["integrations"]:
        raise EditConflict(f"an integration named {name!r} exists already (names are unique across projects)")
    out["integrations"][name] = _with_project(entry, project)
    return out


def patch_integration(doc: Document, project: str, name: str, patch: Any) -> Document:
    """``doc`` with the JSON merge patch ``patch`` applied to integration ``name``'s settings.
    ``kind`` and ``project`` can't change (:class:`EditError`): delete it and make a new one."""
    old = get_integration(doc, project, name)
    if not isinstance(patch, dict):
        raise EditError([f"integrations.{name}: a merge patch is a JSON object"])
    new = merge_patch(old, patch)
    problems = []
    if new.get("kind") != old.get("kind"):
        problems.append(f"integrations.{name}.kind: can't change ({old.get('kind')!r}); delete the integration"
                        " and make a new one")
    if project_of(new) != project:
        problems.append(f"integrations.{name}.project: can't change ({project!r})")
    if problems:
        raise EditError(problems)
    out = normalize(copy.deepcopy(doc))
    out["integrations"][name] = _with_project(new, project)
    return out


def replace_integration(doc: Document, project: str, name: str, entry: dict[str, Any]) -> Document:
    """``doc`` with integration ``name``'s settings replaced by ``entry`` (same kind and project)."""
    old = get_integration(doc, project, name)
    entry = _check_entry(name, entry, project)
    if entry["kind"] != old.get("kind"):
        raise EditError([f"integrations.{name}.kind: can't change ({old.get('kind')!r}); delete the integration"
                         " and make a new one"])
    out = normalize(copy.deepcopy(doc))
    out["integrations"][name] = _with_project(entry, project)
    return out


def remove_integration(doc: Document, project: str, name: str) -> Document:
    """``doc`` without integration ``name`` (routes still sending to it make the result invalid)."""
    get_integration(doc, project, name)
    out = normalize(copy.deepcopy(doc))
    del out["integrations"][name]
    return out


def routes_to(doc: Document, name: str) -> list[str]:
    """The paths of the route targets naming integration ``name`` (``routes[2].to[0]``, ``default.to[0]``)."""
    found = [f"routes[{i}].to[{j}]" for i, r in enumerate(doc.get("routes") or []) if isinstance(r, dict)
             for j, t in enumerate(r.get("to") or []) if t == name]
    default = doc.get("default") or {}
    found += [f"default.to[{j}]" for j, t in enumerate(default.get("to") or []) if t == name]
    return found


# -- routes ----------------------------------------------------------------------------------------
def routes_of(doc: Document, project: str) -> list[tuple[int, dict[str, Any]]]:
    """``project``'s routes in the order they are tried, each with its place in ``doc["routes"]``."""
    return [(i, r) for i, r in enumerate(doc.get("routes") or []) if project_of(r) == project]


def find_route(doc: Document, project: str, key: str | int) -> int:
    """The index (among ``project``'s routes) of the route ``key`` names: its index (digits), else
    its name. :class:`NotFound` when there is none."""
    own = routes_of(doc, project)
    if isinstance(key, int) or key.isdigit():
        index = int(key)
        if index < len(own):
            return index
        raise NotFound(f"no route {index} (project {project!r} has {len(own)})")
    for index, (_, route) in enumerate(own):
        if route.get("name") == key:
            return index
    raise NotFound(f"no route named {key!r}")


def _check_route(route: Any, project: str, where: str) -> dict[str, Any]:
    if not isinstance(route, dict):
        raise EditError([f"{where}: a route is a mapping (match, to, ...)"])
    if route.get("project", project) != project:
        raise EditError([f"{where}.project: {route['project']!r} is not this project ({project!r})"])
    return _with_project(route, project)


def _position(position: int | None, size: int, what: str = "position") -> int:
    if position is None:
        return size
    if not 0 <= position <= size:
        raise EditError([f"{what}: {position} is out of range (0 to {size})"])
    return position


def _insert(routes: list[Any], project: str, route: dict[str, Any], position: int) -> list[Any]:
    """``routes`` with ``route`` put at ``position`` among ``project``'s routes: before the one now
    there, else right after the project's last route, else at the end."""
    own = [i for i, r in enumerate(routes) if project_of(r) == project]
    at = own[position] if position < len(own) else (own[-1] + 1 if own else len(routes))
    return [*routes[:at], route, *routes[at:]]


def insert_route(doc: Document, project: str, route: dict[str, Any], position: int | None = None) -> tuple[Document, int]:
    """``doc`` with ``route`` inserted at ``position`` among ``project``'s routes (None: last), and its index."""
    out = normalize(copy.deepcopy(doc))
    size = len(routes_of(out, project))
    position = _position(position, size)
    out["routes"] = _insert(out["routes"], project, _check_route(route, project, f"routes[{position}]"), position)
    return out, position


def replace_route(doc: Document, project: str, index: int, route: dict[str, Any]) -> Document:
    """``doc`` with ``project``'s route ``index`` replaced by ``route``."""
    out = normalize(copy.deepcopy(doc))
    own = routes_of(out, project)
    if not 0 <= index < len(own):
        raise NotFound(f"no route {index} (project {project!r} has {len(own)})")
    out["routes"][own[index][0]] = _check_route(route, project, f"routes[{index}]")
    return out


def patch_route(doc: Document, project: str, index: int, patch: Any) -> Document:
    """``doc`` with the JSON merge patch ``patch`` applied to ``project``'s route ``index``
    (``project`` can't change)."""
    own = routes_of(doc, project)
    if not 0 <= index < len(own):
        raise NotFound(f"no route {index} (project {project!r} has {len(own)})")
    if not isinstance(patch, dict):
        raise EditError([f"routes[{index}]: a merge patch is a JSON object"])
    new = merge_patch(own[index][1], patch)
    if project_of(new) != project:
        raise EditError([f"routes[{index}].project: can't change ({project!r})"])
    return replace_route(doc, project, index, new)


def move_route(doc: Document, project: str, index: int, to: int) -> Document:
    """``doc`` with ``project``'s route ``index`` moved to index ``to`` (among its routes, as they
    are after the move)."""
    out = normalize(copy.deepcopy(doc))
    own = routes_of(out, project)
    if not 0 <= index < len(own):
        raise NotFound(f"no route {index} (project {project!r} has {len(own)})")
    to = _position(to, len(own) - 1, "to")
    route = out["routes"].pop(own[index][0])
    out["routes"] = _insert(out["routes"], project, route, to)
    return out


def remove_route(doc: Document, project: str, index: int) -> Document:
    """``doc`` without ``project``'s route ``index``."""
    out = normalize(copy.deepcopy(doc))
    own = routes_of(out, project)
    if not 0 <= index < len(own):
        raise NotFound(f"no route {index} (project {project!r} has {len(own)})")
    del out["routes"][own[index][0]]
    return out


def set_default_route(doc: Document, route: Any) -> Document:
    """``doc`` with the default route (project ``default``'s fallback) replaced by ``route``."""
    if not isinstance(route, dict):
        raise EditError(["default: a route is a mapping (to, ...)"])
    if "project" in route or "match" in route or "name" in route:
        extra = sorted({"project", "match", "name"} & set(route))
        raise EditError([f"default.{k}: the default route has no {k}" for k in extra])
    out = normalize(copy.deepcopy(doc))
    out["default"] = copy.deepcopy(route)
    return out


__all__ = [
    "EditConflict", "EditError", "add_integration", "find_route", "get_integration", "insert_route", "integrations_of",
    "merge_patch", "move_route", "patch_integration", "patch_route", "project_of", "remove_integration",
    "remove_route", "replace_integration", "replace_route", "routes_of", "routes_to", "set_default_route",
]
