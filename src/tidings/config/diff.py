"""What changed between two configuration documents, per integration and per route, readable by a
person. Secret fields show only that they changed (their values are references anyway)."""

from __future__ import annotations

from typing import Any

from ..integrations.base import DEFAULT_PROJECT
from .document import Document, is_reference, normalize, secret_fields

SECRET_CHANGED = "(secret changed)"


def diff_documents(old: Document | None, new: Document) -> list[dict[str, Any]]:
    """The changes from ``old`` to ``new``: integrations (added, removed, changed: each field),
    routes per project (added, removed, changed, moved), the default route. Each change is
    ``{"what", "name", "project", "change", "fields": [{"path", "before", "after"}], ...}``."""
    old_doc = normalize(old) if old is not None else {"integrations": {}, "routes": [], "default": {}}
    new_doc = normalize(new)
    return [*_integrations(old_doc["integrations"], new_doc["integrations"]),
            *_routes(old_doc["routes"], new_doc["routes"]),
            *_default(old_doc["default"], new_doc["default"])]


def _integrations(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name in sorted({*old, *new}):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        entry = after if after is not None else before
        base = {"what": "integration", "name": name, "project": _project(entry), "kind": _kind(entry)}
        if before is None:
            out.append({**base, "change": "added", "fields": _fields({}, after, _kind(after))})
        elif after is None:
            out.append({**base, "change": "removed", "fields": []})
        else:
            out.append({**base, "change": "changed", "fields": _fields(before, after, _kind(after))})
    return out


def _routes(old: list[Any], new: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for project in sorted({_project(r) for r in (*old, *new)}):
        before = [r for r in old if _project(r) == project]
        after = [r for r in new if _project(r) == project]
        if before == after:
            continue
        matched: dict[int, int] = {}  # new index -> old index
        free = set(range(len(before)))
        for j, route in enumerate(after):  # by name first, then an identical route
            name = _name(route)
            i = next((i for i in sorted(free) if name is not None and _name(before[i]) == name), None)
            if i is None:
                i = next((i for i in sorted(free) if before[i] == route), None)
            if i is not None:
                matched[j] = i
                free.discard(i)
        for i in sorted(free):
            out.append(_route_change(before[i], i, project, "removed", fields=[]))
        kept = sorted(matched)  # new indices of the routes on both sides
        stay = _increasing([matched[j] for j in kept])
        moved = {j for k, j in enumerate(kept) if k not in stay}
        for j, route in enumerate(after):
            if j not in matched:
                out.append(_route_change(route, j, project, "added", fields=_fields({}, route, None)))
                continue
            i = matched[j]
            if before[i] != route:
                out.append(_route_change(route, j, project, "changed", fields=_fields(before[i], route, None), was=i))
            if j in moved:
                out.append(_route_change(route, j, project, "moved", fields=[], was=i))
    return out


def _route_change(route: Any, index: int, project: str, change: str, *, fields: list[dict[str, Any]],
                  was: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"what": "route", "name": _name(route) or f"#{index + 1}", "project": project,
                            "change": change, "position": index, "fields": fields}
    if was is not None:
        item["was"] = was
    return item


def _default(old: Any, new: Any) -> list[dict[str, Any]]:
    if old == new:
        return []
    return [{"what": "default", "name": "default", "project": DEFAULT_PROJECT, "change": "changed",
             "fields": _fields(old or {}, new or {}, None)}]


def _fields(before: Any, after: Any, kind: str | None) -> list[dict[str, Any]]:
    secrets = set(secret_fields(kind)) if kind and _known(kind) else set()
    out: list[dict[str, Any]] = []
    for path, b, a in _walk(before if isinstance(before, dict) else {}, after if isinstance(after, dict) else {}, ""):
        top = path.split(".", 1)[0]
        if top in secrets and (_hidden(b) or _hidden(a)):
            b, a = (SECRET_CHANGED if b is not None else None), (SECRET_CHANGED if a is not None else None)
        out.append({"path": path, "before": b, "after": a})
    return out


def _hidden(value: Any) -> bool:
    return value is not None and not is_reference(value)


def _increasing(values: list[int]) -> set[int]:
    """Positions of a longest increasing subsequence of ``values``: the routes that kept their
    order; the others moved."""
    best: list[list[int]] = []
    for k, v in enumerate(values):
        prev = max((b for b in best if values[b[-1]] < v), key=len, default=[])
        best.append([*prev, k])
    return set(max(best, key=len, default=[]))


def _walk(before: dict[str, Any], after: dict[str, Any], prefix: str) -> list[tuple[str, Any, Any]]:
    out = []
    for key in sorted({*before, *after}, key=str):
        b, a = before.get(key), after.get(key)
        path = f"{prefix}{key}"
        if b == a:
            continue
        if isinstance(b, dict) and isinstance(a, dict):
            out += _walk(b, a, path + ".")
        else:
            out.append((path, b, a))
    return out


def format_diff(changes: list[dict[str, Any]]) -> str:
    """One line per change (``+`` added, ``-`` removed, ``~`` changed, ``>`` moved), its fields
    indented below it; "no changes" when there are none."""
    if not changes:
        return "no changes"
    marks = {"added": "+", "removed": "-", "changed": "~", "moved": ">"}
    lines = []
    for c in changes:
        where = f" (project {c['project']})" if c["project"] != DEFAULT_PROJECT else ""
        if c["what"] == "integration":
            head = f"integration {c['name']} [{c.get('kind') or '?'}]{where}"
        elif c["what"] == "route":
            head = f"route {c['name']}{where}"
            if c["change"] == "moved":
                head += f": position {c['was'] + 1} -> {c['position'] + 1}"
            elif c["change"] == "added":
                head += f" at position {c['position'] + 1}"
        else:
            head = "default route"
        lines.append(f"{marks[c['change']]} {head}")
        lines += [f"    {f['path']}: {_show(f['before'])} -> {_show(f['after'])}" for f in c["fields"]]
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if value == SECRET_CHANGED:
        return value
    return repr(value)


def _project(entry: Any) -> str:
    return entry.get("project", DEFAULT_PROJECT) if isinstance(entry, dict) else DEFAULT_PROJECT


def _kind(entry: Any) -> str | None:
    return entry.get("kind") if isinstance(entry, dict) else None


def _name(route: Any) -> str | None:
    return route.get("name") if isinstance(route, dict) else None


def _known(kind: str) -> bool:
    from ..integrations.registry import KINDS

    return kind in KINDS
