"""Which integrations a message goes to: ordered rules on priority, labels and source.

The first matching route wins unless it says ``continue: true``; when none matches, the default
route applies. A message sent with an explicit ``to`` skips the rules. Every project has its own
routes and integrations: a message is routed only within its project.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import MessageError, UnknownIntegration
from .integrations.base import DEFAULT_PROJECT, NO_OPTIONS, RenderOptions
from .message import Message, Priority
from .templates import Template

if TYPE_CHECKING:
    from .config.models import Config, Match, _Deliveries
    from .config.people import Escalation

HANDLE_PREFIX = "@"
"""A ``to`` entry starting with it names a recipient or a group (``@oncall``), not an integration."""
_PRIORITY_EXPR = re.compile(r"^\s*(>=|<=|==|=|>|<)?\s*([A-Za-z]+)\s*$")

Predicate = Callable[[Message], bool]


@dataclass(frozen=True, slots=True)
class RouteOptions:
    template: Template | None = None
    render: RenderOptions = NO_OPTIONS
    group: Grouping | None = None


NO_ROUTE = RouteOptions()


@dataclass(frozen=True, slots=True)
class Target:
    """One delivery to plan: where, by which route, its cooldown for ``dedup_key``, and the
    route's grouping when it folds messages into digests."""

    integration: str
    route: str | None
    cooldown: float
    group: Grouping | None = None
    recipient: str | None = None
    """The recipient (``recipients.id``) addressed on ``integration`` (their email, their Slack DM)."""
    status: str | None = None
    """A decision taken while planning: ``suppressed`` (a preference, quiet hours' ``drop``); None: the usual."""
    reason: str | None = None
    """Why (kept on the delivery): ``to @oncall by route pager``, ``held by quiet hours until 07:00 Europe/Berlin``."""
    due: float | None = None
    """Not before this time (quiet hours' ``defer``); None: now."""


@dataclass(frozen=True, slots=True)
class Addressees:
    """The ``@handles`` one route (or an explicit ``to``) names: people, not integrations.
    :mod:`tidings.recipients.plan` turns them into one delivery per person and channel."""

    handles: tuple[str, ...]
    route: str | None
    cooldown: float
    topic: str | None = None
    """The route's ``topic:`` (a message's ``topic`` label wins)."""


@dataclass(frozen=True, slots=True)
class Routed:
    """Where a message goes: integrations, and people by ``@handle``."""

    targets: list[Target]
    people: list[Addressees]


@dataclass(frozen=True, slots=True)
class Grouping:
    by: tuple[str, ...]
    wait: float
    interval: float
    repeat: float

    @classmethod
    def of(cls, route: _Deliveries) -> Grouping | None:
        if route.group_by is None:
            return None
        return cls(tuple(route.group_by), route.group_wait, route.group_interval, route.repeat_interval)


def parse_priority(expr: str | Sequence[str]) -> frozenset[Priority]:
    """The set of priorities an expression admits: ``">=high"`` is {critical, high}."""
    if not isinstance(expr, str):
        out: set[Priority] = set()
        for item in expr:
            out |= parse_priority(item)
        return frozenset(out)
    m = _PRIORITY_EXPR.match(expr)
    if not m:
        raise ValueError(f"invalid priority expression {expr!r}; write e.g. '>=high' or 'critical'")
    op, name = m.group(1) or "==", m.group(2).lower()
    try:
        p = Priority(name)
    except ValueError:
        raise ValueError(f"unknown priority {name!r}; use one of {', '.join(x.value for x in Priority)}") from None
    # A lower rank is more urgent, so ">=high" means rank <= rank(high).
    compare: dict[str, Callable[[int], bool]] = {
        "==": lambda r: r == p.rank,
        "=": lambda r: r == p.rank,
        ">=": lambda r: r <= p.rank,
        ">": lambda r: r < p.rank,
        "<=": lambda r: r >= p.rank,
        "<": lambda r: r > p.rank,
    }
    return frozenset(x for x in Priority if compare[op](x.rank))


def compile_match(match: Match) -> Predicate:
    checks: list[Predicate] = []
    if match.priority is not None:
        allowed = parse_priority(match.priority)
        checks.append(lambda m: m.priority in allowed)
    if match.source is not None:
        sources = {match.source} if isinstance(match.source, str) else set(match.source)
        checks.append(lambda m: m.labels.get("source") in sources)
    for name, want in match.labels.items():
        checks.append(_label_check(name, want))
    return lambda m: all(check(m) for check in checks)


def _label_check(name: str, want: object) -> Predicate:
    if isinstance(want, str):
        return lambda m: m.labels.get(name) == want
    if isinstance(want, list):
        values = set(want)
        return lambda m: m.labels.get(name) in values
    pattern = re.compile(want.regex)  # type: ignore[attr-defined]
    return lambda m: (v := m.labels.get(name)) is not None and pattern.fullmatch(v) is not None


