"""Configuration of who gets what, and when: a project's topics, default preferences, quiet
hours and ``alerts_to``; a route's ``topic`` and ``escalation``. People themselves (recipients,
their addresses and own preferences) are rows, edited through the API and CLI."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..units import Duration

TOPIC = r"^[a-z0-9][a-z0-9_.\-]{0,63}$"
HANDLE = re.compile(r"^@[a-z0-9][a-z0-9_.\-]{0,63}$")
"""How a route names a recipient or a group of recipients in ``to``: ``@oncall``."""

_DAYS = re.compile(r"^(daily|weekdays|weekends|(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?"
                   r"(,(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?)*)$")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")

Policy = Literal["defer", "drop", "deliver"]


def default_policy(priority: str) -> Policy:
    """What quiet hours do to a message of ``priority`` that their ``policy`` doesn't name:
    critical ones are delivered, the others deferred."""
    return "deliver" if priority == "critical" else "defer"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Window(_Strict):
    """A weekly quiet window in the recipient's time zone: from ``start`` on each of ``days`` to
    ``end`` (the next day when ``end`` is not after ``start``: 19:00–08:00 runs overnight).
    A whole day is 00:00–24:00 (or 00:00–00:00); any other window starting when it ends is
    refused, as a mistake rather than 24 hours."""

    days: str = Field("daily", description="'daily', 'weekdays', 'weekends', 'mon-fri', 'sat,sun', ...")
    start: str = Field("00:00", description="HH:MM, wall-clock time")
    end: str = Field("24:00", description="HH:MM; 24:00 is the end of the day")

    @field_validator("days")
    @classmethod
    def _days(cls, v: str) -> str:
        v = v.strip().lower().replace(" ", "")
        if not _DAYS.match(v):
            raise ValueError(f"days {v!r}: write 'daily', 'weekdays', 'weekends', 'mon-fri' or 'sat,sun'")
        return v

    @field_validator("start", "end")
    @classmethod
    def _time(cls, v: str) -> str:
        if not _TIME.match(v):
            raise ValueError(f"{v!r} is not a time: write HH:MM (00:00 to 24:00)")
        return v

    @model_validator(mode="after")
    def _span(self) -> Window:
        if self.start == "24:00":
            raise ValueError("start 24:00: a window starts at 23:59 at the latest (00:00 is the next day's start)")
        if self.start == self.end and self.start != "00:00":
            raise ValueError(f"window {self.start}–{self.end} starts when it ends: write 00:00–24:00 for a whole day")
        return self


class QuietHours(_Strict):
    """When a person is not to be disturbed, and what happens to a message meanwhile, by priority."""

    windows: list[Window] = Field(min_length=1)
    timezone: str | None = Field(
        None, description="IANA time zone for a project default (a recipient's own zone wins)")
    policy: dict[Literal["critical", "high", "medium", "low", "info"], Policy] = Field(
        default_factory=dict,
        description="per priority: defer (hold until the window ends), drop (record, don't send), deliver;"
        " default: critical delivers, the others defer",
    )
    digest: bool = Field(False, description="fold what was deferred into one digest per person and channel")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None:
            check_timezone(v)
        return v

    @field_validator("windows")
    @classmethod
    def _not_always(cls, v: list[Window]) -> list[Window]:
        from ..recipients.quiet import covers_whole_week

        if covers_whole_week(v):
            raise ValueError("these windows cover the whole week: nothing would ever be sent (turn the topic off instead)")
        return v

    def policy_for(self, priority: str) -> Policy:
        return self.policy.get(priority, default_policy(priority))  # type: ignore[call-overload,no-any-return]


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone this machine knows, else ValueError."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin") from None
    return name


class Topic(_Strict):
    required: bool = Field(False, description="nobody can turn it off (security incidents)")
    description: str | None = Field(None, max_length=500)


class ProjectSettings(_Strict):
    """What a project decides for all its recipients, and where tidings reports its own trouble."""

    alerts_to: list[str] = Field(
        default_factory=list,
        description="integrations (or @recipients) that hear when one of the project's integrations, inbound"
        " senders, sync mappings or connections breaks, and when it recovers",
    )
    alert_cooldown: Duration = Field(3600.0, description="at most one notice per incident this often")
    alert_recover_after: Duration = Field(
        300.0,
        description="an integration's failing, dead or circuit-open incident resolves once it stayed clear of its"
        " trouble this long: a flapping peer is one incident, not a notice at every turn",
    )
    topics: dict[str, Topic] = Field(default_factory=dict)
    preferences: dict[str, dict[str, bool]] = Field(
        default_factory=dict,
        description="project defaults: topic (or '*') -> channel (or '*') -> on/off",
    )
    quiet_hours: QuietHours | None = Field(None, description="the default for recipients without their own")

    @field_validator("topics")
    @classmethod
    def _topics(cls, v: dict[str, Topic]) -> dict[str, Topic]:
        for name in v:
            if not re.match(TOPIC, name):
                raise ValueError(f"topic {name!r}: lowercase letters, digits, '.', '-' and '_' (at most 64)")
        return v


class EscalationStep(_Strict):
    after: Duration = Field(description="since the message (or the previous step) went unacknowledged")
    to: list[str] = Field(min_length=1, description="integrations and @recipients")


class Escalation(_Strict):
    """Steps taken while a message stays unacknowledged; an acknowledgement stops them."""

    priority: str | list[str] = Field(">=high", description="the messages it applies to")
    steps: list[EscalationStep] = Field(min_length=1)

    @field_validator("priority")
    @classmethod
    def _priority(cls, v: str | list[str]) -> str | list[str]:
        from ..routing import parse_priority

        parse_priority(v)
        return v
