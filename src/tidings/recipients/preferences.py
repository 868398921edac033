"""Whether a person gets a message of a topic on a channel, and why (see ``docs/recipients.md``).

The first level that says something decides:

1. a ``required`` topic (``projects.<slug>.topics``): always on;
2. the person's choice for this topic on this channel;
3. the person's choice for this channel (any topic);
4. the person's choice for this topic (any channel);
5. the person's global switch;
6. the project's defaults (``projects.<slug>.preferences``): topic × channel, then ``'*'`` ×
   channel, then topic × ``'*'``, then ``'*'`` × ``'*'``;
7. on.

At each level the channel is looked at before the topic: "no email" is about the medium and holds
for every topic, unless the person (or the project) named this very topic on this very channel.
A message without a topic skips the levels that name one. A channel is an integration's name.
"""

from __future__ import annotations

from ..config.people import ProjectSettings
from .model import Person

ANY = "*"
"""How project defaults write "any topic" and "any channel" (a person's rows use '')."""


def is_required(topic: str, settings: ProjectSettings | None) -> bool:
    t = settings.topics.get(topic) if settings is not None and topic else None
    return t is not None and t.required


def decide(person: Person, topic: str, channel: str, settings: ProjectSettings | None) -> tuple[bool, str | None]:
    """``(enabled, reason)`` for ``person`` getting a message of ``topic`` ('' for none) on
    ``channel``; the reason names the level that decided (None: nothing did, it is on)."""
    if is_required(topic, settings):
        return True, f"topic {topic} is required"
    who = person.name
    prefs = person.prefs
    if prefs:
        if topic and (on := prefs.get((topic, channel))) is not None:
            return on, f"{who} turned {_on(on)} topic {topic} for {channel}"
        if (on := prefs.get(("", channel))) is not None:
            return on, f"{who} turned {_on(on)} {channel}"
        if topic and (on := prefs.get((topic, ""))) is not None:
            return on, f"{who} turned {_on(on)} topic {topic}"
        if (on := prefs.get(("", ""))) is not None:
            return on, f"{who} turned {_on(on)} all notifications"
    defaults = settings.preferences if settings is not None else None
    if defaults:
        by_topic = defaults.get(topic) if topic else None
        by_any = defaults.get(ANY)
        if by_topic is not None and (on := by_topic.get(channel)) is not None:
            return on, f"project default: topic {topic} {_on(on)} for {channel}"
        if by_any is not None and (on := by_any.get(channel)) is not None:
            return on, f"project default: {channel} {_on(on)}"
        if by_topic is not None and (on := by_topic.get(ANY)) is not None:
            return on, f"project default: topic {topic} {_on(on)}"
        if by_any is not None and (on := by_any.get(ANY)) is not None:
            return on, f"project default: everything {_on(on)}"
    return True, None


def _on(enabled: bool) -> str:
    return "on" if enabled else "off"