class Router:
    """The routes of every project. A message is routed by its project's routes to its project's
    integrations only; the ``default`` route is project ``default``'s."""

    def __init__(self, config: Config) -> None:
        self.project_of: dict[str, str] = {name: s.project for name, s in config.integrations.items()}
        """Integration name -> its project."""
        self._cooldown = config.default.cooldown
        self._routes: dict[str, list[tuple[Predicate, list[Target], Addressees | None, bool]]] = {}
        self.options: dict[str, RouteOptions] = {}
        """Route name -> what the route adds to its deliveries (template, mentions, grouping)."""
        self.targets_of: dict[str, list[str]] = {}
        """Route name -> its integrations (digests go to all of them; its ``@handles`` are not here)."""
        self.topic_of: dict[str, str | None] = {}
        """Route name -> its ``topic:``."""
        self.project_of_route: dict[str, str] = {}
        """Route name -> the project whose messages it routes (digests belong to it)."""
        self.escalation_of: dict[str, Escalation] = {}
        """Route name -> its ``escalation:`` policy (routes that have one)."""
        self._escalating: dict[str, _Escalating] = {}
        """Project -> its routes in order, for projects with at least one escalating route."""
        names: dict[str, list[tuple[Predicate, str, bool]]] = {}
        for i, route in enumerate(config.routes):
            name = route.name or f"routes[{i}]"
            self._add(name, route, route.project)
            predicate = compile_match(route.match)
            self._routes.setdefault(route.project, []).append(
                (predicate, self._targets(name, route), _addressees(name, route), route.continue_))
            names.setdefault(route.project, []).append((predicate, name, route.continue_))
        self._add("default", config.default, DEFAULT_PROJECT)
        self._default = _unique(self._targets("default", config.default))
        self._default_people = [a] if (a := _addressees("default", config.default)) is not None else []
        for project, rules in {DEFAULT_PROJECT: [], **names}.items():
            covered = {n: parse_priority(self.escalation_of[n].priority) for _, n, _ in rules if n in self.escalation_of}
            if project == DEFAULT_PROJECT and "default" in self.escalation_of:
                covered["default"] = parse_priority(self.escalation_of["default"].priority)
            if covered:
                self._escalating[project] = _Escalating(rules, covered, frozenset().union(*covered.values()))

    def _add(self, name: str, route: _Deliveries, project: str) -> None:
        self.options[name] = RouteOptions(route.template, RenderOptions(route.mention), Grouping.of(route))
        self.targets_of[name] = [t for t in route.to if not is_handle(t)]  # type: ignore[attr-defined]
        self.project_of_route[name] = project
        self.topic_of[name] = route.topic
        if route.escalation is not None:
            self.escalation_of[name] = route.escalation

    @staticmethod
    def _targets(name: str, route: _Deliveries) -> list[Target]:
        group = Grouping.of(route)
        return [Target(t, name, route.cooldown, group) for t in route.to if not is_handle(t)]  # type: ignore[attr-defined]

    def options_for(self, route: str | None) -> RouteOptions:
        return self.options.get(route or "", NO_ROUTE)

    def targets(self, message: Message, to: Sequence[str] | None = None, project: str = DEFAULT_PROJECT) -> list[Target]:
        """The integrations :meth:`route` finds (without the people)."""
        return self.route(message, to, project).targets

    def route(self, message: Message, to: Sequence[str] | None = None, project: str = DEFAULT_PROJECT) -> Routed:
        """Where ``message`` of ``project`` goes: each integration once, in route order, and the
        ``@handles`` of the routes that matched. ``to`` may name only the project's integrations
        (another project's is unknown here) and ``@handles``. A message of another project than
        ``default`` that none of its routes match goes nowhere."""
        if to is not None:
            if not to:
                raise MessageError("to: name at least one integration, or leave it out to use the routes")
            handles = tuple(name for name in to if is_handle(name))
            unknown = [name for name in to if not is_handle(name) and self.project_of.get(name) != project]
            if unknown:
                raise UnknownIntegration(f"unknown integration {unknown[0]!r}")
            targets = _unique(Target(name, None, self._cooldown) for name in to if not is_handle(name))
            return Routed(targets, [Addressees(handles, None, self._cooldown)] if handles else [])
        found: list[Target] = []
        people: list[Addressees] = []
        for predicate, targets, addressees, fall_through in self._routes.get(project, ()):
            if predicate(message):
                found.extend(targets)
                if addressees is not None:
                    people.append(addressees)
                if not fall_through:
                    break
        if not found and not people:
            return Routed(self._default, self._default_people) if project == DEFAULT_PROJECT else Routed([], [])
        return Routed(_unique(found) if len(found) > 1 else found, people)

    def escalations(self, message: Message, project: str = DEFAULT_PROJECT) -> list[str]:
        """The routes that matched ``message`` (as :meth:`targets` matches them) whose
        ``escalation:`` covers its priority. Nothing to do, and no predicate evaluated again, for a
        project without escalating routes or a priority none of them covers (the common case)."""
        rules = self._escalating.get(project)
        if rules is None or message.priority not in rules.priorities:
            return []
        matched: list[str] = []
        for predicate, name, fall_through in rules.routes:
            if predicate(message):
                matched.append(name)
                if not fall_through:
                    break
        if not matched and project == DEFAULT_PROJECT:
            matched = ["default"]
        return [n for n in dict.fromkeys(matched) if message.priority in rules.covered.get(n, ())]


def is_handle(name: str) -> bool:
    return name.startswith(HANDLE_PREFIX)


def _addressees(name: str, route: _Deliveries) -> Addressees | None:
    handles = tuple(t for t in route.to if is_handle(t))  # type: ignore[attr-defined]
    return Addressees(handles, name, route.cooldown, route.topic) if handles else None


@dataclass(frozen=True, slots=True)
class _Escalating:
    routes: list[tuple[Predicate, str, bool]]
    covered: dict[str, frozenset[Priority]]
    """Escalating route -> the priorities its policy applies to."""
    priorities: frozenset[Priority]
    """Any of them."""


def _unique(targets: Iterable[Target]) -> list[Target]:
    seen: set[str] = set()
    out = []
    for t in targets:
        if t.integration not in seen:
            seen.add(t.integration)
            out.append(t)
    return out
