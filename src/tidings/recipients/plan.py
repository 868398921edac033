"""How a route's ``@handles`` become deliveries: one per person and channel (see "How a message
reaches people" in ``docs/recipients.md``).

A handle names a recipient or a group of the message's project. Each person it names gets one
delivery on each of the project's integrations that can address them (:class:`Addressable`: the
email integration mails them, a Slack bot DMs them), decided by their preferences
(:func:`~tidings.recipients.preferences.decide`): allowed, it carries ``to @oncall (Ada Lovelace)
by route pager``; turned off, it is stored ``suppressed`` with the preference's reason. A person
named twice (by a group and by name, or by two routes) gets each channel once: the first naming
wins. Everything is in memory: planning never queries.

What can't reach anybody is kept in the message's history too, as a ``suppressed`` delivery whose
integration is the handle itself (it names no integration, nothing ever sends it): a handle that
names nobody (``@nobody``: recipients are data, the configuration can't know them), a group
without members, a person with no address on any of the project's integrations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..config.people import ProjectSettings
from ..integrations.base import Addressable, Notifier
from ..message import Message
from ..routing import Addressees, Target
from .model import People, Person
from .preferences import decide

TOPIC_LABEL = "topic"
"""The label that names a message's topic (a route's ``topic:`` applies without it)."""
SUPPRESSED = "suppressed"


def topic_of(message: Message, route_topic: str | None) -> str:
    """The message's ``topic`` label, else its route's ``topic:``, else '' (none)."""
    return message.labels.get(TOPIC_LABEL) or route_topic or ""


def addressable(notifiers: Iterable[Notifier], project: str) -> list[Notifier]:
    """The project's integrations that can address a person, in configuration order."""
    return [n for n in notifiers if isinstance(n, Addressable) and n.project == project]


def plan_people(
    message: Message,
    named: Sequence[Addressees],
    people: People,
    channels: Sequence[Notifier],
    settings: ProjectSettings | None,
) -> list[Target]:
    """The deliveries the ``@handles`` of ``named`` (the routes that matched, in order) make for
    ``message``: one per (person, channel), each with its reason."""
    out: list[Target] = []
    seen: set[tuple[str, str]] = set()
    for a in named:
        topic = topic_of(message, a.topic)
        by = f"by route {a.route}" if a.route is not None else "as the sender asked"
        for handle in a.handles:
            persons = people.resolve((handle,))
            if not persons and (handle, "") not in seen:
                seen.add((handle, ""))
                out.append(_nobody(handle, a, people))
            for person in persons:
                out += _person(person, handle, by, topic, a, channels, settings, seen)
    return out


def _person(person: Person, handle: str, by: str, topic: str, a: Addressees, channels: Sequence[Notifier],
            settings: ProjectSettings | None, seen: set[tuple[str, str]]) -> list[Target]:
    out = []
    reached = False
    for channel in channels:
        if not channel.reaches(person):  # type: ignore[attr-defined]  # addressable() keeps only Addressable
            continue
        reached = True
        if (person.id, channel.name) in seen:
            continue
        seen.add((person.id, channel.name))
        enabled, why = decide(person, topic, channel.name, settings)
        if not enabled:
            out.append(Target(channel.name, a.route, a.cooldown, recipient=person.id, status=SUPPRESSED, reason=why))
            continue
        target = Target(channel.name, a.route, a.cooldown, recipient=person.id,
                        reason=f"to {handle} ({person.display_name}) {by}")
        out.append(target)
    if not reached and (f"@{person.name}", "") not in seen:
        seen.add((f"@{person.name}", ""))
        out.append(Target(f"@{person.name}", a.route, a.cooldown, recipient=person.id, status=SUPPRESSED,
                          reason=f"{person.name} has no address on any of the project's integrations"
                                 f" (named as {handle} {by})"))
    return out


def _nobody(handle: str, a: Addressees, people: People) -> Target:
    name = handle.removeprefix("@")
    why = (f"group {handle} has no members" if name in people.groups
           else f"{handle} names no recipient or group of project {people.project}")
    return Target(handle, a.route, a.cooldown, status=SUPPRESSED, reason=why)
