"""A form from a JSON Schema (an integration kind's settings, as ``GET /api/v1/integrations/kinds``
gives it), and the settings a posted form means.

Each property becomes one input: a string a text input (``writeOnly``/``format: password`` a
password input, entered once and never shown again), an integer or number a number input, a
boolean a checkbox, an ``enum`` a select, an array of strings or numbers a textarea with one item
per line, anything else (an object, a union) a JSON textarea. ``description`` is the help text,
``required`` marks the label. The UI checks nothing itself: the API validates and its 422 lines,
which start with the setting's path, are shown beside the field they name (:func:`place`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

FIELD_PREFIX = "s."
CLEAR_PREFIX = "clear."
_MISSING = object()


@dataclass
class Field:
    name: str
    """its path in the settings, dotted (``sync.interval``)"""
    widget: str
    """text, number, password, checkbox, select, lines, secret-lines, json, group (an object's own fields)"""
    parse: str
    """str, int, float, num-or-str, bool, lines-str, lines-int, json"""
    required: bool = False
    help: str = ""
    default: Any = None
    has_default: bool = False
    options: list[str] = field(default_factory=list)
    secret: bool = False
    common: bool = False
    """a setting every kind has (limits, retry, breaker...): shown under "Delivery and network" """
    value: str = ""
    checked: bool = False
    secret_state: dict[str, Any] | None = None
    problem: str | None = None
    shown: str = ""
    """the value as a reader sees it (the read-only view)"""
    children: list[Field] = field(default_factory=list)
    """a group's fields"""

    @property
    def key(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def input_name(self) -> str:
        return FIELD_PREFIX + self.name

    @property
    def id(self) -> str:
        return "f-s-" + self.name.replace(".", "-")


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = prop.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.split("/")[-1], {})
        return {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


def _object(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of an object with fields of its own (a nullable one too), else None."""
    prop = _resolve(prop, defs)
    if "anyOf" in prop:
        options = [_resolve(o, defs) for o in prop["anyOf"] if o.get("type") != "null"]
        return _object(options[0], defs) if len(options) == 1 else None
    if prop.get("type") == "object" and prop.get("properties") and not prop.get("additionalProperties"):
        return prop
    return None


def _shape(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[str, str, list[str]]:
    """(widget, parse, options) for one property."""
    if _object(prop, defs) is not None:
        return "group", "group", []
    prop = _resolve(prop, defs)
    secret = prop.get("writeOnly") or prop.get("format") == "password"
    if "anyOf" in prop:
        options = [_resolve(o, defs) for o in prop["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            return _shape({**options[0], **({"writeOnly": True} if secret else {})}, defs)
        flat: list[dict[str, Any]] = []
        for o in options:
            flat.extend(_resolve(x, defs) for x in o.get("anyOf", [o]))
        types = {o.get("type") for o in flat}
        if types <= {"string", "number", "integer"} and "string" in types:
            return ("password" if secret else "text"), "num-or-str", []
        return "json", "json", []
    kind = prop.get("type")
    if "enum" in prop and kind in ("string", None):
        return "select", "str", [str(v) for v in prop["enum"]]
    if kind == "string":
        return ("password" if secret else "text"), "str", []
    if kind == "integer":
        return "number", "int", []
    if kind == "number":
        return "number", "float", []
    if kind == "boolean":
        return "checkbox", "bool", []
    if kind == "array":
        items = _resolve(prop.get("items") or {}, defs)
        if items.get("type") in ("string", None) and "prefixItems" not in prop and items.get("type") != "object":
            return ("secret-lines" if secret else "lines"), "lines-str", []
        if items.get("type") in ("integer", "number"):
            return "lines", "lines-int", []
    return "json", "json", []


def _show(value: Any, parse: str) -> str:
    """A stored value as the input shows it."""
    if value is None:
        return ""
    if parse.startswith("lines") and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if parse == "json" or isinstance(value, dict | list):
        return json.dumps(value, indent=2, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fields(schema: dict[str, Any], common: set[str] | None = None, settings: dict[str, Any] | None = None,
           posted: Any = None, prefix: str = "", defs: dict[str, Any] | None = None) -> list[Field]:
    """The form's fields for ``schema``, filled from the stored ``settings`` (as the API shows them:
    secrets as ``{set, masked, reference}``) or from a ``posted`` form being shown again. An object
    with fields of its own (``sync``, ``retry``) is a group of them."""
    defs = schema.get("$defs", {}) if defs is None else defs
    required = set(schema.get("required", []))
    out = []
    for key, prop in schema.get("properties", {}).items():
        if prop.get("deprecated"):
            continue
        name = prefix + key
        widget, parse, options = _shape(prop, defs)
        secret = widget in ("password", "secret-lines")
        has_default = "default" in prop
        f = Field(name=name, widget=widget, parse=parse, required=key in required,
                  help=_words(prop.get("description") or _resolve(prop, defs).get("description")
                              or (_object(prop, defs) or {}).get("description")),
                  default=prop.get("default"), has_default=has_default, options=options, secret=secret,
                  common=key in (common or set()))
        stored = (settings or {}).get(key, _MISSING) if isinstance(settings, dict) else _MISSING
        if widget == "group":
            sub = _object(prop, defs) or {}
            inner = stored if isinstance(stored, dict) else (f.default if isinstance(f.default, dict) else {})
            f.children = fields(sub, None, stored if isinstance(stored, dict) else None, posted, name + ".", defs)
            for child in f.children:  # the object's default, when it has one, is its fields' defaults
                if child.key in inner and not isinstance(stored, dict):
                    child.default, child.has_default = inner[child.key], True
            f.shown = _show(stored, "json") if stored is not _MISSING and stored is not None else (
                "default: " + json.dumps(f.default, ensure_ascii=False) if isinstance(f.default, dict) else "—")
        elif secret:
            f.secret_state = stored if isinstance(stored, dict) else None
            f.shown = _secret_words(f.secret_state)
        else:
            current = stored if stored is not _MISSING else (f.default if has_default else None)
            if posted is not None and widget != "checkbox":
                f.value = posted.get(f.input_name, "")
            else:
                f.value = _show(stored, parse) if stored is not _MISSING else ""
            if widget == "checkbox":
                f.checked = (posted.get(f.input_name) is not None) if posted is not None else bool(current)
            if widget == "select" and not f.value and has_default and f.default is not None:
                f.value = str(f.default)
            f.shown = (_show(stored, parse) if stored is not _MISSING else "") or _default_words(f)
        out.append(f)
    out.sort(key=lambda f: (f.common, not f.required, f.key != "description"))
    return out


def _default_words(f: Field) -> str:
    if not f.has_default or f.default in (None, "", [], {}):
        return "—"
    if isinstance(f.default, dict | list):
        return f"default: {json.dumps(f.default, ensure_ascii=False)}"
    shown = _show(f.default, f.parse)
    return f"default: {shown}"


def walk(fs: list[Field]) -> list[Field]:
    """Every field, a group's fields after it."""
    out = []
    for f in fs:
        out.append(f)
        out.extend(walk(f.children))
    return out


def _words(text: Any) -> str:
    """A description as help text: its first paragraph, on one line."""
    return " ".join(str(text or "").split("\n\n")[0].replace("``", "`").split())


def _secret_words(state: dict[str, Any] | None) -> str:
    if not state or not state.get("set"):
        return "not set"
    words = "set (masked"
    if state.get("masked"):
        words += f" {state['masked']}"
    words += ")"
    if state.get("reference"):
        words += f", stored as {state['reference']}"
    return words


def common_fields(kinds: list[dict[str, Any]]) -> set[str]:
    """Settings every kind has (limits, retry, breaker, template...), but ``description``."""
    names = [set(k["schema"].get("properties", {})) for k in kinds]
    return (set.intersection(*names) - {"description"}) if names else set()


# -- reading a posted form ---------------------------------------------------------------------------
def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text  # the API says what is wrong with it


def parse(f: Field, form: Any) -> tuple[Any, str | None]:
    """What the form says for ``f`` (None: nothing given) and a problem the API can't be asked about
    (JSON that isn't JSON)."""
    if f.widget == "checkbox":
        return form.get(f.input_name) is not None, None
    text = form.get(f.input_name, "")
    if f.parse in ("lines-str", "lines-int"):
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        if not lines:
            return None, None
        return ([_number(x) for x in lines] if f.parse == "lines-int" else lines), None
    text = text.strip() if not f.secret else text
    if text == "":
        return None, None
    if f.parse == "json":
        try:
            return json.loads(text), None
        except ValueError as exc:
            return None, f"not JSON: {exc}"
    if f.parse in ("int", "float", "num-or-str"):
        value = _number(text)
        return (value if f.parse != "float" or not isinstance(value, int) else float(value)), None
    return text, None


def new_settings(fs: list[Field], form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings of a new integration: what was filled in and differs from the default (a group
    with nothing filled in is left out)."""
    out, problems = {}, {}
    for f in fs:
        if f.widget == "group":
            sub, inner = new_settings(f.children, form)
            problems.update(inner)
            if sub:
                out[f.key] = sub
            continue
        value, problem = parse(f, form)
        if problem:
            problems[f.name] = problem
        elif value is not None and not (f.has_default and value == f.default):
            out[f.key] = value
    return out, problems


def merge_patch(fs: list[Field], form: Any, current: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A JSON merge patch from the stored settings to what the form says: a field emptied removes
    the setting; a secret left empty keeps what is stored (its "remove" box removes it); a group
    emptied removes the object."""
    patch: dict[str, Any] = {}
    problems = {}
    for f in fs:
        stored = current.get(f.key, _MISSING)
        if f.widget == "group":
            given, inner = new_settings(f.children, form)
            problems.update(inner)
            if isinstance(stored, dict):
                sub, inner = merge_patch(f.children, form, stored)
                problems.update(inner)
                if not given and sub:
                    patch[f.key] = None
                elif sub:
                    patch[f.key] = sub
            elif given:
                patch[f.key] = given
            continue
        if f.secret:
            if form.get(CLEAR_PREFIX + f.name) is not None and stored is not _MISSING:
                patch[f.key] = None
            elif (text := form.get(f.input_name, "")) and (f.widget == "password" or text.strip()):
                patch[f.key] = parse(f, form)[0]
            continue
        value, problem = parse(f, form)
        if problem:
            problems[f.name] = problem
            continue
        if f.widget == "checkbox":
            effective = stored if stored is not _MISSING else (f.default if f.has_default else False)
            if bool(value) != bool(effective):
                patch[f.key] = value
            continue
        if value is None:
            if stored is not _MISSING:
                patch[f.key] = None
            continue
        if stored is _MISSING:
            if not (f.has_default and value == f.default):
                patch[f.key] = value
        elif value != stored:
            patch[f.key] = value
    return patch, problems


# -- the API's problems beside their fields ----------------------------------------------------------
_PATH = re.compile(
    r"^(?:integrations\.(?P<i>[^.:\[]+)|body|settings|body\.settings)(?P<rest>[.\[][^:]*)?:\s*(?P<msg>.*)$", re.S)


def place(lines: list[str], fs: list[Field],
          extra: tuple[str, ...] = ("name", "kind")) -> tuple[dict[str, str], list[str]]:
    """The API's problem lines: those naming a field (``integrations.x.token: ...``, ``body.name: ...``)
    by field name, the others as they are."""
    known = {f.name for f in walk(fs)}
    by_field: dict[str, str] = {}
    rest: list[str] = []
    for line in lines:
        m = _PATH.match(line)
        if m and m.group("rest"):
            path = m.group("rest").lstrip(".")
            parts = [p for p in re.split(r"[.\[\]]", path) if p]
            if parts and parts[0] == "settings":
                parts = parts[1:]
            found = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in known), None)
            if found is None and parts and parts[0] in extra:
                found = parts[0]
            if found is not None:
                words = m.group("msg") if found in extra else f"{path}: {m.group('msg')}"
                by_field[found] = (by_field[found] + "; " if found in by_field else "") + words
                continue
        rest.append(line)
    return by_field, rest
