"""Quiet hours on the recipients pages: shown as a person reads them (``Mon–Fri 22:00–07:00``, what
happens per priority, the digest), and the form that edits a recipient's own — its rows of
windows (days ticked, start, end), the policy per priority, the digest — read back into the
``quiet_hours`` the API takes, with the API's 422 lines placed beside the fields they name.

The rules stay the API's and the model's: the UI only formats (``describe_window``), fills in the
model's defaults (``default_policy``) and asks the API, which validates."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..config.people import QuietHours, default_policy
from ..message import Priority
from ..recipients.model import Person
from ..recipients.quiet import DAY_NAMES, describe_window, parse_days, quiet_hours_for

PRIORITIES = tuple(p.value for p in Priority)
POLICIES = (("deliver", "deliver: sent at once"), ("defer", "defer: held until they end"),
            ("drop", "drop: recorded, not sent"))
MAX_ROWS = 30
_PLACE = re.compile(r"^quiet_hours\.(windows(?:\[(\d+)\])?|policy|digest)[^:]*: ")
_ZONE = re.compile(r"\btimezone\b")


# -- reading ---------------------------------------------------------------------------------------
def shown(quiet_hours: dict[str, Any] | None, zone: str | None) -> dict[str, Any] | None:
    """Quiet hours as a page lists them: each window as text, the policy of each priority
    (``default`` when the model's), the digest; ``zone`` the time zone they are read in."""
    if not quiet_hours:
        return None
    try:
        qh = QuietHours.model_validate(quiet_hours)
    except ValidationError:  # stored before a rule changed: shown as stored
        return {"raw": quiet_hours}
    words = dict(POLICIES)
    return {"windows": [describe_window(w) for w in qh.windows], "zone": zone, "digest": qh.digest,
            "timezone": qh.timezone,
            "policy": [(p, words[qh.policy_for(p)], p not in qh.policy) for p in PRIORITIES]}


def zone_of(recipient: dict[str, Any], project: dict[str, Any] | None) -> str:
    """The zone the quiet hours applying to ``recipient`` are read in (``quiet_hours_for``'s rule)."""
    person = Person(recipient["id"], recipient["project"], recipient["name"], recipient["display_name"],
                    recipient["timezone"], quiet_hours=_model(recipient["quiet_hours"]))
    return quiet_hours_for(person, _model(project))[1]


def _model(data: dict[str, Any] | None) -> QuietHours | None:
    try:
        return QuietHours.model_validate(data) if data else None
    except ValidationError:
        return None


# -- the form --------------------------------------------------------------------------------------
@dataclass
class Row:
    days: list[str] = field(default_factory=list)
    start: str = ""
    end: str = ""
    remove: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.days and not self.start and not self.end


@dataclass
class QuietForm:
    """What the form shows: its rows (the last one empty, to add a window), the policy per
    priority, the digest, the time zone, and the problems placed beside them."""

    rows: list[Row]
    policy: dict[str, str]
    digest: bool
    zone: str
    problems: dict[str, list[str]] = field(default_factory=lambda: {"windows": [], "policy": [], "zone": [],
                                                                   "other": []})
    sent: list[int] = field(default_factory=list)
    """The row each window sent to the API came from (its index in the API's answer -> the row)."""

    def with_empty_row(self) -> QuietForm:
        if not self.rows or not self.rows[-1].empty:
            self.rows.append(Row())
        return self

    def body(self) -> dict[str, Any]:
        """The ``quiet_hours`` to send: the rows not empty nor removed (start or end left empty: the
        model's 00:00 and 24:00), only the policies that differ from the model's defaults."""
        windows, self.sent = [], []
        for i, row in enumerate(self.rows):
            if row.remove or row.empty:
                continue
            window = {"days": days_text(row.days)}
            window |= {"start": row.start} if row.start else {}
            window |= {"end": row.end} if row.end else {}
            windows.append(window)
            self.sent.append(i)
        policy = {p: v for p, v in self.policy.items() if v != default_policy(p)}
        return {"windows": windows, **({"policy": policy} if policy else {}), "digest": self.digest}

    def place(self, lines: list[str]) -> None:
        """The API's error lines beside what they name: a window's row, the windows, the policy,
        the time zone; the rest above the form."""
        for line in lines:
            for part in re.split(r"; (?=quiet_hours\.)", line):
                found = _PLACE.match(part)
                words = part[found.end():] if found else part
                if found and found.group(2) is not None and int(found.group(2)) < len(self.sent):
                    self.rows[self.sent[int(found.group(2))]].problems.append(words)
                elif found:
                    self.problems["windows" if found.group(1).startswith("windows") else "policy"].append(words)
                elif _ZONE.search(part):
                    self.problems["zone"].append(part)
                else:
                    self.problems["other"].append(part)


def form_of(quiet_hours: dict[str, Any] | None, zone: str) -> QuietForm:
    """The form filled with stored quiet hours (the model's defaults when there are none)."""
    qh = _model(quiet_hours)
    rows = [Row([DAY_NAMES[d] for d in sorted(parse_days(w.days))], w.start, "00:00" if w.end == "24:00" else w.end)
            for w in (qh.windows if qh else [])]
    policy = {p: (qh.policy_for(p) if qh else default_policy(p)) for p in PRIORITIES}
    return QuietForm(rows, policy, bool(qh and qh.digest), zone).with_empty_row()


def read_form(form: Any) -> QuietForm:
    """The posted form (``rows`` of ``w<i>_days``, ``w<i>_start``, ``w<i>_end``, ``w<i>_remove``)."""
    count = int(form.get("rows", "0")) if form.get("rows", "").isdigit() else 0
    rows = [Row([d for d in DAY_NAMES if d in form.getlist(f"w{i}_days")], form.get(f"w{i}_start", "").strip(),
                form.get(f"w{i}_end", "").strip(), form.get(f"w{i}_remove") == "on")
            for i in range(min(count, MAX_ROWS))]
    policy = {p: form.get(f"policy_{p}") or default_policy(p) for p in PRIORITIES}
    return QuietForm(rows, policy, form.get("digest") == "on", form.get("zone", "").strip())


def days_text(days: list[str]) -> str:
    """Ticked days as the model writes them: ``daily``, ``mon-fri``, ``mon,wed-thu``."""
    ticked = {DAY_NAMES.index(d) for d in days}
    if len(ticked) == 7:
        return "daily"
    parts, i = [], 0
    while i < 7:
        if i in ticked:
            j = i
            while j + 1 in ticked:
                j += 1
            parts.append(DAY_NAMES[i] if i == j else f"{DAY_NAMES[i]}-{DAY_NAMES[j]}")
            i = j + 1
        else:
            i += 1
    return ",".join(parts)
